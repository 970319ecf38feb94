"""The outbox publishes what the service just recorded from memory (`recording.HandOver`) and
reads the store only when that hand-over does not continue what was sent: every way, each trial's
records reach `trial.ledger` once, in order, without a gap, equal to the store's.

No broker: the topics are lists, the producer appends to them in transactions, and a restart
reads their tails back through the real tail check (`consumers.tail.verify_tail`), which refuses
a duplicate, a gap or a record the store does not hold."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stamina

from consumers import outbox as outbox_module
from consumers._kafka import kafka_errors
from consumers.outbox import PUBLISH_ATTEMPTS, LedgerOutbox
from consumers.publisher import read_lines
from consumers.tail import PublishedTail, TailRecord
from ledger.application import Delivery, LedgerService
from ledger.demo import run_demo
from ledger.entries import LedgerEntry
from ledger.ledger_reader import LedgerReader
from ledger.recording import HandOver
from tests.builders import TRIAL_ID

LEDGER, REJECTIONS, CHECKPOINTS = "trial.ledger", "trial.rejections", "trial.checkpoints"
MALFORMED = b"{not json"


@dataclass
class Topics:
    """The committed records of each topic, and the transaction a producer has open."""

    committed: dict[str, list[bytes]] = field(default_factory=dict)
    open: list[tuple[str, bytes]] = field(default_factory=list)
    fail_commits: int = 0

    def values(self, topic: str) -> list[bytes]:
        return self.committed.get(topic, [])

    def tail(self, topic: str) -> tuple[TailRecord, ...]:
        return tuple(TailRecord(topic, 0, offset, value)
                     for offset, value in enumerate(self.values(topic)))


class FakeProducer:
    """A transactional producer writing into `Topics`."""

    def __init__(self, topics: Topics, **_config: Any) -> None:
        self.topics = topics
        topics.open = []  # a new producer aborts its predecessor's open transaction

    def init_transactions(self) -> None: ...

    def begin_transaction(self) -> None: ...

    def send(self, topic: str, *, value: bytes, **_options: Any) -> Any:
        self.topics.open.append((topic, value))
        return Sent()

    def flush(self, timeout: float) -> None: ...

    def close(self) -> None:
        self.topics.open = []


class Sent:
    """A send future that succeeded."""

    exception = None

    def failed(self) -> bool:
        return False


@pytest.fixture
def topics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Topics]:
    """Kafka replaced by `Topics` wherever the outbox reaches it."""
    topics = Topics()

    class FakeKafka:
        @staticmethod
        def KafkaProducer(**config: Any) -> FakeProducer:  # noqa: N802 (kafka-python's name)
            return FakeProducer(topics, **config)

    def commit(producer: FakeProducer, _timeout_s: float) -> None:
        if topics.fail_commits:
            topics.fail_commits -= 1
            raise kafka_errors().KafkaConnectionError("the coordinator went away")
        for topic, value in topics.open:
            topics.committed.setdefault(topic, []).append(value)
        topics.open = []

    def read_tail(_bootstrap: Any, ledger: str, rejected: str, *_args: Any,
                  **_options: Any) -> PublishedTail:
        positions: dict[str, int] = {}
        for value in topics.values(ledger):
            document = json.loads(value)
            positions[document["trial_id"]] = document["position"]
        sequences = [json.loads(v)["sequence"] for v in topics.values(rejected)]
        return PublishedTail(positions, max(sequences, default=0), topics.tail(ledger),
                             topics.tail(rejected))

    def read_checkpoints(*_args: Any, **_options: Any) -> tuple[dict[Any, int], list[str]]:
        sizes: dict[Any, int] = {}
        for value in topics.values(CHECKPOINTS):
            document = json.loads(value)
            key = (document.get("trial_id"), document["log"])
            sizes[key] = max(sizes.get(key, 0), document["size"])
        return sizes, []

    monkeypatch.setattr(outbox_module, "kafka", FakeKafka)
    monkeypatch.setattr(outbox_module, "commit_transaction", commit)
    monkeypatch.setattr(outbox_module, "discard_producer", FakeProducer.close)
    monkeypatch.setattr(outbox_module, "tail_reader", lambda _bootstrap: nullcontext())
    monkeypatch.setattr(outbox_module, "read_published_tail", read_tail)
    monkeypatch.setattr(outbox_module, "read_checkpoint_tail", read_checkpoints)
    stamina.set_testing(True, attempts=PUBLISH_ATTEMPTS)
    try:
        yield topics
    finally:
        stamina.set_testing(False)


def clock() -> Callable[[], datetime]:
    """A clock after the demo's dates, advancing a microsecond per reading."""
    counter = itertools.count()
    return lambda: datetime(2026, 7, 1, tzinfo=UTC) + timedelta(microseconds=next(counter))


@pytest.fixture(scope="module")
def demo_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    run = run_demo(tmp_path_factory.mktemp("demo") / "demo", seed=12)
    return [raw for _, raw in read_lines(run.submissions_file)]


def batches(lines: list[bytes], size: int, first_offset: int = 0) -> Iterator[list[Delivery]]:
    """Tracked batches of `size` lines, a malformed message (a rejection) after each."""
    offset = first_offset
    for start in range(0, len(lines), size):
        chunk = [*lines[start:start + size], MALFORMED]
        yield [Delivery(raw, "trial.submissions", 0, offset + n) for n, raw in enumerate(chunk)]
        offset += len(chunk)


def outbox_of(service: LedgerService) -> LedgerOutbox:
    return LedgerOutbox(service, "127.0.0.1:1", ledger_topic=LEDGER, rejections_topic=REJECTIONS)


def assert_topics_hold_the_store(store: Path, topics: Topics) -> None:
    """Each record of the store once, in order, nothing else, byte for byte as a service of its
    own reads it from the store."""
    with LedgerReader(str(store)) as reader:
        assert topics.values(LEDGER) == [e.to_json().encode() for e in reader.entries(TRIAL_ID)]
        assert topics.values(REJECTIONS) == [
            json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
            for m in reader.rejections()]
        sizes = [json.loads(v)["size"] for v in topics.values(CHECKPOINTS)
                 if json.loads(v)["log"] == "ledger"]
        assert sizes == sorted(set(sizes))
        assert sizes[-1] == reader.size(TRIAL_ID)
    assert topics.open == []


def count_store_reads(service: LedgerService, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the service's entries and rejections are read back (one item per read)."""
    reads: list[int] = []
    real_entries, real_rejections = service.entries, service.rejections

    def entries(*args: Any, **kwargs: Any) -> Iterator[LedgerEntry]:
        reads.append(1)
        return real_entries(*args, **kwargs)

    def rejections(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        reads.append(1)
        return real_rejections(*args, **kwargs)

    monkeypatch.setattr(service, "entries", entries)
    monkeypatch.setattr(service, "rejections", rejections)
    return reads


def test_each_committed_batch_is_published_from_memory_as_the_store_holds_it(
    topics: Topics, demo_lines: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing after every batch sends the hand-over, byte for byte the store's records."""
    store = tmp_path / "ledger.db"
    with LedgerService(str(store), clock=clock()) as service:
        service.ensure_trial()
        outbox = outbox_of(service)
        outbox.publish_pending()  # starts: the tails are checked against the store
        reads = count_store_reads(service, monkeypatch)
        for batch in batches(demo_lines, 97):
            service.submit_tracked(batch)
            outbox.publish_pending()
        assert reads == []
        outbox.close()
    assert_topics_hold_the_store(store, topics)


def test_records_another_writer_made_are_read_from_the_store_in_between(
    topics: Topics, demo_lines: list[bytes], tmp_path: Path
) -> None:
    """A hand-over that does not continue what was sent (another writer of the store recorded
    in between) is not published as is: the store is read from the last record sent."""
    store = tmp_path / "ledger.db"
    with (LedgerService(str(store), clock=clock()) as service,
          LedgerService(str(store), clock=clock()) as other):
        service.ensure_trial()
        outbox = outbox_of(service)
        for n, batch in enumerate(batches(demo_lines, 150)):
            writer = other if n % 3 == 1 else service
            writer.submit_tracked(batch)
            if n % 4 != 2:  # some rounds publish two batches at once
                outbox.publish_pending()
        outbox.publish_pending()
        outbox.close()
    assert_topics_hold_the_store(store, topics)


def test_a_failed_round_and_a_restart_publish_each_record_once(
    topics: Topics, demo_lines: list[bytes], tmp_path: Path
) -> None:
    """A round whose commit fails is sent again after the restart (tails checked), and a new
    process, with nothing handed over, resumes after what the topics hold."""
    store = tmp_path / "ledger.db"
    half = len(demo_lines) // 2
    with LedgerService(str(store), clock=clock()) as service:
        service.ensure_trial()
        outbox = outbox_of(service)
        for n, batch in enumerate(batches(demo_lines[:half], 120)):
            service.submit_tracked(batch)
            topics.fail_commits = 2 if n % 5 == 3 else 0
            outbox.publish_pending()
        service.submit_tracked(next(batches(demo_lines[half:half + 50], 50, 10**6)))
        outbox.close()  # the last batch recorded, never published
    with LedgerService(str(store), clock=clock()) as restarted:
        outbox = outbox_of(restarted)
        for batch in batches(demo_lines[half + 50:], 200, 2 * 10**6):
            restarted.submit_tracked(batch)
            outbox.publish_pending()
        outbox.close()
    assert_topics_hold_the_store(store, topics)


def entry(position: int) -> LedgerEntry:
    return LedgerEntry(position, "dose.administered", TRIAL_ID,
                       datetime(2026, 1, 1, tzinfo=UTC), {})


@pytest.mark.parametrize(
    ("recorded", "after", "expected"),
    [
        pytest.param([(1, 5)], 0, [1, 2, 3, 4, 5], id="all of it continues an empty topic"),
        pytest.param([(1, 5)], 3, [4, 5], id="the rest after what was sent"),
        pytest.param([(1, 5)], 5, [], id="everything sent: nothing new, no store read"),
        pytest.param([(4, 5)], 2, None, id="records before the hand-over: read the store"),
        pytest.param([(1, 5)], 6, None, id="sent beyond what was recorded: read the store"),
        pytest.param([(1, 3), (6, 7)], 3, None, id="a gap (another writer): read the store"),
        pytest.param([(1, 3), (6, 7)], 5, [6, 7], id="after a gap, continuing what was sent"),
        pytest.param([(1, 3), (4, 9)], 4, [5, 6, 7, 8, 9], id="batches join up"),
        pytest.param([(1, 6), (7, 10)], 6, [7, 8, 9, 10], id="up to the limit all is held"),
        pytest.param([(1, 6), (7, 11)], 6, None, id="past the limit nothing: read the store"),
    ],
)
def test_the_hand_over_answers_only_what_continues_the_position_sent(
    recorded: list[tuple[int, int]], after: int, expected: list[int] | None
) -> None:
    """Which positions the hand-over gives after `after`, and when it says: read the store."""
    hand_over = HandOver(limit=10)
    for first, last in recorded:
        hand_over.recorded({TRIAL_ID: [entry(p) for p in range(first, last + 1)]}, [])
    handed = hand_over.entries(TRIAL_ID, after)
    assert (None if handed is None else [e.position for e in handed]) == expected


def test_records_nobody_takes_do_not_pile_up() -> None:
    """Another trial's records that no publisher here takes count against the one limit: past
    it everything held is dropped, and the store is read instead."""
    hand_over = HandOver(limit=10)
    hand_over.recorded({TRIAL_ID: [entry(1), entry(2)]}, [])
    hand_over.recorded({"NCT00000001": [entry(p) for p in range(1, 10)]}, [])
    assert hand_over.entries(TRIAL_ID, 0) is None
    hand_over.recorded({TRIAL_ID: [entry(3)]}, [])
    assert [e.position for e in hand_over.entries(TRIAL_ID, 2) or []] == [3]
