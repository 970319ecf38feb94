"""Properties over random submission streams: no forbidden state, replay equals live state."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import LedgerService
from ledger.entries import LedgerEntry
from ledger.projections.cohorts import cohort_table
from tests.builders import TRIAL_ID, FixedClock, open_ledger
from tests.strategies import Step, steps, submissions_for

DECISIONS = ("cohort.closed", "cohort.expanded")


def _record(plan: list[Step], variant: str) -> tuple[Path, list[LedgerEntry], LedgerService]:
    folder = Path(tempfile.mkdtemp(prefix="ledger-prop-"))
    service = open_ledger(folder, FixedClock(), variant=variant)
    service.submit_many([json.dumps(e) for e in submissions_for(plan)])
    return folder, list(service.entries(TRIAL_ID)), service


def _no_decision_with_a_pending_candidate(entries: list[LedgerEntry]) -> None:
    cohort_of: dict[str, str] = {}
    flagged: dict[tuple[str, str], int] = {}
    adjudicated: set[tuple[str, str]] = set()
    closed_with_dlt: set[str] = set()
    for entry in entries:
        subject = entry.subject_id or ""
        if entry.type == "subject.enrolled":
            cohort_of[subject] = str(entry.data["cohort"])
        elif entry.type == "dlt.candidate_flagged":
            flagged[(subject, str(entry.data["ae_id"]))] = entry.position
        elif entry.type == "dlt.adjudicated":
            adjudicated.add((subject, str(entry.data["ae_id"])))
        elif entry.type in ("dlt_window.closed", "dlt_window.revised") and entry.data["dlt"]:
            closed_with_dlt.add(subject)
        elif (
            entry.type in DECISIONS
            and entry.data.get("decision")
            and entry.data["cohort"] in ("A", "B", "C")
        ):
            pending = [
                key
                for key in flagged
                if cohort_of.get(key[0]) == entry.data["cohort"]
                and key not in adjudicated
                and key[0] not in closed_with_dlt
            ]
            assert not pending, f"decision at {entry.position} with pending {pending}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(steps, min_size=5, max_size=60),
    variant=st.sampled_from(["strict-six", "korn", "storer"]),
)
def test_random_streams_never_break_the_rules(plan: list[Step], variant: str) -> None:
    """No level exceeds 6 counted subjects; decisions are decidable with candidates adjudicated."""
    _, entries, service = _record(plan, variant)
    try:
        assert [e.position for e in entries] == list(range(1, len(entries) + 1))
        trial = service.find_trial(TRIAL_ID)
        assert trial is not None
        for name, count in trial.level_counts().items():
            assert count.evaluable <= 6, name
            assert trial.cohort_slots(name) <= 6
        for entry in entries:
            if entry.type in DECISIONS and "evaluable" in entry.data and entry.data.get("decision"):
                if entry.data["cohort"] == "EXPANSION":
                    continue
                decided = entry.data["dlts"] >= 2 or entry.data["evaluable"] >= 3
                assert decided, entry
        _no_decision_with_a_pending_candidate(entries)
        enrolled = defaultdict(int)
        for entry in entries:
            if entry.type == "subject.enrolled":
                enrolled[entry.data["cohort"]] += 1
        assert sum(enrolled.values()) <= trial.protocol.max_subjects
    finally:
        service.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(steps, min_size=5, max_size=60),
    variant=st.sampled_from(["strict-six", "korn", "storer"]),
)
def test_replaying_the_store_rebuilds_the_live_state(plan: list[Step], variant: str) -> None:
    """A fresh service replaying the stored events reaches exactly the live aggregate's state."""
    folder, _, live_service = _record(plan, variant)
    live = live_service.find_trial(TRIAL_ID)
    assert live is not None
    with LedgerService(str(folder / "ledger.db")) as fresh:
        replayed = fresh.find_trial(TRIAL_ID)
        assert replayed is not None
        assert (replayed.version, replayed.stage, replayed.current_level, replayed.mtd_level) == (
            live.version,
            live.stage,
            live.current_level,
            live.mtd_level,
        )
        assert replayed.level_counts() == live.level_counts()
        assert replayed.open_cohort() == live.open_cohort()
        table = cohort_table(fresh.entries(TRIAL_ID))
        projected = {row.cohort: (row.evaluable, row.dlts) for row in table.cohorts}
        for name, count in live.level_counts().items():
            assert projected[name] == (count.evaluable, count.dlts)
    live_service.close()
