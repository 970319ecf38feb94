"""Sealing each recorded batch: the part of `LedgerService` that hashes what a batch adds to
each log into its `AuditLog` and signs a checkpoint, in the batch's own transaction.

`_sealed_batch` returns everything the service stores in `_commit`; a store written before the
ledger hashed its log has what it holds sealed the first time it is written to
(`hashed_later`). The hashing and signing themselves are `ledger.audit.sealing`'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ledger.aggregates.audit_log import AuditLog
from ledger.aggregates.intake import RejectionLog
from ledger.aggregates.log_ids import LEDGER_LOG, REJECTIONS_LOG, audit_log_id
from ledger.audit.sealing import seal_batch
from ledger.audit_reading import AuditReading, entry_of
from ledger.entries import LedgerEntry, format_timestamp
from ledger.recording import rejection_message

if TYPE_CHECKING:
    from ledger.aggregates.trial import Trial
    from ledger.audit.checkpoints import Signer


@dataclass(slots=True)
class SealedBatch:
    """A sealed batch: what to store in its one transaction, and what it adds to the logs as
    the outside world sees them (each trial's entries with their leaf hashes, the rejection
    messages), for the publisher once the batch is committed (`recording.HandOver`)."""

    events: list[Any] = field(default_factory=list)
    """The batch's new events in the order they are stored: each trial's, then its audit
    log's; the rejection log's audit log's, then the rejection log's."""
    audit_logs: list[AuditLog] = field(default_factory=list)
    """The audit logs it changed (the repository's cache holds them once stored)."""
    entries: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)


class SigningKeyRequiredError(ValueError):
    """A writer without a signing key opened a store whose logs are signed."""


class UnsealedHistoryError(ValueError):
    """Entries no seal covers, where the ledger would have sealed them: not its own writing."""


class AuditSealing(AuditReading):
    """The sealing of `LedgerService` (mixed into it, beside `LedgerReader`'s reads)."""

    _signer: Signer | None

    if TYPE_CHECKING:

        def trial_ids(self) -> list[str]: ...

        def _stored_entries(self, trial_id: str, *, after: int = 0) -> Iterator[LedgerEntry]: ...

        def _load_rejection_log(self) -> RejectionLog: ...

    def check_signing_key(self) -> None:
        """`SigningKeyRequiredError` now, before any work, when this writer has no key and a
        log of the store is signed (what recording would refuse at its first batch)."""
        if self._signer is None:
            for audit in self._store_audit_logs():
                self._signer_of(audit)

    def _signer_of(self, audit: AuditLog) -> Signer | None:
        """The key to sign `audit`'s next checkpoint with; `SigningKeyRequiredError` when this
        writer has none and the log is signed. Once a log is signed it stays signed, so that
        `ledger verify` can hold an unsigned checkpoint after signed ones for what it is: a
        rewrite by someone without the key, who stripped the signatures and recomputed the
        hashes. (Raised before anything is stored: the batch's callers forget what it touched.)
        """
        if self._signer is None and audit.public_keys:
            raise SigningKeyRequiredError(
                f"the {audit.log} log's checkpoints are signed (key id "
                f"{', '.join(sorted(audit.public_keys))}): record with its signing key "
                "(--signing-key or LEDGER_SIGNING_KEY)"
            )
        return self._signer

    def _audit_log_covering(self, log: str, trial_id: str | None, size: int) -> AuditLog:
        """The log's audit log, read again from the store when the one held covers fewer than
        `size` records: another writer of the store sealed batches since it was read (what is
        then still unsealed is an old store's, or not the ledger's: `_seal_later`)."""
        audit = self._audit_log(log, trial_id)
        if audit.size < size:
            self._audit_logs.pop(audit_log_id(log, trial_id), None)
            audit = self._audit_log(log, trial_id)
        return audit

    def _sealed_from_the_start(self) -> bool:
        """Whether a log of the store was sealed as written (its first seal is not one made
        'hashed later' when an old store was first written to)."""
        return any(log.seals and not log.seals[0].hashed_later
                   for log in self._store_audit_logs())

    def _store_audit_logs(self) -> list[AuditLog]:
        """Every audit log of the store: the rejection log's and each trial ledger's."""
        return [self._audit_log(REJECTIONS_LOG, None),
                *(self._audit_log(LEDGER_LOG, trial_id) for trial_id in self.trial_ids())]

    def _sealed_batch(
        self, trials: Mapping[str, Trial], rejection_log: RejectionLog | None
    ) -> SealedBatch:
        """Seal what a batch adds to each log (its leaf hashes, a checkpoint signed when a key
        is configured) and return everything to store in the batch's one transaction: each
        trial's new events and its audit log, the rejection log's new events and its audit log.
        """
        batch = SealedBatch()
        for trial_id, trial in trials.items():
            events = trial.collect_events()
            if not events:
                continue
            entries = [entry_of(cast("Trial.Event", event), trial_id) for event in events]
            audit = self._audit_log_covering(LEDGER_LOG, trial_id, entries[0].position - 1)
            self._seal_earlier_entries(audit, trial_id, before=entries[0].position)
            seal_batch(
                audit,
                entries,
                recorded_at=format_timestamp(entries[-1].recorded_at),
                signer=self._signer_of(audit),
            )
            hashes = audit.leaf_hashes[-len(events):]
            batch.entries[trial_id] = [
                entry_of(cast("Trial.Event", event), trial_id, leaf)
                for event, leaf in zip(events, hashes, strict=True)
            ]
            batch.events += [*events, *audit.collect_events()]
            batch.audit_logs.append(audit)
        if rejection_log is None and batch.events:
            rejection_log = self._load_rejection_log()  # to seal what an old store holds
        if rejection_log is not None:
            events = rejection_log.collect_events()
            rejected = [e for e in events if isinstance(e, RejectionLog.Rejected)]
            # The sequence of the first new rejection (or one past the stored ones).
            first_new = rejected[0].originator_version - 1 if rejected else rejection_log.version
            # The trial it names matters only when the log starts: not a query per batch.
            held = self._audit_logs.get(audit_log_id(REJECTIONS_LOG, None))
            audit = held if held is not None else self._audit_log(
                REJECTIONS_LOG, self._rejections_trial_id(trials)
            )
            audit = self._audit_log_covering(REJECTIONS_LOG, audit.trial_id, first_new - 1)
            audit_changed = audit.size < first_new - 1  # earlier rejections to seal first
            if audit_changed:
                self._seal_earlier_rejections(audit, before=first_new)
            if rejected:
                messages = [
                    rejection_message(e, sequence=e.originator_version - 1) for e in rejected
                ]
                seal_batch(
                    audit,
                    messages,
                    recorded_at=str(messages[-1]["rejected_at"]),
                    signer=self._signer_of(audit),
                )
                audit_changed = True
                batch.rejections = messages
            if audit_changed:
                batch.events += audit.collect_events()
                batch.audit_logs.append(audit)
            batch.events += events
        return batch

    def _rejections_trial_id(self, trials: Mapping[str, Trial]) -> str | None:
        """The rejection log is the store's; its checkpoints name the store's first trial."""
        trial_ids = self.trial_ids() or sorted(trials)
        return trial_ids[0] if trial_ids else None

    def _seal_earlier_entries(self, audit: AuditLog, trial_id: str, *, before: int) -> None:
        """A store written before the ledger hashed its log: hash what it holds, marked so."""
        if audit.size >= before - 1:
            return
        earlier = [
            e.to_json_dict()
            for e in self._stored_entries(trial_id, after=audit.size)
            if e.position < before
        ]
        self._seal_later(audit, earlier, time_field="recorded_at")

    def _seal_earlier_rejections(self, audit: AuditLog, *, before: int) -> None:
        """The same for the rejections an old store holds."""
        if audit.size >= before - 1:
            return
        earlier = [m for m in self.rejections(after=audit.size) if int(m["sequence"]) < before]
        if earlier:
            self._seal_later(audit, earlier, time_field="rejected_at")

    def _seal_later(self, audit: AuditLog, earlier: list[dict[str, Any]], *, time_field: str
                    ) -> None:
        """Seal records held before the ledger hashed its log, marked 'hashed later' (`verify`
        says from where), at the time of the last of them.

        Only in a store written before the ledger hashed its logs: a gap in a sealed log, or
        unsealed records in a store sealed from its start, are what deleting seals leaves, and
        sealing them now would bless the rewrite they may hide."""
        if audit.size or self._sealed_from_the_start():
            raise UnsealedHistoryError(
                f"the {audit.log} log holds {len(earlier)} record(s) after position {audit.size} "
                "that no seal covers, in a store the ledger sealed as it wrote: not the ledger's "
                "writing (run `ledger verify`); nothing recorded"
            )
        seal_batch(
            audit,
            earlier,
            recorded_at=str(earlier[-1][time_field]),
            signer=self._signer_of(audit),
            hashed_later=True,
        )
