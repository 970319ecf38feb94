"""RFC 6962 Merkle tree: published CT / transparency-dev vectors, then properties of proofs."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

FIXTURES = Path(__file__).parent / "fixtures" / "rfc6962"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


CT_TREE = _load("ct-reference-tree.json")
CT_PYTHON = _load("ct-python-merkle-test.json")
TESTONLY = _load("transparency-dev-testonly.json")
INCLUSION_PROBES = _load("transparency-dev-inclusion-probes.json")["probes"]
CONSISTENCY_PROBES = _load("transparency-dev-consistency-probes.json")["probes"]

H = bytes.fromhex
CT_LEAVES = [leaf_hash(H(data)) for data in CT_TREE["inputs"]]


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _short_id(path: str) -> str:
    return path.removeprefix("testdata/").removesuffix(".json")


# --- hashing: CT and transparency-dev known answers ----------------------------------------------


def test_empty_root_is_the_published_empty_tree_hash() -> None:
    """MTH of no leaves is SHA-256 of the empty string, as both sources publish it."""
    assert EMPTY_ROOT.hex() == CT_TREE["empty_tree_hash"] == TESTONLY["empty_root"]
    assert merkle_root([]) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("index", range(8))
def test_leaf_hashes_of_the_eight_standard_leaves(index: int) -> None:
    """leaf_hash of each standard CT input equals transparency-dev's NodeHashes level 0."""
    assert TESTONLY["leaf_inputs"][index] == CT_TREE["inputs"][index]
    assert leaf_hash(H(CT_TREE["inputs"][index])).hex() == TESTONLY["node_hashes"][0][index]


@pytest.mark.parametrize("row", CT_PYTHON["leaves"], ids=lambda row: f"leaf {row['input'][:8]}")
def test_leaf_hash_vectors_of_ct_python(row: dict[str, str]) -> None:
    """leaf_hash is SHA-256(0x00 || input) per CT's Python hasher vectors."""
    assert leaf_hash(H(row["input"])).hex() == row["hash"]


@pytest.mark.parametrize("row", CT_PYTHON["nodes"], ids=lambda row: f"node {row['hash'][:8]}")
def test_node_hash_vectors_of_ct_python(row: dict[str, str]) -> None:
    """node_hash is SHA-256(0x01 || left || right) per CT's Python hasher vectors."""
    assert node_hash(H(row["left"]), H(row["right"])).hex() == row["hash"]


@pytest.mark.parametrize("level", range(1, 4))
def test_interior_node_hashes_of_the_reference_tree(level: int) -> None:
    """node_hash over each pair of a level gives transparency-dev's NodeHashes of the next level."""
    below = [H(h) for h in TESTONLY["node_hashes"][level - 1]]
    pairs = [node_hash(below[i], below[i + 1]).hex() for i in range(0, len(below), 2)]
    assert pairs == TESTONLY["node_hashes"][level]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_for_sizes_one_to_eight(size: int) -> None:
    """merkle_root and Frontier.root of the first `size` standard leaves equal CT's kSHA256Roots."""
    expected = CT_TREE["roots"][size - 1]
    assert expected == TESTONLY["root_hashes"][size - 1]
    assert merkle_root(CT_LEAVES[:size]).hex() == expected
    frontier = Frontier()
    for leaf in CT_LEAVES[:size]:
        frontier.append(leaf)
    assert frontier.size == size
    assert frontier.root().hex() == expected


@pytest.mark.parametrize("size", range(9))
def test_frontier_holds_transparency_devs_compact_tree(size: int) -> None:
    """After `size` appends the frontier's nodes are CompactTrees()[size], leftmost first."""
    frontier = Frontier()
    for leaf in CT_LEAVES[:size]:
        frontier.append(leaf)
    expected = [TESTONLY["node_hashes"][lvl][i] for lvl, i in TESTONLY["compact_trees"][size]]
    assert frontier.to_hex_list() == expected


# --- proofs: CT known answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [row for row in CT_TREE["paths"] if row["leaf"] > 0],
    ids=lambda row: f"leaf {row['leaf']} of {row['snapshot']}",
)
def test_inclusion_proofs_equal_cts_reference_paths(row: dict[str, Any]) -> None:
    """inclusion_proof gives CT's kSHA256Paths (1-based leaf numbers) and that path verifies."""
    index, size = row["leaf"] - 1, row["snapshot"]
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == row["path"]
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, H(CT_TREE["roots"][size - 1]))


def test_cts_empty_path_row_is_an_error_here() -> None:
    """CT's row "leaf 0 of 0" (no such leaf) is refused: no inclusion proof in an empty tree."""
    assert {"leaf": 0, "snapshot": 0, "path": []} in CT_TREE["paths"]
    with pytest.raises(ValueError, match="outside a log of 0 entries"):
        inclusion_proof([], 0)


@pytest.mark.parametrize(
    "row",
    CT_TREE["consistency_proofs"],
    ids=lambda row: f"{row['snapshot1']} to {row['snapshot2']}",
)
def test_consistency_proofs_equal_cts_reference_proofs(row: dict[str, Any]) -> None:
    """consistency_proof gives CT's kSHA256Proofs and each verifies against the published roots."""
    old, new = row["snapshot1"], row["snapshot2"]
    proof = consistency_proof(CT_LEAVES[:new], old)
    assert [p.hex() for p in proof] == row["proof"]
    old_root, new_root = H(CT_TREE["roots"][old - 1]), H(CT_TREE["roots"][new - 1])
    assert verify_consistency(old, new, old_root, new_root, proof)


def test_a_production_ct_log_audit_path_verifies() -> None:
    """CT's vector from a real log (leaf 848049 of 3,630,887) verifies; one bit off fails."""
    vector = CT_PYTHON["audit_path_vector"]
    leaf = leaf_hash(H(vector["raw_leaf"]))
    assert leaf.hex() == vector["leaf_hash"]
    path = [H(p) for p in vector["audit_path"]]
    root = H(vector["root"])
    assert verify_inclusion(leaf, vector["leaf_index"], vector["tree_size"], path, root)
    flipped = bytes([path[5][0] ^ 1]) + path[5][1:]
    bad_path = [*path[:5], flipped, *path[6:]]
    assert not verify_inclusion(leaf, vector["leaf_index"], vector["tree_size"], bad_path, root)
    assert not verify_inclusion(leaf, vector["leaf_index"], vector["tree_size"], path[:-1], root)


# --- verification: transparency-dev probes -------------------------------------------------------


@pytest.mark.parametrize(
    "probe",
    list(INCLUSION_PROBES.values()),
    ids=[_short_id(path) for path in INCLUSION_PROBES],
)
def test_transparency_dev_inclusion_probes(probe: dict[str, Any]) -> None:
    """verify_inclusion accepts exactly the probes transparency-dev marks valid."""
    proof = [_b64(p) for p in probe["proof"] or []]
    verdict = verify_inclusion(
        _b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"], proof, _b64(probe["root"])
    )
    assert verdict is not probe["wantErr"], probe["desc"]


@pytest.mark.parametrize(
    "probe",
    list(CONSISTENCY_PROBES.values()),
    ids=[_short_id(path) for path in CONSISTENCY_PROBES],
)
def test_transparency_dev_consistency_probes(probe: dict[str, Any]) -> None:
    """verify_consistency accepts exactly the probes transparency-dev marks valid."""
    proof = [_b64(p) for p in probe["proof"] or []]
    verdict = verify_consistency(
        probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]), proof
    )
    assert verdict is not probe["wantErr"], probe["desc"]


def test_the_happy_path_probes_are_the_proofs_this_module_builds() -> None:
    """Each valid multi-leaf probe's proof is what inclusion_proof/consistency_proof produce."""
    checked = 0
    for probe in INCLUSION_PROBES.values():
        if not probe["wantErr"] and probe["root"] in {
            base64.b64encode(H(r)).decode() for r in CT_TREE["roots"]
        }:
            size = probe["treeSize"]
            assert inclusion_proof(CT_LEAVES[:size], probe["leafIdx"]) == [
                _b64(p) for p in probe["proof"] or []
            ]
            checked += 1
    for probe in CONSISTENCY_PROBES.values():
        if not probe["wantErr"] and probe["size1"] > 0:
            built = consistency_proof(CT_LEAVES[: probe["size2"]], probe["size1"])
            if _b64(probe["root2"]) == merkle_root(CT_LEAVES[: probe["size2"]]):
                assert built == [_b64(p) for p in probe["proof"] or []]
                checked += 1
    assert checked >= 8


# --- strict verification rules, row by row -------------------------------------------------------

R = {size: merkle_root(CT_LEAVES[:size]) for size in range(9)}
P_6_8 = consistency_proof(CT_LEAVES, 6)


@pytest.mark.parametrize(
    ("old_size", "new_size", "old_root", "new_root", "proof", "valid"),
    [
        pytest.param(6, 8, R[6], R[8], P_6_8, True, id="a good proof verifies"),
        pytest.param(6, 8, R[6], R[8], P_6_8[:-1], False, id="one node short"),
        pytest.param(6, 8, R[6], R[8], [*P_6_8, R[1]], False, id="one node too many"),
        pytest.param(6, 8, R[6], R[8], [R[6], *P_6_8], False, id="old root prepended"),
        pytest.param(8, 6, R[8], R[6], P_6_8, False, id="old size above new size"),
        pytest.param(6, 8, R[5], R[8], P_6_8, False, id="a different old tree"),
        pytest.param(6, 8, R[6], R[7], P_6_8, False, id="a different new tree"),
        pytest.param(6, 8, R[6], R[8], [p[:31] for p in P_6_8], False, id="short digests"),
        pytest.param(0, 8, EMPTY_ROOT, R[8], [], False, id="from the empty tree (RFC 9162)"),
        pytest.param(0, 0, EMPTY_ROOT, EMPTY_ROOT, [], False, id="empty to empty"),
        pytest.param(4, 4, R[4], R[4], [], True, id="same size, same root, no proof"),
        pytest.param(4, 4, R[4], R[5], [], False, id="same size, other root"),
        pytest.param(4, 4, R[4], R[4], [R[1]], False, id="same size with a proof"),
        pytest.param(-1, 8, R[1], R[8], P_6_8, False, id="negative size"),
        pytest.param(True, 8, R[1], R[8], P_6_8, False, id="a bool is not a size"),
    ],
)
def test_verify_consistency_is_strict(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes], valid: bool
) -> None:
    """verify_consistency accepts only a well-formed proof of the right length, sizes in order."""
    assert verify_consistency(old_size, new_size, old_root, new_root, proof) is valid


P_2_OF_5 = inclusion_proof(CT_LEAVES[:5], 2)


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "valid"),
    [
        pytest.param(CT_LEAVES[2], 2, 5, P_2_OF_5, True, id="a good path verifies"),
        pytest.param(CT_LEAVES[3], 2, 5, P_2_OF_5, False, id="another leaf"),
        pytest.param(CT_LEAVES[2], 3, 5, P_2_OF_5, False, id="another index"),
        pytest.param(CT_LEAVES[2], 2, 4, P_2_OF_5, False, id="a smaller size"),
        pytest.param(CT_LEAVES[2], 5, 5, P_2_OF_5, False, id="index equal to size"),
        pytest.param(CT_LEAVES[2], -1, 5, P_2_OF_5, False, id="negative index"),
        pytest.param(CT_LEAVES[2], 2, 5, P_2_OF_5[:-1], False, id="one node short"),
        pytest.param(CT_LEAVES[2], 2, 5, [*P_2_OF_5, R[1]], False, id="one node too many"),
        pytest.param(CT_LEAVES[2].hex().encode(), 2, 5, P_2_OF_5, False, id="hex, not a digest"),
    ],
)
def test_verify_inclusion_is_strict(
    leaf: bytes, index: int, size: int, proof: list[bytes], valid: bool
) -> None:
    """verify_inclusion accepts only the right leaf at the right index with a full-length path."""
    assert verify_inclusion(leaf, index, size, proof, R[5]) is valid


# --- errors for bad arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: merkle_root([b"short"]), "leaf 0 is not a 32-byte digest", id="root"),
        pytest.param(lambda: Frontier().append(b"x" * 64), "leaf 0 is not", id="append"),
        pytest.param(lambda: inclusion_proof(CT_LEAVES, 8), "outside a log of 8", id="index"),
        pytest.param(lambda: consistency_proof(CT_LEAVES, 0), "0 < old size <= 8", id="from 0"),
        pytest.param(lambda: consistency_proof(CT_LEAVES, 9), "0 < old size <= 8", id="beyond"),
        pytest.param(
            lambda: Frontier.from_hex_list(3, ["00" * 32]), "has 2 nodes, not 1", id="count"
        ),
        pytest.param(lambda: Frontier.from_hex_list(1, ["AB" * 32]), "lowercase hex", id="upper"),
        pytest.param(lambda: Frontier.from_hex_list(1, ["ab" * 31]), "lowercase hex", id="length"),
        pytest.param(lambda: Frontier.from_hex_list(-1, []), "non-negative", id="negative size"),
        pytest.param(lambda: Frontier.from_hex_list(1, "ab" * 32), "not one string", id="a string"),
    ],
)
def test_bad_arguments_raise_one_line_value_errors(call: Any, message: str) -> None:
    """Misuse (wrong digest size, index out of range, malformed saved frontier) is a ValueError."""
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


# --- properties ----------------------------------------------------------------------------------

LEAF_LISTS = st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=70)


def _hashes(count: int, seed: int = 0) -> list[bytes]:
    return [hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(LEAF_LISTS)
def test_frontier_root_equals_merkle_root_for_every_prefix(leaves: list[bytes]) -> None:
    """After each append the frontier's root is merkle_root of the leaves so far."""
    frontier = Frontier()
    assert frontier.root() == merkle_root([])
    for count, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == merkle_root(leaves[:count])
    assert len(frontier.to_hex_list()) == len(leaves).bit_count()


@settings(max_examples=60, deadline=None)
@given(LEAF_LISTS, st.integers(0, 70))
def test_a_saved_frontier_resumes_where_it_stopped(leaves: list[bytes], cut: int) -> None:
    """from_hex_list(size, to_hex_list()) then more appends gives the same root as one frontier."""
    cut = min(cut, len(leaves))
    first = Frontier()
    for leaf in leaves[:cut]:
        first.append(leaf)
    resumed = Frontier.from_hex_list(first.size, first.to_hex_list())
    twin = resumed.copy()
    assert resumed == first
    for leaf in leaves[cut:]:
        resumed.append(leaf)
    assert resumed.root() == merkle_root(leaves)
    assert twin.size == cut
    assert twin.root() == merkle_root(leaves[:cut])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.data())
def test_every_inclusion_proof_verifies_and_fails_against_a_tampered_root(
    size: int, data: st.DataObject
) -> None:
    """inclusion_proof verifies for its leaf, not for a neighbour, not against a flipped root."""
    leaves = _hashes(size)
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, size, proof, root)
    bit = data.draw(st.integers(0, 255))
    tampered = bytearray(root)
    tampered[bit // 8] ^= 1 << (bit % 8)
    assert not verify_inclusion(leaves[index], index, size, proof, bytes(tampered))
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(leaves[other], index, size, proof, root)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 70), st.data())
def test_every_consistency_proof_verifies_and_fails_for_a_different_old_tree(
    new_size: int, data: st.DataObject
) -> None:
    """consistency_proof verifies; it fails for an edited old tree or a tampered new root."""
    leaves = _hashes(new_size)
    old_size = data.draw(st.integers(1, new_size))
    proof = consistency_proof(leaves, old_size)
    old_root, new_root = merkle_root(leaves[:old_size]), merkle_root(leaves)
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)
    edited = list(leaves[:old_size])
    changed = data.draw(st.integers(0, old_size - 1))
    edited[changed] = hashlib.sha256(b"forged" + edited[changed]).digest()
    assert not verify_consistency(old_size, new_size, merkle_root(edited), new_root, proof)
    bit = data.draw(st.integers(0, 255))
    tampered = bytearray(new_root)
    tampered[bit // 8] ^= 1 << (bit % 8)
    assert not verify_consistency(old_size, new_size, old_root, bytes(tampered), proof)


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 70), st.data())
def test_a_rewritten_history_is_not_a_consistent_extension(
    new_size: int, data: st.DataObject
) -> None:
    """A log with an edit among its first old_size leaves has no proof from the old root."""
    honest = _hashes(new_size)
    old_size = data.draw(st.integers(1, new_size - 1))
    rewritten = list(honest)
    changed = data.draw(st.integers(0, old_size - 1))
    rewritten[changed] = hashlib.sha256(b"rewritten" + honest[changed]).digest()
    proof = consistency_proof(rewritten, old_size)
    assert not verify_consistency(
        old_size, new_size, merkle_root(honest[:old_size]), merkle_root(rewritten), proof
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.data())
def test_proof_lengths_match_the_tree_shape(new_size: int, data: st.DataObject) -> None:
    """Proofs from this module are never padded: one node fewer or one more fails to verify."""
    leaves = _hashes(new_size, seed=7)
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, new_size - 1))
    path = inclusion_proof(leaves, index)
    assert not verify_inclusion(leaves[index], index, new_size, [*path, root], root)
    if path:
        assert not verify_inclusion(leaves[index], index, new_size, path[:-1], root)
    old_size = data.draw(st.integers(1, new_size))
    proof = consistency_proof(leaves, old_size)
    old_root = merkle_root(leaves[:old_size])
    assert not verify_consistency(old_size, new_size, old_root, root, [*proof, root])
    if proof:
        assert not verify_consistency(old_size, new_size, old_root, root, proof[:-1])
