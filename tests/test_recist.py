"""RECIST 1.1 tables (clinical-rules.md §2), walked row by row, and their thresholds."""

from __future__ import annotations

import json
from datetime import date, timedelta
from importlib import resources
from typing import Any

import pytest

from ledger.aggregates.protocol import AssessmentSchedule, ProtocolDefinition, ProtocolInvalidError
from ledger.projections.best_response import BestResponse, best_overall_response
from ledger.projections.recist import (
    AssessmentRules,
    Response,
    TargetLesion,
    TimePointResponse,
    TumorAssessment,
    derive_time_points,
    overall_response_non_target_only,
    overall_response_with_target,
    study_day,
    target_response,
)

C1D1 = date(2024, 3, 1)
RULES = AssessmentRules()


def day(n: int) -> date:
    """Calendar date of study day ``n`` (C1D1 is day 1)."""
    return C1D1 + timedelta(days=n - 1)


def lesion(lesion_id: str, mm: float | None, nodal: bool = False) -> TargetLesion:
    return TargetLesion(lesion_id, mm, nodal)


def assessment(
    on: date,
    lesions: tuple[TargetLesion, ...] = (),
    non_target: str = "NONE",
    new: bool = False,
    *,
    baseline: bool = False,
    investigator: str | None = None,
) -> TumorAssessment:
    return TumorAssessment(on, baseline, lesions, non_target, new, investigator)


def baseline_with(*mm: float, non_target: str = "NONE") -> TumorAssessment:
    """A baseline with non-nodal target lesions T1, T2, … measuring ``mm``."""
    lesions = tuple(lesion(f"T{i}", m) for i, m in enumerate(mm, start=1))
    return assessment(day(-10), lesions, non_target, baseline=True)


def followup(
    on: date,
    *mm: float | None,
    non_target: str = "NONE",
    new: bool = False,
    investigator: str | None = None,
) -> TumorAssessment:
    lesions = tuple(lesion(f"T{i}", m) for i, m in enumerate(mm, start=1))
    return assessment(on, lesions, non_target, new, investigator=investigator)


# --- time-point table, subjects with target disease -------------------------------------------


@pytest.mark.parametrize(
    ("target", "non_target", "new", "expected"),
    [
        pytest.param("CR", "CR", False, "CR", id="CR / CR / no → CR"),
        pytest.param("CR", "NONE", False, "CR", id="CR / none / no → CR"),
        pytest.param("CR", "NON_CR_NON_PD", False, "PR", id="CR / non-CR/non-PD / no → PR"),
        pytest.param("CR", "NE", False, "PR", id="CR / not evaluated / no → PR"),
        pytest.param("PR", "NON_CR_NON_PD", False, "PR", id="PR / non-CR/non-PD / no → PR"),
        pytest.param("PR", "CR", False, "PR", id="PR / CR (non-PD) / no → PR"),
        pytest.param("PR", "NONE", False, "PR", id="PR / none (non-PD) / no → PR"),
        pytest.param("PR", "NE", False, "PR", id="PR / not all evaluated / no → PR"),
        pytest.param("SD", "NON_CR_NON_PD", False, "SD", id="SD / non-CR/non-PD / no → SD"),
        pytest.param("SD", "CR", False, "SD", id="SD / CR (non-PD) / no → SD"),
        pytest.param("SD", "NE", False, "SD", id="SD / not all evaluated / no → SD"),
        pytest.param("NE", "NON_CR_NON_PD", False, "NE", id="NE / non-CR/non-PD / no → NE"),
        pytest.param("NE", "CR", False, "NE", id="NE / CR / no → NE"),
        pytest.param("NE", "NE", False, "NE", id="NE / NE / no → NE"),
        pytest.param("PD", "CR", False, "PD", id="PD / CR / no → PD"),
        pytest.param("PD", "NE", False, "PD", id="PD / NE / no → PD"),
        pytest.param("PD", "NON_CR_NON_PD", True, "PD", id="PD / non-CR/non-PD / yes → PD"),
        pytest.param("CR", "PD", False, "PD", id="CR / PD / no → PD"),
        pytest.param("SD", "PD", False, "PD", id="SD / PD / no → PD"),
        pytest.param("NE", "PD", False, "PD", id="NE / PD / no → PD"),
        pytest.param("CR", "CR", True, "PD", id="CR / CR / yes → PD"),
        pytest.param("PR", "NON_CR_NON_PD", True, "PD", id="PR / non-CR/non-PD / yes → PD"),
        pytest.param("NE", "NE", True, "PD", id="NE / NE / yes → PD"),
    ],
)
def test_time_point_with_target_disease(
    target: Response, non_target: str, new: bool, expected: Response
) -> None:
    """Each row of the target-disease time-point table gives its overall response."""
    assert overall_response_with_target(target, non_target, new) == expected


@pytest.mark.parametrize(
    ("non_target", "new", "expected"),
    [
        pytest.param("CR", False, "CR", id="CR / no → CR"),
        pytest.param("NON_CR_NON_PD", False, "NON_CR_NON_PD", id="non-CR/non-PD / no → same"),
        pytest.param("NE", False, "NE", id="not all evaluated / no → NE"),
        pytest.param("NONE", False, "NE", id="none recorded for existing disease → NE"),
        pytest.param("PD", False, "PD", id="unequivocal PD / no → PD"),
        pytest.param("PD", True, "PD", id="unequivocal PD / yes → PD"),
        pytest.param("CR", True, "PD", id="CR / yes → PD"),
        pytest.param("NON_CR_NON_PD", True, "PD", id="non-CR/non-PD / yes → PD"),
        pytest.param("NE", True, "PD", id="NE / yes → PD"),
    ],
)
def test_time_point_non_target_only(non_target: str, new: bool, expected: Response) -> None:
    """Each row of the non-target-only time-point table gives its overall response."""
    assert overall_response_non_target_only(non_target, new) == expected


def test_table_functions_refuse_unknown_codes() -> None:
    """An unknown non-target code is an error, never a silent default row."""
    with pytest.raises(ValueError, match="non-target"):
        overall_response_with_target("SD", "STABLE", False)
    with pytest.raises(ValueError, match="non-target"):
        overall_response_non_target_only("STABLE", False)
    with pytest.raises(ValueError, match="target response"):
        overall_response_with_target("NON_CR_NON_PD", "CR", False)


# --- best overall response table ---


def tp(study_day_n: int, response: Response, target: bool = True) -> TimePointResponse:
    """A derived time point on study day ``n``; ``target`` says the subject has target disease."""
    return TimePointResponse(day(study_day_n), response, response if target else None)


@pytest.mark.parametrize(
    ("points", "unconfirmed", "confirmed"),
    [
        pytest.param([tp(57, "CR"), tp(113, "CR")], "CR", "CR", id="CR then CR → CR"),
        pytest.param([tp(57, "CR"), tp(113, "PR")], "CR", "PR", id="CR then PR → PR (chosen)"),
        pytest.param([tp(57, "CR"), tp(113, "SD")], "CR", "SD", id="CR then SD, SD met → SD"),
        pytest.param([tp(29, "CR"), tp(43, "SD")], "CR", "PD", id="CR then SD, SD short → PD"),
        pytest.param([tp(57, "CR"), tp(113, "PD")], "CR", "SD", id="CR then PD, SD met → SD"),
        pytest.param([tp(29, "CR"), tp(43, "PD")], "CR", "PD", id="CR then PD, SD short → PD"),
        pytest.param([tp(57, "CR"), tp(113, "NE")], "CR", "SD", id="CR then NE, SD met → SD"),
        pytest.param([tp(29, "CR"), tp(43, "NE")], "CR", "NE", id="CR then NE, SD short → NE"),
        pytest.param([tp(57, "PR"), tp(113, "CR")], "CR", "PR", id="PR then CR → PR"),
        pytest.param([tp(57, "PR"), tp(113, "PR")], "PR", "PR", id="PR then PR → PR"),
        pytest.param([tp(57, "PR"), tp(113, "SD")], "PR", "SD", id="PR then SD → SD"),
        pytest.param([tp(57, "PR"), tp(113, "PD")], "PR", "SD", id="PR then PD, SD met → SD"),
        pytest.param([tp(29, "PR"), tp(43, "PD")], "PR", "PD", id="PR then PD, SD short → PD"),
        pytest.param([tp(57, "PR"), tp(113, "NE")], "PR", "SD", id="PR then NE, SD met → SD"),
        pytest.param([tp(29, "PR"), tp(43, "NE")], "PR", "NE", id="PR then NE, SD short → NE"),
        pytest.param([tp(57, "NE"), tp(113, "NE")], "NE", "NE", id="NE then NE → NE"),
    ],
)
def test_best_response_table(
    points: list[TimePointResponse], unconfirmed: Response, confirmed: Response
) -> None:
    """Each row of the best-response table gives its unconfirmed and confirmed BOR."""
    best = best_overall_response(points, C1D1, RULES)
    assert (best.unconfirmed, best.confirmed) == (unconfirmed, confirmed)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param(
            [tp(57, "CR"), tp(113, "CR")],
            BestResponse("CR", "CR", day(57), day(113)),
            id="CR confirmed: origin and confirmation dates",
        ),
        pytest.param(
            [tp(57, "PR"), tp(113, "CR"), tp(169, "CR")],
            BestResponse("CR", "CR", day(57), day(113)),
            id="DoR origin is the first confirmed PR before a confirmed CR",
        ),
        pytest.param(
            [tp(57, "PR"), tp(84, "PR")],
            BestResponse("PR", "SD"),
            id="27 days apart does not confirm",
        ),
        pytest.param(
            [tp(57, "PR"), tp(85, "PR")],
            BestResponse("PR", "PR", day(57), day(85)),
            id="exactly 28 days apart confirms",
        ),
        pytest.param(
            [tp(57, "PR"), tp(85, "NE"), tp(113, "PR")],
            BestResponse("PR", "PR", day(57), day(113)),
            id="an NE visit between does not break confirmation",
        ),
        pytest.param(
            [tp(57, "PR"), tp(85, "SD"), tp(113, "PR")],
            BestResponse("PR", "SD"),
            id="an SD visit between breaks confirmation",
        ),
        pytest.param(
            [tp(57, "CR"), tp(85, "PR"), tp(113, "CR")],
            BestResponse("CR", "PR", day(57), day(85)),
            id="CR PR CR: CR unconfirmed, PR confirmed",
        ),
        pytest.param(
            [tp(57, "PR"), tp(113, "PD"), tp(169, "PR")],
            BestResponse("PR", "SD"),
            id="responses after the first PD do not count",
        ),
        pytest.param(
            [tp(48, "SD"), tp(60, "PD")],
            BestResponse("PD", "PD"),
            id="SD on day 48 is short of the minimum duration",
        ),
        pytest.param(
            [tp(49, "SD"), tp(60, "PD")],
            BestResponse("SD", "SD"),
            id="SD on day 49 meets the minimum duration",
        ),
        pytest.param(
            [tp(30, "PR"), tp(40, "SD")],
            BestResponse("PR", "NE"),
            id="PR then SD with SD short → NE (minimum duration applied uniformly)",
        ),
        pytest.param(
            [tp(57, "NON_CR_NON_PD", target=False)],
            BestResponse("NON_CR_NON_PD", "NON_CR_NON_PD"),
            id="non-target only disease: non-CR/non-PD",
        ),
        pytest.param(
            [tp(57, "CR", target=False), tp(70, "CR", target=False)],
            BestResponse("CR", "NON_CR_NON_PD"),
            id="non-target only, unconfirmed CR → non-CR/non-PD",
        ),
        pytest.param([], BestResponse("NE", "NE"), id="no post-baseline assessment → NE"),
        pytest.param([tp(57, "PD")], BestResponse("PD", "PD"), id="PD first → PD"),
    ],
)
def test_best_response_details(points: list[TimePointResponse], expected: BestResponse) -> None:
    """Confirmation interval, intervening visits, DoR origin and the minimum SD duration."""
    assert best_overall_response(points, C1D1, RULES) == expected


def test_best_response_uses_the_given_rules() -> None:
    """Confirmation and SD thresholds come from the rules passed in, not from constants."""
    rules = AssessmentRules(confirmation_days=56, min_sd_days=113)
    points = [tp(57, "PR"), tp(85, "PR")]
    assert best_overall_response(points, C1D1, rules) == BestResponse("PR", "NE")


def test_best_response_ignores_input_order() -> None:
    """Time points are sorted by date before the table is read."""
    points = [tp(113, "CR"), tp(57, "CR")]
    assert best_overall_response(points, C1D1, RULES).confirmed == "CR"


# --- thresholds ---


@pytest.mark.parametrize(
    ("lesions", "baseline_sum", "nadir_sum", "expected"),
    [
        pytest.param((lesion("T1", 70.0),), 100.0, 100.0, "PR", id="exactly 30 % below → PR"),
        pytest.param((lesion("T1", 70.1),), 100.0, 100.0, "SD", id="29.9 % below → SD"),
        pytest.param(
            (lesion("T1", 23.31),), 33.3, 33.3, "PR", id="exactly 30 % in decimals (float says no)"
        ),
        pytest.param((lesion("T1", 30.0),), 25.0, 25.0, "PD", id="20 % and 5 mm above → PD"),
        pytest.param((lesion("T1", 24.0),), 20.0, 20.0, "SD", id="20 % but 4 mm → not PD"),
        pytest.param((lesion("T1", 59.9),), 50.0, 50.0, "SD", id="9.9 mm but 19.8 % → not PD"),
        pytest.param(
            (lesion("T1", 60.0),), 100.0, 50.0, "PD", id="PD against nadir below baseline"
        ),
        pytest.param(
            (lesion("T1", 0.0), lesion("N1", 9.9, nodal=True)),
            50.0,
            50.0,
            "CR",
            id="non-nodal gone and node < 10 mm → CR",
        ),
        pytest.param(
            (lesion("T1", 0.0), lesion("N1", 10.0, nodal=True)),
            50.0,
            50.0,
            "PR",
            id="node at 10 mm → not CR",
        ),
        pytest.param(
            (lesion("T1", 0.0), lesion("N1", 9.0, nodal=True)),
            30.0,
            4.0,
            "CR",
            id="normal node growing 5 mm is CR, not PD",
        ),
        pytest.param((lesion("T1", 5.0),), 50.0, 50.0, "PR", id="too small to measure (5 mm)"),
        pytest.param(
            (lesion("T1", 20.0), lesion("T2", None)),
            40.0,
            30.0,
            "NE",
            id="unmeasured lesion → NE",
        ),
        pytest.param(
            (lesion("T1", 40.0), lesion("T2", None)),
            40.0,
            30.0,
            "PD",
            id="unmeasured lesion but measured ones already PD → PD",
        ),
        pytest.param(
            (lesion("T1", 0.0), lesion("T2", None)),
            40.0,
            30.0,
            "NE",
            id="unmeasured lesion blocks CR",
        ),
        pytest.param((lesion("T1", 20.0),), None, None, "NE", id="no baseline sum → NE"),
        pytest.param((lesion("T1", 5.0),), 0.0, 0.0, "PD", id="regrowth of 5 mm after nadir 0"),
    ],
)
def test_target_response_thresholds(
    lesions: tuple[TargetLesion, ...],
    baseline_sum: float | None,
    nadir_sum: float | None,
    expected: Response,
) -> None:
    """Target response sits exactly at the RECIST boundaries."""
    assert target_response(lesions, baseline_sum, nadir_sum) == expected


def test_sum_of_diameters_adds_long_and_short_axes_as_given() -> None:
    """Long axes of non-nodal and short axes of nodal lesions add up exactly; any gap gives None."""
    base = assessment(day(-10), (lesion("T1", 30.0), lesion("N1", 20.0, nodal=True)), baseline=True)
    measured = assessment(day(57), (lesion("T1", 21.3), lesion("N1", 15.2, nodal=True)))
    unmeasured = assessment(day(113), (lesion("T1", 21.3), lesion("N1", None, nodal=True)))
    first, second = derive_time_points([base, measured, unmeasured])
    assert (first.target_sum_mm, first.nadir_sum_mm) == (36.5, 50.0)
    assert first.pct_change_from_baseline == -27.0
    assert second.target_sum_mm is None


# --- derive_time_points ---


def test_nadir_below_baseline_drives_pd() -> None:
    """PD is judged against the smallest sum on study, even while still below baseline."""
    points = derive_time_points(
        [baseline_with(60.0, 40.0), followup(day(57), 30.0, 20.0), followup(day(113), 40.0, 20.0)]
    )
    first, second = points
    assert first.response == "PR"
    assert first.target_sum_mm == 50.0
    assert first.pct_change_from_baseline == pytest.approx(-50.0)
    assert second.response == "PD"
    assert second.nadir_sum_mm == 50.0
    assert second.target_sum_mm == 60.0
    assert second.pct_change_from_baseline == pytest.approx(-40.0)
    assert second.pct_change_from_nadir == pytest.approx(20.0)


def test_new_lesion_is_pd_whatever_the_targets() -> None:
    """A new lesion makes the time point PD even while the targets shrink."""
    (point,) = derive_time_points([baseline_with(50.0), followup(day(57), 10.0, new=True)])
    assert point.target_response == "PR"
    assert point.response == "PD"


def test_missing_lesion_in_followup_is_unmeasured() -> None:
    """A baseline target lesion absent from a follow-up makes the target response NE."""
    base = baseline_with(30.0, 20.0)
    only_t1 = assessment(day(57), (lesion("T1", 10.0), lesion("X9", 99.0)))
    (point,) = derive_time_points([base, only_t1])
    assert point.response == "NE"
    assert point.target_sum_mm is None
    assert point.pct_change_from_baseline is None


def test_discrepancy_flag() -> None:
    """The investigator's call is kept beside the derived one and disagreement is flagged."""
    base = baseline_with(50.0)
    points = derive_time_points(
        [
            base,
            followup(day(57), 40.0, investigator="PR"),
            followup(day(113), 30.0, investigator="PR"),
            followup(day(169), 30.0),
        ]
    )
    assert [(p.response, p.investigator_response, p.discrepant) for p in points] == [
        ("SD", "PR", True),
        ("PR", "PR", False),
        ("PR", None, False),
    ]


def test_discrepancy_flag_for_non_target_only_disease() -> None:
    """The investigator's SD is the CRF's name for non-CR/non-PD; anything else still disagrees."""
    base = assessment(day(-10), (), "NON_CR_NON_PD", baseline=True)
    points = derive_time_points(
        [
            base,
            assessment(day(57), (), "NON_CR_NON_PD", investigator="SD"),
            assessment(day(113), (), "NON_CR_NON_PD", investigator="PR"),
            assessment(day(169), (), "PD", investigator="SD"),
            assessment(day(225), (), "CR", investigator="SD"),
        ]
    )
    assert [(p.response, p.investigator_response, p.discrepant) for p in points] == [
        ("NON_CR_NON_PD", "SD", False),
        ("NON_CR_NON_PD", "PR", True),
        ("PD", "SD", True),
        ("CR", "SD", True),
    ]


def test_no_baseline_gives_ne_even_with_new_lesions() -> None:
    """Without a baseline nothing can be judged, not even a 'new' lesion."""
    points = derive_time_points([followup(day(57), 10.0, new=True), followup(day(113), 5.0)])
    assert [p.response for p in points] == ["NE", "NE"]
    assert all(p.target_response is None for p in points)


def test_latest_baseline_before_first_followup_is_the_reference() -> None:
    """The latest baseline counts; a baseline-flagged record after a follow-up is ignored."""
    early = assessment(day(-30), (lesion("T1", 100.0),), baseline=True)
    late = assessment(day(-5), (lesion("T1", 50.0),), baseline=True)
    stray = assessment(day(60), (lesion("T1", 10.0),), baseline=True)
    points = derive_time_points([followup(day(57), 40.0), stray, late, early])
    assert [(p.assessed_on, p.response) for p in points] == [(day(57), "SD")]
    assert points[0].pct_change_from_baseline == pytest.approx(-20.0)


def test_non_target_only_subject_uses_second_table() -> None:
    """A subject without target lesions is read with the non-target-only table."""
    base = assessment(day(-10), (), "NON_CR_NON_PD", baseline=True)
    points = derive_time_points(
        [
            base,
            assessment(day(57), (), "NON_CR_NON_PD"),
            assessment(day(113), (), "NONE"),
            assessment(day(169), (), "CR"),
        ]
    )
    assert [(p.response, p.target_response) for p in points] == [
        ("NON_CR_NON_PD", None),
        ("NE", None),
        ("CR", None),
    ]


def test_subject_without_any_disease() -> None:
    """With no disease at baseline a time point is NE, unless a new lesion appears (PD)."""
    base = assessment(day(-10), (), "NONE", baseline=True)
    points = derive_time_points(
        [base, assessment(day(57), (), "NONE"), assessment(day(113), (), "NONE", True)]
    )
    assert [p.response for p in points] == ["NE", "PD"]


def test_non_target_none_after_baseline_disease_reads_as_not_evaluated() -> None:
    """'NONE' for non-target disease the baseline had cannot turn a target CR into overall CR."""
    base = baseline_with(30.0, non_target="NON_CR_NON_PD")
    (point,) = derive_time_points([base, followup(day(57), 0.0, non_target="NONE")])
    assert (point.target_response, point.response) == ("CR", "PR")


def test_derived_time_points_feed_best_response() -> None:
    """A PR confirmed 56 days later gives confirmed PR with the DoR origin on the first PR."""
    points = derive_time_points(
        [baseline_with(50.0), followup(day(57), 30.0), followup(day(113), 25.0)]
    )
    assert best_overall_response(points, C1D1, RULES) == BestResponse("PR", "PR", day(57), day(113))


# --- rules and validation ---


def _protocol_file() -> dict[str, Any]:
    text = resources.files("ledger").joinpath("protocols/NCT05406206.json").read_text("utf-8")
    raw: dict[str, Any] = json.loads(text)
    return raw


def test_rules_default_to_the_protocol() -> None:
    """Defaults equal protocol.md: 28-day confirmation, day 49, 56 ± 7 days, 119 days."""
    assert AssessmentRules() == AssessmentRules(28, 49, 56, 7, 119)
    protocol = ProtocolDefinition.from_mapping(_protocol_file())
    assert AssessmentRules.of(protocol.assessments) == AssessmentRules()


def test_rules_follow_an_amended_schedule() -> None:
    """The rules are read from the protocol's validated schedule, field by field, so an amendment
    to the schedule changes them; nothing falls back to a default."""
    schedule = AssessmentSchedule(
        baseline_window_days=28,
        interval_days=42,
        window_days=5,
        confirmation_days=30,
        min_sd_days=35,
        missed_visits_days=89,
    )
    assert AssessmentRules.of(schedule) == AssessmentRules(30, 35, 42, 5, 89)


@pytest.mark.parametrize(
    ("assessments", "error"),
    [
        pytest.param({"min_sd_dayz": 49}, ProtocolInvalidError, id="misspelt key"),
        pytest.param({"min_sd_days": "49"}, ProtocolInvalidError, id="string value"),
        pytest.param({"min_sd_days": True}, ProtocolInvalidError, id="boolean value"),
        pytest.param({"min_sd_days": 0}, ProtocolInvalidError, id="zero days"),
    ],
)
def test_protocol_refuses_bad_assessment_rules(
    assessments: dict[str, object], error: type[Exception]
) -> None:
    """A bad protocol definition fails loudly instead of falling back to a default."""
    raw = _protocol_file()
    raw["assessments"] = {**raw["assessments"], **assessments}
    with pytest.raises(error):
        ProtocolDefinition.from_mapping(raw)


@pytest.mark.parametrize(
    ("field_value", "error"),
    [
        pytest.param("49", TypeError, id="string value"),
        pytest.param(True, TypeError, id="boolean value"),
        pytest.param(0, ValueError, id="zero days"),
    ],
)
def test_rules_refuse_bad_values(field_value: object, error: type[Exception]) -> None:
    """Rules built by hand are checked the same way."""
    with pytest.raises(error):
        AssessmentRules(min_sd_days=field_value)  # type: ignore[arg-type]


def test_study_day_counts_c1d1_as_day_one() -> None:
    """Study day numbering is date − C1D1 + 1."""
    assert study_day(C1D1, C1D1) == 1
    assert study_day(date(2024, 4, 18), C1D1) == 49


def test_assessment_validation() -> None:
    """Unknown codes, duplicate lesion ids and negative diameters are refused at the edge."""
    with pytest.raises(ValueError, match="non-target"):
        assessment(C1D1, (), "STABLE")
    with pytest.raises(ValueError, match="investigator"):
        assessment(C1D1, (), "NONE", investigator="VGPR")
    with pytest.raises(ValueError, match="duplicate"):
        assessment(C1D1, (lesion("T1", 1.0), lesion("T1", 2.0)))
    with pytest.raises(ValueError, match="diameter"):
        lesion("T1", -1.0)
