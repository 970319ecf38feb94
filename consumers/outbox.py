"""Republish the store on `trial.ledger` and `trial.rejections`, each record exactly once in effect.

The store is the source of truth; the topics are its copies. A transactional producer with a stable
`transactional_id` fences any zombie of a previous run and aborts its open transaction
(`init_transactions`); then the committed tail of each topic is read (`read_committed`) to find what
was already published — the highest `position` per trial and the highest rejection `sequence` — and
publishing resumes right after it. Each round is one transaction, so a crash either publishes a
whole round or none of it, and the next start neither repeats nor skips a record.

The outbox never trusts what it cannot check: every record of the tail it resumes from must be
the store's entry at that position (the whole JSON object, and its leaf hash when the record has
one), each trial's positions consecutive, each rejection the store's one with that sequence.
Anything else on a topic (a forged record, a position beyond the store, a gap or a duplicate) is
logged as an error and raised as `UntrustedTopicError`: publishing stops, because resuming after
such a record would skip real records and resuming before it would publish them twice.

The same restart is how a failed round is recovered while running (a broker died, a transaction
timed out): the producer is dropped, a new one fences it and aborts its transaction, the tails are
read again, and the round is retried from there.

Each round commits what it sent (a long backlog in transactions of TRANSACTION_SIZE records): what
the service handed over as it committed it (`LedgerService.hand_over`), or, where that does not
continue what was sent (a start, a failed round, another writer's records), read from the store.
What counts as published is what was committed; what a failed transaction sent is sent again from
the store after the restart.

Several publishers may share a store and its topics (scale-out, consumers/ingest.py): each
publishes only its `PublishingShare`: the trials it owns (and the rejections only if the share
includes them), under a transactional id of its own, and checks only those in the tails it resumes
from.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import stamina

from consumers._kafka import (
    Connection,
    commit_transaction,
    discard_producer,
    final_error,
    kafka,
    kafka_errors,
    producer_settings,
)
from consumers.tail import (
    PublishedTail,
    read_checkpoint_tail,
    read_published_tail,
    tail_reader,
    verify_tail,
)
from consumers.topics import (
    LEDGER_TOPIC,
    REJECTIONS_TOPIC,
    checkpoints_topic_for,
)
from ledger.aggregates.log_ids import LEDGER_LOG, REJECTIONS_LOG
from ledger.application import LedgerService
from ledger.entries import LedgerEntry
from ledger.recording import say_retries_in_words

#: Records per transaction when catching up a long backlog.
TRANSACTION_SIZE = 5000
#: Bounds on one round, so that a broker failover surfaces as an error to recover from, not a hang.
#: kafka-python 3.0.12 drops an AddPartitionsToTxn request whose coordinator has just died (the
#: sender's exception path neither retries nor re-queues it), so records then wait until their
#: delivery timeout expires; a short one makes that a 15-second stall followed by a restart, which
#: finds the new coordinator.
#: The transaction timeout must outlast a whole round (flush + commit), or the broker aborts it and
#: kafka-python reports that as ProducerFencedError, which stops the publisher.
PRODUCER_TIMEOUTS = {"request_timeout_ms": 10_000, "delivery_timeout_ms": 15_000,
                     "max_block_ms": 30_000, "transaction_timeout_ms": 120_000}
FLUSH_TIMEOUT_S = 30.0
COMMIT_TIMEOUT_S = 30.0
#: Rounds tried (each with a fresh producer) before the error is raised to the caller.
PUBLISH_ATTEMPTS = 6
RETRY_PAUSE_S = 2.0

_log = logging.getLogger("trial_ledger.outbox")


#: Every transactional id of the ledger's publishers starts so (the `ledger` principal's ACL).
TRANSACTIONAL_ID_PREFIX = "trial-ledger-publisher"


def default_transactional_id(ledger_topic: str, rejections_topic: str) -> str:
    """Stable per pair of output topics: one live publisher for them, any older one fenced."""
    return f"{TRANSACTIONAL_ID_PREFIX}:{ledger_topic}:{rejections_topic}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish; `number` is its ledger position, its rejection sequence, or the
    size of the log a checkpoint covers (`log` names that log)."""

    topic: str
    key: bytes | None
    value: bytes
    trial_id: str | None
    number: int
    log: str | None = None


class UntrustedTopicError(RuntimeError):
    """A published topic holds records the store does not vouch for: publishing stops."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(
            f"refusing to publish: {problems[0]}{more}; the topic was written by someone other "
            f"than this ledger, or the store is not the one it was published from"
        )


@dataclass(frozen=True, slots=True)
class PublishingShare:
    """The part of a shared store one publisher publishes (consumers/ownership.py): the trials it
    `owns`, the store's rejection log if `rejections`, under its own `transactional_id`."""

    transactional_id: str
    owns: Callable[[str], bool]
    rejections: bool


class LedgerOutbox:
    """Publishes the store's new records and rejections in transactions, resuming after a crash."""

    def __init__(
        self,
        service: LedgerService,
        bootstrap: Connection,
        *,
        ledger_topic: str = LEDGER_TOPIC,
        rejections_topic: str = REJECTIONS_TOPIC,
        share: PublishingShare | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._service = service
        self._share = share
        self.publishes_rejections = share is None or share.rejections
        self._bootstrap = bootstrap
        self.ledger_topic = ledger_topic
        self.rejections_topic = rejections_topic
        self.checkpoints_topic = checkpoints_topic_for(ledger_topic)
        transactional_id = share.transactional_id if share is not None else None
        self._config: dict[str, Any] = {
            **producer_settings(bootstrap, "trial-ledger-outbox"),
            **PRODUCER_TIMEOUTS,
            "transactional_id": transactional_id
            or default_transactional_id(ledger_topic, rejections_topic),
            # Catch-up rounds send thousands of small records; kafka-python's 16 KiB batches
            # cost a sender wake-up each (measured: 1.6 s of 8.7 s ingesting 20k submissions).
            "batch_size": 1 << 20,
        }
        self._stop = stop
        self._producer: Any = None
        self._started = False
        # Committed: what the topics hold.
        self._positions: dict[str, int] = {}
        self._sequence = 0
        # (trial id, log) -> size covered by the last checkpoint published for that log
        self._checkpointed: dict[tuple[str | None, str], int] = {}
        # Sent: what the open transaction adds (equal to the committed state when none is open).
        self._sent_positions: dict[str, int] = {}
        self._sent_sequence = 0
        self._sent_checkpointed: dict[tuple[str | None, str], int] = {}
        self._in_transaction: list[tuple[Outgoing, Any]] = []
        self.published_events = 0
        self.published_rejections = 0
        self.published_checkpoints = 0

    @property
    def published(self) -> int:
        return self.published_events + self.published_rejections

    def start(self) -> PublishedTail:
        """Fence older publishers, then learn from the topics' tails where to resume.

        On a restart, records the tail shows beyond what this outbox counted were committed by
        its previous producer after all (a commit whose acknowledgement was lost): they count.
        Raises `UntrustedTopicError` if the tail is not what the store published.
        """
        self._discard_producer()
        self._producer = kafka().KafkaProducer(**self._config)
        self._producer.init_transactions()
        trial_ids = self.trial_ids()
        with tail_reader(self._bootstrap) as reader:
            tail = read_published_tail(reader, self.ledger_topic, self.rejections_topic,
                                       trial_ids, rejections=self.publishes_rejections)
            checkpointed, checkpoint_problems = read_checkpoint_tail(
                self._service, reader, self.checkpoints_topic, trial_ids,
                owns=self.owns, rejections=self.publishes_rejections,
            )
        problems = verify_tail(self._service, tail, self.owns)
        problems += checkpoint_problems
        if problems:
            self._discard_producer()
            for problem in problems:
                _log.error("untrusted record on a published topic: %s", problem)
            raise UntrustedTopicError(problems)
        positions = {t: tail.positions.get(t, 0) for t in trial_ids}
        if self._started:
            self.published_events += sum(
                max(0, position - self._positions.get(t, 0)) for t, position in positions.items()
            )
            self.published_rejections += max(0, tail.rejection_sequence - self._sequence)
        self._positions, self._sequence, self._started = positions, tail.rejection_sequence, True
        self._checkpointed = checkpointed
        self._reset_to_committed()
        _log.info("%s resuming after positions %s and rejection %d",
                  self._config["transactional_id"], positions, self._sequence)
        return tail

    def owns(self, trial_id: str) -> bool:
        """Whether this outbox publishes `trial_id`'s records (and its log's checkpoints)."""
        return self._share is None or self._share.owns(trial_id)

    def trial_ids(self) -> list[str]:
        """The store's trials this outbox publishes."""
        return [t for t in self._service.trial_ids() if self.owns(t)]

    def pending(self) -> Iterator[Outgoing]:
        """Everything in the store not yet sent, in order: each trial's records, then
        the rejections."""
        for trial_id in self.trial_ids():
            # A trial opened after start() cannot be on the topic yet: none of it is published.
            self._positions.setdefault(trial_id, 0)
            key = trial_id.encode()
            last = self._sent_positions.setdefault(trial_id, self._positions[trial_id])
            for entry in self._unsent_entries(trial_id, last):
                yield Outgoing(self.ledger_topic, key, entry.to_json().encode(), trial_id,
                               entry.position)
                last = entry.position
            yield from self._checkpoints_due(LEDGER_LOG, trial_id, last)
        if not self.publishes_rejections:
            return
        last = self._sent_sequence
        handed = self._service.hand_over.rejections(last)
        for message in self._service.rejections(after=last) if handed is None else handed:
            owner = _trial_of(message["submission"])
            value = json.dumps(message, sort_keys=True, separators=(",", ":")).encode()
            yield Outgoing(self.rejections_topic, owner.encode() if owner else None, value, None,
                           message["sequence"])
            last = message["sequence"]
        yield from self._checkpoints_due(REJECTIONS_LOG, None, last)

    def _unsent_entries(self, trial_id: str, after: int) -> Iterable[LedgerEntry]:
        """The trial's entries after position `after`: as the service handed them over when it
        recorded them (they continue `after`), else read back from the store."""
        handed = self._service.hand_over.entries(trial_id, after)
        return self._service.entries(trial_id, after=after) if handed is None else handed

    def _checkpoints_due(self, log: str, trial_id: str | None, published_to: int
                         ) -> Iterator[Outgoing]:
        """The log's checkpoints not yet on the topic whose entries are (or go with them)."""
        for checkpoint in self._service.log_checkpoints(log, trial_id):
            owner = checkpoint.get("trial_id")
            size = int(checkpoint["size"])
            if size <= self._sent_checkpointed.get((owner, log), 0) or size > published_to:
                continue
            value = json.dumps(checkpoint, sort_keys=True, separators=(",", ":")).encode()
            yield Outgoing(self.checkpoints_topic, owner.encode() if owner else None, value,
                           owner, size, log=log)

    def publish_pending(self) -> int:
        """Publish what the store holds beyond the topics, in transactions; return the count.

        A failed round is retried from a restart (see the module doc) up to PUBLISH_ATTEMPTS
        times; the last error is raised. Nothing is published twice either way.
        """
        before = self.published
        self._service.catch_up()  # another process sharing the store may have written
        say_retries_in_words()
        for attempt in stamina.retry_context(
            on=self._worth_retrying, attempts=PUBLISH_ATTEMPTS, timeout=None,
            wait_initial=RETRY_PAUSE_S, wait_max=RETRY_PAUSE_S, wait_jitter=0,
        ):
            with attempt:
                self._attempt()
        return self.published - before

    def _attempt(self) -> None:
        """One try of a round; a failed one drops the producer, so the next starts afresh."""
        try:
            if self._producer is None:
                self.start()
            self._send_all()
            if self._in_transaction:
                self._commit()
        except (kafka_errors().KafkaError, TimeoutError) as error:
            self._discard_producer()
            final = final_error(error)
            if final is not None and final is not error:
                raise final from error  # the real cause (fenced), not kafka-python's wrapper
            if final is None and self._stop is not None and self._stop.is_set():
                _log.warning("publishing failed (%s) while stopping; the next start resumes",
                             error)
                return
            raise

    def _worth_retrying(self, error: Exception) -> bool:
        """stamina's hook: a Kafka failure or timeout is retried from a restart, unless it is
        final (fenced, not authorized: `final_error`)."""
        if not isinstance(error, kafka_errors().KafkaError | TimeoutError):
            return False
        if final_error(error) is not None:
            return False
        _log.warning("publishing failed (%s: %s); restarting the producer", type(error).__name__,
                     error)
        return True

    def _send_all(self) -> None:
        for record in self.pending():
            if len(self._in_transaction) >= TRANSACTION_SIZE:
                self._commit()
            self._send(record)

    def _send(self, record: Outgoing) -> None:
        producer = self._producer
        if not self._in_transaction:
            producer.begin_transaction()
        future = producer.send(record.topic, key=record.key, value=record.value)
        self._in_transaction.append((record, future))
        if record.log is not None:
            self._sent_checkpointed[(record.trial_id, record.log)] = record.number
        elif record.trial_id is None:
            self._sent_sequence = record.number
        else:
            self._sent_positions[record.trial_id] = record.number

    def _commit(self) -> None:
        producer = self._producer
        # A failure anywhere here leaves the open transaction to the next producer to abort.
        producer.flush(timeout=FLUSH_TIMEOUT_S)
        # A failed send carries the real cause (ProducerFencedError, say); commit_transaction
        # would only report a generic "error state".
        failure = next((f.exception for _, f in self._in_transaction if f.failed()), None)
        if failure is not None:
            raise failure
        commit_transaction(producer, COMMIT_TIMEOUT_S)
        for record, _ in self._in_transaction:
            if record.log is not None:
                self.published_checkpoints += 1
            elif record.trial_id is None:
                self.published_rejections += 1
            else:
                self.published_events += 1
        self._in_transaction = []
        self._positions = {**self._positions, **self._sent_positions}
        self._sequence = self._sent_sequence
        self._checkpointed = dict(self._sent_checkpointed)

    def _reset_to_committed(self) -> None:
        """Forget what an aborted transaction sent: pending again from the committed state."""
        self._in_transaction = []
        self._sent_positions = dict(self._positions)
        self._sent_sequence = self._sequence
        self._sent_checkpointed = dict(self._checkpointed)

    def _discard_producer(self) -> None:
        """Close the producer without waiting; its open transaction is aborted by the next one."""
        self._reset_to_committed()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            discard_producer(producer)

    def close(self) -> None:
        """Close the producer; a transaction still open is aborted (by the next publisher with
        this transactional id), so call `publish_pending` first to keep what it sent."""
        self._reset_to_committed()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.close()

    def __enter__(self) -> LedgerOutbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _trial_of(submission: str) -> str | None:
    try:
        document = json.loads(submission)
    except (ValueError, RecursionError):  # a hostile nesting depth is data too
        return None
    trial_id = document.get("trial_id") if isinstance(document, dict) else None
    return trial_id if isinstance(trial_id, str) and trial_id else None


