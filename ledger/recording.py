"""What recording reports, and the checks and shapes recording uses around the Trial aggregate:
a submission's result, a tracked delivery, the sender checks, the rejection message, and the
hand-over of what was just recorded to the publisher."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.aggregates.intake import RejectionLog
from ledger.aggregates.log_ids import rejection_log_id
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial_state import Outcome
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.entries import LedgerEntry, format_timestamp
from ledger.schemas.jsontext import MAX_SUBMISSION_BYTES

if TYPE_CHECKING:
    import stamina
    from stamina.instrumentation import RetryDetails

    from ledger.aggregates.trial import Trial

LEDGER_SOURCE = "trial-ledger"


@dataclass(frozen=True, slots=True)
class SubmissionResult:
    """What happened to one submission: recorded, a duplicate of one recorded, or rejected."""

    event_id: str | None
    outcome: Outcome | None
    reason_code: ReasonCode | None = None
    message: str | None = None
    positions: tuple[int, ...] = ()

    @property
    def rejected(self) -> bool:
        return self.reason_code is not None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message from a tracked upstream (a Kafka partition): its bytes and where it came from."""

    raw: bytes
    topic: str
    partition: int
    offset: int
    site: str | None = None
    """The sender as the broker authenticated it (a site's own topic), or None for the shared
    topic; a submission from a site must carry that site as its `source`."""


@dataclass(slots=True)
class BatchReport:
    results: list[SubmissionResult] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.RECORDED)

    @property
    def duplicates(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.DUPLICATE)

    @property
    def rejected(self) -> list[SubmissionResult]:
        return [r for r in self.results if r.rejected]


def check_sender(source: str, site: str | None) -> None:
    """The ledger's own name is never a sender's, and an authenticated site sends as itself."""
    if source == LEDGER_SOURCE:
        raise SubmissionRejectedError(
            ReasonCode.SOURCE_NOT_AUTHENTICATED,
            f"source {LEDGER_SOURCE!r} is reserved for the ledger's own decisions",
        )
    if site is not None and source != site:
        raise SubmissionRejectedError(
            ReasonCode.SOURCE_NOT_AUTHENTICATED,
            f"source {source!r} is not the authenticated sender {site!r}",
        )


def check_same_sender(trial: Trial, target_id: str, source: str) -> None:
    owner = trial.target_source(target_id)
    if owner is not None and owner != source:
        raise SubmissionRejectedError(
            ReasonCode.FOREIGN_RECORD,
            f"event {target_id} was recorded from {owner!r}; only that sender may amend it",
        )


def upstream_name(delivery: Delivery) -> str:
    return f"{delivery.topic}:{delivery.partition}"


def original_text(raw: bytes) -> dict[str, str]:
    """The delivered bytes as text an auditor can turn back into exactly those bytes: as UTF-8
    when they are, base64 otherwise (the fields `submission` and `submission_encoding`).

    At most the first MAX_SUBMISSION_BYTES are kept (`kept_bytes`): a delivery over that is
    refused for its size, and kept whole it could not be published on `trial.rejections` (a
    broker takes about 1 MB a message, and JSON writes a control character in six bytes)."""
    kept = kept_bytes(raw)
    try:
        return {"submission": kept.decode("utf-8"), "submission_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"submission": base64.b64encode(kept).decode("ascii"),
                "submission_encoding": "base64"}


def kept_bytes(raw: bytes) -> bytes:
    """The part of a delivery its rejection keeps: all of it up to MAX_SUBMISSION_BYTES, else
    that many (fewer by the bytes of a UTF-8 character cut in two, so text stays text)."""
    if len(raw) <= MAX_SUBMISSION_BYTES:
        return raw
    kept = raw[:MAX_SUBMISSION_BYTES]
    for cut in range(4):  # a UTF-8 character is at most four bytes
        try:
            kept[: len(kept) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return kept[: len(kept) - cut]
    return kept


def rejection_note(raw: bytes) -> str:
    """What a rejection's message adds when it keeps only part of the delivery: its size and
    SHA-256, so the whole can still be matched to what the sender holds."""
    kept = len(kept_bytes(raw))
    if kept == len(raw):
        return ""
    return (f" (the delivery was {len(raw):,} bytes, SHA-256 {hashlib.sha256(raw).hexdigest()}; "
            f"its first {kept:,} are kept)")


def rejection_message(event: RejectionLog.Rejected, *, sequence: int) -> dict[str, Any]:
    """The `trial.rejections` message (contract §4), numbered for resumable publishing."""
    return {
        "sequence": sequence,
        "event_id": event.event_id,
        "reason_code": event.reason_code,
        "message": event.message,
        "submission": event.submission,
        "submission_encoding": event.submission_encoding,
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "rejected_at": format_timestamp(event.timestamp),
    }


def lost_write_race_retries() -> Iterable[stamina.Attempt]:
    """stamina's retry of a batch that lost a write race with another writer of the store (its
    commit conflicted: decide it again on what the store now holds); the last failure is raised.
    The one retry policy of both `submit_many` and ingest's tracked batches."""
    import stamina  # only writers retry: read commands start without it

    say_retries_in_words()
    return stamina.retry_context(
        on=(IntegrityError, OperationalError), attempts=8, wait_initial=0.05, wait_max=1.0
    )


@functools.cache
def say_retries_in_words() -> None:
    """Log each retry as what failed and when it is tried again. stamina's own line is its event
    name alone, `stamina.retry_scheduled` (the details ride in `extra`), which is all a command
    without logging set up (`ledger submit`) printed when two writers raced."""
    from stamina.instrumentation import set_on_retry_hooks

    set_on_retry_hooks([_log_retry])


def _log_retry(details: RetryDetails) -> None:
    cause = details.caused_by
    logging.getLogger("trial_ledger.retry").warning(
        "%s: %s; trying again in %.2f s (retry %d)",
        type(cause).__name__, " ".join(str(cause).split()), details.wait_for, details.retry_num,
    )


#: Most records held in all. Past it everything held is dropped (records no publisher here takes
#: pile up: trials another process publishes, or no publisher at all) and publishers read the
#: store until the next batch.
HAND_OVER_LIMIT = 10_000

_Record = TypeVar("_Record")


@dataclass(slots=True)
class _Run(Generic[_Record]):
    """The latest records of one log, numbered on from `first` without a gap."""

    first: int
    records: list[_Record]

    @property
    def end(self) -> int:
        return self.first + len(self.records) - 1


class HandOver:
    """What this service committed lately, for its publisher (consumers/outbox.py) to publish
    instead of reading back from the store: each trial's entries (with their leaf hashes) and the
    rejection messages, in store order.

    It answers only when its answer is what the store holds: for a log this service wrote last,
    the records after `after` when they continue `after`. For a log another writer of the store
    changed since (`forget`), one this service never wrote, an `after` behind what it still
    holds, or after more than `limit` records piled up, the answer is None and the caller reads
    the store.
    """

    def __init__(self, limit: int = HAND_OVER_LIMIT) -> None:
        self._limit = limit
        self._trials: dict[str, _Run[LedgerEntry]] = {}
        self._rejections: _Run[dict[str, Any]] | None = None

    def recorded(self, entries: Mapping[str, Sequence[LedgerEntry]],
                 rejections: Sequence[dict[str, Any]]) -> None:
        """Hold a committed batch: each trial's new entries and the new rejection messages."""
        for trial_id, added in entries.items():
            if added:
                self._trials[trial_id] = _extended(
                    self._trials.get(trial_id), added[0].position, added)
        if rejections:
            self._rejections = _extended(
                self._rejections, int(rejections[0]["sequence"]), rejections)
        held = sum(len(run.records) for run in self._trials.values())
        if held + (len(self._rejections.records) if self._rejections else 0) > self._limit:
            self._trials, self._rejections = {}, None

    def entries(self, trial_id: str, after: int) -> list[LedgerEntry] | None:
        """The trial's entries after position `after`, or None: read them from the store."""
        return _taken(self._trials.get(trial_id), after)

    def rejections(self, after: int) -> list[dict[str, Any]] | None:
        """The rejection messages after sequence `after`, or None: read them from the store."""
        return _taken(self._rejections, after)

    def forget(self, changed: set[UUID]) -> None:
        """Drop the logs of the aggregates another writer changed: the store holds more."""
        for trial_id in [t for t in self._trials if trial_aggregate_id(t) in changed]:
            del self._trials[trial_id]
        if rejection_log_id() in changed:
            self._rejections = None


def _extended(run: _Run[_Record] | None, first: int, added: Sequence[_Record]) -> _Run[_Record]:
    if run is None or run.end + 1 != first:  # a gap: the earlier records are the store's
        run = _Run(first, [])
    run.records.extend(added)
    return run


def _taken(run: _Run[_Record] | None, after: int) -> list[_Record] | None:
    """The run's records after `after` when they continue it; those up to `after` are dropped
    (the publisher has them), the rest kept until it has them too."""
    if run is None or not run.first - 1 <= after <= run.end:
        return None
    del run.records[:after - run.first + 1]
    run.first = after + 1
    return list(run.records)
