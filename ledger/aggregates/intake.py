"""The log of rejected deliveries from tracked upstreams (Kafka partitions).

A rejection never touches a trial's history, but an integrator must be told exactly once. Keeping
rejections as events, committed in the same transaction as the upstream offset, lets the ledger
republish them to `trial.rejections` without loss or repetition after any crash.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import Aggregate

from ledger.aggregates.log_ids import rejection_log_id


class RejectionLog(Aggregate):
    TOPIC = "trial-ledger:RejectionLog"

    class Event(Aggregate.Event):
        TOPIC = "trial-ledger:RejectionLog.Event"

    class Started(Event, Aggregate.Created):
        TOPIC = "trial-ledger:RejectionLog.Started"

    class Rejected(Event):
        TOPIC = "trial-ledger:RejectionLog.Rejected"
        event_id: str | None
        reason_code: str
        message: str
        submission: str
        topic: str
        partition: int | None  # None: not from Kafka (a `ledger submit` file line)
        offset: int
        # "utf-8" (the text is the bytes) or "base64"; logs written before this field was added
        # decoded invalid UTF-8 lossily, and read as "utf-8".
        submission_encoding: str = "utf-8"

    @classmethod
    def start(cls) -> RejectionLog:
        return cls._create(cls.Started, id=rejection_log_id())

    def reject(
        self,
        *,
        event_id: str | None,
        reason_code: str,
        message: str,
        submission: str,
        submission_encoding: str,
        topic: str,
        partition: int | None,
        offset: int,
        rejected_at: datetime,
    ) -> None:
        """Keep a refused delivery with the reason and its upstream coordinates."""
        self.trigger_event(
            self.Rejected,
            timestamp=rejected_at,
            event_id=event_id,
            reason_code=reason_code,
            message=message,
            submission=submission,
            submission_encoding=submission_encoding,
            topic=topic,
            partition=partition,
            offset=offset,
        )
