"""Sealing a stored batch: leaf hashes of its entries and the signed tree head after it.

The entry a leaf hashes is the contract's JSON object (§3 for the ledger, §4 for a rejection)
without any hash field, serialised by RFC 8785; the same function serves the ledger when it
records, and every verifier (store, archive, topic) when it recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.aggregates.audit_log import AuditLog
from ledger.audit.canonical import CanonicalShape
from ledger.audit.checkpoints import Signer, make_checkpoint
from ledger.audit.merkle import Frontier, leaf_hash
from ledger.entries import ENTRY_FIELDS, LedgerEntry

HASH_FIELD = "leaf_hash"

REJECTION_FIELDS = (
    "sequence", "event_id", "reason_code", "message", "submission", "submission_encoding",
    "topic", "partition", "offset", "rejected_at",
)
"""The fields of a `trial.rejections` message (contract §4), its leaf hash aside."""

# Written field by field in the keys' fixed order; an entry with other fields (a tampered
# archive line, a future version) is canonicalised the general way, to the same RFC 8785 bytes.
_ENTRY_SHAPE = CanonicalShape(
    ENTRY_FIELDS,
    texts=[name for name in ENTRY_FIELDS if name not in ("position", "data")],
    ignored=HASH_FIELD,
)
_REJECTION_SHAPE = CanonicalShape(
    REJECTION_FIELDS,
    texts=("event_id", "reason_code", "message", "submission_encoding", "topic", "rejected_at"),
    ignored=HASH_FIELD,
)


def hashed_content(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a leaf hash covers: everything but the hash itself."""
    return {key: value for key, value in entry.items() if key != HASH_FIELD}


def entry_leaf(entry: Mapping[str, Any]) -> bytes:
    """The RFC 6962 leaf hash (32 bytes) of one §3 entry or §4 rejection: over the RFC 8785
    bytes of its fields but the hash itself. `ValueError` when they are not JSON that JCS takes."""
    shape = _REJECTION_SHAPE if "sequence" in entry else _ENTRY_SHAPE
    return leaf_hash(shape.dumps(entry))


def entry_leaf_hash(entry: Mapping[str, Any]) -> str:
    """The RFC 6962 leaf hash of one entry, lowercase hex."""
    return entry_leaf(entry).hex()


def seal_batch(
    audit: AuditLog,
    entries: Sequence[Mapping[str, Any]] | Sequence[LedgerEntry],
    *,
    recorded_at: str,
    signer: Signer | None,
    hashed_later: bool = False,
) -> dict[str, Any]:
    """Append the entries' leaf hashes and a checkpoint to the audit log; return the checkpoint.

    The entries are §3 records (as `LedgerEntry` or its JSON object) or §4 rejection messages.
    """
    frontier = Frontier.from_hex_list(audit.size, audit.frontier)
    digests = [
        entry_leaf(entry.to_json_dict() if isinstance(entry, LedgerEntry) else entry)
        for entry in entries
    ]
    frontier.extend(digests)
    hashes = [digest.hex() for digest in digests]
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
