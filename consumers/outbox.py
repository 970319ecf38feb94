"""Republish the store on `trial.ledger` and `trial.rejections`, each record exactly once in effect.

The store is the source of truth; the topics are its copies. A transactional producer with a stable
`transactional_id` fences any zombie of a previous run and aborts its open transaction
(`init_transactions`); then the committed tail of each topic is read (`read_committed`) to find what
was already published — the highest `position` per trial and the highest rejection `sequence` — and
publishing resumes right after it. Each round is one transaction, so a crash either publishes a
whole round or none of it, and the next start neither repeats nor skips a record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from consumers._kafka import kafka
from consumers.topics import LEDGER_TOPIC, REJECTIONS_TOPIC
from ledger.application import LedgerService

#: Records per transaction when catching up a long backlog.
TRANSACTION_SIZE = 5000
#: Records read back from the end of each partition first; doubled while a trial is not found.
TAIL_WINDOW = 64
TAIL_TIMEOUT_S = 60.0


def default_transactional_id(ledger_topic: str, rejections_topic: str) -> str:
    """Stable per pair of output topics: one live publisher for them, any older one fenced."""
    return f"trial-ledger-publisher:{ledger_topic}:{rejections_topic}"


@dataclass(frozen=True, slots=True)
class PublishedTail:
    """What the topics already hold: last position per trial, last rejection sequence."""

    positions: dict[str, int]
    rejection_sequence: int


class LedgerOutbox:
    """Publishes the store's new records and rejections in transactions, resuming after a crash."""

    def __init__(
        self,
        service: LedgerService,
        bootstrap: str,
        *,
        ledger_topic: str = LEDGER_TOPIC,
        rejections_topic: str = REJECTIONS_TOPIC,
        transactional_id: str | None = None,
        **producer_config: Any,
    ) -> None:
        self._service = service
        self._bootstrap = bootstrap
        self.ledger_topic = ledger_topic
        self.rejections_topic = rejections_topic
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "client_id": "trial-ledger-outbox",
            "transactional_id": transactional_id
            or default_transactional_id(ledger_topic, rejections_topic),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
        }
        config.update(producer_config)
        self._producer = kafka().KafkaProducer(**config)
        self._trial_ids: list[str] = []
        self._positions: dict[str, int] = {}
        self._sequence = 0
        self.published_events = 0
        self.published_rejections = 0

    def start(self) -> PublishedTail:
        """Fence older publishers, then learn from the topics' tails where to resume."""
        self._producer.init_transactions()
        self._trial_ids = self._service.trial_ids()
        tail = read_published_tail(
            self._bootstrap, self.ledger_topic, self.rejections_topic, self._trial_ids
        )
        self._positions = {t: tail.positions.get(t, 0) for t in self._trial_ids}
        self._sequence = tail.rejection_sequence
        return tail

    def pending(self) -> Iterator[tuple[str | None, str, bytes | None, bytes]]:
        """(trial, topic, key, value) of everything in the store not yet published, in order."""
        for trial_id in self._trial_ids:
            for entry in self._service.entries(trial_id, after=self._positions[trial_id]):
                yield trial_id, self.ledger_topic, trial_id.encode(), entry.to_json().encode()
        for message in self._service.rejections(after=self._sequence):
            owner = _trial_of(message["submission"])
            key = owner.encode() if owner else None
            value = json.dumps(message, sort_keys=True, separators=(",", ":")).encode()
            yield None, self.rejections_topic, key, value

    def publish_pending(self) -> int:
        """Publish what the store holds beyond the topics, in transactions; return the count."""
        total = 0
        batch: list[tuple[str | None, str, bytes | None, bytes]] = []
        for record in self.pending():
            batch.append(record)
            if len(batch) >= TRANSACTION_SIZE:
                total += self._publish(batch)
                batch = []
        if batch:
            total += self._publish(batch)
        return total

    def _publish(self, batch: list[tuple[str | None, str, bytes | None, bytes]]) -> int:
        producer = self._producer
        producer.begin_transaction()
        try:
            for _trial, topic, key, value in batch:
                producer.send(topic, key=key, value=value)
            producer.commit_transaction()
        except BaseException:
            _abort_quietly(producer)
            raise
        for trial_id, _topic, _key, value in batch:
            if trial_id is None:
                self._sequence += 1
                self.published_rejections += 1
            else:
                self._positions[trial_id] = int(json.loads(value)["position"])
                self.published_events += 1
        return len(batch)

    def close(self) -> None:
        self._producer.close()

    def __enter__(self) -> LedgerOutbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _abort_quietly(producer: Any) -> None:
    try:
        producer.abort_transaction()
    except Exception:  # fenced or broken: the next start aborts it anyway
        return


def _trial_of(submission: str) -> str | None:
    try:
        document = json.loads(submission)
    except ValueError:
        return None
    trial_id = document.get("trial_id") if isinstance(document, dict) else None
    return trial_id if isinstance(trial_id, str) and trial_id else None


def read_published_tail(
    bootstrap: str, ledger_topic: str, rejections_topic: str, trial_ids: Iterable[str]
) -> PublishedTail:
    """The last committed `position` per trial on `ledger_topic`, last `sequence` on rejections.

    Reads backwards from each partition's end (last stable offset) in growing windows until every
    store trial has been seen or the partition's beginning is reached.
    """
    wanted = set(trial_ids)
    positions: dict[str, int] = {}
    sequence = 0
    consumer = kafka().KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id="trial-ledger-tail",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    with closing(consumer):
        for value in _tail_values(consumer, rejections_topic, lambda _seen: True):
            sequence = max(sequence, _field(value, "sequence"))

        def found_all(seen: list[bytes]) -> bool:
            for value in seen:
                document = _document(value)
                if document is not None and isinstance(document.get("trial_id"), str):
                    trial = document["trial_id"]
                    positions[trial] = max(positions.get(trial, 0), _field(value, "position"))
            return wanted <= positions.keys()

        for _value in _tail_values(consumer, ledger_topic, found_all):
            pass
    return PublishedTail(positions, sequence)


def _tail_values(consumer: Any, topic: str, enough: Any) -> Iterator[bytes]:
    """Values from the end of every partition of `topic`, widening until `enough(values)`."""
    structs = kafka()
    partitions = _partitions(consumer, topic)
    tps = [structs.TopicPartition(topic, p) for p in partitions]
    if not tps:
        return
    consumer.assign(tps)
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    window = TAIL_WINDOW
    while True:
        starts = {tp: max(begin[tp], end[tp] - window) for tp in tps}
        values = _read_range(consumer, starts, end)
        yield from values
        if enough(values) or all(starts[tp] == begin[tp] for tp in tps):
            return
        window *= 4


def _read_range(consumer: Any, starts: dict[Any, int], ends: dict[Any, int]) -> list[bytes]:
    values: list[bytes] = []
    todo = {tp for tp in starts if starts[tp] < ends[tp]}
    for tp in todo:
        consumer.seek(tp, starts[tp])
    deadline = time.monotonic() + TAIL_TIMEOUT_S
    while todo:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read the tail of {sorted(str(tp) for tp in todo)}")
        for tp, records in consumer.poll(timeout_ms=200).items():
            values.extend(r.value for r in records if r.offset < ends[tp])
        todo = {tp for tp in todo if consumer.position(tp) < ends[tp]}
    return values


def _partitions(consumer: Any, topic: str) -> list[int]:
    deadline = time.monotonic() + TAIL_TIMEOUT_S
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions (does it exist?)")
        time.sleep(0.1)


def _document(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _field(value: bytes | None, name: str) -> int:
    document = _document(value)
    raw = document.get(name) if document is not None else None
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
