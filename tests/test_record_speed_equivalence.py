"""What the recording shortcuts keep equal: each reads exactly what the work it saves would read."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from eventsourcing.application import project_aggregate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.aggregates.escalation import LevelCount
from ledger.aggregates.facts import FRUQUINTINIB_DOSED, HAIC_ADMINISTERED, Fact, FactBook
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial import Trial, project_trial
from ledger.aggregates.trial_state import Outcome, TrialState
from ledger.protocol_files import bundled_protocol
from ledger.schemas.submissions import to_domain, validate_submission
from tests.builders import Script
from tests.strategies import Step, steps

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY0 = date(2025, 1, 6)


def opened() -> Trial:
    return Trial.open(bundled_protocol(), source="test", entered_by="tester", recorded_at=NOW)


def record(trial: Trial, envelope: dict[str, Any]) -> Outcome | ReasonCode:
    try:
        return trial.record(to_domain(validate_submission(envelope)), NOW)
    except SubmissionRejectedError as refused:
        return refused.reason_code


def followed(trial: Trial, plan: list[Step]) -> Iterator[dict[str, Any]]:
    """A plan sent the way sites follow the trial: each new subject enters the cohort open when
    the step comes (so the 3+3 acts), with late DLTs, withdrawals, voids and redeliveries."""
    script = Script()
    enrolled: list[str] = []
    sent: list[dict[str, Any]] = []
    for number, step in enumerate(plan, start=1):
        on = date(2024, 1, 1) + timedelta(days=step.day)
        cohort = trial.open_cohort()
        chosen = enrolled[step.subject % len(enrolled)] if enrolled else None
        adjudications = [e for e in sent if e["type"] == "dlt.adjudicated"]
        batch: list[dict[str, Any]] = []
        if step.action in ("enroll", "course") and cohort is not None:
            enrolled.append(f"01-{number:03d}")
            batch = script.subject(enrolled[-1], cohort, on, doses=step.doses, dlt=step.dlt)
        elif step.action == "withdraw" and chosen is not None:
            withdrawal = {"reason": "lost_to_follow_up"}
            batch = [script.envelope("subject.withdrawn", chosen, on, withdrawal)]
        elif step.action == "late_dlt" and chosen is not None:
            ae = {"ae_id": f"AE-L{number}", "term": "rash", "grade": 3, "serious": False,
                  "related": True}
            batch = [script.envelope("adverse_event.reported", chosen, on, ae),
                     script.envelope("dlt.adjudicated", chosen, on,
                                     {"ae_id": ae["ae_id"], "dlt": bool(step.dlt)})]
        elif step.action == "void" and adjudications:
            target = adjudications[step.day % len(adjudications)]
            batch = [script.envelope("record.voided", target["subject_id"], on,
                                     {"target_event_id": target["event_id"]}, reason="in error")]
        elif step.action == "duplicate" and sent:
            batch = [sent[step.day % len(sent)]]
        for envelope in batch:
            sent.append(envelope)
            yield envelope


def events_of(trial: Trial) -> list[Trial.Event]:
    """The trial's new events, each one of its own classes (as the store gives them back)."""
    events = trial.collect_events()
    assert all(isinstance(event, Trial.Event) for event in events)
    return [event for event in events if isinstance(event, Trial.Event)]


def recounted(state: TrialState) -> list[LevelCount]:
    """Each level's count worked out from its subjects' windows, as `level_count` once did."""
    counts = []
    for level in state.levels:
        windows = [state.subjects[s].window for s in level.subjects]
        closed = [w for w in windows if w is not None and w.is_closed and w.evaluable]
        counts.append(LevelCount(len(closed), sum(1 for w in closed if w.has_dlt)))
    return counts


def readings(trial: Trial) -> tuple[object, ...]:
    state = trial.state
    return (
        trial.version,
        trial.modified_on,
        state.stage,
        state.current_level,
        state.mtd_level,
        trial.level_counts(),
        trial.open_cohort(),
        state.submitted,
        {s: (v.cohort, v.dose_mg, v.flagged, v.window) for s, v in state.subjects.items()},
        list(state.facts),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=5, max_size=60))
def test_the_kept_level_counts_equal_a_recount_after_every_submission(plan: list[Step]) -> None:
    """The fold's per-level count always equals counting the level's closed windows again."""
    trial = opened()
    for envelope in followed(trial, plan):
        record(trial, envelope)
        assert [trial.state.level_count(level) for level in trial.state.levels] == recounted(
            trial.state
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=5, max_size=60))
def test_project_trial_rebuilds_what_the_default_projector_rebuilds(plan: list[Step]) -> None:
    """Replaying a trial's events with `project_trial` or eventsourcing's default is the same."""
    trial = opened()
    for envelope in followed(trial, plan):
        record(trial, envelope)
    events = events_of(trial)
    ours, default = project_trial(None, events), project_aggregate(None, events)
    assert isinstance(ours, Trial) and isinstance(default, Trial)
    assert readings(ours) == readings(default) == readings(trial)


def test_a_redelivery_to_a_replayed_trial_compares_the_fingerprint() -> None:
    """After replay the same content is a duplicate; 3 for 3.0 in kept-as-sent data conflicts."""
    script = Script()
    trial = opened()
    enrollment = script.enroll("01-001", "A", DAY0)
    dose = script.envelope(FRUQUINTINIB_DOSED, "01-001", DAY0, {"dose_mg": 3.0})
    correction = script.envelope(
        "record.corrected", "01-001", DAY0 + timedelta(days=1),
        {"target_event_id": dose["event_id"], "data": {"dose_mg": 3.0}}, reason="typo",
    )
    for envelope in (enrollment, dose, correction):
        assert record(trial, envelope) is Outcome.RECORDED
    replayed = project_trial(None, events_of(trial))
    assert replayed is not None
    assert [record(replayed, e) for e in (enrollment, dose, correction)] == [Outcome.DUPLICATE] * 3
    same_number = correction | {"data": {**correction["data"], "data": {"dose_mg": 3}}}
    assert record(replayed, same_number) is ReasonCode.EVENT_ID_CONFLICT
    assert replayed.target_type(dose["event_id"]) == FRUQUINTINIB_DOSED
    assert replayed.target_source(dose["event_id"]) == "edc-site-01"
    assert replayed.target_type("never-recorded") is None


def test_facts_of_one_type_come_in_ledger_order_as_a_list_the_caller_owns() -> None:
    """Without a sort, one type's facts are still in ledger order, and a copy of the index."""
    book = FactBook()
    for position, (kind, day) in enumerate(
        [(HAIC_ADMINISTERED, 9), (FRUQUINTINIB_DOSED, 1), (HAIC_ADMINISTERED, 2)], start=1
    ):
        book.add(Fact(f"e{position}", kind, "01-001", DAY0 + timedelta(days=day), {}, position))
    haic = book.of_subject("01-001", (HAIC_ADMINISTERED, "dose.modified"))
    assert [f.position for f in haic] == [1, 3]
    haic.clear()
    assert [f.position for f in book.of_subject("01-001", (HAIC_ADMINISTERED,))] == [1, 3]
    both = book.of_subject("01-001", (FRUQUINTINIB_DOSED, HAIC_ADMINISTERED))
    assert [f.position for f in both] == [1, 2, 3]


def test_project_trial_leaves_the_cycle_collector_as_it_found_it() -> None:
    """The collector waits during the replay only: on again after, still off if it was off."""
    trial = opened()
    events = events_of(trial)
    assert gc.isenabled()
    project_trial(None, events)
    assert gc.isenabled()
    gc.disable()
    try:
        project_trial(None, events)
        assert not gc.isenabled()
    finally:
        gc.enable()
