"""Sealing a stored batch: leaf hashes of its entries and the signed tree head after it.

The entry a leaf hashes is the contract's JSON object (§3 for the ledger, §4 for a rejection)
without any hash field, serialised by RFC 8785; the same function serves the ledger when it
records, and every verifier (store, archive, topic) when it recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.aggregates.audit_log import AuditLog
from ledger.audit.canonical import canonical_bytes
from ledger.audit.checkpoints import Signer, make_checkpoint
from ledger.audit.merkle import Frontier, leaf_hash

HASH_FIELD = "leaf_hash"


def hashed_content(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a leaf hash covers: everything but the hash itself."""
    return {key: value for key, value in entry.items() if key != HASH_FIELD}


def entry_leaf_hash(entry: Mapping[str, Any]) -> str:
    """The RFC 6962 leaf hash of one entry, lowercase hex."""
    return leaf_hash(canonical_bytes(hashed_content(entry))).hex()


def seal_batch(
    audit: AuditLog,
    entries: Sequence[Mapping[str, Any]],
    *,
    recorded_at: str,
    signer: Signer | None,
    hashed_later: bool = False,
) -> dict[str, Any]:
    """Append the entries' leaf hashes and a checkpoint to the audit log; return the checkpoint."""
    frontier = Frontier.from_hex_list(audit.size, list(audit.frontier))
    hashes: list[str] = []
    for entry in entries:
        digest = entry_leaf_hash(entry)
        frontier.append(bytes.fromhex(digest))
        hashes.append(digest)
    checkpoint = make_checkpoint(
        trial_id=audit.trial_id,
        log=audit.log,
        size=frontier.size,
        root=frontier.root().hex(),
        recorded_at=recorded_at,
        signer=signer,
    )
    if signer is not None:
        audit.register_key(signer.key_id, signer.public_key_pem)
    audit.seal(
        first_position=audit.size + 1,
        leaf_hashes=hashes,
        checkpoint=checkpoint,
        frontier=frontier.to_hex_list(),
        hashed_later=hashed_later,
    )
    return checkpoint
