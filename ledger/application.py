"""LedgerService: the one application service the command line and the Kafka consumer both call.

It owns the event store (the `eventsourcing` SQLite store by default, PostgreSQL when a
`postgresql://` URL is given), turns wire messages into domain submissions, records them through
the Trial aggregate, and reads the history back as contract-shaped `LedgerEntry` records (the
reads are its base, `ledger.ledger_reader.LedgerReader`, which read commands open alone).
The wire parsing and the signing key are imported where a submission is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    ProcessRecorder,
    Tracking,
)

from ledger.aggregates.escalation import Variant
from ledger.aggregates.facts import AMENDMENT_TYPES, RECORD_CORRECTED, Submission
from ledger.aggregates.intake import RejectionLog
from ledger.aggregates.log_ids import rejection_log_id
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial_state import Outcome
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.audit_sealing import AuditSealing
from ledger.entries import LedgerEntry
from ledger.ledger_reader import LedgerReader
from ledger.protocol_files import bundled_protocol
from ledger.recording import (
    LEDGER_SOURCE,
    BatchReport,
    Delivery,
    HandOver,
    SubmissionResult,
    check_same_sender,
    check_sender,
    lost_write_race_retries,
    original_text,
    rejection_note,
    upstream_name,
)
from ledger.store import (
    DEFAULT_STORE,
    DateAsISO,
    OtherWriters,
    redacted,
    store_environment,
)

if TYPE_CHECKING:
    from ledger.aggregates.trial import Trial
    from ledger.audit.checkpoints import Signer
    from ledger.schemas.submissions import SubmissionMessage

__all__ = [
    "DEFAULT_STORE",
    "LEDGER_SOURCE",
    "BatchReport",
    "DateAsISO",
    "Delivery",
    "LedgerService",
    "SubmissionResult",
    "redacted",
    "store_environment",
    "utc_now",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


class LedgerService(AuditSealing, LedgerReader):
    """Submit, read and rebuild: everything outside the domain goes through here."""

    def __init__(
        self,
        store: str = DEFAULT_STORE,
        clock: Callable[[], datetime] = utc_now,
        *,
        signer: Signer | None = None,
    ) -> None:
        super().__init__(store, read_only=False)
        self._clock = clock
        self._rejection_log: RejectionLog | None = None
        self._signer = signer
        self._reader.ensure_indexes()
        self._other_writers = OtherWriters(self._app.recorder)
        self.hand_over = HandOver()  # what was just committed, for the publisher to take

    # --- opening ------------------------------------------------------------------------------

    def open_trial(
        self,
        protocol: ProtocolDefinition,
        *,
        opened_by: str = "ledger-cli",
        reason: str | None = None,
    ) -> LedgerEntry:
        """Record `trial.opened` with the protocol in force; refuses a second opening."""
        if self.find_trial(protocol.trial_id) is not None:
            raise ValueError(f"trial {protocol.trial_id} is already open in this store")
        from ledger.aggregates.trial import Trial  # the aggregate: only commands that record

        trial = Trial.open(
            protocol,
            source=LEDGER_SOURCE,
            entered_by=opened_by,
            recorded_at=self._clock(),
            reason=reason,
        )
        self._commit({protocol.trial_id: trial})
        self._trials[protocol.trial_id] = trial
        return next(self.entries(protocol.trial_id))

    def ensure_trial(self, variant: Variant | None = None) -> str:
        """Open the bundled protocol on an empty store (as `submit` and `ingest` do)."""
        protocol = bundled_protocol()
        if variant is not None:
            protocol = protocol.with_variant(variant)
        if self.find_trial(protocol.trial_id) is None and self.is_empty():
            try:
                self.open_trial(protocol, reason="opened implicitly by the first submission")
            except IntegrityError:  # another process sharing the store opened it first
                self._trials.pop(protocol.trial_id, None)
                if self.find_trial(protocol.trial_id) is None:
                    raise
        return protocol.trial_id

    # --- recording ----------------------------------------------------------------------------

    def submit(self, raw: bytes | str | SubmissionMessage) -> SubmissionResult:
        return self.submit_many([raw]).results[0]

    def submit_many(
        self,
        items: Sequence[bytes | str | SubmissionMessage],
        *,
        origin: str | None = None,
        line_numbers: Sequence[int] | None = None,
    ) -> BatchReport:
        """Record in one transaction; rejections are reported and leave the trials unchanged.

        With `origin` (e.g. `file:submissions.jsonl`) each rejection is also kept in the rejection
        log, with its line number as its offset, like a rejected Kafka delivery.
        """
        numbers = line_numbers if line_numbers is not None else range(1, len(items) + 1)
        # Another writer on the same store (a second `ledger submit`) moves the trial on under
        # us: the commit conflicts, so decide the batch again on the fresh trial.
        for attempt in lost_write_race_retries():
            with attempt:
                return self._submit_once(items, origin, numbers)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    def _submit_once(
        self,
        items: Sequence[bytes | str | SubmissionMessage],
        origin: str | None,
        numbers: Sequence[int],
    ) -> BatchReport:
        report = BatchReport()
        touched: dict[str, Trial] = {}
        log = self._load_rejection_log() if origin is not None else None
        try:
            for item, number in zip(items, numbers, strict=True):
                result = self._record_one(item, touched)
                report.results.append(result)
                if log is not None and origin is not None and result.rejected:
                    raw = item if isinstance(item, bytes) else str(item).encode("utf-8", "replace")
                    self._log_rejection(log, result, raw, origin, None, number)
            self._commit(touched, log)
        except BaseException:
            self._forget(touched)
            raise
        return report

    def submit_tracked(self, deliveries: Sequence[Delivery]) -> BatchReport:
        """Record a batch from one upstream partition, with its offset, atomically.

        The offset is stored in the same transaction as the events and rejections, so after a crash
        the consumer resumes exactly after the last delivery whose effects were committed.

        Several processes may share the store (scale-out): what others changed is forgotten
        first (`catch_up`). A batch that still conflicts with another writer (one that wrote
        between that and the commit, or an offset already recorded) fails whole with
        `IntegrityError`; the caller decides it again (consumers/ingest.py).
        """
        if not deliveries:
            return BatchReport()
        upstreams = {(d.topic, d.partition) for d in deliveries}
        if len(upstreams) != 1:
            raise ValueError("a tracked batch comes from one topic partition")
        self.catch_up()
        last = max(d.offset for d in deliveries)
        report = BatchReport()
        touched: dict[str, Trial] = {}
        log = self._load_rejection_log()
        try:
            for delivery in deliveries:
                result = self._record_one(delivery.raw, touched, site=delivery.site)
                report.results.append(result)
                if result.rejected:
                    self._log_rejection(log, result, delivery.raw, delivery.topic,
                                        delivery.partition, delivery.offset)
            self._commit(touched, log, Tracking(upstream_name(deliveries[0]), last))
        except BaseException:
            self._forget(touched)
            raise
        return report

    def _log_rejection(self, log: RejectionLog, result: SubmissionResult, raw: bytes, topic: str,
                       partition: int | None, offset: int) -> None:
        assert result.reason_code is not None and result.message is not None
        log.reject(
            event_id=result.event_id,
            reason_code=result.reason_code.value,
            message=result.message + rejection_note(raw),
            **original_text(raw),
            topic=topic,
            partition=partition,
            offset=offset,
            rejected_at=self._recorded_at(log.modified_on),
        )

    def _commit(
        self,
        trials: Mapping[str, Trial],
        rejection_log: RejectionLog | None = None,
        tracking: Tracking | None = None,
    ) -> None:
        """Store the batch, its leaf hashes and signed checkpoints, and the upstream offset in
        one transaction: a batch is never stored without its seal, nor sealed without its events;
        once committed, what it added is handed over to the publisher."""
        batch = self._sealed_batch(trials, rejection_log)
        if not (batch.events or batch.audit_logs) and tracking is None:
            return
        processing = ProcessingEvent[UUID](tracking=tracking)
        # The events were collected from their aggregates to be sealed: they go in as they are,
        # not through `collect_events`, which runs typing's runtime Protocol check on each one
        # (22 us an event on Python 3.11, a tenth of a batch).
        processing.events.extend(batch.events)
        processing.aggregates.update((log.id, log) for log in batch.audit_logs)
        try:
            recordings = self._app._record(processing)
        except BaseException:
            self._audit_logs.clear()
            self._rejection_log = None
            raise
        self._other_writers.wrote([r.notification.id for r in recordings])
        self.hand_over.recorded(batch.entries, batch.rejections)

    def catch_up(self) -> bool:
        """Forget the cached aggregates other writers of the store changed since the last call
        (they are read again when next needed); whether anything was written by others.

        One query when nobody else writes; see `store.OtherWriters`."""
        changed = self._other_writers.changed_since_last_asked()
        if not changed:
            return False
        self.hand_over.forget(changed)
        for trial_id in [t for t in self._trials if trial_aggregate_id(t) in changed]:
            del self._trials[trial_id]
        for log_id in changed & self._audit_logs.keys():
            del self._audit_logs[log_id]
        if rejection_log_id() in changed:
            self._rejection_log = None
        return True

    def upstream_position(self, topic: str, partition: int) -> int | None:
        """The last offset of `topic`/`partition` whose effects are in the store."""
        recorder = self._app.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder.max_tracking_id(f"{topic}:{partition}")

    def _record_one(
        self,
        item: bytes | str | SubmissionMessage,
        touched: dict[str, Trial],
        *,
        site: str | None = None,
    ) -> SubmissionResult:
        from ledger.schemas import submissions as wire

        event_id: str | None = None
        try:
            message = (
                item
                if isinstance(item, wire.SubmissionMessage)
                else wire.parse_submission(item, recorded_on=self._clock().date())
            )
            event_id = str(message.event_id)
            check_sender(message.source, site)
            trial = self.find_trial(message.trial_id)
            if trial is None:
                raise SubmissionRejectedError(
                    ReasonCode.UNKNOWN_TRIAL, f"no trial {message.trial_id} in this ledger"
                )
            submission = self._checked_correction(trial, wire.to_domain(message))
            version_before = trial.version
            outcome = trial.record(submission, self._recorded_at(trial.modified_on))
        except wire.InvalidSubmissionError as error:
            return SubmissionResult(
                event_id=error.event_id or event_id,
                outcome=None,
                reason_code=error.reason_code,
                message=error.message,
            )
        except SubmissionRejectedError as error:
            return SubmissionResult(
                event_id=event_id,
                outcome=None,
                reason_code=error.reason_code,
                message=error.message,
            )
        if outcome is Outcome.RECORDED:
            touched[trial.trial_id] = trial
        return SubmissionResult(
            event_id=event_id,
            outcome=outcome,
            positions=tuple(range(version_before + 1, trial.version + 1)),
        )

    def _checked_correction(self, trial: Trial, submission: Submission) -> Submission:
        """Only the sender of a record amends it, and a correction's data must be valid data of
        the corrected event's type."""
        from ledger.schemas.submissions import validate_corrected_data

        if submission.type not in AMENDMENT_TYPES:
            return submission
        target_id = str(submission.data["target_event_id"])
        check_same_sender(trial, target_id, submission.source)
        if submission.type != RECORD_CORRECTED:
            return submission
        target_type = trial.target_type(target_id)
        if target_type is None or target_type.startswith("record."):
            return submission  # the aggregate refuses it with the precise reason
        corrected = validate_corrected_data(target_type, dict(submission.data["data"]))
        data = {**submission.data, "data": corrected}
        return replace(submission, data=data)

    def _recorded_at(self, last: datetime | None) -> datetime:
        """Transaction time from the ledger's clock, never earlier than the previous record."""
        now = self._clock()
        return max(now, last) if last is not None else now

    def _forget(self, touched: Mapping[str, Trial]) -> None:
        for trial_id in touched:
            self._trials.pop(trial_id, None)
        self._audit_logs.clear()
        self._rejection_log = None

    def _load_rejection_log(self) -> RejectionLog:
        if self._rejection_log is None:
            try:
                self._rejection_log = self._app.repository.get(rejection_log_id())
            except AggregateNotFoundError:
                self._rejection_log = RejectionLog.start()
        return self._rejection_log
