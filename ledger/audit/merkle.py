"""The RFC 6962 Merkle Tree Hash over a log of entries, its incremental head, and its proofs.

Definitions (RFC 6962 §2.1, kept by RFC 9162 §2.1), with SHA-256:

- leaf   = SHA-256(0x00 ‖ entry bytes)            `leaf_hash`
- node   = SHA-256(0x01 ‖ left ‖ right)           `node_hash`
- MTH({}) = SHA-256(""); MTH of n > 1 leaves splits at k, the largest power of two below n, and
  hashes MTH(first k) with MTH(the rest)          `merkle_root`, `Frontier.root`

Every function here takes and returns raw 32-byte digests (`bytes`); hex, where it appears, is
lowercase. Proof generation (`inclusion_proof`, `consistency_proof`) follows RFC 6962 §2.1.1–§2.1.2
(PATH and PROOF); verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and is strict: a proof of the
wrong length, a size out of range or a digest that is not 32 bytes fails rather than being repaired.
Checked against Certificate Transparency's and transparency-dev's published vectors in
`tests/test_merkle.py`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in a SHA-256 digest: every leaf hash, node hash, root and proof element."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH of the empty log: SHA-256 of the empty string (e3b0c442…b855)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry_bytes: bytes) -> bytes:
    """SHA-256(0x00 ‖ entry_bytes): the leaf of one log entry (its canonical bytes)."""
    return hashlib.sha256(_LEAF_PREFIX + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): the interior node over two subtree hashes."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, in order; `EMPTY_ROOT` for none.

    Pairs neighbours level by level and lifts an odd last node unchanged, which builds exactly the
    RFC 6962 split-at-the-largest-power-of-two tree. Raises `ValueError` for a leaf that is not a
    32-byte digest (a hex string or raw entry bytes passed by mistake).
    """
    level = [_checked(leaf, index) for index, leaf in enumerate(leaf_hashes)]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class Frontier:
    """The incremental tree head of an append-only log in O(log n) space.

    Holds the roots of the perfect subtrees that make up the log so far, largest (leftmost) first:
    one per set bit of `size` (transparency-dev's "compact range", CT's compact tree). Appending a
    leaf merges equal-sized neighbours; `root()` folds them right to left.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        """An empty log: size 0, root `EMPTY_ROOT`."""
        self._size = 0
        self._nodes: list[bytes] = []

    @property
    def size(self) -> int:
        """How many leaves have been appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (32 bytes) at the right end of the log."""
        # The usual argument (a fresh digest) needs no copy; anything else is checked and copied.
        merged = leaf if leaf.__class__ is bytes and len(leaf) == HASH_SIZE else _checked(
            leaf, self._size
        )
        carry = self._size
        while carry & 1:
            merged = node_hash(self._nodes.pop(), merged)
            carry >>= 1
        self._nodes.append(merged)
        self._size += 1

    def extend(self, leaves: Iterable[bytes], *, heads_at: Container[int] = ()) -> dict[int, bytes]:
        """Append every leaf in order (as `append` each); return the root after each size in
        `heads_at` reached on the way (verify wants the tree head at every checkpoint's size)."""
        # `append` unrolled: this runs once per leaf of every log verified.
        nodes, size, sha256, heads = self._nodes, self._size, hashlib.sha256, {}
        try:
            for leaf in leaves:
                merged = leaf
                if merged.__class__ is not bytes or len(merged) != HASH_SIZE:
                    merged = _checked(leaf, size)
                carry = size
                while carry & 1:
                    merged = sha256(_NODE_PREFIX + nodes.pop() + merged).digest()
                    carry >>= 1
                nodes.append(merged)
                size += 1
                if size in heads_at:
                    self._size = size
                    heads[size] = self.root()
        finally:
            self._size = size
        return heads

    def root(self) -> bytes:
        """MTH of every leaf appended so far (equal to `merkle_root` of them)."""
        if not self._nodes:
            return EMPTY_ROOT
        result = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            result = node_hash(node, result)
        return result

    def to_hex_list(self) -> list[str]:
        """The subtree roots as lowercase hex, leftmost first: what to store beside `size`."""
        return [node.hex() for node in self._nodes]

    @classmethod
    def from_hex_list(cls, size: int, nodes: Sequence[str]) -> Frontier:
        """Rebuild a frontier saved with `size` and `to_hex_list()`.

        Raises `ValueError` (one line) when the size is not a non-negative integer, the number of
        nodes is not the number of set bits in `size`, or a node is not 64 lowercase hex digits.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"frontier size must be a non-negative integer, not {size!r:.40}")
        if isinstance(nodes, str | bytes):
            raise ValueError("frontier nodes must be a list of hex strings, not one string")
        if len(nodes) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} has {size.bit_count()} nodes, not {len(nodes)}"
            )
        frontier = cls()
        for index, node in enumerate(nodes):
            if not _is_lower_hex_digest(node):
                raise ValueError(
                    f"frontier node {index} is not 64 lowercase hex digits: {node!r:.70}"
                )
            frontier._nodes.append(bytes.fromhex(node))
        frontier._size = size
        return frontier

    def copy(self) -> Frontier:
        """An independent frontier with the same state (appending to one leaves the other alone)."""
        twin = Frontier()
        twin._size = self._size
        twin._nodes = list(self._nodes)
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, D[n]): the audit path of leaf `index` (0-based), leaf side first.

    Raises `ValueError` unless 0 <= index < len(leaf_hashes).
    """
    size = len(leaf_hashes)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise ValueError(f"leaf index {index!r:.40} is outside a log of {size} entries")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(merkle_root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(merkle_root(leaf_hashes[lo : lo + k]))
            lo += k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows leaf hash `leaf` at 0-based `index` in the log of `size` with `root`.

    RFC 9162 §2.1.3.2, plus: the proof must have exactly the length the shape of the tree implies,
    and `leaf` and every proof element must be 32-byte digests. As in RFC 9162 the path binds the
    shape of the tree, not `size` itself (leaf 2 verifies the same against sizes 5..8): take `size`
    and `root` together from one signed checkpoint.
    """
    if not (_is_count(index) and _is_count(size)) or index >= size:
        return False
    if not (_is_digest(leaf) and all(_is_digest(p) for p in proof)):
        return False
    if len(proof) != _inclusion_length(index, size):
        return False
    fn, sn = index, size - 1
    result = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(p, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(old_size, D[n]): that the first `old_size` leaves' tree is a prefix.

    Empty when `old_size` equals the log's size. Raises `ValueError` unless 0 < old_size <= n:
    a proof from the empty tree is meaningless (RFC 9162 §2.1.4 defines them for 0 < m).
    """
    size = len(leaf_hashes)
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 < old_size <= size:
        raise ValueError(f"a consistency proof needs 0 < old size <= {size}, not {old_size!r:.40}")
    proof: list[bytes] = []
    lo, hi, m, whole = 0, size, old_size, True
    # SUBPROOF(m, D[lo:hi], whole), unrolled; the nodes are gathered root side first.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(merkle_root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(merkle_root(leaf_hashes[lo : lo + k]))
            lo += k
            m -= k
            whole = False
    if not whole:
        proof.append(merkle_root(leaf_hashes[lo:hi]))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the log of `new_size` with `new_root` extends the one of `old_size`.

    RFC 9162 §2.1.4.2, strict:
    - old_size must be > 0: a proof from the empty tree is meaningless (RFC 9162 defines proofs for
      0 < first) and fails, as in transparency-dev's vectors. A caller holding a size-0 receipt
      checks `old_root == EMPTY_ROOT` itself; any log extends the empty one.
    - old_size > new_size fails; old_size == new_size needs an empty proof and equal roots;
    - the proof must have exactly the length the two sizes imply, of 32-byte digests.
    """
    if not (_is_count(old_size) and _is_count(new_size)):
        return False
    if old_size == 0 or old_size > new_size:
        return False
    if not all(_is_digest(p) for p in proof):
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if len(proof) != _consistency_length(old_size, new_size):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 6962 splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_length(index: int, size: int) -> int:
    """Nodes in the audit path of `index` in a log of `size` (0 <= index < size)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(old_size: int, new_size: int) -> int:
    """Nodes in PROOF(old_size, D[new_size]) for 0 < old_size < new_size."""
    length, m, n, whole = 0, old_size, new_size, True
    while m != n:
        k = _split(n)
        length += 1
        if m <= k:
            n = k
        else:
            m, n, whole = m - k, n - k, False
    return length + (0 if whole else 1)


def _checked(leaf: bytes, position: int) -> bytes:
    if not _is_digest(leaf):
        raise ValueError(
            f"leaf {position} is not a {HASH_SIZE}-byte digest: {type(leaf).__name__} "
            f"of length {len(leaf) if hasattr(leaf, '__len__') else '?'}"
        )
    return bytes(leaf)


def _is_digest(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_LOWER_HEX_DIGEST = re.compile(f"[0-9a-f]{{{2 * HASH_SIZE}}}")


def _is_lower_hex_digest(value: object) -> bool:
    return isinstance(value, str) and _LOWER_HEX_DIGEST.fullmatch(value) is not None
