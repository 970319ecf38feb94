"""Verifying a log from whatever holds it (store, archive, topic): one pure check over records.

The verifier trusts nothing it is handed: it recomputes every leaf hash from the entry's content,
rebuilds the tree, and compares with the leaf hashes and signed checkpoints the source holds and
with the receipts an auditor kept. Each problem names the first position it affects and its kind
(the kinds are contract §6's: `hash_mismatch`, `missing`, `inserted`, `reordered`, `time_reversed`,
`bad_signature`, `inconsistent_with_checkpoint`, plus `undecodable`, `unsealed`,
`checkpoint_mismatch` and `foreign_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.audit.checkpoints import signature_problem
from ledger.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    verify_consistency,
)
from ledger.audit.sealing import entry_leaf

_UNREADABLE_LEAF = bytes(32)


class LogRecord(NamedTuple):
    """One entry as the source holds it (a tuple: one is made per entry of every log read)."""

    position: int
    entry: Mapping[str, Any] | None
    stored_leaf: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    log: str
    position: int | None
    kind: str
    detail: str

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "position": self.position,
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass(slots=True)
class LogReport:
    log: str
    size: int = 0
    root: str = EMPTY_ROOT.hex()
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, position: int | None, kind: str, detail: str) -> None:
        self.problems.append(Problem(self.log, position, kind, detail))


def verify_log(
    log: str,
    records: Sequence[LogRecord],
    checkpoints: Sequence[Mapping[str, Any]],
    *,
    keys: Mapping[str, Ed25519PublicKey],
    receipts: Sequence[Mapping[str, Any]] = (),
    hashed_from: int = 1,
    trial_id: str | None = None,
    time_field: str = "recorded_at",
    signatures_required: bool = False,
) -> LogReport:
    """Check one log: positions, content hashes, times, stored checkpoints, receipts.

    Signatures: an unsigned checkpoint after a signed one is a problem (the ledger refuses to
    record unsigned into a signed log); earlier unsigned ones are covered by the first signed
    root. A log never signed is a warning, or, with `signatures_required` (the auditor named
    the key, `--public-key`), a problem: nothing ties it to that key.
    """
    report = LogReport(log)
    wanted = {int(c["size"]) for c in (*checkpoints, *receipts) if is_size(c.get("size"))}
    leaves = _check_records(report, records, hashed_from, time_field)
    frontier = Frontier()
    roots = {0: EMPTY_ROOT, **frontier.extend(leaves, heads_at=wanted)}
    report.size = frontier.size
    report.root = frontier.root().hex()
    _check_checkpoints(report, checkpoints, roots, keys, trial_id, hashed_from,
                       signatures_required)
    _check_receipts(report, receipts, leaves, roots, keys)
    report.problems.sort(
        key=lambda p: (
            p.position if p.position is not None else 0,
            p.kind not in _CONTENT_KINDS,
            p.kind,
        )
    )
    return report


def _check_records(
    report: LogReport, records: Sequence[LogRecord], hashed_from: int, time_field: str
) -> list[bytes]:
    """Positions, content hashes and times of every record; the leaf hash of each, in order
    (recomputed from its content; zeros for one that cannot be read)."""
    leaves: list[bytes] = []
    seen: set[int] = set()
    expected = 1
    previous_time: str | None = None
    leaf_of = entry_leaf
    # One pass, few calls: this loop runs once per entry of every log verified.
    for position, entry, stored_leaf, error in records:
        slot = expected if position == expected else _out_of_place(report, position, expected, seen)
        seen.add(position)
        expected = max(expected, position) + 1
        if entry is None:
            report.problem(slot, "undecodable", error or "the stored entry cannot be read")
            leaves.append(_UNREADABLE_LEAF)
            continue
        try:
            leaf = leaf_of(entry)
        except (ValueError, TypeError) as problem:
            report.problem(slot, "undecodable", f"entry cannot be canonicalised: {problem}")
            leaf = _UNREADABLE_LEAF
        else:
            own_position = entry.get("position", _ABSENT)
            if own_position is _ABSENT:
                own_position = entry.get("sequence")
            if own_position is not None and own_position != position:
                report.problem(slot, "reordered", f"entry says position {own_position}")
            if stored_leaf is None:
                if slot >= hashed_from:
                    report.problem(slot, "unsealed", "no leaf hash was recorded for this entry")
            elif stored_leaf != leaf.hex():
                report.problem(slot, "hash_mismatch", _MISMATCH)
        leaves.append(leaf)
        moment = entry.get(time_field)
        if isinstance(moment, str):
            if previous_time is not None and moment < previous_time:
                report.problem(slot, "time_reversed", f"{time_field} {moment} < {previous_time}")
            previous_time = moment
    return leaves


def _out_of_place(report: LogReport, position: int, expected: int, seen: set[int]) -> int:
    """Report a record not at the position expected next; the slot it is checked at."""
    if position > expected:
        report.problem(expected, "missing", f"positions {expected}..{position - 1} absent")
        return position
    kind = "inserted" if position in seen else "reordered"
    report.problem(expected, kind, f"position {position} found where {expected} belongs")
    return expected


_ABSENT = object()
_MISMATCH = "content does not match its recorded leaf hash"


def _check_checkpoints(
    report: LogReport,
    checkpoints: Sequence[Mapping[str, Any]],
    roots: Mapping[int, bytes],
    keys: Mapping[str, Ed25519PublicKey],
    trial_id: str | None,
    hashed_from: int,
    signatures_required: bool,
) -> None:
    good_size = 0
    last_size = 0
    unsigned = 0
    signed = False  # a checkpoint of this log so far carried a signature
    for checkpoint in checkpoints:
        if checkpoint.get("log") != report.log or (
            trial_id is not None and checkpoint.get("trial_id") not in (trial_id, None)
        ):
            report.problem(None, "foreign_checkpoint", f"checkpoint of another log: {checkpoint}")
            continue
        size = checkpoint.get("size")
        if not is_size(size):
            report.problem(
                None, "checkpoint_mismatch", f"checkpoint without a valid size: {size!r}"
            )
            continue
        assert isinstance(size, int)
        report.checkpoints += 1
        if checkpoint.get("signature") is None and not signed:
            # Before the log's first signed checkpoint: a later signed root commits to this prefix
            # too, and a log never signed is only as good as its hashes (the warning below).
            unsigned += 1
        elif (why := _why_unproven(checkpoint, keys)) is not None:
            # The first position a forged head could hide a change at: the first it newly covers.
            report.problem(last_size + 1, "bad_signature", f"checkpoint at size {size}: {why}")
        signed = signed or checkpoint.get("signature") is not None
        if size < last_size:
            report.problem(size + 1, "checkpoint_mismatch", f"size {size} after {last_size}")
        last_size = max(last_size, size)
        if size > report.size:
            report.problem(
                report.size + 1,
                "missing",
                f"a checkpoint covers {size} entries; {report.size} found",
            )
        elif roots.get(size, b"").hex() != checkpoint.get("root"):
            report.problem(
                _first_found(report, good_size + 1, size),
                "checkpoint_mismatch",
                f"root over the first {size} entries differs from the checkpoint's",
            )
        else:
            good_size = max(good_size, size)
    _check_coverage(report, last_size, hashed_from, signed=signed, unsigned=unsigned,
                    signatures_required=signatures_required)


def _check_coverage(report: LogReport, last_size: int, hashed_from: int, *, signed: bool,
                    unsigned: int, signatures_required: bool) -> None:
    """What the checkpoints together leave unproven: entries after the last one, or none
    covered at all; signatures missing throughout."""
    if signatures_required and report.checkpoints and not signed:
        # Stripping every signature and recomputing the hashes rewrites history without the key.
        report.problem(1, "bad_signature",
                       "no checkpoint of the log is signed: nothing ties it to the key given")
    elif unsigned:
        report.warnings.append(
            f"{unsigned} {report.log} checkpoint(s) unsigned: the ledger ran without a signing key"
        )
    if report.checkpoints == 0 and report.size > 0:
        # No seal at all: nothing proves these entries. A store last written before the ledger
        # hashed its logs looks the same as one whose audit log was deleted; its next recorded
        # batch seals it.
        report.problem(
            1, "unsealed",
            f"no checkpoint covers any of the {report.size} entries (a store last written "
            "before the ledger hashed its logs is sealed by its next recorded batch)",
        )
    elif max(last_size + 1, hashed_from) <= report.size:
        report.problem(
            last_size + 1,
            "unsealed",
            f"entries {last_size + 1}..{report.size} after the last checkpoint",
        )


def _why_unproven(checkpoint: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]
                  ) -> str | None:
    """Why a checkpoint after the log's first signed one proves nothing (None: it holds)."""
    if checkpoint.get("signature") is None:
        # The ledger never records unsigned into a signed log (`AuditSealing._signer_of`): this
        # is a rewrite by someone without the key, who stripped the signatures.
        return "not signed, where earlier checkpoints of the log are signed"
    return signature_problem(checkpoint, keys)


def _check_receipts(
    report: LogReport,
    receipts: Sequence[Mapping[str, Any]],
    leaves: Sequence[bytes],
    roots: Mapping[int, bytes],
    keys: Mapping[str, Ed25519PublicKey],
) -> None:
    current = bytes.fromhex(report.root)
    for receipt in receipts:
        if receipt.get("log") != report.log:
            continue
        size = receipt.get("size")
        if not is_size(size):
            report.problem(
                None, "inconsistent_with_checkpoint", f"receipt without a size: {size!r}"
            )
            continue
        assert isinstance(size, int)
        why = signature_problem(receipt, keys)
        if why is not None:
            report.problem(size, "bad_signature", f"receipt at size {size}: {why}")
        if size > report.size:
            report.problem(
                report.size + 1,
                "inconsistent_with_checkpoint",
                f"a receipt covers {size} entries; the log holds {report.size} (truncated)",
            )
            continue
        try:
            old_root = bytes.fromhex(str(receipt.get("root")))
        except ValueError:
            report.problem(None, "inconsistent_with_checkpoint", "receipt root is not hex")
            continue
        if size == 0:  # RFC 9162 proves nothing from the empty tree: compare roots instead
            if old_root != EMPTY_ROOT:
                report.problem(1, "inconsistent_with_checkpoint", "empty-log receipt, wrong root")
            continue
        proof = consistency_proof(leaves, size)
        if not verify_consistency(size, report.size, old_root, current, proof):
            detail = "the log is not an extension of the receipt's tree"
            if roots.get(size) != old_root:
                detail += f" (root over its first {size} entries differs)"
            report.problem(_first_found(report, 1, size), "inconsistent_with_checkpoint", detail)


def _first_found(report: LogReport, first: int, last: int) -> int:
    """Where a root over positions first..last went wrong: the first entry already found changed
    in that range, else `first` (a rewrite that recomputed the hashes leaves no other trace)."""
    found = [
        p.position
        for p in report.problems
        if p.position is not None and first <= p.position <= last and p.kind in _CONTENT_KINDS
    ]
    return min(found, default=first)


_CONTENT_KINDS = frozenset(
    {"hash_mismatch", "undecodable", "missing", "inserted", "reordered", "time_reversed"}
)


def is_size(value: object) -> bool:
    """A checkpoint's size: a count of entries (a non-negative int, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
