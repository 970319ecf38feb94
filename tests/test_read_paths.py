"""The fast read paths give exactly what a full replay through the library gives.

`LedgerService` reads entries straight from stored rows, finds the last position at a moment by
bisection, and reads the cohort table from the records it needs only. Each is checked here against
the slow, obvious path on the seeded demo (corrections, voids, late data, expansion): the library's
own mapper over every stored event, cut with `known_as_of`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pandas as pd
import pytest

from ledger import reading
from ledger.aggregates.trial import Trial
from ledger.aggregates.trial_topics import (
    LEDGER_TYPES,
    ledger_type_of_topic,
    trial_aggregate_id,
    trial_topic,
)
from ledger.application import LedgerService
from ledger.audit_reading import entry_of
from ledger.demo import DemoRun, run_demo
from ledger.entries import LedgerEntry, known_as_of
from ledger.held_rows import HeldRows
from ledger.ledger_reader import LedgerReader
from ledger.projections.cohorts import cohort_table
from ledger.projections.datasets import build_datasets

TRIAL_ID = "NCT05406206"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The seeded demo (seed 12), recorded once for the module."""
    return run_demo(tmp_path_factory.mktemp("demo"), seed=12)


@pytest.fixture
def service(demo: DemoRun) -> Iterator[LedgerReader]:
    with LedgerReader(str(demo.store)) as opened:
        yield opened


def replayed(store: str) -> list[LedgerEntry]:
    """Every entry through the library's mapper, with the audit log aggregate's leaf hashes
    (read by a service of its own, so the service under test caches nothing)."""
    with LedgerReader(store) as slow:
        hashes = slow._audit_log("ledger", TRIAL_ID).leaf_hashes
        events = slow._app.events.get(trial_aggregate_id(TRIAL_ID))
        return [
            replace(entry_of(cast(Trial.Event, e), TRIAL_ID), leaf_hash=hashes[e.position - 1])
            for e in events
        ]


def moments(entries: list[LedgerEntry]) -> list[datetime]:
    """Instants to read at: before the opening, at and between records across the log, after."""
    picked = [entries[i].recorded_at for i in range(0, len(entries), max(1, len(entries) // 7))]
    between = [m + timedelta(microseconds=1) for m in picked]
    return [
        entries[0].recorded_at - timedelta(days=1),
        *picked,
        *between,
        entries[-1].recorded_at,
        entries[-1].recorded_at + timedelta(days=1),
    ]


def test_entries_equal_the_library_replay(service: LedgerService, demo: DemoRun) -> None:
    """Entries decoded from stored rows equal the mapper's events, leaf hashes included."""
    assert list(service.entries(TRIAL_ID)) == replayed(demo.store)


def test_entries_as_of_equal_the_replay_cut_at_that_moment(
    service: LedgerService, demo: DemoRun
) -> None:
    """An as-of read (bisected, then the prefix only) equals the whole replay cut at T."""
    everything = replayed(demo.store)
    for moment in moments(everything):
        expected = list(known_as_of(everything, moment))
        assert list(service.entries(TRIAL_ID, as_of=moment)) == expected, moment


def test_entries_after_a_position_are_the_tail(service: LedgerService, demo: DemoRun) -> None:
    """`after=k` reads the entries from position k + 1, with their hashes."""
    everything = replayed(demo.store)
    for after in (0, 1, len(everything) // 2, len(everything) - 1, len(everything)):
        assert list(service.entries(TRIAL_ID, after=after)) == everything[after:]


def test_the_cohort_table_equals_the_fold_of_every_entry(
    service: LedgerService, demo: DemoRun
) -> None:
    """The cohort table read from its own records equals the fold of the whole ledger at T."""
    everything = replayed(demo.store)
    assert service.cohort_table(TRIAL_ID) == cohort_table(everything)
    for moment in moments(everything):
        expected = cohort_table(known_as_of(everything, moment))
        assert service.cohort_table(TRIAL_ID, as_of=moment) == expected, moment


def query_plan(store: str, query: str, parameters: tuple[object, ...]) -> str:
    """SQLite's plan for `query` on `store`, as one line."""
    with closing(sqlite3.connect(store)) as connection:
        plan = connection.execute("EXPLAIN QUERY PLAN " + query, parameters)
        return " ".join(str(row) for row in plan)


def copy_without_index(store: str, index: str, folder: Path) -> Path:
    """A copy of `store` in `folder` with `index` dropped."""
    bare = folder / "bare.db"
    shutil.copyfile(store, bare)
    with closing(sqlite3.connect(bare)) as connection:
        connection.execute(f"DROP INDEX {index}")
        connection.commit()
    return bare


def test_the_cohort_table_is_read_through_the_type_index(
    service: LedgerService, demo: DemoRun, tmp_path: Path
) -> None:
    """The demo store (opened for writing when made) has the type index, SQLite's planner reads
    the cohort records through it, and a copy without the index gives the same tables."""
    query = reading._TYPE_ROWS.format(table="stored_events", topics="?, ?")
    assert "stored_events_type" in query_plan(demo.store, query, ("x", "a", "b", 9))
    bare = copy_without_index(demo.store, "stored_events_type", tmp_path)
    everything = replayed(demo.store)
    with LedgerReader(str(bare)) as unindexed:
        for moment in (None, *moments(everything)):
            known = everything if moment is None else list(known_as_of(everything, moment))
            assert unindexed.cohort_table(TRIAL_ID, as_of=moment) == cohort_table(known)
    with LedgerService(str(bare)):  # a writable open makes it again
        pass
    with closing(sqlite3.connect(bare)) as connection:
        names = [n for (n,) in connection.execute("SELECT name FROM sqlite_master")]
    assert "stored_events_type" in names


def test_a_subjects_history_equals_the_filtered_replay(
    service: LedgerService, demo: DemoRun
) -> None:
    """`history` holds exactly the subject's entries of the replay, as known at T."""
    everything = replayed(demo.store)
    subjects = sorted({e.subject_id for e in everything if e.subject_id})[:3]
    for subject in subjects:
        for moment in (None, everything[len(everything) // 3].recorded_at):
            known = everything if moment is None else list(known_as_of(everything, moment))
            expected = [e for e in known if e.subject_id == subject]
            assert service.history(TRIAL_ID, subject, as_of=moment) == expected


def test_a_subjects_history_is_read_through_the_subject_index(
    service: LedgerService, demo: DemoRun, tmp_path: Path
) -> None:
    """The demo store (opened for writing when made) has the subject index, SQLite's planner
    reads a history through it, and a copy without the index gives the same histories."""
    query = reading._SUBJECT_ROWS.format(table="stored_events")
    assert "stored_events_subject" in query_plan(demo.store, query, ("x", "01-001", 9))
    bare = copy_without_index(demo.store, "stored_events_subject", tmp_path)
    everything = replayed(demo.store)
    subjects = sorted({e.subject_id for e in everything if e.subject_id})
    with LedgerReader(str(bare)) as unindexed:
        for subject in [*subjects[:2], subjects[-1], "99-999"]:
            expected = [e for e in everything if e.subject_id == subject]
            assert service.history(TRIAL_ID, subject) == expected
            assert unindexed.history(TRIAL_ID, subject) == expected
    with LedgerService(str(bare)) as writer:  # a writable open makes it again
        assert writer.history(TRIAL_ID, subjects[0]) == service.history(TRIAL_ID, subjects[0])
    with closing(sqlite3.connect(bare)) as connection:
        names = [n for (n,) in connection.execute("SELECT name FROM sqlite_master")]
    assert "stored_events_subject" in names


def test_the_past_trial_is_the_aggregate_at_the_bisected_position(
    service: LedgerService, demo: DemoRun
) -> None:
    """`trial_at(T)` is the aggregate at the last position recorded by T."""
    everything = replayed(demo.store)
    moment = everything[len(everything) // 2].recorded_at
    expected = list(known_as_of(everything, moment))[-1].position
    assert service.trial_at(TRIAL_ID, moment).version == expected


def test_as_of_datasets_equal_the_full_fold_cut_at_that_moment(
    service: LedgerService, demo: DemoRun
) -> None:
    """Datasets from the prefix read equal those of the whole replay cut at T (every frame)."""
    everything = replayed(demo.store)
    moment = everything[len(everything) // 2].recorded_at
    fast = build_datasets(service.entries(TRIAL_ID, as_of=moment), as_of=moment, cutoff=None)
    slow = build_datasets(everything, as_of=moment, cutoff=None)
    assert fast.provenance == slow.provenance
    for name, frame in fast.frames().items():
        pd.testing.assert_frame_equal(frame, slow.frames()[name], check_exact=True, obj=name)


def test_an_unknown_trial_is_refused_by_every_read(service: LedgerService) -> None:
    """Every read names a missing trial instead of returning nothing."""
    with pytest.raises(LookupError, match="no trial NCT00000000"):
        list(service.entries("NCT00000000"))
    with pytest.raises(LookupError, match="no trial NCT00000000"):
        service.cohort_table("NCT00000000")
    with pytest.raises(LookupError, match="no trial NCT00000000"):
        service.history("NCT00000000", "01-001")


@pytest.mark.parametrize(
    "stored_time",
    [
        "2026-03-04T05:06:07.000008+00:00",  # the ledger's own spelling
        "2026-03-04T05:06:07+00:00",  # no microseconds
        "2026-03-04 05:06:07.000008+00:00",  # a space for the T
        "2026-03-04T07:06:07.000008+02:00",  # another offset, same instant
        "0999-03-04T05:06:07.000008+00:00",  # a year strftime writes without padding
        "2026-13-04T05:06:07.000008+00:00",  # no such month: the row no longer decodes
    ],
)
def test_verify_reads_a_row_as_its_entry_would_be_written(
    demo: DemoRun, tmp_path: Path, stored_time: str
) -> None:
    """What `verify` hashes (`held_entry_objects`) equals the row's entry's §3 object, leaf hash
    aside, for every row of the demo and for a row whose stored time an editor respelled; a row
    that no longer decodes is reported, not hashed."""
    copy = tmp_path / "copy.db"
    shutil.copyfile(demo.store, copy)
    with closing(sqlite3.connect(copy)) as connection:
        (state,) = connection.execute(
            "SELECT state FROM stored_events WHERE originator_id=? AND originator_version=5",
            (trial_aggregate_id(TRIAL_ID).hex,),
        ).fetchone()
        edited = json.loads(state)
        edited["timestamp"]["_data_"] = stored_time
        connection.execute(
            "UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=5",
            (json.dumps(edited).encode(), trial_aggregate_id(TRIAL_ID).hex),
        )
        connection.commit()
    with LedgerReader(str(copy)) as service:
        reader = HeldRows(service._app)
        held = list(reader.held_entry_objects(TRIAL_ID))
        rows = list(reader._rows(trial_aggregate_id(TRIAL_ID), 0, None))
        assert [position for position, _, _ in held] == [row[0] for row in rows]
        assert (held[4][1] is None) == stored_time.startswith("2026-13")
        for (position, entry, why), row in zip(held, rows, strict=True):
            if entry is None:
                assert position == 5 and why is not None and "month" in why
                with pytest.raises(ValueError, match="month"):
                    reader._entry(row, TRIAL_ID)
                continue
            expected = reader._entry(row, TRIAL_ID).to_json_dict()
            del expected["leaf_hash"]
            assert (entry, why) == (expected, None), position


def _trial_event_classes() -> dict[str, type[Trial.Event]]:
    """The event classes the aggregate declares with a topic of their own (not the ones the
    library derives, such as ``Created``, which are never recorded)."""
    return {
        name: value for name, value in vars(Trial).items()
        if isinstance(value, type) and issubclass(value, Trial.Event) and "TOPIC" in vars(value)
    }


def test_the_topic_table_is_the_aggregates_own_classes() -> None:
    """Readers map a stored topic to its contract type by `trial_topics`, without the aggregate:
    every Trial event class is stored under ``trial_topic(its name)`` and records the type the
    table gives it; every row of the table is a class of the aggregate (none left over)."""
    classes = _trial_event_classes()
    for name, event_class in classes.items():
        assert trial_topic(name) == event_class.TOPIC, name
        assert ledger_type_of_topic(event_class.TOPIC) == (LEDGER_TYPES.get(name) or None), name
        assert event_class.ledger_type == LEDGER_TYPES.get(name, ""), name
    assert set(LEDGER_TYPES) <= set(classes)
    assert len(set(LEDGER_TYPES.values())) == len(LEDGER_TYPES), "one class per contract type"
