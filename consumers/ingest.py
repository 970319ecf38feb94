"""Exactly-once ingest: submissions topics → the store → `trial.ledger` / `trial.rejections`.

Submissions come from the shared topic `trial.submissions` and from every site's own topic
`trial.submissions.<SITE>` (one pattern subscription: a site added while ingest runs is picked up
at the next metadata refresh, within `METADATA_MAX_AGE_MS`, and its partitions assigned by a
rebalance). Only the site `<SITE>` may write its topic (consumers/security.py), so a delivery from
it carries `site=<SITE>`, the sender as the broker authenticated it; the ledger refuses a
submission whose `source` is another.

The store's tracking records are the source of truth for consumer positions: on every assignment
each partition is sought to the offset after the last one whose effects are in the store, and each
polled batch is recorded together with its offset in one transaction (`submit_tracked`). Kafka
offset commits are made too, but only as a convenience for monitoring tools. After each batch the
new records and rejections are published by the transactional `LedgerOutbox` of each owned
partition of the shared topic (consumers/ownership.py: several processes in one group scale out
over one store, each publishing the trials of its partitions).

`ledger ingest` (consumers/cli.py) runs it as a service: logs to stderr, stops cleanly on SIGTERM,
dumps its threads' stacks on SIGUSR1.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Any

from consumers._kafka import Connection, client_settings, kafka, kafka_errors
from consumers.ownership import PartitionOutboxes
from consumers.topics import (
    HISTORY_CONFIGS,
    LEDGER_TOPIC,
    REJECTIONS_TOPIC,
    SUBMISSIONS_TOPIC,
    checkpoints_topic_for,
    ensure_topics,
    site_of_topic,
    wait_for_partitions,
)
from ledger.application import BatchReport, Delivery, LedgerService
from ledger.recording import lost_write_race_retries

DEFAULT_GROUP = "trial-ledger"
#: Submissions a store transaction records at most. bench/bench_ingest.py, 20,000 submissions,
#: two runs each (msg/s end to end): 250: 2,660-2,740; 500: 2,650-3,110; 1000: 3,250-3,400;
#: 2000: 3,310-3,970; 5000: 3,660-3,990. Each round's fixed costs (the store transaction, the
#: Kafka transaction's flush and commit) stop mattering by 2000; a bigger batch only holds its
#: records back from `trial.ledger` longer, and a poll rarely returns more (1 MiB a fetch).
DEFAULT_MAX_BATCH = 2000
POLL_TIMEOUT_MS = 200

_log = logging.getLogger("trial_ledger.ingest")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """What one ingest run is told: built once at the edge (`ingest_settings` in consumers/cli.py
    from the `ledger ingest` options) and passed down whole."""

    submissions_topic: str = SUBMISSIONS_TOPIC
    """Read with every site topic `<submissions_topic>.<SITE>`."""
    ledger_topic: str = LEDGER_TOPIC
    rejections_topic: str = REJECTIONS_TOPIC
    group_id: str = DEFAULT_GROUP
    group_instance_id: str | None = None
    """Static group membership: a restarted process takes its partitions back at once."""
    max_batch: int = DEFAULT_MAX_BATCH
    """Most submissions recorded in one store transaction."""
    until_idle: bool = False
    """Stop once every assigned partition is consumed and published."""

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")


@dataclass(slots=True)
class IngestReport:
    """Counts of one run: what was consumed and decided, and what was published."""

    consumed: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    published_events: int = 0
    published_rejections: int = 0
    published_checkpoints: int = 0
    store_events: int = 0
    store_rejections: int = 0

    @property
    def published(self) -> int:
        return self.published_events + self.published_rejections

    def to_json_dict(self) -> dict[str, Any]:
        return {**asdict(self), "published": self.published}


class _SeekToStore:
    """Rebalance listener: every assigned partition resumes right after the store's offset, and
    the trials of the assigned partitions of the shared topic are published here."""

    def __init__(self, consumer: Any, service: LedgerService, positions: dict[Any, int],
                 outboxes: PartitionOutboxes, shared_topic: str) -> None:
        self._consumer = consumer
        self._service = service
        self._positions = positions  # the store's last offset per partition, cached
        self._outboxes = outboxes
        self._shared_topic = shared_topic

    def on_partitions_revoked(self, revoked: Sequence[Any]) -> None:
        # The outboxes stay until the new assignment is known (an eager rebalance revokes
        # everything first): a partition assigned here again keeps its started publisher.
        for tp in revoked:
            self._positions.pop(tp, None)

    def on_partitions_assigned(self, assigned: Sequence[Any]) -> None:
        count = len(self._consumer.partitions_for_topic(self._shared_topic) or ())
        self._outboxes.own([tp.partition for tp in assigned if tp.topic == self._shared_topic],
                           count)
        for tp in assigned:
            last = self._service.upstream_position(tp.topic, tp.partition)
            if last is None:
                self._positions[tp] = -1
                self._consumer.seek_to_beginning(tp)
            else:
                self._positions[tp] = last
                self._consumer.seek(tp, last + 1)
            _log.info("assigned %s:%d, resuming after offset %s", tp.topic, tp.partition, last)

    def on_partitions_lost(self, lost: Sequence[Any]) -> None:
        # Another member may own them already: stop publishing them at once.
        self.on_partitions_revoked(lost)
        lost_shared = {tp.partition for tp in lost if tp.topic == self._shared_topic}
        count = len(self._consumer.partitions_for_topic(self._shared_topic) or ())
        self._outboxes.own(set(self._outboxes.owned) - lost_shared, count)


def submissions_pattern(submissions_topic: str = SUBMISSIONS_TOPIC) -> str:
    """The topics ingest reads: the shared one and every site's (`<topic>.<SITE>`)."""
    return rf"^{re.escape(submissions_topic)}(\..+)?$"


def run_ingest(
    service: LedgerService,
    bootstrap: Connection,
    settings: IngestSettings,
    *,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Consume, record and republish until caught up (`settings.until_idle`) or until `stop`."""
    submissions_topic, ledger_topic = settings.submissions_topic, settings.ledger_topic
    rejections_topic, max_batch = settings.rejections_topic, settings.max_batch
    service.ensure_trial()
    # The ledger's own topics keep history forever; the submissions topics are the operator's
    # (`ledger broker start` / `add-site`): ingest only reads them.
    ensure_topics(
        bootstrap,
        [ledger_topic, rejections_topic, checkpoints_topic_for(ledger_topic)],
        configs=HISTORY_CONFIGS,
    )
    report = IngestReport()
    k = kafka()
    outbox = PartitionOutboxes(service, bootstrap, ledger_topic=ledger_topic,
                               rejections_topic=rejections_topic, stop=stop)
    with closing(outbox):
        consumer = k.KafkaConsumer(
            **client_settings(bootstrap, "trial-ledger-ingest"),
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=max_batch,
        )
        with closing(consumer):
            positions: dict[Any, int] = {}
            batches = _Batches(service, consumer, positions, max_batch, report)
            # Know the topic's partitions before joining: a group leader that joins without them
            # assigns nothing, and a static member taking over would keep that empty assignment.
            wait_for_partitions(consumer, submissions_topic)
            # kafka-python insists on its own base class; the behaviour is all in _SeekToStore.
            listener = type("SeekToStore", (_SeekToStore, k.ConsumerRebalanceListener), {})
            consumer.subscribe(
                pattern=submissions_pattern(submissions_topic),
                listener=listener(consumer, service, positions, outbox, submissions_topic),
            )
            while not (stop is not None and stop.is_set()):
                polled = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                for tp, records in polled.items():
                    batches.record(tp, records, site_of_topic(tp.topic, submissions_topic))
                if polled:
                    published = outbox.publish_pending()
                    _log.info("consumed %d, published %d (totals: %d consumed, %d published)",
                              sum(len(r) for r in polled.values()), published,
                              report.consumed, outbox.published)
                    if settings.until_idle and _consumed_to_fetched_end(consumer, positions):
                        break
                elif settings.until_idle and _caught_up(consumer, positions):
                    outbox.publish_pending()
                    break
                elif outbox.started_since_last_round or service.catch_up():
                    # A newly owned partition's backlog, or records another process sharing
                    # the store made of trials published here (from a site's topic).
                    outbox.publish_pending()
    report.published_events = outbox.published_events
    report.published_rejections = outbox.published_rejections
    report.published_checkpoints = outbox.published_checkpoints
    # Positions are gapless, so a trial's last position is its count of records.
    report.store_events = sum(service.size(trial_id) for trial_id in service.trial_ids())
    report.store_rejections = sum(1 for _ in service.rejections())
    return report


class _Batches:
    """Records polled records a batch at a time, each with its offset, and counts them."""

    def __init__(self, service: LedgerService, consumer: Any, positions: dict[Any, int],
                 max_batch: int, report: IngestReport) -> None:
        self._service = service
        self._consumer = consumer
        self._positions = positions  # shared with the rebalance listener
        self._max_batch = max_batch
        self._report = report

    def record(self, tp: Any, records: Sequence[Any], site: str | None) -> None:
        last = self._positions.get(tp)
        if last is None:  # revoked while this poll's records were in flight
            return
        fresh = [r for r in records if r.offset > last]
        for start in range(0, len(fresh), self._max_batch):
            chunk = fresh[start:start + self._max_batch]
            batch = _submit_tracked(
                self._service,
                [Delivery(r.value if r.value is not None else b"", r.topic, r.partition,
                          r.offset, site=site)
                 for r in chunk],
            )
            self._positions[tp] = chunk[-1].offset
            self._report.consumed += len(chunk)
            self._report.accepted += batch.accepted
            self._report.duplicates += batch.duplicates
            self._report.rejected += len(batch.rejected)
        if fresh:
            _commit_quietly(self._consumer, tp, self._positions[tp] + 1)


def _submit_tracked(service: LedgerService, deliveries: list[Delivery]) -> BatchReport:
    """`submit_tracked`, decided again after losing a race with another process sharing the
    store (the rejection log is the store's, and a partition's previous owner may still be
    finishing a batch): without what the store has meanwhile recorded from this partition."""
    topic, partition = deliveries[0].topic, deliveries[0].partition
    for attempt in lost_write_race_retries():
        with attempt:
            if attempt.num > 1:
                recorded = service.upstream_position(topic, partition)
                _log.info("%s:%d: a write race lost; deciding again after offset %s",
                          topic, partition, recorded)
                deliveries = [d for d in deliveries if recorded is None or d.offset > recorded]
                if not deliveries:
                    return BatchReport()
            return service.submit_tracked(deliveries)
    raise AssertionError("unreachable: stamina re-raises the last failure")


def _commit_quietly(consumer: Any, tp: Any, offset: int) -> None:
    """Tell Kafka too (for lag monitoring), without waiting: resuming relies on the store's offset.

    A synchronous commit would wait for the group coordinator, which may be a broker that died.
    """
    k = kafka()
    try:
        consumer.commit_async({tp: k.OffsetAndMetadata(offset, "", -1)})
    except kafka_errors().KafkaError:
        return


def _caught_up(consumer: Any, positions: dict[Any, int]) -> bool:
    assigned = consumer.assignment()
    if not assigned or not assigned <= positions.keys():
        return False
    ends = consumer.end_offsets(list(assigned))
    return all(positions[tp] + 1 >= ends[tp] for tp in assigned)


def _consumed_to_fetched_end(consumer: Any, positions: dict[Any, int]) -> bool:
    """Caught up with the end each partition's latest fetch reported (its high watermark, at or
    beyond the last stable offset a read_committed consumer reads to), without asking the broker:
    `end_offsets` would queue behind the consumer's pending fetch, which the broker holds for up
    to fetch_max_wait_ms when there is nothing new."""
    assigned = consumer.assignment()
    if not assigned or not assigned <= positions.keys():
        return False
    ends = {tp: consumer.highwater(tp) for tp in assigned}
    return all(end is not None and positions[tp] + 1 >= end for tp, end in ends.items())
