"""What recording reports, and the checks and shapes recording uses around the Trial aggregate:
a submission's result, a tracked delivery, the sender checks, and the rejection message."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import stamina
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.aggregates.intake import RejectionLog
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial import Outcome, Trial
from ledger.entries import format_timestamp

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
    when they are, base64 otherwise (the fields `submission` and `submission_encoding`)."""
    try:
        return {"submission": raw.decode("utf-8"), "submission_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"submission": base64.b64encode(raw).decode("ascii"),
                "submission_encoding": "base64"}


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
    return stamina.retry_context(
        on=(IntegrityError, OperationalError), attempts=8, wait_initial=0.05, wait_max=1.0
    )
