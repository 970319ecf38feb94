"""Reading the audit logs kept beside the ledger: checkpoints, keys, and the store as `ledger
verify` inspects it (row by row, so a tampered row is a finding at its position, not a crash).

`AuditReading` is the audit part of `LedgerReader` (mixed into it): it reads the `AuditLog`
aggregates back and says which trials the store holds; `LedgerService` seals with them
(`ledger.audit_sealing`). The verifier's sources (`ledger.audit.inspection`) and the log
aggregates' classes are imported where they are used: a read command opens the store without
them (its reads of checkpoints and leaf hashes go through `ledger.reading`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.aggregates.log_ids import (
    LEDGER_LOG,
    REJECTIONS_LOG,
    audit_log_id,
    rejection_log_id,
)
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.entries import LedgerEntry
from ledger.reading import MAX_POSITION, SealedPrefix, StoreReader
from ledger.store import LedgerStore

if TYPE_CHECKING:
    from ledger.aggregates.audit_log import AuditLog
    from ledger.aggregates.trial import Trial
    from ledger.audit.inspection import AuditSource
    from ledger.held_rows import HeldRows


def entry_of(event: Trial.Event, trial_id: str, leaf_hash: str | None = None) -> LedgerEntry:
    """The contract's record of one of the aggregate's events."""
    return LedgerEntry(
        position=event.originator_version,
        type=event.ledger_type,
        trial_id=trial_id,
        recorded_at=event.timestamp,
        data=event.data,
        subject_id=event.subject_id,
        occurred_on=event.occurred_on,
        event_id=event.event_id,
        source=event.source,
        entered_by=event.entered_by,
        reason=event.reason,
        leaf_hash=leaf_hash,
    )


class AuditReading:
    """The audit-log reads of `LedgerReader` (mixed into it) and which trials the store holds."""

    _app: LedgerStore
    _reader: StoreReader
    _audit_logs: dict[UUID, AuditLog]
    _opened_trial_ids: set[str]
    _opened_scanned_to: int

    if TYPE_CHECKING:

        def rejections(
            self, after: int = 0, upto: int | None = None
        ) -> Iterator[dict[str, Any]]: ...

    def _audit_log(self, log: str, trial_id: str | None) -> AuditLog:
        from ledger.aggregates.audit_log import AuditLog  # the class: only where its events are

        log_id = audit_log_id(log, trial_id)
        cached = self._audit_logs.get(log_id)
        if cached is None:
            try:
                cached = cast(AuditLog, self._app.repository.get(log_id))
            except AggregateNotFoundError:
                cached = AuditLog.start(log, trial_id)
            self._audit_logs[log_id] = cached
        return cached

    def checkpoints(
        self, trial_id: str, *, as_of: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The checkpoints of the trial's ledger log and of the rejection log recorded by
        `as_of` (None: all), oldest first, read from their stored seals: nothing is replayed,
        and an as-of read stops at `as_of` (`ledger export --as-of` costs its prefix)."""
        found = [
            *self._reader.checkpoints(LEDGER_LOG, trial_id, as_of),
            *self._reader.checkpoints(REJECTIONS_LOG, None, as_of),
        ]
        return sorted(found, key=lambda c: (str(c["recorded_at"]), str(c["log"]), int(c["size"])))

    def sealed_prefix(self, trial_id: str, size: int) -> SealedPrefix:
        """What the trial ledger's seals say of its first `size` entries: their leaf hashes, the
        checkpoints within them and the frontier a tree head over them goes on from
        (`StoreReader.sealed_prefix`), read once."""
        return self._reader.sealed_prefix(trial_id, size)

    def log_checkpoints(self, log: str, trial_id: str | None) -> list[dict[str, Any]]:
        """The checkpoints of one log in the order recorded (sizes only grow)."""
        return [seal.checkpoint for seal in self._audit_log(log, trial_id).seals]

    def latest_checkpoints(self, trial_id: str) -> dict[str, dict[str, Any] | None]:
        return {
            LEDGER_LOG: self._audit_log(LEDGER_LOG, trial_id).latest_checkpoint,
            REJECTIONS_LOG: self._audit_log(REJECTIONS_LOG, None).latest_checkpoint,
        }

    def public_keys(self, trial_id: str) -> dict[str, str]:
        """The public halves of the keys that signed the logs' checkpoints, by key id."""
        logs = (self._audit_log(LEDGER_LOG, trial_id), self._audit_log(REJECTIONS_LOG, None))
        return {key_id: pem for log in logs for key_id, pem in log.public_keys.items()}

    def audit_source(self, trial_id: str) -> AuditSource:
        """The store's logs as held, read row by row so that a tampered row that no longer
        decodes is reported at its position instead of stopping the read."""
        from ledger.aggregates.audit_log import AuditLog
        from ledger.audit.inspection import AuditSource, records_from_messages
        from ledger.audit.verify import LogRecord

        # The logs are read before their audit logs, and then up to what those cover: a batch
        # and its seal are committed together, so a store written meanwhile (a live ingest) is
        # read as of one moment, never as entries without seals or seals without entries.
        from ledger.held_rows import HeldRows  # what only an audit reads

        rows = HeldRows(self._app)
        problems: list[tuple[str, str]] = []
        held = list(rows.held_entry_objects(trial_id))
        rejections = self._readable_rejections(problems)
        try:
            for log_id in (audit_log_id(LEDGER_LOG, trial_id), audit_log_id(REJECTIONS_LOG, None)):
                self._audit_logs.pop(log_id, None)  # read now, after the logs it seals
            audit = self._audit_log(LEDGER_LOG, trial_id)
            rejection_audit = self._audit_log(REJECTIONS_LOG, None)
        except Exception as error:
            problems.append(("undecodable", f"the audit log cannot be read: {error}"))
            audit, rejection_audit = AuditLog.start(LEDGER_LOG, trial_id), AuditLog.start(
                REJECTIONS_LOG, None
            )
        last = held[-1][0] if held else 0
        if audit.size > last:
            held += rows.held_entry_objects(trial_id, after=last, upto=audit.size)
        if rejections is None:
            rejections = []
        else:
            numbered = int(rejections[-1]["sequence"]) if rejections else 0  # gaps are findings
            if rejection_audit.size > numbered:
                rejections += self._readable_rejections(
                    problems, after=numbered, upto=rejection_audit.size
                ) or []
        records = [
            LogRecord(position, entry, audit.leaf_hashes[position - 1]
                      if position <= audit.size else None, why)
            for position, entry, why in held
        ]
        for message in rejections:
            number = int(message["sequence"])  # its own, even after a gap
            if 1 <= number <= rejection_audit.size:
                message["leaf_hash"] = rejection_audit.leaf_hashes[number - 1]
        problems += self._rows_outside_the_logs(rows, trial_id)
        checkpoints = [seal.checkpoint for log in (audit, rejection_audit) for seal in log.seals]
        keys = {**audit.public_keys, **rejection_audit.public_keys}
        return AuditSource(
            description=f"store {self.store_description}",
            trial_id=trial_id,
            ledger=records,
            rejections=records_from_messages(rejections, "sequence"),
            checkpoints=checkpoints,
            public_keys=keys,
            hashed_from={
                LEDGER_LOG: _hashed_from(audit, len(records)),
                REJECTIONS_LOG: _hashed_from(rejection_audit, len(rejections)),
            },
            problems=problems,
        )

    def _readable_rejections(
        self, problems: list[tuple[str, str]], *, after: int = 0, upto: int | None = None
    ) -> list[dict[str, Any]] | None:
        """The rejections after `after` up to `upto`; None (and a problem) when they cannot be
        read."""
        try:
            return list(self.rejections(after, upto))
        except Exception as error:
            problems.append(("undecodable", f"the rejection log cannot be read: {error}"))
            return None

    @staticmethod
    def _rows_outside_the_logs(rows: HeldRows, trial_id: str) -> list[tuple[str, str]]:
        """A problem for each of the trial's logs holding rows at versions that are no position
        (`HeldRows.positions_outside_the_log`)."""
        logs = {
            f"the {trial_id} ledger": trial_aggregate_id(trial_id),
            "the rejection log": rejection_log_id(),
            "the ledger's audit log": audit_log_id(LEDGER_LOG, trial_id),
            "the rejection log's audit log": audit_log_id(REJECTIONS_LOG, None),
        }
        problems = []
        for name, originator in logs.items():
            positions = rows.positions_outside_the_log(originator)
            if positions:
                listed = ", ".join(repr(p) if isinstance(p, str | bytes) else str(p)
                                   for p in positions)
                problems.append((
                    "inserted",
                    f"{name} holds rows at version(s) {listed}: positions are whole numbers from 1"
                    f" to {MAX_POSITION}, so no read sees them",
                ))
        return problems

    def trial_ids(self) -> list[str]:
        """The trials opened in the store, read incrementally: only notifications recorded since
        the last call are scanned (the outbox asks every round, and the store only grows).

        Reading up to the maximum notification id misses nothing later: ids are committed in
        order (SQLite has one writer; eventsourcing's PostgreSQL recorder locks the table). The
        first call on a SQLite store reads the aggregates' first rows instead of scanning the
        whole log (`StoreReader.opened_trial_ids`); what it finds includes every trial opened
        up to the maximum id read before it.
        """
        recorder = self._app.recorder
        last = recorder.max_notification_id() or 0
        opened = self._reader.opened_trial_ids() if not self._opened_scanned_to else None
        if opened is not None:
            self._opened_trial_ids.update(opened)
            self._opened_scanned_to = last
        if last > self._opened_scanned_to:
            self._opened_trial_ids.update(
                self._reader.trials_opened_between(self._opened_scanned_to + 1, last)
            )
            self._opened_scanned_to = last
        return sorted(self._opened_trial_ids)

    def default_trial_id(self) -> str:
        """The store's trial when it holds exactly one (the usual case)."""
        trial_ids = self.trial_ids()
        where = self.store_description
        if not trial_ids:
            raise LookupError(f"{where} holds no trial yet: run `ledger init` or submit events")
        if len(trial_ids) > 1:
            raise LookupError(f"{where} holds several trials ({', '.join(trial_ids)}): name one")
        return trial_ids[0]

    @property
    def store_description(self) -> str:
        env = self._app.env
        if env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
            return f"postgresql database {env.get('POSTGRES_DBNAME')}"
        return f"sqlite {env.get('SQLITE_DBNAME')}"


def _hashed_from(audit: AuditLog, stored: int) -> int:
    """The first position hashed when recorded: after what an upgrade sealed later, or after
    everything stored when nothing was ever sealed (a store not written since the upgrade)."""
    if not audit.seals:
        return stored + 1
    return max((seal.size for seal in audit.seals if seal.hashed_later), default=0) + 1
