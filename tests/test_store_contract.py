"""The LedgerService contract, run against every store: SQLite and a real PostgreSQL server.

Each test drives the service the way its callers do: `ensure_trial` + `submit_many` in batches
(the `ledger submit` command), `submit_tracked` + `upstream_position` (the Kafka consumer), and
the readers (`entries`, `rejections`, `trial_ids`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from consumers.publisher import read_lines
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.aggregates.rejections import ReasonCode
from ledger.aggregates.trial_state import Outcome
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.application import BatchReport, Delivery, LedgerService, store_environment
from ledger.demo import DemoRun, run_demo
from ledger.entries import LedgerEntry
from ledger.projections.cohorts import cohort_table
from ledger.protocol_files import bundled_protocol
from ledger.schemas.jsontext import MAX_SUBMISSION_BYTES
from tests.builders import TRIAL_ID, FixedClock, Script, lines

DAY0 = date(2025, 1, 6)
TOPIC = "trial.submissions"
CLI_BATCH = 1000  # ledger.commands.SUBMIT_BATCH: `ledger submit` records 1000 lines per transaction
COMPARED = (
    "position",
    "type",
    "subject_id",
    "occurred_on",
    "data",
    "event_id",
    "source",
    "entered_by",
    "reason",
)  # the fields tests/integration/test_kafka_ingest.py compares

STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass(frozen=True)
class Demo:
    run: DemoRun
    lines: list[bytes]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The seeded demo's submissions (seed 12), read as `ledger submit` reads them."""
    run = run_demo(tmp_path_factory.mktemp("demo"), seed=12)
    return Demo(run, [raw for _, raw in read_lines(run.submissions_file)])


def demo_clock() -> Callable[[], datetime]:
    """A clock after every demo date, advancing a microsecond per reading (as the Kafka tests)."""
    counter = itertools.count()
    start = datetime(2026, 7, 1, tzinfo=UTC)
    return lambda: start + timedelta(microseconds=next(counter))


def submit_in_batches(service: LedgerService, items: Sequence[bytes | str]) -> BatchReport:
    """`ledger submit`: ensure the trial, then `submit_many` in CLI-sized batches."""
    service.ensure_trial()
    total = BatchReport()
    for start in range(0, len(items), CLI_BATCH):
        total.results += service.submit_many(items[start : start + CLI_BATCH]).results
    return total


def deliveries(
    items: Iterable[str | bytes], first_offset: int, partition: int = 0
) -> list[Delivery]:
    """Messages as the consumer hands them over: one partition, consecutive offsets."""
    return [
        Delivery(item.encode() if isinstance(item, str) else item, TOPIC, partition, offset)
        for offset, item in enumerate(items, start=first_offset)
    ]


def compared(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    return [{name: entry.to_json_dict()[name] for name in COMPARED} for entry in entries]


def snapshot(service: LedgerService) -> list[str]:
    return [entry.to_json() for entry in service.entries(TRIAL_ID)]


def positions(service: LedgerService) -> list[int]:
    return [entry.position for entry in service.entries(TRIAL_ID)]


def three_subjects(script: Script) -> list[str]:
    """Cohort A's first three subjects through cycle 1, one DLT-free course each."""
    envelopes: list[dict[str, Any]] = []
    for n in range(1, 4):
        envelopes += script.subject(f"01-00{n}", "A", DAY0 + timedelta(days=n))
    return lines(envelopes)


class TestLedgerStoreContract:
    """What every store must do for LedgerService; run once per store (see `store`)."""

    def test_the_service_uses_the_store_it_was_given(self, store: str) -> None:
        """A path opens the SQLite store, a postgresql:// URL its database (no silent fallback)."""
        with LedgerService(store, clock=FixedClock()) as service:
            description = service.store_description
            service.ensure_trial()
            recorded = len(list(service.entries(TRIAL_ID)))
        if store.startswith("postgresql://"):
            import psycopg

            assert description == f"postgresql database {store.rsplit('/', 1)[1]}"
            with psycopg.connect(store, connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM trialledger_events WHERE originator_id = %s",
                    (trial_aggregate_id(TRIAL_ID),),
                ).fetchone()
            assert row == (recorded,)
        else:
            assert description == f"sqlite {store}"
            assert Path(store).stat().st_size > 0

    def test_ensure_trial_opens_the_trial_once(self, store: str) -> None:
        """An empty store gets `trial.opened` at position 1 once; a second opening is refused."""
        with LedgerService(store, clock=FixedClock()) as service:
            assert service.is_empty()
            assert service.trial_ids() == []
            assert service.ensure_trial() == TRIAL_ID
            assert service.ensure_trial() == TRIAL_ID
            entries = list(service.entries(TRIAL_ID))
            assert [(e.position, e.type) for e in entries[:1]] == [(1, "trial.opened")]
            assert entries[0].data["protocol"]["trial_id"] == TRIAL_ID
            assert [e.type for e in entries].count("trial.opened") == 1
            assert not service.is_empty()
            assert service.trial_ids() == [TRIAL_ID]
            assert service.default_trial_id() == TRIAL_ID
            with pytest.raises(ValueError, match="already open"):
                service.open_trial(bundled_protocol())
            assert [e.to_json() for e in service.entries(TRIAL_ID)] == [
                e.to_json() for e in entries
            ]

    def test_a_trial_opened_by_another_service_is_listed(self, store: str) -> None:
        """`trial_ids` reads only what is new since its last call, and still sees a trial that
        another process opened in the same store meanwhile."""
        second = ProtocolDefinition.from_mapping(
            {**bundled_protocol().to_mapping(), "trial_id": "NCT99999999"}
        )
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            assert service.trial_ids() == [TRIAL_ID]
            with LedgerService(store, clock=FixedClock()) as other:
                other.open_trial(second)
            assert service.trial_ids() == [TRIAL_ID, "NCT99999999"]
            assert service.trial_ids() == [TRIAL_ID, "NCT99999999"]

    def test_submit_and_submit_many_record_in_order_without_gaps(self, store: str) -> None:
        """`submit` and `submit_many` record every accepted event at positions 1..N, no gaps."""
        script = Script()
        batch = three_subjects(script)
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            opening = len(list(service.entries(TRIAL_ID)))  # trial.opened and its decisions
            first = service.submit(batch[0])
            report = service.submit_many(batch[1:])
            entries = list(service.entries(TRIAL_ID))
        assert first.outcome is Outcome.RECORDED
        assert first.positions[0] == opening + 1
        assert (report.accepted, report.duplicates, report.rejected) == (len(batch) - 1, 0, [])
        assert [e.position for e in entries] == list(range(1, len(entries) + 1))
        recorded = [p for r in [first, *report.results] for p in r.positions]
        assert recorded == sorted(recorded)
        assert set(recorded) <= {e.position for e in entries}
        submitted_ids = [json.loads(line)["event_id"] for line in batch]
        assert [e.event_id for e in entries if e.event_id is not None] == submitted_ids

    def test_a_duplicate_is_recorded_once(self, store: str) -> None:
        """The same event id and content, in one batch or a later one, is recorded once."""
        script = Script()
        enroll = lines([script.enroll("01-001", "A", DAY0)])[0]
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            report = service.submit_many([enroll, enroll])
            before = snapshot(service)
            again = service.submit(enroll)
            after = snapshot(service)
        assert [r.outcome for r in report.results] == [Outcome.RECORDED, Outcome.DUPLICATE]
        assert (report.accepted, report.duplicates) == (1, 1)
        assert again.outcome is Outcome.DUPLICATE and not again.rejected
        assert again.positions == ()
        assert after == before
        assert [json.loads(e)["event_id"] for e in after].count(json.loads(enroll)["event_id"]) == 1

    def test_an_event_id_conflict_is_rejected_and_changes_nothing(self, store: str) -> None:
        """The same event id with other content is rejected as a conflict; nothing changes."""
        script = Script()
        enroll = script.enroll("01-001", "A", DAY0)
        conflicting = {**enroll, "occurred_on": (DAY0 + timedelta(days=1)).isoformat()}
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            service.submit(json.dumps(enroll))
            before = snapshot(service)
            result = service.submit(json.dumps(conflicting))
            assert snapshot(service) == before
        assert result.rejected
        assert result.reason_code is ReasonCode.EVENT_ID_CONFLICT
        assert result.event_id == enroll["event_id"]
        assert result.message

    def test_rejections_are_listed_with_their_reasons(self, store: str) -> None:
        """Rejected deliveries are recorded with code, message, submission and upstream offset."""
        script = Script()
        not_enrolled = script.envelope("subject.alive", "09-999", DAY0, {})
        unknown_trial = script.envelope(
            "subject.enrolled", "01-001", DAY0, {"cohort": "A"}, trial_id="NCT00000000"
        )
        bad = ["{not json", json.dumps(not_enrolled), json.dumps(unknown_trial)]
        good = three_subjects(script)
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            before = snapshot(service)
            report = service.submit_tracked(deliveries(bad, first_offset=0))
            assert snapshot(service) == before
            accepted = service.submit_tracked(deliveries([good[0], "[]"], first_offset=3))
            listed = list(service.rejections())
            later = list(service.rejections(after=2))
        assert [r.reason_code for r in report.rejected] == [
            ReasonCode.INVALID_JSON,
            ReasonCode.SUBJECT_NOT_ENROLLED,
            ReasonCode.UNKNOWN_TRIAL,
        ]
        assert accepted.accepted == 1
        assert [r.reason_code for r in accepted.rejected] == [ReasonCode.SCHEMA_INVALID]
        assert [(r["sequence"], r["reason_code"], r["offset"]) for r in listed] == [
            (1, "INVALID_JSON", 0),
            (2, "SUBJECT_NOT_ENROLLED", 1),
            (3, "UNKNOWN_TRIAL", 2),
            (4, "SCHEMA_INVALID", 4),
        ]
        assert all(r["message"] and r["topic"] == TOPIC and r["partition"] == 0 for r in listed)
        assert [r["submission"] for r in listed] == [*bad, "[]"]
        assert listed[1]["event_id"] == not_enrolled["event_id"]
        assert [r["sequence"] for r in later] == [3, 4]

    def test_a_rejection_keeps_the_delivered_bytes_exactly(self, store: str) -> None:
        """UTF-8 is kept as text; other bytes as base64, so the original is always recoverable."""
        delivered = [b"\xff\xfe not text", "caf\u00e9 {".encode()]
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            service.submit_tracked(deliveries(delivered, first_offset=0))
            listed = list(service.rejections())
        assert [(r["submission_encoding"], r["submission"]) for r in listed] == [
            ("base64", base64.b64encode(delivered[0]).decode()),
            ("utf-8", "caf\u00e9 {"),
        ]

    @pytest.mark.parametrize(
        ("delivered", "encoding", "kept"),
        [
            pytest.param(b"\x01" * 200_000, "utf-8", MAX_SUBMISSION_BYTES, id="control chars"),
            pytest.param(("x" + "\u00e9" * 40_000).encode(), "utf-8", MAX_SUBMISSION_BYTES - 1,
                         id="a two-byte character cut in two"),
            pytest.param(("xx" + "\u20ac" * 30_000).encode(), "utf-8", MAX_SUBMISSION_BYTES - 2,
                         id="a three-byte character cut after two"),
            pytest.param(bytes(range(256)) * 800, "base64", MAX_SUBMISSION_BYTES, id="binary"),
            pytest.param(b"{" * MAX_SUBMISSION_BYTES, "utf-8", MAX_SUBMISSION_BYTES,
                         id="exactly the limit: whole"),
        ],
    )
    def test_a_rejection_keeps_at_most_the_submission_limit(
        self, store: str, delivered: bytes, encoding: str, kept: int
    ) -> None:
        """A delivery over MAX_SUBMISSION_BYTES keeps its first bytes (text stays text: a
        character is never cut in two), and its message names the whole delivery's size and
        SHA-256; one within the limit is kept whole with its message as it was."""
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            service.submit_tracked(deliveries([delivered], first_offset=0))
            (rejection,) = list(service.rejections())
        held = rejection["submission"]
        raw = base64.b64decode(held) if encoding == "base64" else held.encode()
        assert rejection["submission_encoding"] == encoding
        assert raw == delivered[:kept]
        digest = hashlib.sha256(delivered).hexdigest()
        note = f"(the delivery was {len(delivered):,} bytes, SHA-256 {digest}; its first {kept:,}"
        assert (note in rejection["message"]) == (kept < len(delivered))

    def test_entries_as_of_and_after(self, store: str) -> None:
        """`entries(as_of=T)` is what the ledger knew at T; `after=k` starts at position k + 1."""
        script = Script()
        batch = three_subjects(script)
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            service.submit_many(batch[:10])
            known = list(service.entries(TRIAL_ID))
            table_then = cohort_table(known)
            service.submit_many(batch[10:])
            everything = list(service.entries(TRIAL_ID))
            as_of = known[-1].recorded_at
            then = list(service.entries(TRIAL_ID, as_of=as_of))
            before_opening = list(service.entries(TRIAL_ID, as_of=as_of - timedelta(days=365)))
            tail = list(service.entries(TRIAL_ID, after=len(known)))
            tail_then = list(service.entries(TRIAL_ID, as_of=as_of, after=3))
            past = service.trial_at(TRIAL_ID, as_of)
        assert len(everything) > len(known)
        assert [e.to_json() for e in then] == [e.to_json() for e in known]
        assert cohort_table(then) == table_then != cohort_table(everything)
        assert before_opening == []
        assert [e.to_json() for e in tail] == [e.to_json() for e in everything[len(known) :]]
        assert [e.position for e in tail_then] == list(range(4, len(known) + 1))
        assert past.version == len(known)
        assert all(e.recorded_at <= as_of for e in then)
        assert all(e.recorded_at > as_of for e in everything[len(known) :])

    def test_tracked_batches_store_their_offset_per_partition(self, store: str) -> None:
        """`submit_tracked` stores each partition's last offset with the batch's events."""
        script = Script()
        batch = three_subjects(script)
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            assert service.upstream_position(TOPIC, 0) is None
            service.submit_tracked(deliveries(batch[:5], first_offset=0, partition=0))
            service.submit_tracked(deliveries(batch[5:8], first_offset=100, partition=1))
            service.submit_tracked(deliveries(batch[8:], first_offset=5, partition=0))
            offsets = [service.upstream_position(TOPIC, p) for p in (0, 1, 2)]
            recorded = [e.event_id for e in service.entries(TRIAL_ID) if e.event_id]
        assert offsets == [5 + len(batch[8:]) - 1, 102, None]
        assert recorded == [json.loads(line)["event_id"] for line in batch]

    def test_a_redelivered_batch_that_fails_leaves_neither_events_nor_offset(
        self, store: str
    ) -> None:
        """A batch at an offset not past the stored one fails whole: no event, no offset, no log.

        The store refuses a tracking record that does not advance (eventsourcing's single-row
        tracking), in the transaction that would record the batch's new events.
        """
        script = Script()
        batch = three_subjects(script)
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            service.submit_tracked(deliveries(batch[:5], first_offset=0))
            before = (snapshot(service), list(service.rejections()))
            stale = deliveries([*batch[5:9], "{not json"], first_offset=0)
            with pytest.raises(IntegrityError, match="tracking"):
                service.submit_tracked(stale)
            assert (snapshot(service), list(service.rejections())) == before
            assert service.upstream_position(TOPIC, 0) == 4
            resumed = service.submit_tracked(deliveries([*batch[5:9], "{not json"], first_offset=5))
            assert service.upstream_position(TOPIC, 0) == 9
            events = [e.event_id for e in service.entries(TRIAL_ID) if e.event_id]
            rejections = list(service.rejections())
        assert (resumed.accepted, len(resumed.rejected)) == (4, 1)
        assert events == [json.loads(line)["event_id"] for line in batch[:9]]
        assert [(r["sequence"], r["offset"]) for r in rejections] == [(1, 9)]

    def test_a_batch_that_loses_a_write_race_leaves_neither_events_nor_offset(
        self, store: str
    ) -> None:
        """Two writers on one store: the one whose trial moved on while it decided its tracked
        batch fails whole, then succeeds when decided again."""
        script = Script()
        batch = three_subjects(script)
        clock = _RaceOnFirstReading()
        with (
            LedgerService(store, clock=clock) as first,
            LedgerService(store, clock=FixedClock(datetime(2026, 2, 1, tzinfo=UTC))) as second,
        ):
            first.ensure_trial()
            first.submit_many(batch[:5])  # `first` now holds the trial at this version
            # `second` records past it while `first` decides its batch
            clock.race = lambda: second.submit_many(batch[5:10])
            with pytest.raises(IntegrityError):
                first.submit_tracked(deliveries([*batch[10:], "{not json"], first_offset=0))
            won = snapshot(second)
            assert positions(second) == list(range(1, len(won) + 1))
            assert second.upstream_position(TOPIC, 0) is None
            assert list(second.rejections()) == []
            retried = first.submit_tracked(deliveries([*batch[10:], "{not json"], first_offset=0))
            assert second.upstream_position(TOPIC, 0) == len(batch[10:])
            assert snapshot(second)[: len(won)] == won
            assert positions(second) == list(range(1, len(snapshot(second)) + 1))
            assert [r["offset"] for r in second.rejections()] == [len(batch[10:])]
        assert (retried.accepted, len(retried.rejected)) == (len(batch[10:]), 1)

    def test_a_writer_catches_up_with_what_another_recorded(self, store: str) -> None:
        """A tracked batch is decided on what the store holds, not on a copy another writer has
        since moved on (scale-out: ingest processes share the store and its rejection log)."""
        script = Script()
        batch = three_subjects(script)
        with (
            LedgerService(store, clock=FixedClock()) as first,
            LedgerService(store, clock=FixedClock(datetime(2026, 2, 1, tzinfo=UTC))) as second,
        ):
            first.ensure_trial()
            first.submit_tracked(deliveries([*batch[:5], "{one"], first_offset=0))
            second.submit_tracked(deliveries([*batch[5:10], "{two"], first_offset=0, partition=1))
            assert first.catch_up() is True  # second's trial and rejection log changes
            assert first.catch_up() is False  # nothing new since
            report = first.submit_tracked(
                deliveries([*batch[10:], "{three"], first_offset=6))
            assert second.catch_up() is True
            assert second.catch_up() is False
            ours = snapshot(first)
            assert snapshot(second) == ours
            assert [e.event_id for e in second.entries(TRIAL_ID) if e.event_id] == [
                json.loads(line)["event_id"] for line in batch]
            assert [(r["sequence"], r["submission"]) for r in second.rejections()] == [
                (1, "{one"), (2, "{two"), (3, "{three")]
            # What `first` publishes comes with every leaf hash: its audit log is the store's.
            assert all(entry.leaf_hash for entry in first.entries(TRIAL_ID))
            assert first.size(TRIAL_ID) == len(ours)
        assert (report.accepted, len(report.rejected)) == (len(batch[10:]), 1)

    def test_reopening_the_store_sees_the_same_history(self, store: str) -> None:
        """A new service on the same store reads the same entries, rejections and offsets."""
        script = Script()
        batch = three_subjects(script)
        with LedgerService(store, clock=FixedClock()) as service:
            service.ensure_trial()
            service.submit_many(batch[:10])
            service.submit_tracked(deliveries([*batch[10:], "{not json"], first_offset=0))
            history = snapshot(service)
            rejections = list(service.rejections())
            table = cohort_table(service.entries(TRIAL_ID))
        with LedgerService(store, clock=FixedClock(datetime(2027, 1, 1, tzinfo=UTC))) as reopened:
            assert snapshot(reopened) == history
            assert list(reopened.rejections()) == rejections
            assert cohort_table(reopened.entries(TRIAL_ID)) == table
            assert reopened.upstream_position(TOPIC, 0) == len(batch[10:])
            assert reopened.trial_ids() == [TRIAL_ID]
            assert reopened.ensure_trial() == TRIAL_ID
            replay = reopened.submit_many(batch)
            assert snapshot(reopened) == history
        assert (replay.accepted, replay.duplicates, replay.rejected) == (0, len(batch), [])

    def test_the_demo_submissions_record_as_the_demo_did(self, store: str, demo: Demo) -> None:
        """`ledger submit` of the demo's 2,859 submissions: its counts and its cohort table."""
        with LedgerService(demo.run.store) as original:
            expected = cohort_table(original.entries(TRIAL_ID))
        with LedgerService(store, clock=demo_clock()) as service:
            report = submit_in_batches(service, demo.lines)
            entries = list(service.entries(TRIAL_ID))
        assert (report.accepted, report.duplicates, len(report.rejected)) == (
            demo.run.accepted,
            demo.run.duplicates,
            demo.run.rejected,
        )
        assert [e.position for e in entries] == list(range(1, len(entries) + 1))
        assert cohort_table(entries) == expected
        assert expected.mtd is not None


@pytest.mark.postgres
def test_the_demo_gives_the_same_entries_on_sqlite_and_postgresql(
    postgres_url: str, tmp_path: Path, demo: Demo
) -> None:
    """The demo's submissions give identical entries and cohort tables on both stores."""
    recorded: dict[str, list[LedgerEntry]] = {}
    for name, store in (("sqlite", str(tmp_path / "ledger.db")), ("postgresql", postgres_url)):
        with LedgerService(store, clock=demo_clock()) as service:
            submit_in_batches(service, demo.lines)
            recorded[name] = list(service.entries(TRIAL_ID))
    sqlite, postgresql = recorded["sqlite"], recorded["postgresql"]
    assert len(sqlite) > len(demo.lines) // 2
    assert compared(postgresql) == compared(sqlite)
    assert cohort_table(postgresql) == cohort_table(sqlite)
    # the same clock readings in the same order: even the recorded times agree
    assert [e.to_json() for e in postgresql] == [e.to_json() for e in sqlite]


def test_a_postgresql_url_maps_its_parts_and_refuses_what_it_would_ignore() -> None:
    """User, password, host, port, database and connect_timeout are used; any other parameter
    (sslmode, say) is refused rather than silently dropped."""
    env = store_environment("postgresql://au%40ditor:pw@db.example:6543/ledger?connect_timeout=2")
    assert {key: env[key] for key in sorted(env) if key.startswith("POSTGRES_")} == {
        "POSTGRES_CONNECT_TIMEOUT": "2",
        "POSTGRES_DBNAME": "ledger",
        "POSTGRES_HOST": "db.example",
        "POSTGRES_PASSWORD": "pw",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "au@ditor",
    }
    assert store_environment("postgresql://u@h/db")["POSTGRES_CONNECT_TIMEOUT"] == "5"
    with pytest.raises(ValueError, match="sslmode not supported"):
        store_environment("postgresql://u:p@h/db?sslmode=verify-full")


def test_rejections_stored_before_submission_encoding_still_load(tmp_path: Path) -> None:
    """A rejection log written before `submission_encoding` existed reads as UTF-8 text."""
    store = tmp_path / "old.db"
    with LedgerService(str(store), clock=FixedClock()) as service:
        service.ensure_trial()
        service.submit_tracked(deliveries(["{not json"], first_offset=0))
    with closing(sqlite3.connect(store)) as connection, connection:
        rows = connection.execute(
            "SELECT rowid, state FROM stored_events WHERE topic LIKE '%RejectionLog.Rejected'"
        ).fetchall()
        assert len(rows) == 1
        for rowid, state in rows:
            older = json.loads(state)
            del older["submission_encoding"]
            connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                               (json.dumps(older).encode(), rowid))
    with LedgerService(str(store)) as service:
        (listed,) = service.rejections()
    assert (listed["submission"], listed["submission_encoding"]) == ("{not json", "utf-8")


class _RaceOnFirstReading(FixedClock):
    """A clock that runs `race` (another writer recording) at its next reading: in the middle
    of deciding a batch, after the service looked at the store."""

    race: Callable[[], object] | None = None

    def __call__(self) -> datetime:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().__call__()
