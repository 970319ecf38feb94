"""The Trial's parts without a store: the fold, the intake rules and the follow-up policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ledger.aggregates import dose_decisions, follow_up, intake_rules
from ledger.aggregates.escalation import DeclareMtd, DeEscalate, Escalate, Expand, StopForToxicity
from ledger.aggregates.facts import FactBook, Submission
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial import Trial
from ledger.aggregates.trial_state import Outcome, Stage, TrialState
from ledger.entries import LedgerEntry
from ledger.protocol_files import bundled_protocol
from ledger.schemas.submissions import to_domain, validate_submission
from tests.builders import Script

DAY0 = date(2025, 1, 6)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def submission(envelope: dict[str, Any]) -> Submission:
    """Through the real edge translation, as the application does it."""
    return to_domain(validate_submission(envelope))


def opened(protocol: ProtocolDefinition | None = None) -> Trial:
    return Trial.open(
        protocol or bundled_protocol(), source="test", entered_by="tester", recorded_at=NOW
    )


def record_all(trial: Trial, envelopes: list[dict[str, Any]]) -> list[Outcome]:
    ordered = sorted(envelopes, key=lambda e: str(e["occurred_on"]))
    return [trial.record(submission(e), NOW) for e in ordered]


def recorded_types(trial: Trial) -> list[str]:
    return [event.type for event in trial.collect_events()]


def three_subjects(script: Script, cohort: str, dlts: str, first: int = 1) -> list[dict[str, Any]]:
    """One subject per character of `dlts` ("1" = a DLT), each through a closed DLT window."""
    envelopes: list[dict[str, Any]] = []
    for offset, dlt in enumerate(dlts):
        subject_id = f"01-{first + offset:03d}"
        envelopes.append(script.enroll(subject_id, cohort, DAY0))
        envelopes += script.cycle_one(
            subject_id, cohort, DAY0 + timedelta(days=offset), dlt=True if dlt == "1" else None
        )
    return envelopes


REFUSALS = [
    pytest.param(
        [], {"type": "subject.alive", "subject_id": "01-009"}, ReasonCode.SUBJECT_NOT_ENROLLED,
        id="a fact about a subject never enrolled",
    ),
    pytest.param(
        [], {"type": "subject.enrolled", "data": {"cohort": "B"}}, ReasonCode.COHORT_NOT_OPEN,
        id="enrolling into a level not yet open",
    ),
    pytest.param(
        [], {"type": "subject.enrolled", "data": {"cohort": EXPANSION}},
        ReasonCode.COHORT_NOT_OPEN, id="enrolling into EXPANSION before the MTD",
    ),
    pytest.param(
        ["01-001"], {"type": "subject.enrolled", "subject_id": "01-001"},
        ReasonCode.SUBJECT_ALREADY_ENROLLED, id="enrolling the same subject twice",
    ),
    pytest.param(
        ["01-001", "01-002", "01-003"], {"type": "subject.enrolled"}, ReasonCode.COHORT_FULL,
        id="a fourth subject while three are in their DLT window",
    ),
    pytest.param(
        [], {"occurred_on": (NOW + timedelta(days=1)).date().isoformat()},
        ReasonCode.OCCURRED_IN_FUTURE, id="a clinical date after the recording day",
    ),
    pytest.param(
        [], {"trial_id": "NCT00000000"}, ReasonCode.UNKNOWN_TRIAL, id="another trial's submission",
    ),
]


@pytest.mark.parametrize(("enrolled", "overrides", "code"), REFUSALS)
def test_a_refused_submission_leaves_the_trial_unchanged(
    enrolled: list[str], overrides: dict[str, Any], code: ReasonCode
) -> None:
    """Each intake rule refuses with its reason code, before any event is triggered."""
    script = Script()
    trial = opened()
    record_all(trial, [script.enroll(subject_id, "A", DAY0) for subject_id in enrolled])
    version = trial.version
    envelope = script.enroll("01-010", "A", DAY0) | {
        k: v for k, v in overrides.items() if k != "data"
    }
    envelope["data"] = {**envelope["data"], **overrides.get("data", {})}
    if envelope["type"] == "subject.alive":
        envelope["data"] = {}
    with pytest.raises(SubmissionRejectedError) as refused:
        trial.record(submission(envelope), NOW)
    assert (refused.value.reason_code, trial.version) == (code, version)


def test_a_redelivery_is_a_duplicate_and_a_reused_id_a_conflict() -> None:
    """The same event_id with the same content is a duplicate; with other content, refused."""
    script = Script()
    trial = opened()
    enrollment = script.enroll("01-001", "A", DAY0)
    assert trial.record(submission(enrollment), NOW) is Outcome.RECORDED
    assert intake_rules.already_recorded(trial.state, submission(enrollment)) is True
    assert trial.record(submission(enrollment), NOW) is Outcome.DUPLICATE
    changed = enrollment | {"occurred_on": (DAY0 + timedelta(days=1)).isoformat()}
    with pytest.raises(SubmissionRejectedError) as refused:
        trial.record(submission(changed), NOW)
    assert refused.value.reason_code is ReasonCode.EVENT_ID_CONFLICT


ESCALATIONS = [
    pytest.param(
        "000", ["cohort.closed", "dose.escalated", "cohort.opened"], Stage.ESCALATION, "B",
        id="0/3 closes A, escalates and opens B",
    ),
    pytest.param(
        "100", ["cohort.expanded"], Stage.ESCALATION, "A", id="1/3 expands A to 6",
    ),
    pytest.param(
        "110", ["cohort.closed", "trial.stopped"], Stage.STOPPED, None,
        id="2/3 at the lowest level stops the trial",
    ),
]


@pytest.mark.parametrize(("dlts", "decisions", "stage", "open_cohort"), ESCALATIONS)
def test_the_first_cohort_decides_in_memory(
    dlts: str, decisions: list[str], stage: Stage, open_cohort: str | None
) -> None:
    """Three subjects through their DLT windows lead to the 3+3 row's recorded decisions."""
    trial = opened()
    trial.collect_events()
    record_all(trial, three_subjects(Script(), "A", dlts))
    escalation = {"cohort.closed", "cohort.expanded", "dose.escalated", "cohort.opened",
                  "trial.stopped"}
    assert [t for t in recorded_types(trial) if t in escalation] == decisions
    assert (trial.stage, trial.open_cohort()) == (stage, open_cohort)


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    """The fold is the only writer: events replayed into a new aggregate give the same readings."""
    trial = opened()
    record_all(trial, three_subjects(Script(), "A", "100"))
    events = trial.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert isinstance(replayed, Trial)
    assert (replayed.version, replayed.stage, replayed.current_level, replayed.mtd_level) == (
        trial.version, trial.stage, trial.current_level, trial.mtd_level
    )
    assert replayed.level_counts() == trial.level_counts()
    assert replayed.cohort_slots("A") == trial.cohort_slots("A") == 6


def test_the_fact_book_folds_ledger_entries_as_it_folds_trial_events() -> None:
    """One reading of facts, corrections and voids: a LedgerEntry stream gives the same book."""
    script = Script()
    trial = opened()
    envelopes = script.subject("01-001", "A", DAY0, dlt=True)
    adjudication = next(e for e in envelopes if e["type"] == "dlt.adjudicated")
    dose = next(e for e in envelopes if e["type"] == "fruquintinib.dosed")
    envelopes += [
        script.envelope(
            "record.voided", "01-001", DAY0 + timedelta(days=40),
            {"target_event_id": adjudication["event_id"]}, reason="entered in error",
        ),
        script.envelope(
            "record.corrected", "01-001", DAY0 + timedelta(days=41),
            {"target_event_id": dose["event_id"], "data": {"dose_mg": 3.0},
             "occurred_on": (DAY0 + timedelta(days=2)).isoformat()},
            reason="date transcribed wrongly",
        ),
    ]
    record_all(trial, envelopes)
    book = FactBook()
    for event in trial.collect_events():
        book.fold(
            LedgerEntry(
                position=event.position, type=event.type, trial_id=trial.trial_id,
                recorded_at=event.timestamp, data=event.data, subject_id=event.subject_id,
                occurred_on=event.occurred_on, event_id=event.event_id, source=event.source,
                entered_by=event.entered_by, reason=event.reason,
            )
        )
    assert list(book) == list(trial.state.facts)
    assert book.is_voided(adjudication["event_id"])
    corrected = book.get(dose["event_id"])
    assert corrected is not None
    assert (corrected.occurred_on, corrected.corrections) == (DAY0 + timedelta(days=2), 1)


def test_a_pending_candidate_holds_the_decision_back() -> None:
    """With a flagged grade-3 AE not yet adjudicated, the escalation step returns nothing."""
    script = Script()
    trial = opened()
    envelopes = three_subjects(script, "A", "000")
    envelopes += [
        script.envelope(
            "adverse_event.reported", "01-001", DAY0 + timedelta(days=5),
            {"ae_id": "AE-9", "term": "rash", "grade": 3, "serious": False, "related": True},
        )
    ]
    record_all(trial, envelopes)
    level = trial.state.levels[0]
    assert dose_decisions.has_pending_candidates(trial.state, level)
    assert dose_decisions.escalation_step(trial.state) == []
    assert "cohort.closed" not in recorded_types(trial)


LABELS = [
    pytest.param(Escalate(1), "escalate to B", id="escalate names the level above"),
    pytest.param(DeEscalate(0), "de-escalate to A", id="de-escalate names the level below"),
    pytest.param(DeclareMtd(2), "MTD is C", id="MTD names its level"),
    pytest.param(DeclareMtd(-1), "no MTD", id="no level declared"),
    pytest.param(StopForToxicity(), "stop: no tolerable dose", id="stop"),
    pytest.param(Expand(0), "expand", id="expand"),
]


@pytest.mark.parametrize(("decision", "label"), LABELS)
def test_decision_labels(decision: Any, label: str) -> None:
    """The `decision` text recorded on cohort.closed, one row per 3+3 outcome."""
    assert dose_decisions.decision_label(decision, bundled_protocol()) == label


COHORT_DOSES = [
    pytest.param("A", None, "A", id="a dose level treats at its own dose"),
    pytest.param("C", 0, "C", id="the MTD does not change another level"),
    pytest.param(EXPANSION, 1, "B", id="EXPANSION treats at the MTD"),
    pytest.param(EXPANSION, None, None, id="EXPANSION before an MTD has no dose"),
    pytest.param("Z", None, None, id="an unknown cohort has no dose"),
]


@pytest.mark.parametrize(("cohort", "expansion_at", "level"), COHORT_DOSES)
def test_the_one_place_that_works_out_a_cohorts_dose(
    cohort: str, expansion_at: int | None, level: str | None
) -> None:
    """`ProtocolDefinition.cohort_level` maps a cohort (EXPANSION too) to its dose level."""
    protocol = bundled_protocol()
    found = protocol.cohort_level(cohort, expansion_at=expansion_at)
    assert (found.name if found else None) == level


def test_the_first_cohort_opens_with_the_trial() -> None:
    """Opening records the protocol, then opens the lowest level with one cohort's slots."""
    trial = opened()
    assert recorded_types(trial) == ["trial.opened", "cohort.opened"]
    decided = follow_up.first_cohort(trial.protocol)
    assert (decided.data["cohort"], decided.data["slots"]) == ("A", 3)
    state = TrialState(trial.protocol)
    assert state.open_cohort() is None  # nothing opened until cohort.opened is folded
    assert trial.open_cohort() == "A"
