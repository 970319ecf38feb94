"""Provenance of a ledger state for a manifest: the Merkle tree head over its entries and the
latest ledger checkpoint within them (contract §6).

Kept apart from the auditor's tools (:mod:`ledger.audit.inspection`) and from signing
(:mod:`ledger.audit.checkpoints`): every export states its provenance, and an export has no use
for signature keys, so it does not import them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ledger.aggregates.log_ids import LEDGER_LOG
from ledger.audit.merkle import Frontier

__all__ = ["CHECKPOINT_FIELDS", "SealedFrontier", "export_provenance", "provenance"]

CHECKPOINT_FIELDS: Final = (
    "trial_id", "log", "size", "root", "recorded_at", "key_id", "signature"
)
"""A signed checkpoint's fields, in the order a manifest and an archive give them."""

SealedFrontier = tuple[int, Sequence[str], str]
"""A Merkle frontier as sealed beside a batch: the log's size then, its subtree roots and the
root its batch's checkpoint states (all hex)."""


def provenance(
    leaf_hashes: Sequence[str],
    size: int,
    checkpoints: Iterable[Mapping[str, Any]],
    *,
    sealed: SealedFrontier | None = None,
) -> dict[str, Any]:
    """The tree head over the first `size` entries and the latest ledger checkpoint within them,
    for a manifest: the same whether computed from the store, an archive or the topic.

    `sealed`: a frontier the store sealed at a size within `size`, to go on from, so the leaves
    before it are not hashed into the tree again. It is used only when its root is the one its
    batch's signed checkpoint states (what `verify` checks against the leaves); otherwise, or
    without one, the tree is built from the first leaf."""
    frontier, start = Frontier(), 0
    if sealed is not None and 0 < sealed[0] <= size:
        stored = Frontier.from_hex_list(sealed[0], sealed[1])
        if stored.root().hex() == sealed[2]:
            frontier, start = stored, sealed[0]
    for digest in leaf_hashes[start:size]:
        frontier.append(bytes.fromhex(digest))
    latest = _latest_ledger_checkpoint(checkpoints, size)
    return {
        "size": frontier.size,
        "root": frontier.root().hex(),
        "checkpoint": {k: latest.get(k) for k in CHECKPOINT_FIELDS} if latest else None,
    }


def export_provenance(
    leaf_hashes: Sequence[str | None],
    checkpoints: Sequence[Mapping[str, Any]],
    sealed: SealedFrontier | None = None,
) -> dict[str, Any] | None:
    """What `ledger.cli_plumbing.provenance_of` gives for entries with these leaf hashes (the
    manifest's ``root``, ``size``, ``checkpoint``; None when one is not hashed yet), the same dict,
    with the root taken from the ledger checkpoint over exactly these entries when there is one
    instead of a Merkle tree rebuilt over every leaf (checkpoints are sealed with the hashes).
    Otherwise (an as-of between checkpoints) the tree goes on from `sealed`, the frontier sealed
    within these entries (`provenance` checks it)."""
    if any(digest is None for digest in leaf_hashes):
        return None  # a store written before the ledger hashed its log, not yet sealed
    size = len(leaf_hashes)
    latest = _latest_ledger_checkpoint(checkpoints, size)
    if latest is None or int(latest["size"]) != size or not isinstance(latest.get("root"), str):
        return provenance([str(digest) for digest in leaf_hashes], size, checkpoints,
                          sealed=sealed)
    return {
        "size": size,
        "root": latest["root"],
        "checkpoint": {key: latest.get(key) for key in CHECKPOINT_FIELDS},
    }


def _latest_ledger_checkpoint(
    checkpoints: Iterable[Mapping[str, Any]], size: int
) -> Mapping[str, Any] | None:
    """The ledger log's checkpoint of the largest size within the first `size` entries."""
    within = [c for c in checkpoints if c.get("log") == LEDGER_LOG and int(c["size"]) <= size]
    return max(within, key=lambda c: int(c["size"]), default=None)
