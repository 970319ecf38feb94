"""Scale-out: several `ledger ingest` processes in one consumer group share one store, and each
publishes exactly the trials of the `trial.submissions` partitions it owns.

A trial's submissions are keyed by its id, so they all go to one partition of the shared topic
(`partition_of`, Kafka's default partitioner). Whoever owns that partition publishes the trial's
records and checkpoints, through an outbox of that partition alone, under a transactional id of
that partition (`partition_transactional_id`): when a partition moves (a rebalance, or its owner
died), the new owner's outbox fences the previous owner's producer, aborts its open transaction
and resumes after what the topics hold. Partition 0's outbox also publishes the store's one
rejection log; it keeps the transactional id of a single ingest process, so one process on a
one-partition topic publishes exactly as before.

Records that came in through a site's own topic (`trial.submissions.SITE`) may be recorded by
another process (that topic's partitions are assigned on their own); they are still published by
the trial's owner, which notices them in the store (`LedgerService.catch_up`).

Adding partitions to `trial.submissions` moves trials between partitions (as it moves their
submissions): stop every ingest process first, so no two outboxes publish one trial.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from consumers._kafka import Connection, kafka_errors
from consumers.outbox import LedgerOutbox, PublishingShare, default_transactional_id
from ledger.application import LedgerService

_log = logging.getLogger("trial_ledger.ingest")


def partition_of(trial_id: str, partitions: int) -> int:
    """The partition a record keyed by `trial_id` goes to among `partitions`: murmur2 of the key,
    made positive, modulo the count, as the Java client and kafka-python both choose it."""
    from kafka.partitioner.default import murmur2

    hashed: int = murmur2(trial_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def partition_transactional_id(ledger_topic: str, rejections_topic: str, partition: int) -> str:
    """The transactional id of the outbox publishing the trials of `partition`; partition 0's is
    the one a single publisher of these topics has always used."""
    base = default_transactional_id(ledger_topic, rejections_topic)
    return base if partition == 0 else f"{base}:{partition}"


class PartitionOutboxes:
    """One `LedgerOutbox` per owned partition of the submissions topic; `own` follows the
    consumer group's assignment."""

    def __init__(
        self,
        service: LedgerService,
        bootstrap: Connection,
        *,
        ledger_topic: str,
        rejections_topic: str,
        stop: threading.Event | None = None,
    ) -> None:
        self._service = service
        self._bootstrap = bootstrap
        self._ledger_topic = ledger_topic
        self._rejections_topic = rejections_topic
        self._stop = stop
        self._partitions = 0  # of the submissions topic: what `partition_of` divides by
        self._outboxes: dict[int, LedgerOutbox] = {}
        self.started_since_last_round = False
        # Counts of outboxes closed since (a partition moved away): the run's totals include them.
        self._closed_events = self._closed_rejections = self._closed_checkpoints = 0

    @property
    def owned(self) -> list[int]:
        return sorted(self._outboxes)

    def own(self, partitions: Iterable[int], count: int) -> None:
        """Publish for exactly `partitions` of a topic of `count` partitions from now on: outboxes
        of partitions no longer owned are closed (their rounds always end committed), and new
        ones start on the next round."""
        wanted = set(partitions)
        if count != self._partitions:
            if self._partitions:
                _log.warning("the submissions topic now has %d partitions (was %d): trials "
                             "may have moved between partitions", count, self._partitions)
            self._partitions = count
            wanted_again: set[int] = set()
        else:
            wanted_again = wanted & self._outboxes.keys()
        for partition in sorted(self._outboxes.keys() - wanted_again):
            self._close(partition)
        for partition in sorted(wanted - self._outboxes.keys()):
            self._outboxes[partition] = self._outbox(partition)
            self.started_since_last_round = True
        if wanted:
            _log.info("publishing the trials of partitions %s of %d", sorted(wanted), count)

    def _outbox(self, partition: int) -> LedgerOutbox:
        count = self._partitions
        return LedgerOutbox(
            self._service, self._bootstrap, ledger_topic=self._ledger_topic,
            rejections_topic=self._rejections_topic,
            share=PublishingShare(
                transactional_id=partition_transactional_id(
                    self._ledger_topic, self._rejections_topic, partition),
                owns=lambda trial_id: partition_of(trial_id, count) == partition,
                rejections=partition == 0,
            ),
            stop=self._stop,
        )

    def publish_pending(self) -> int:
        """Publish what the store holds beyond the topics for every owned partition; return the
        count. An outbox fenced by a newer owner of its partition (this process lost the
        partition and does not know it yet) is closed and not started again until the partition
        is assigned here again: restarting it would fence the rightful owner in turn."""
        self.started_since_last_round = False
        published = 0
        # A tuple: `except` takes no `X | Y` union (TypeError on 3.11, which hid every error).
        fenced = (kafka_errors().ProducerFencedError, kafka_errors().InvalidProducerEpochError)
        for partition in self.owned:
            try:
                published += self._outboxes[partition].publish_pending()
            except fenced as error:
                _log.error("partition %d's publisher was fenced (%s): another process owns it "
                           "now; not publishing it until it is assigned here again",
                           partition, type(error).__name__)
                self._close(partition)  # its producer is gone already
        return published

    def _close(self, partition: int) -> None:
        outbox = self._outboxes.pop(partition)
        self._closed_events += outbox.published_events
        self._closed_rejections += outbox.published_rejections
        self._closed_checkpoints += outbox.published_checkpoints
        outbox.close()

    @property
    def published_events(self) -> int:
        return self._closed_events + sum(o.published_events for o in self._outboxes.values())

    @property
    def published_rejections(self) -> int:
        return self._closed_rejections + sum(
            o.published_rejections for o in self._outboxes.values())

    @property
    def published_checkpoints(self) -> int:
        return self._closed_checkpoints + sum(
            o.published_checkpoints for o in self._outboxes.values())

    @property
    def published(self) -> int:
        return self.published_events + self.published_rejections

    def close(self) -> None:
        for partition in self.owned:
            self._close(partition)

