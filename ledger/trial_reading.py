"""Reading a trial back: entries, the cohort table, a subject's history, rejections and the trial
as it stood, each from only the rows it needs (`ledger.reading`), never by replaying history.

`TrialReading` is the trial part of `LedgerReader` (mixed into it, as `AuditReading` is), so of
`LedgerService` too; every read names a trial the store does not hold instead of returning
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.aggregates.log_ids import LEDGER_LOG, audit_log_id, rejection_log_id
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.entries import LedgerEntry
from ledger.reading import MAX_POSITION, SealedPrefix, StoreReader
from ledger.store import LedgerStore

if TYPE_CHECKING:
    from ledger.aggregates.audit_log import AuditLog
    from ledger.aggregates.trial import Trial
    from ledger.projections.cohorts import CohortTable


class TrialReading:
    """The trial reads of `LedgerReader`."""

    _app: LedgerStore
    _reader: StoreReader
    _trials: dict[str, Trial]
    _audit_logs: dict[UUID, AuditLog]

    if TYPE_CHECKING:

        def find_trial(self, trial_id: str) -> Trial | None: ...

    def entries(
        self,
        trial_id: str,
        *,
        as_of: datetime | None = None,
        after: int = 0,
        sealed: SealedPrefix | None = None,
    ) -> Iterator[LedgerEntry]:
        """The trial's recorded events in ledger order, as known at `as_of` (None: all), with
        their leaf hashes (from `sealed` when the caller has read the seals over them).

        Reads only the prefix `as_of` knew, in pages; nothing is replayed (see `ledger.reading`).
        """
        self._require(trial_id)
        if sealed is None:
            upto, leaf_hashes = None, self._held_leaf_hashes(trial_id)
        else:
            upto, leaf_hashes = sealed.size, sealed.leaf_hashes
        return self._reader.entries(
            trial_id, as_of=as_of, after=after, upto=upto, leaf_hashes=leaf_hashes
        )

    def cohort_table(self, trial_id: str, *, as_of: datetime | None = None) -> CohortTable:
        """The cohort table as known at `as_of`: only the records it reads are fetched.

        Equal to `cohort_table(entries(trial_id, as_of=as_of))` (tests/test_read_paths.py).
        """
        from ledger.projections.cohorts import COHORT_TYPES, cohort_table  # only cohorts read it

        self._require(trial_id)
        last = self._reader.last_position(trial_id, as_of)
        read = self._reader.entries_of_types(trial_id, COHORT_TYPES, upto=last)
        return cohort_table(read, position=last)

    def history(
        self, trial_id: str, subject_id: str, *, as_of: datetime | None = None
    ) -> list[LedgerEntry]:
        """A subject's entries as known at `as_of`, in ledger order, with their leaf hashes; only
        the subject's own records are read where the store can select them (`ledger.reading`)."""
        self._require(trial_id)
        last = self._reader.last_position(trial_id, as_of)
        return list(self._reader.subject_entries(
            trial_id, subject_id, upto=last, leaf_hashes=self._held_leaf_hashes(trial_id)
        ))

    def size(self, trial_id: str, *, as_of: datetime | None = None) -> int:
        """How many records the trial's ledger holds (its last position; as known at `as_of`),
        nothing replayed."""
        self._require(trial_id)
        return self._reader.last_position(trial_id, as_of)

    def rejection_count(self) -> int:
        """How many rejections the store's rejection log holds (its last number), one row read."""
        return max(self._reader.last_version(rejection_log_id()) - 1, 0)  # 1 is its creation

    def rejections(self, after: int = 0, upto: int | None = None) -> Iterator[dict[str, Any]]:
        """Recorded rejections of tracked deliveries after number `after` up to `upto` (None:
        the last), numbered from 1 without gaps."""
        from ledger.aggregates.intake import RejectionLog  # its events are decoded here
        from ledger.recording import rejection_message

        # Version 1 is the log's creation, so rejection n is version n + 1.
        last = MAX_POSITION if upto is None else upto + 1
        for event in self._app.events.get(rejection_log_id(), gt=after + 1, lte=last):
            if isinstance(event, RejectionLog.Rejected):
                yield rejection_message(event, sequence=event.originator_version - 1)

    def trial_at(self, trial_id: str, as_of: datetime | None) -> Trial:
        """The aggregate as it stood at `as_of` (transaction time)."""
        if as_of is None:
            trial = self.find_trial(trial_id)
            if trial is None:
                raise LookupError(f"no trial {trial_id} in this ledger")
            return trial
        self._require(trial_id)
        last = self._reader.last_position(trial_id, as_of)
        if last == 0:
            raise LookupError(f"trial {trial_id} was not yet open at {as_of.isoformat()}")
        from ledger.aggregates.trial import project_trial  # the aggregate, only when replayed

        past: Trial = self._app.repository.get(
            trial_aggregate_id(trial_id), version=last, projector_func=project_trial
        )
        return past

    def _stored_entries(self, trial_id: str, *, after: int = 0) -> Iterator[LedgerEntry]:
        return self._reader.stored_entries(trial_id, after=after)

    def _require(self, trial_id: str) -> None:
        if trial_id not in self._trials and not self._reader.has_trial(trial_id):
            raise LookupError(f"no trial {trial_id} in this ledger")

    def _held_leaf_hashes(self, trial_id: str) -> list[str] | None:
        """The leaf hashes this service already holds (a writer's cached audit log), so a read
        need not fetch them again; None: read them with the entries."""
        cached = self._audit_logs.get(audit_log_id(LEDGER_LOG, trial_id))
        return None if cached is None else cached.leaf_hashes
