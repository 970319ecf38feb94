"""`verify` of a store that is being written (a live `ledger ingest`): a batch and its seal are
committed together, so whatever moment the reads see, the store is intact and must be said so.

An operator's probe found `verify` saying NOT INTACT (`unsealed`, and on SQLite `undecodable`)
about a healthy store whenever a batch was committed during its reads: it read the audit log
first and the entries after, and SQLite's subject index before the rows it compares with. Each
test here commits a real batch, from another writer of the same store, at one of those moments;
the last runs a writer thread against repeated verifies."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerService
from ledger.audit.inspection import verify_source
from ledger.held_rows import HeldRows
from ledger.ledger_reader import LedgerReader
from ledger.trial_reading import TrialReading
from tests.builders import TRIAL_ID, FixedClock, Script, lines
from tests.test_audit import DAY0, SIGNER, build_store

LATER = datetime(2027, 1, 1, tzinfo=UTC)  # after every time build_store records


def later_batches(count: int) -> Iterator[list[str]]:
    """Batches of accepted entries and of rejections, as a live ingest records them: three
    follow-up records of an enrolled subject (accepted) and a line that is not JSON (a
    rejection), each batch its own."""
    script = Script(counter=itertools.count(10_000))  # event ids build_store did not use
    for n in range(count):
        days = (DAY0 + timedelta(days=300 + 3 * n + k) for k in range(3))
        alive = [script.envelope("subject.alive", "01-001", day, {}) for day in days]
        yield [*lines(alive), "{not json"]


def verdict(store: str) -> dict[str, Any]:
    with LedgerReader(store) as reader:
        source = reader.audit_source(TRIAL_ID)
    return verify_source(source).to_json_dict()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], None]]]:
    """A signed store on each kind, and `write()`: one more batch committed by another writer
    of it."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    store = build_store(tmp_path, url=url)
    batches = later_batches(50)
    with LedgerService(store, clock=FixedClock(LATER), signer=SIGNER) as writer:

        def write() -> None:
            report = writer.submit_many(next(batches), origin="file:later.jsonl")
            assert report.accepted and report.rejected

        yield store, write


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param("after the entries are read", id="after the entries"),
        pytest.param("after the rejections are read", id="after the rejections"),
        pytest.param("after the subject index is read", id="after the subject index"),
    ],
)
def test_a_batch_committed_while_verify_reads_leaves_the_store_intact(
    live_store: tuple[str, Callable[[], None]], moment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, write = live_store
    before = verdict(store)["logs"]["ledger"]["size"]
    written: list[str] = []

    def once() -> None:
        if not written:
            write()
            written.append(moment)

    if moment == "after the entries are read":
        held = HeldRows.held_entry_objects

        def entries_then_write(self: HeldRows, *args: Any, **kwargs: Any) -> Iterator[Any]:
            rows = list(held(self, *args, **kwargs))
            once()
            return iter(rows)

        monkeypatch.setattr(HeldRows, "held_entry_objects", entries_then_write)
    elif moment == "after the rejections are read":
        rejections = TrialReading.rejections

        def rejections_then_write(self: TrialReading, *args: Any) -> Iterator[dict[str, Any]]:
            read = list(rejections(self, *args))
            once()
            return iter(read)

        monkeypatch.setattr(TrialReading, "rejections", rejections_then_write)
    else:
        indexed = HeldRows._indexed_subjects

        def index_then_write(self: HeldRows, *args: Any) -> dict[int, str | None] | None:
            subjects = indexed(self, *args)
            once()
            return subjects

        monkeypatch.setattr(HeldRows, "_indexed_subjects", index_then_write)
    report = verdict(store)
    assert written == [moment]
    assert report["problems"] == []
    assert report["intact"] is True
    assert report["logs"]["ledger"]["size"] > before  # read as of after the batch
    monkeypatch.undo()
    assert verdict(store) == report


def test_verify_during_a_stream_of_batches_always_finds_the_store_intact(
    live_store: tuple[str, Callable[[], None]],
) -> None:
    """A writer thread commits batches while verify runs again and again (the probe's
    reproduction: each of its verifies during the write said NOT INTACT)."""
    store, write = live_store
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_writing() -> None:
        try:
            for _ in range(40):
                if stop.is_set():
                    return
                write()
        except BaseException as error:  # surfaced below, not lost in the thread
            failures.append(error)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    verdicts = []
    try:
        while writer.is_alive() and len(verdicts) < 30:
            verdicts.append(verdict(store))
    finally:
        stop.set()
        writer.join()
    assert failures == []
    assert verdicts, "the writer finished before a verify ran"
    assert [json.dumps(v["problems"]) for v in verdicts if not v["intact"]] == []


def test_an_archive_taken_while_a_batch_is_committed_verifies(
    live_store: tuple[str, Callable[[], None]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`ledger archive` reads the checkpoints, then the entries: a batch committed in between
    went into the archive without a checkpoint covering it (`unsealed` when the archive was
    verified). It ends at the last checkpoint read; the archive verifies."""
    from ledger.audit_reading import AuditReading
    from ledger.cli import main

    store, write = live_store
    checkpoints = AuditReading.checkpoints

    def checkpoints_then_write(self: AuditReading, *args: Any, **kwargs: Any) -> Any:
        read = checkpoints(self, *args, **kwargs)
        write()
        return read

    monkeypatch.setattr(AuditReading, "checkpoints", checkpoints_then_write)
    monkeypatch.setenv("LEDGER_STORE", store)  # a URL's password never on a command line
    archive = tmp_path / "archive"
    assert main(["archive", "--out", str(archive)]) == 0
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["verify", "--archive", str(archive), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is True and report["problems"] == []
    assert report["logs"]["ledger"]["size"] < verdict(store)["logs"]["ledger"]["size"]
