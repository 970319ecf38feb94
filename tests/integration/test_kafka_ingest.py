"""Publish → ingest → republish on a real broker: the Kafka path records what `submit` does."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers._kafka import Connection, client_settings, kafka, kafka_errors
from consumers.ingest import IngestSettings, run_ingest
from consumers.outbox import LedgerOutbox, default_transactional_id
from consumers.publisher import SubmissionPublisher, publish_file, read_lines
from consumers.topics import checkpoints_topic_for, ensure_topics
from ledger.application import Delivery, LedgerService
from ledger.demo import run_demo
from ledger.entries import LedgerEntry
from ledger.projections.cohorts import cohort_table
from tests.builders import TRIAL_ID
from tests.kafka_fixtures import client

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.kafka

COMPARED = ("position", "type", "subject_id", "occurred_on", "data", "event_id", "source",
            "entered_by", "reason")


@dataclass(frozen=True)
class Topics:
    submissions: str
    ledger: str
    rejections: str
    group: str

    def settings(self) -> IngestSettings:
        """An ingest run over these topics until it is idle."""
        return IngestSettings(submissions_topic=self.submissions, ledger_topic=self.ledger,
                              rejections_topic=self.rejections, group_id=self.group,
                              until_idle=True)


def _topics(partitions: int = 1) -> Topics:
    tag = uuid.uuid4().hex[:8]
    return Topics(f"sub-{tag}", f"led-{tag}", f"rej-{tag}", f"grp-{tag}")


def _create(bootstrap: Connection, topics: Topics, partitions: int = 1, rf: int = 1,
            configs: dict[str, str] | None = None) -> None:
    ensure_topics(bootstrap, [topics.submissions], partitions=partitions, replication_factor=rf,
                  configs=configs)
    ensure_topics(bootstrap, [topics.ledger, topics.rejections,
                              checkpoints_topic_for(topics.ledger)],
                  replication_factor=rf, configs=configs)


def fixed_clock() -> Callable[[], datetime]:
    """A clock far after the demo's dates, advancing a microsecond per reading."""
    counter = itertools.count()
    start = datetime(2026, 7, 1, tzinfo=UTC)
    return lambda: start + timedelta(microseconds=next(counter))


def direct_store(path: Path, lines: Iterable[bytes]) -> LedgerService:
    """The same submissions recorded with `submit_many` (no Kafka), as `ledger submit` does."""
    service = LedgerService(str(path), clock=fixed_clock())
    service.ensure_trial()
    batch = list(lines)
    for start in range(0, len(batch), 1000):
        service.submit_many(batch[start:start + 1000])
    return service


def compared(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        raw = entry.to_json_dict()
        rows.append({name: raw[name] for name in COMPARED})
    return rows


def read_topic(bootstrap: Connection, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every committed record of `topic` (all partitions), in offset order per partition."""
    k = kafka()
    consumer = k.KafkaConsumer(**client_settings(bootstrap, "test-reader"), group_id=None,
                               enable_auto_commit=False, isolation_level="read_committed")
    with closing(consumer):
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [k.TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(
                    r for r in batch if r.offset < ends[k.TopicPartition(r.topic, r.partition)]
                )
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def send_raw(
    bootstrap: Connection, topic: str, items: Iterable[tuple[bytes | None, bytes]]
) -> None:
    """Publish raw messages (even invalid ones) as an integrator's faulty system might."""
    producer = kafka().KafkaProducer(**client_settings(bootstrap, "test-raw-sender"), acks="all",
                                     enable_idempotence=True, linger_ms=5)
    with closing(producer):
        futures = [producer.send(topic, key=key, value=value) for key, value in items]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)


class SubmissionStream(threading.Thread):
    """Publishes rounds of submissions in the background, as sites keep sending while ingest
    runs: each round's batches, then one malformed message (no key: any partition) while `bad`
    lasts, then a pause. With `held_after`, it waits after that many rounds until `go_on` is set.
    """

    def __init__(self, bootstrap: Connection, topic: str, rounds: list[list[list[bytes]]],
                 bad: list[bytes], pause: float, held_after: int | None = None) -> None:
        super().__init__(name="stream")
        self._args = bootstrap, topic, rounds, bad, pause, held_after
        self.go_on = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        bootstrap, topic, rounds, bad, pause, held_after = self._args
        try:
            with SubmissionPublisher(bootstrap, topic) as publisher:
                for index, batches in enumerate(rounds):
                    if index == held_after:
                        assert self.go_on.wait(timeout=300), "the stream was never let go on"
                    for batch in batches:
                        report = publisher.publish(enumerate(batch))
                        assert report.ok and report.published == len(batch), report.invalid[:3]
                    if index < len(bad):
                        send_raw(bootstrap, topic, [(None, bad[index])])
                    time.sleep(pause)
        except BaseException as error:
            self.error = error

    def finish(self) -> None:
        """Wait for the whole stream to be published; re-raise what stopped it."""
        self.join(timeout=300)
        assert not self.is_alive(), "the stream did not finish"
        if self.error is not None:
            raise self.error


def original_bytes(rejection: dict[str, Any]) -> bytes:
    """What the integrator sent, from a `trial.rejections` message."""
    text = str(rejection["submission"])
    if rejection["submission_encoding"] == "base64":
        return base64.b64decode(text)
    assert rejection["submission_encoding"] == "utf-8"
    return text.encode()


def ledger_values(bootstrap: Connection, topic: str) -> list[str]:
    return [r.value.decode() for r in read_topic(bootstrap, topic)]


def record_directly(service: LedgerService, lines: list[bytes], first_offset: int) -> None:
    """Record `lines` as if from another upstream: the store runs ahead of the ledger topic."""
    service.submit_tracked([Delivery(raw, "elsewhere", 0, first_offset + n)
                            for n, raw in enumerate(lines)])


def outbox_for(service: LedgerService, bootstrap: Connection, topics: Topics) -> LedgerOutbox:
    return LedgerOutbox(service, bootstrap, ledger_topic=topics.ledger,
                        rejections_topic=topics.rejections)


def demo_lines(tmp_path: Path) -> list[bytes]:
    run = run_demo(tmp_path / "demo", seed=12)
    return [raw for _, raw in read_lines(run.submissions_file)]


def test_kafka_ingest_records_what_submit_records(kafka_broker: Any, tmp_path: Path) -> None:
    """The demo published and ingested equals `submit_many` of the same file, event by event."""
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics, partitions=3)
    run = run_demo(tmp_path / "demo", seed=12)
    published = publish_file(run.submissions_file, bootstrap, topics.submissions)
    assert published.ok
    assert published.published == run.submitted

    with LedgerService(str(tmp_path / "kafka.db"), clock=fixed_clock()) as service:
        report = run_ingest(service, bootstrap, topics.settings())
        via_kafka = list(service.entries(TRIAL_ID))
    lines = [raw for _, raw in read_lines(run.submissions_file)]
    with direct_store(tmp_path / "direct.db", lines) as direct:
        expected = list(direct.entries(TRIAL_ID))

    assert report.consumed == run.submitted
    assert (report.accepted, report.duplicates, report.rejected) == (
        run.accepted, run.duplicates, run.rejected)
    assert compared(via_kafka) == compared(expected)
    assert cohort_table(via_kafka) == cohort_table(expected)
    assert report.published == report.published_events + report.published_rejections
    assert report.published_events == len(via_kafka) == report.store_events


def test_kafka_rejections_are_exactly_the_bad_messages(kafka_broker: Any, tmp_path: Path) -> None:
    """Non-JSON, invalid, unknown-trial and conflicting messages are exactly the rejections."""
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics, partitions=2)
    good = demo_lines(tmp_path)[:200]
    first = json.loads(good[0])
    key = TRIAL_ID.encode()
    schema_invalid = {**json.loads(good[5]), "event_id": str(uuid.uuid4()), "data": {"bad": 1}}
    unknown_trial = {**first, "event_id": str(uuid.uuid4()), "trial_id": "NCT00000000"}
    conflict = {**json.loads(good[3]), "source": "edc-site-99"}
    bad: list[tuple[bytes | None, bytes]] = [
        (None, b"not json {"),
        (key, json.dumps(schema_invalid).encode()),
        (b"NCT00000000", json.dumps(unknown_trial).encode()),
        (key, json.dumps(conflict).encode()),
        (None, b"\xff\xfe binary"),
    ]
    stream: list[tuple[bytes | None, bytes]] = [(key, raw) for raw in good[:100]]
    stream += [*bad[:3], (key, good[10])]  # an exact duplicate: not a rejection
    stream += [(key, raw) for raw in good[100:]] + bad[3:]
    send_raw(bootstrap, topics.submissions, stream)

    with LedgerService(str(tmp_path / "kafka.db"), clock=fixed_clock()) as service:
        report = run_ingest(service, bootstrap, topics.settings())
        store_events = list(service.entries(TRIAL_ID))
        store_rejections = list(service.rejections())

    rejected = [json.loads(r.value) for r in read_topic(bootstrap, topics.rejections)]
    assert sorted(m["sequence"] for m in rejected) == list(range(1, len(bad) + 1))
    assert sorted(m["reason_code"] for m in rejected) == sorted(
        ["INVALID_JSON", "SCHEMA_INVALID", "UNKNOWN_TRIAL", "EVENT_ID_CONFLICT", "INVALID_TEXT"])
    assert {m["event_id"] for m in rejected} >= {schema_invalid["event_id"],
                                                 unknown_trial["event_id"], conflict["event_id"]}
    contract = {"event_id", "reason_code", "message", "submission", "topic", "partition",
                "offset", "rejected_at"}
    assert all(contract <= m.keys() and m["topic"] == topics.submissions for m in rejected)
    assert sorted(rejected, key=lambda m: m["sequence"]) == store_rejections
    assert sorted(map(original_bytes, rejected)) == sorted(raw for _key, raw in bad)
    assert report.rejected == len(bad)
    assert report.duplicates == 1 + sum(1 for i, raw in enumerate(good) if raw in good[:i])
    assert report.published == len(store_events) + len(store_rejections)
    assert len(ledger_values(bootstrap, topics.ledger)) == len(store_events)


def test_an_oversized_delivery_is_rejected_published_and_ingest_goes_on(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """200 kB of control characters (valid UTF-8, six bytes each as JSON) and 200 kB of binary:
    kept whole, the first rejection was 1.2 MB as a `trial.rejections` message, which the broker
    refused for ever, and every later ingest run stopped at it with nothing more published. Now
    each rejection keeps the first MAX_SUBMISSION_BYTES with the delivery's size and SHA-256
    in its message; both are published and the valid message after them is recorded."""
    from ledger.schemas.jsontext import MAX_SUBMISSION_BYTES

    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics)
    valid = demo_lines(tmp_path)[0]
    oversized = [b"\x01" * 200_000, bytes(range(256)) * 800]
    send_raw(bootstrap, topics.submissions,
             [(TRIAL_ID.encode(), raw) for raw in [*oversized, valid]])
    with LedgerService(str(tmp_path / "big.db"), clock=fixed_clock()) as service:
        report = run_ingest(service, bootstrap, topics.settings())
        recorded = [e for e in service.entries(TRIAL_ID) if e.type == "subject.enrolled"]
    assert (report.rejected, report.accepted) == (2, 1) and len(recorded) == 1
    published = sorted((json.loads(r.value) for r in read_topic(bootstrap, topics.rejections)),
                       key=lambda m: m["sequence"])
    assert [m["reason_code"] for m in published] == ["TOO_LARGE", "TOO_LARGE"]
    for message, raw in zip(published, oversized, strict=True):
        assert original_bytes(message) == raw[:MAX_SUBMISSION_BYTES]
        digest = hashlib.sha256(raw).hexdigest()
        assert f"{len(raw):,} bytes, SHA-256 {digest}" in message["message"]
    assert [m["submission_encoding"] for m in published] == ["utf-8", "base64"]
    assert len(ledger_values(bootstrap, topics.ledger)) == report.published - 2


def test_kafka_ledger_topic_equals_the_store(kafka_broker: Any, tmp_path: Path) -> None:
    """`trial.ledger` holds the store's records once each, in position order, across restarts."""
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics)
    lines = demo_lines(tmp_path)
    store = str(tmp_path / "kafka.db")
    with SubmissionPublisher(bootstrap, topics.submissions) as publisher:
        publisher.publish(enumerate(lines[:400], start=1))
    with LedgerService(store) as service:
        run_ingest(service, bootstrap, topics.settings())
        # The store runs ahead of the topic, as after a crash between recording and publishing.
        record_directly(service, lines[400:500], first_offset=0)
    # A zombie publisher with the same transactional id left a transaction open.
    zombie = kafka().KafkaProducer(
        **client_settings(bootstrap, "test-zombie"),
        transactional_id=default_transactional_id(topics.ledger, topics.rejections))
    with closing(zombie):
        zombie.init_transactions()
        zombie.begin_transaction()
        zombie.send(topics.ledger, key=TRIAL_ID.encode(), value=b'{"position": 99999}').get(30)
        zombie.flush()
        with SubmissionPublisher(bootstrap, topics.submissions) as publisher:
            publisher.publish(enumerate(lines[500:], start=501))
        with LedgerService(store) as service:
            run_ingest(service, bootstrap, topics.settings())
            run_ingest(service, bootstrap, topics.settings())
            expected = [entry.to_json() for entry in service.entries(TRIAL_ID)]

    assert ledger_values(bootstrap, topics.ledger) == expected
    positions = [json.loads(v)["position"] for v in expected]
    assert positions == list(range(1, len(positions) + 1))


def test_a_fenced_outbox_gives_way_to_the_newer_one(kafka_broker: Any, tmp_path: Path) -> None:
    """Two publishers of one store: the older is fenced and stops; it never fences back."""
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics)
    lines = demo_lines(tmp_path)
    with LedgerService(str(tmp_path / "fence.db")) as service:
        service.ensure_trial()
        record_directly(service, lines[:50], first_offset=0)
        older = outbox_for(service, bootstrap, topics)
        newer = outbox_for(service, bootstrap, topics)
        with closing(older), closing(newer):
            older.start()
            assert older.publish_pending() > 0
            newer.start()
            record_directly(service, lines[50:100], first_offset=50)
            with pytest.raises(kafka_errors().ProducerFencedError):
                older.publish_pending()
            assert newer.publish_pending() > 0
        expected = [entry.to_json() for entry in service.entries(TRIAL_ID)]

    assert ledger_values(bootstrap, topics.ledger) == expected


def test_a_restarted_outbox_counts_what_its_lost_commit_published(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """Records on the topic that the outbox did not count (a commit whose acknowledgement was
    lost) are found by the restart's tail read: counted once, never sent again."""
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics)
    lines = demo_lines(tmp_path)
    with LedgerService(str(tmp_path / "lost-ack.db")) as service:
        service.ensure_trial()
        record_directly(service, lines[:40], first_offset=0)
        outbox = outbox_for(service, bootstrap, topics)
        with closing(outbox):
            first = outbox.publish_pending()
            record_directly(service, lines[40:80], first_offset=40)
            # What the outbox's lost commit would have published, here by another producer.
            lost = [e.to_json().encode() for e in service.entries(TRIAL_ID, after=first)][:25]
            send_raw(bootstrap, topics.ledger, [(TRIAL_ID.encode(), value) for value in lost])
            outbox.start()  # the restart after the failed round
            rest = outbox.publish_pending()
            expected = [entry.to_json() for entry in service.entries(TRIAL_ID)]

    assert ledger_values(bootstrap, topics.ledger) == expected
    assert outbox.published_events == first + len(lost) + rest == len(expected)
