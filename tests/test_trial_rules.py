"""The Trial aggregate through the application service: escalation, DLT windows, rejections."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.aggregates.protocol import ProtocolDefinition
from ledger.application import LedgerService
from ledger.projections.cohorts import cohort_table
from ledger.protocol_files import bundled_protocol
from tests.builders import TRIAL_ID, FixedClock, Script, lines, open_ledger, store_snapshot

DAY0 = date(2025, 1, 6)


def ledger_types(service: LedgerService, source: str = "trial-ledger") -> list[str]:
    return [e.type for e in service.entries(TRIAL_ID) if e.source == source]


def run_cohort(
    service: LedgerService,
    script: Script,
    cohort: str,
    outcomes: list[bool],
    start: date,
    first_number: int,
) -> None:
    """Enroll one subject per outcome (True = DLT) and run their cycle 1 to a closed window."""
    envelopes: list[dict[str, Any]] = []
    courses: list[dict[str, Any]] = []
    for offset, dlt in enumerate(outcomes):
        subject_id = f"01-{first_number + offset:03d}"
        envelopes.append(script.enroll(subject_id, cohort, start))
        courses += script.cycle_one(
            subject_id, cohort, start + timedelta(days=offset), dlt=True if dlt else None
        )
    envelopes += sorted(courses, key=lambda e: str(e["occurred_on"]))
    report = service.submit_many(lines(envelopes))
    assert not report.rejected, [(r.reason_code, r.message) for r in report.rejected]


ESCALATION_PATHS = [
    pytest.param(
        "strict-six", [("A", "000")], "escalation", None, "B", id="0/3 at A escalates to B"
    ),
    pytest.param("strict-six", [("A", "100")], "escalation", None, "A", id="1/3 expands A to 6"),
    pytest.param(
        "strict-six", [("A", "100"), ("A", "000")], "escalation", None, "B", id="1/6 escalates"
    ),
    pytest.param(
        "strict-six",
        [("A", "110")],
        "stopped",
        None,
        None,
        id="2/3 at the lowest level stops the trial",
    ),
    pytest.param(
        "korn",
        [("A", "100"), ("A", "100")],
        "stopped",
        None,
        None,
        id="2/6 at the lowest level stops the trial (korn)",
    ),
    pytest.param(
        "strict-six",
        [("A", "000"), ("B", "000"), ("C", "000")],
        "escalation",
        None,
        "C",
        id="strict-six expands the top level after 0/3",
    ),
    pytest.param(
        "strict-six",
        [("A", "000"), ("B", "000"), ("C", "000"), ("C", "000")],
        "expansion",
        "C",
        "EXPANSION",
        id="strict-six declares the top after 0/6",
    ),
    pytest.param(
        "korn",
        [("A", "000"), ("B", "000"), ("C", "000")],
        "expansion",
        "C",
        "EXPANSION",
        id="korn declares the top after 0/3",
    ),
    pytest.param(
        "storer",
        [("A", "000"), ("B", "000"), ("C", "000")],
        "expansion",
        "C",
        "EXPANSION",
        id="storer declares the top after 0/3",
    ),
    pytest.param(
        "storer",
        [("A", "000"), ("B", "110")],
        "expansion",
        "A",
        "EXPANSION",
        id="storer: B too toxic declares A with 3 subjects",
    ),
    pytest.param(
        "korn",
        [("A", "000"), ("B", "110")],
        "escalation",
        None,
        "A",
        id="korn: B too toxic de-escalates to A for 3 more",
    ),
    pytest.param(
        "korn",
        [("A", "000"), ("B", "110"), ("A", "100")],
        "expansion",
        "A",
        "EXPANSION",
        id="korn: 1/6 at A after de-escalation declares A",
    ),
    pytest.param(
        "korn",
        [("A", "000"), ("B", "110"), ("A", "110")],
        "stopped",
        None,
        None,
        id="korn: 2/6 at A after de-escalation stops",
    ),
    pytest.param(
        "korn",
        [("A", "100"), ("A", "000"), ("B", "110")],
        "expansion",
        "A",
        "EXPANSION",
        id="korn: B too toxic with 6 at A declares A at once",
    ),
    pytest.param(
        "strict-six",
        [("A", "000"), ("B", "000"), ("C", "000"), ("C", "110"), ("B", "000")],
        "expansion",
        "B",
        "EXPANSION",
        id="strict-six: 2/6 at the top de-escalates to B",
    ),
]


@pytest.mark.parametrize(("variant", "cohorts", "stage", "mtd", "open_cohort"), ESCALATION_PATHS)
def test_escalation_path(
    tmp_path: Path,
    variant: str,
    cohorts: list[tuple[str, str]],
    stage: str,
    mtd: str | None,
    open_cohort: str | None,
) -> None:
    """Each 3+3 path ends in the stage, MTD and open cohort the rule table gives."""
    service = open_ledger(tmp_path, variant=variant)
    script = Script()
    number = 1
    for step, (cohort, outcome) in enumerate(cohorts):
        run_cohort(
            service,
            script,
            cohort,
            [c == "1" for c in outcome],
            DAY0 + timedelta(days=60 * step),
            number,
        )
        number += len(outcome)
    table = cohort_table(service.entries(TRIAL_ID))
    trial = service.find_trial(TRIAL_ID)
    assert trial is not None
    assert (table.stage, table.mtd, trial.open_cohort()) == (stage, mtd, open_cohort)


def test_expansion_fills_to_the_trial_total_and_closes(tmp_path: Path) -> None:
    """After the MTD, EXPANSION enrolls until 27 subjects in all, then refuses with a reason."""
    service = open_ledger(tmp_path, variant="korn")
    script = Script()
    for step, cohort in enumerate("ABC"):
        run_cohort(
            service, script, cohort, [False] * 3, DAY0 + timedelta(days=60 * step), 3 * step + 1
        )
    start = DAY0 + timedelta(days=200)
    report = service.submit_many(
        lines([script.enroll(f"02-{n:03d}", "EXPANSION", start) for n in range(18)])
    )
    assert report.accepted == 18
    refused = service.submit(json.dumps(script.enroll("02-999", "EXPANSION", start)))
    assert refused.reason_code == "ENROLLMENT_COMPLETE"
    assert cohort_table(service.entries(TRIAL_ID)).stage == "enrollment_complete"


# --- DLT windows -------------------------------------------------------------------------------


def test_decision_waits_for_every_candidate_to_be_adjudicated(tmp_path: Path) -> None:
    """Three evaluable subjects and an unadjudicated candidate: no decision until adjudicated."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = []
    for n in range(3):
        envelopes += script.subject(f"01-00{n}", "A", DAY0)
    envelopes.insert(
        5,
        script.envelope(
            "adverse_event.reported",
            "01-000",
            DAY0 + timedelta(days=4),
            {
                "ae_id": "AE-9",
                "term": "ALT increased",
                "grade": 3,
                "serious": False,
                "related": True,
            },
        ),
    )
    service.submit_many(lines(envelopes))
    assert "dlt.candidate_flagged" in ledger_types(service)
    assert "dose.escalated" not in ledger_types(service)
    service.submit(
        json.dumps(
            script.envelope(
                "dlt.adjudicated",
                "01-000",
                DAY0 + timedelta(days=30),
                {"ae_id": "AE-9", "dlt": False},
            )
        )
    )
    assert "dose.escalated" in ledger_types(service)


CANDIDATE_RULES = [
    pytest.param(3, True, 9, True, id="grade 3 related in window is a candidate"),
    pytest.param(4, True, 27, True, id="grade 4 related on day 28 is a candidate"),
    pytest.param(3, False, 9, False, id="unrelated is not a candidate"),
    pytest.param(2, True, 9, False, id="grade 2 is not a candidate"),
    pytest.param(3, True, 28, False, id="onset on day 29 is outside the window"),
]


@pytest.mark.parametrize(("grade", "related", "onset_day", "flagged"), CANDIDATE_RULES)
def test_dlt_candidate_rule(
    tmp_path: Path, grade: int, related: bool, onset_day: int, flagged: bool
) -> None:
    """The ledger flags exactly grade ≥ 3 related AEs with onset in days 1–28."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = [
        script.enroll("01-001", "A", DAY0),
        *script.cycle_one("01-001", "A", DAY0, follow_up=False),
        script.envelope(
            "adverse_event.reported",
            "01-001",
            DAY0 + timedelta(days=onset_day),
            {"ae_id": "AE-1", "term": "rash", "grade": grade, "serious": False, "related": related},
        ),
    ]
    service.submit_many(lines(envelopes))
    assert ("dlt.candidate_flagged" in ledger_types(service)) is flagged


def test_grade_raised_by_update_flags_a_candidate(tmp_path: Path) -> None:
    """An AE updated from grade 2 to 3 becomes a DLT candidate."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = [
        script.enroll("01-001", "A", DAY0),
        *script.cycle_one("01-001", "A", DAY0, follow_up=False),
        script.envelope(
            "adverse_event.reported",
            "01-001",
            DAY0 + timedelta(days=5),
            {"ae_id": "AE-1", "term": "rash", "grade": 2, "serious": False, "related": True},
        ),
        script.envelope(
            "adverse_event.updated",
            "01-001",
            DAY0 + timedelta(days=8),
            {"ae_id": "AE-1", "grade": 3},
        ),
    ]
    service.submit_many(lines(envelopes))
    assert ledger_types(service).count("dlt.candidate_flagged") == 1


EVALUABILITY = [
    pytest.param(16, True, id="16 of 21 doses is evaluable"),
    pytest.param(15, False, id="15 of 21 doses is not evaluable and is replaced"),
]


@pytest.mark.parametrize(("doses", "evaluable"), EVALUABILITY)
def test_evaluability_and_replacement(tmp_path: Path, doses: int, evaluable: bool) -> None:
    """Under 75 % of cycle-1 doses: not evaluable, and the cohort takes one more subject."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = script.subject("01-001", "A", DAY0, doses=doses)
    for n in (2, 3):
        envelopes += script.subject(f"01-00{n}", "A", DAY0, follow_up=False)
    service.submit_many(lines(envelopes))
    closed = [e for e in service.entries(TRIAL_ID) if e.type == "dlt_window.closed"]
    assert [e.data["evaluable"] for e in closed] == [evaluable]
    fourth = service.submit(json.dumps(script.enroll("01-004", "A", DAY0 + timedelta(days=30))))
    assert (fourth.reason_code is None) is (not evaluable)


def test_withdrawal_before_treatment_is_replaced(tmp_path: Path) -> None:
    """A subject who leaves before C1D1 closes as not evaluable and frees the place."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = [script.enroll(f"01-00{n}", "A", DAY0) for n in range(1, 4)]
    envelopes.append(
        script.envelope(
            "subject.withdrawn", "01-001", DAY0 + timedelta(days=2), {"reason": "consent_withdrawn"}
        )
    )
    envelopes.append(script.enroll("01-004", "A", DAY0 + timedelta(days=3)))
    report = service.submit_many(lines(envelopes))
    assert report.accepted == 5


# --- deviations -------------------------------------------------------------------------------


DEVIATIONS = [
    pytest.param(22, 3.0, False, [], id="last planned day (21) is not a deviation"),
    pytest.param(23, 3.0, False, ["OFF_DAY_DOSE"], id="a dose on day 23 is an off-day deviation"),
    pytest.param(5, 4.0, False, ["WRONG_DOSE"], id="4 mg in cohort A is a wrong dose"),
    pytest.param(5, 2.0, True, [], id="2 mg after a recorded modification is not a deviation"),
]


@pytest.mark.parametrize(("cycle_day", "dose", "modified", "codes"), DEVIATIONS)
def test_protocol_deviation_is_accepted_and_flagged(
    tmp_path: Path, cycle_day: int, dose: float, modified: bool, codes: list[str]
) -> None:
    """Off-day and wrong doses are recorded, with a protocol.deviation beside them."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = [
        script.enroll("01-001", "A", DAY0),
        script.envelope(
            "haic.administered",
            "01-001",
            DAY0,
            {"cycle": 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000},
        ),
    ]
    if modified:
        envelopes.append(
            script.envelope("dose.modified", "01-001", DAY0 + timedelta(days=2), {"dose_mg": 2})
        )
    envelopes.append(
        script.envelope(
            "fruquintinib.dosed",
            "01-001",
            DAY0 + timedelta(days=cycle_day - 1 if cycle_day != 22 else 20),
            {"dose_mg": dose},
        )
    )
    report = service.submit_many(lines(envelopes))
    assert not report.rejected
    found = [e.data["code"] for e in service.entries(TRIAL_ID) if e.type == "protocol.deviation"]
    assert found == codes


# --- idempotency, corrections, late data ---------------------------------------------------------


def test_same_event_twice_is_recorded_once(tmp_path: Path) -> None:
    """A redelivered submission is a duplicate: reported, not recorded again."""
    service = open_ledger(tmp_path)
    envelope = Script().enroll("01-001", "A", DAY0)
    first = service.submit(json.dumps(envelope))
    before = store_snapshot(service)
    again = service.submit(json.dumps(envelope, indent=2))
    assert (first.outcome, again.outcome) == ("recorded", "duplicate")
    assert store_snapshot(service) == before


def test_correction_keeps_the_original_and_changes_the_belief(tmp_path: Path) -> None:
    """A corrected grade flags a candidate; the original record is still there, unchanged."""
    service = open_ledger(tmp_path)
    script = Script()
    report_ae = script.envelope(
        "adverse_event.reported",
        "01-001",
        DAY0 + timedelta(days=5),
        {"ae_id": "AE-1", "term": "rash", "grade": 2, "serious": False, "related": True},
    )
    service.submit_many(
        lines(
            [
                script.enroll("01-001", "A", DAY0),
                *script.cycle_one("01-001", "A", DAY0, follow_up=False),
                report_ae,
            ]
        )
    )
    before = store_snapshot(service)
    correction = script.envelope(
        "record.corrected",
        "01-001",
        DAY0 + timedelta(days=6),
        {"target_event_id": report_ae["event_id"], "data": {**report_ae["data"], "grade": 3}},
        reason="grade transcribed wrongly",
    )
    assert service.submit(json.dumps(correction)).outcome == "recorded"
    after = store_snapshot(service)
    assert after[: len(before)] == before
    assert "dlt.candidate_flagged" in ledger_types(service)


def test_late_dlt_after_escalation_reevaluates_without_rewriting(tmp_path: Path) -> None:
    """A DLT reported after A escalated: cohort.reevaluated, the escalation stands."""
    service = open_ledger(tmp_path)
    script = Script()
    run_cohort(service, script, "A", [False] * 3, DAY0, 1)
    late = [
        script.envelope(
            "adverse_event.reported",
            "01-001",
            DAY0 + timedelta(days=10),
            {"ae_id": "AE-7", "term": "hypertension", "grade": 3, "serious": True, "related": True},
        ),
        script.envelope(
            "dlt.adjudicated", "01-001", DAY0 + timedelta(days=60), {"ae_id": "AE-7", "dlt": True}
        ),
    ]
    service.submit_many(lines(late))
    types = ledger_types(service)
    assert (
        types.index("dose.escalated")
        < types.index("dlt_window.revised")
        < types.index("cohort.reevaluated")
    )
    reevaluated = next(e for e in service.entries(TRIAL_ID) if e.type == "cohort.reevaluated")
    assert (reevaluated.data["before"], reevaluated.data["after"]) == (
        {"evaluable": 3, "dlts": 0},
        {"evaluable": 3, "dlts": 1},
    )


def test_recorded_events_carry_the_audit_fields(tmp_path: Path) -> None:
    """Positions run 1, 2, 3… without gaps; who, when recorded (monotone UTC) and why are set."""
    service = open_ledger(tmp_path)
    run_cohort(service, Script(), "A", [True, False, False], DAY0, 1)
    entries = list(service.entries(TRIAL_ID))
    assert [e.position for e in entries] == list(range(1, len(entries) + 1))
    assert all(a.recorded_at <= b.recorded_at for a, b in itertools.pairwise(entries))
    assert all(e.source and e.entered_by and e.recorded_at.utcoffset() is not None for e in entries)
    assert all(e.reason for e in entries if e.source == "trial-ledger")


def test_cohort_table_as_of_shows_what_the_ledger_knew(tmp_path: Path) -> None:
    """The cohort table as of a moment before escalation still shows A open."""
    clock = FixedClock()
    service = open_ledger(tmp_path, clock)
    script = Script()
    run_cohort(service, script, "A", [False, False], DAY0, 1)
    moment = clock.now
    run_cohort(service, script, "A", [False], DAY0, 3)
    then = cohort_table(service.entries(TRIAL_ID, as_of=moment))
    now = cohort_table(service.entries(TRIAL_ID))
    assert (then.cohorts[0].state, then.cohorts[0].evaluable) == ("open", 2)
    assert (now.cohorts[0].state, now.cohorts[0].evaluable) == ("closed", 3)


# --- rejections: every reason, store unchanged ---------------------------------------------


def _given_three_in_a(service: LedgerService, script: Script) -> None:
    service.submit_many(
        lines(
            [script.enroll(f"01-00{n}", "A", DAY0) for n in range(1, 4)]
            + [
                script.envelope(
                    "adverse_event.reported",
                    "01-001",
                    DAY0,
                    {
                        "ae_id": "AE-1",
                        "term": "rash",
                        "grade": 1,
                        "serious": False,
                        "related": False,
                    },
                )
            ]
        )
    )


def _ae_id(service: LedgerService) -> str:
    return next(
        e.event_id
        for e in service.entries(TRIAL_ID)
        if e.type == "adverse_event.reported" and e.event_id is not None
    )


REJECTIONS: list[Any] = [
    pytest.param(lambda s, svc: "{not json", "INVALID_JSON", id="not JSON"),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-009", "A", DAY0) | {"colour": "red"}),
        "SCHEMA_INVALID",
        id="unknown envelope field",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope("fruquintinib.dosed", "01-001", DAY0, {"dose_mg": 3, "extra": 1})
        ),
        "SCHEMA_INVALID",
        id="unknown data field",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.envelope("subject.alive", None, DAY0, {})),
        "SCHEMA_INVALID",
        id="subject event without subject_id",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope("record.voided", "01-001", DAY0, {"target_event_id": _ae_id(svc)})
        ),
        "SCHEMA_INVALID",
        id="void without a reason",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-009", "A", DAY0) | {"schema_version": 3}),
        "UNSUPPORTED_SCHEMA_VERSION",
        id="schema version 3",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-009", "A", DAY0) | {"trial_id": "NCT0"}),
        "UNKNOWN_TRIAL",
        id="unknown trial",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.enroll("01-001", "B", DAY0)
            | {"event_id": next(e.event_id for e in svc.entries(TRIAL_ID) if e.event_id)}
        ),
        "EVENT_ID_CONFLICT",
        id="same event_id, different content",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.envelope("subject.alive", "09-999", DAY0, {})),
        "SUBJECT_NOT_ENROLLED",
        id="subject not enrolled",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-001", "A", DAY0)),
        "SUBJECT_ALREADY_ENROLLED",
        id="subject enrolled twice",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-009", "B", DAY0)),
        "COHORT_NOT_OPEN",
        id="cohort B before escalation",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-009", "EXPANSION", DAY0)),
        "COHORT_NOT_OPEN",
        id="expansion before the MTD",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.enroll("01-009", "A", DAY0)),
        "COHORT_FULL",
        id="a 4th subject before the first 3 are evaluable",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope(
                "record.voided",
                "01-001",
                DAY0,
                {"target_event_id": "00000000-0000-4000-8000-000000000000"},
                reason="typo",
            )
        ),
        "TARGET_NOT_FOUND",
        id="void of an unknown event",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope(
                "record.voided",
                "01-001",
                DAY0,
                {"target_event_id": next(e.event_id for e in svc.entries(TRIAL_ID) if e.event_id)},
                reason="wrong subject",
            )
        ),
        "TARGET_NOT_CORRECTABLE",
        id="void of an enrollment",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope(
                "record.corrected",
                "01-001",
                DAY0,
                {"target_event_id": _ae_id(svc), "data": {"ae_id": "AE-1", "grade": 9}},
                reason="fix",
            )
        ),
        "SCHEMA_INVALID",
        id="correction whose data is invalid for the target",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope("adverse_event.updated", "01-001", DAY0, {"ae_id": "AE-404", "grade": 3})
        ),
        "ADVERSE_EVENT_UNKNOWN",
        id="update of an unknown adverse event",
    ),
    pytest.param(
        lambda s, svc: json.dumps(
            s.envelope(
                "adverse_event.reported",
                "01-001",
                DAY0,
                {"ae_id": "AE-1", "term": "rash", "grade": 2, "serious": False, "related": False},
            )
        ),
        "ADVERSE_EVENT_DUPLICATE",
        id="adverse event reported twice",
    ),
    pytest.param(
        lambda s, svc: json.dumps(s.envelope("subject.alive", "01-001", date(2027, 1, 1), {})),
        "OCCURRED_IN_FUTURE",
        id="a fact dated after it was recorded",
    ),
]


@pytest.mark.parametrize(("make", "reason_code"), REJECTIONS)
def test_rejection_leaves_the_store_unchanged(tmp_path: Path, make: Any, reason_code: str) -> None:
    """Each way a submission can be wrong gives its reason code, a message, and no change."""
    service = open_ledger(tmp_path)
    script = Script()
    _given_three_in_a(service, script)
    before = store_snapshot(service)
    result = service.submit(make(script, service))
    assert result.reason_code == reason_code
    assert result.message
    assert store_snapshot(service) == before


def test_void_twice_is_rejected(tmp_path: Path) -> None:
    """A second void of the same event is refused as already voided."""
    service = open_ledger(tmp_path)
    script = Script()
    _given_three_in_a(service, script)
    target = _ae_id(service)
    void = script.envelope(
        "record.voided",
        "01-001",
        DAY0,
        {"target_event_id": target},
        reason="entered for the wrong subject",
    )
    assert service.submit(json.dumps(void)).outcome == "recorded"
    before = store_snapshot(service)
    again = script.envelope(
        "record.voided", "01-001", DAY0, {"target_event_id": target}, reason="again"
    )
    assert service.submit(json.dumps(again)).reason_code == "TARGET_ALREADY_VOIDED"
    assert store_snapshot(service) == before


def test_stopped_trial_refuses_enrollment(tmp_path: Path) -> None:
    """After a stop for toxicity every enrollment is refused with TRIAL_STOPPED."""
    service = open_ledger(tmp_path)
    script = Script()
    run_cohort(service, script, "A", [True, True, False], DAY0, 1)
    before = store_snapshot(service)
    result = service.submit(json.dumps(script.enroll("01-050", "A", DAY0 + timedelta(days=40))))
    assert result.reason_code == "TRIAL_STOPPED"
    assert store_snapshot(service) == before


def test_protocol_total_limits_enrollment(tmp_path: Path) -> None:
    """A protocol whose total is reached refuses further enrollment with ENROLLMENT_COMPLETE."""
    raw = bundled_protocol().to_mapping() | {"max_subjects": 3}
    service = LedgerService(str(tmp_path / "ledger.db"), clock=FixedClock())
    service.open_trial(ProtocolDefinition.from_mapping(raw))
    script = Script()
    service.submit_many(lines([script.enroll(f"01-00{n}", "A", DAY0) for n in range(1, 4)]))
    before = store_snapshot(service)
    assert service.submit(json.dumps(script.enroll("01-004", "A", DAY0))).reason_code == (
        "ENROLLMENT_COMPLETE"
    )
    assert store_snapshot(service) == before
