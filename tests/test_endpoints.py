"""PFS / OS / DoR censoring (clinical-rules.md §3) row by row, and the Clopper–Pearson interval.

Every expected ADTTE row is written out by hand: C1D1 is 2024-03-01, so the scheduled assessments
fall on 2024-04-26 (day 57), 2024-06-21 (day 113) and 2024-08-16 (day 169).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.projections.endpoints import (
    CENSOR_DATE_DESCRIPTIONS,
    CENSORING_REASONS,
    SubjectCourse,
    TimeToEvent,
    clopper_pearson,
    duration_of_response,
    overall_survival,
    progression_free_survival,
)
from ledger.projections.recist import AssessmentRules, Response, TimePointResponse

C1D1 = date(2024, 3, 1)
RULES = AssessmentRules()
PFS = "Progression-Free Survival (days)"
OS = "Overall Survival (days)"
DOR = "Duration of Response (days)"
LAST_ADEQUATE = "Last adequate tumor assessment"


def at(iso: str, response: Response) -> TimePointResponse:
    """A derived post-baseline time point on a written-out date."""
    return TimePointResponse(date.fromisoformat(iso), response, response)


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def course(*points: TimePointResponse, **facts: object) -> SubjectCourse:
    """Subject S1 treated from 2024-03-01 with a baseline, plus the given time points and facts."""
    values: dict[str, object] = {"usubjid": "S1", "c1d1": C1D1, "has_baseline": True}
    values.update(facts)
    values["time_points"] = points
    return SubjectCourse(**values)  # type: ignore[arg-type]


def pfs_row(adt: str, aval: int, cnsr: int, evntdesc: str, cnsdtdsc: str | None) -> TimeToEvent:
    return TimeToEvent("S1", "PFS", PFS, C1D1, d(adt), aval, cnsr, evntdesc, cnsdtdsc)


def os_row(adt: str, aval: int, cnsr: int, evntdesc: str, cnsdtdsc: str | None) -> TimeToEvent:
    return TimeToEvent("S1", "OS", OS, C1D1, d(adt), aval, cnsr, evntdesc, cnsdtdsc)


def dor_row(adt: str, aval: int, cnsr: int, evntdesc: str, cnsdtdsc: str | None) -> TimeToEvent:
    return TimeToEvent("S1", "DOR", DOR, d("2024-04-26"), d(adt), aval, cnsr, evntdesc, cnsdtdsc)


NO_PD = "No progression or death"
MISSED = "Progression or death after two or more missed tumor assessments"
NEW_THERAPY = "New anticancer therapy started before progression"
BEFORE_THERAPY = "Last adequate tumor assessment before new anticancer therapy"


@pytest.mark.parametrize(
    ("subject", "cutoff", "expected"),
    [
        pytest.param(
            course(at("2024-06-21", "PD"), has_baseline=False),
            None,
            pfs_row("2024-03-01", 1, 1, "No baseline tumor assessment", "C1D1"),
            id="no baseline → censored at C1D1",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-05-20", "PD")),
            None,
            pfs_row("2024-05-20", 81, 0, "Disease progression", None),
            id="PD between scheduled visits → event on the assessment date",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "SD")),
            None,
            pfs_row("2024-06-21", 113, 2, NO_PD, LAST_ADEQUATE),
            id="no PD, no death → censored at last adequate assessment",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "NE")),
            None,
            pfs_row("2024-04-26", 57, 2, NO_PD, LAST_ADEQUATE),
            id="an NE assessment is not adequate",
        ),
        pytest.param(
            course(at("2024-04-26", "NE")),
            None,
            pfs_row("2024-03-01", 1, 2, NO_PD, "C1D1"),
            id="no PD, no adequate assessment → censored at C1D1",
        ),
        pytest.param(
            course(
                at("2024-04-26", "SD"),
                discontinued_on=d("2024-05-10"),
            ),
            None,
            pfs_row(
                "2024-04-26",
                57,
                3,
                "Treatment discontinued without documented progression",
                LAST_ADEQUATE,
            ),
            id="treatment stopped without PD → censored at last adequate assessment",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "SD"), withdrawn_on=d("2024-07-01")),
            None,
            pfs_row(
                "2024-06-21",
                113,
                4,
                "Withdrawn from study without documented progression",
                LAST_ADEQUATE,
            ),
            id="withdrawal without PD → censored at last adequate assessment",
        ),
        pytest.param(
            course(
                at("2024-04-26", "SD"),
                at("2024-06-21", "PD"),
                discontinued_on=d("2024-05-10"),
            ),
            None,
            pfs_row("2024-06-21", 113, 0, "Disease progression", None),
            id="PD recorded after treatment stopped is still an event",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "PD"), new_therapy_on=d("2024-06-01")),
            None,
            pfs_row("2024-04-26", 57, 5, NEW_THERAPY, BEFORE_THERAPY),
            id="new anticancer therapy before PD → censored at last adequate before it",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "SD"), new_therapy_on=d("2024-06-21")),
            None,
            pfs_row("2024-06-21", 113, 5, NEW_THERAPY, BEFORE_THERAPY),
            id="a scan on the day new therapy starts counts as before it",
        ),
        pytest.param(
            course(at("2024-04-26", "NE"), new_therapy_on=d("2024-05-01")),
            None,
            pfs_row("2024-03-01", 1, 5, NEW_THERAPY, "C1D1"),
            id="new therapy with no adequate assessment before it → C1D1",
        ),
        pytest.param(
            course(at("2024-04-26", "PD"), new_therapy_on=d("2024-04-26")),
            None,
            pfs_row("2024-04-26", 57, 0, "Disease progression", None),
            id="PD on the day new therapy starts is an event",
        ),
        pytest.param(
            course(death_on=d("2024-04-10")),
            None,
            pfs_row("2024-04-10", 41, 0, "Death", None),
            id="death before the first post-baseline assessment → event",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "SD"), death_on=d("2024-05-30")),
            None,
            pfs_row("2024-05-30", 91, 0, "Death", None),
            id="death between adequate assessments → event",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-05-30", "PD"), death_on=d("2024-05-30")),
            None,
            pfs_row("2024-05-30", 91, 0, "Disease progression", None),
            id="PD and death on the same day → progression event",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "NE"), at("2024-09-01", "PD")),
            None,
            pfs_row("2024-04-26", 57, 6, MISSED, LAST_ADEQUATE),
            id="PD after two missed visits (128 days) → censored at last adequate",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-08-23", "PD")),
            None,
            pfs_row("2024-08-23", 176, 0, "Disease progression", None),
            id="PD exactly 119 days after last adequate → event",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-08-24", "PD")),
            None,
            pfs_row("2024-04-26", 57, 6, MISSED, LAST_ADEQUATE),
            id="PD 120 days after last adequate → censored",
        ),
        pytest.param(
            course(death_on=d("2024-06-28")),
            None,
            pfs_row("2024-06-28", 120, 0, "Death", None),
            id="death 119 days after C1D1 with no assessment → event",
        ),
        pytest.param(
            course(death_on=d("2024-06-29")),
            None,
            pfs_row("2024-03-01", 1, 6, MISSED, "C1D1"),
            id="death 120 days after C1D1 with no assessment → censored at C1D1",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "SD"), at("2024-08-16", "PD")),
            d("2024-08-01"),
            pfs_row("2024-06-21", 113, 2, NO_PD, LAST_ADEQUATE),
            id="cutoff: PD after the cutoff ignored, censored at last adequate before it",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), death_on=d("2024-07-15")),
            d("2024-07-01"),
            pfs_row("2024-04-26", 57, 2, NO_PD, LAST_ADEQUATE),
            id="cutoff: death after the cutoff ignored",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), at("2024-06-21", "PD"), new_therapy_on=d("2024-07-01")),
            d("2024-06-21"),
            pfs_row("2024-06-21", 113, 0, "Disease progression", None),
            id="cutoff: PD on the cutoff date counts",
        ),
        pytest.param(
            course(at("2024-04-26", "SD"), withdrawn_on=d("2024-07-01")),
            d("2024-06-01"),
            pfs_row("2024-04-26", 57, 2, NO_PD, LAST_ADEQUATE),
            id="cutoff: withdrawal after the cutoff ignored",
        ),
    ],
)
def test_pfs_censoring_table(
    subject: SubjectCourse, cutoff: date | None, expected: TimeToEvent
) -> None:
    """Each row of the PFS censoring table gives the hand-written ADTTE row."""
    assert progression_free_survival(subject, RULES, cutoff) == expected


def test_pfs_missed_visit_threshold_comes_from_rules() -> None:
    """A shorter schedule in the rules moves the missed-visit threshold."""
    subject = course(at("2024-04-26", "SD"), at("2024-08-23", "PD"))
    rules = AssessmentRules(visit_interval_days=42, missed_visits_days=91)
    assert progression_free_survival(subject, rules, None) == pfs_row(
        "2024-04-26", 57, 6, MISSED, LAST_ADEQUATE
    )


def test_pfs_none_for_never_treated_or_treated_after_cutoff() -> None:
    """No C1D1 (or C1D1 after the cutoff) means no PFS row: not in the analysis set yet."""
    assert progression_free_survival(course(c1d1=None), RULES, None) is None
    assert progression_free_survival(course(), RULES, d("2024-02-01")) is None


# --- OS ---


@pytest.mark.parametrize(
    ("subject", "cutoff", "expected"),
    [
        pytest.param(
            course(death_on=d("2024-05-30"), last_known_alive_on=d("2024-05-29")),
            None,
            os_row("2024-05-30", 91, 0, "Death", None),
            id="death → event",
        ),
        pytest.param(
            course(at("2024-06-21", "SD"), last_known_alive_on=d("2024-07-10")),
            None,
            os_row("2024-07-10", 132, 7, "Alive at last contact", "Last known alive date"),
            id="alive → censored at last known alive",
        ),
        pytest.param(
            course(at("2024-06-21", "SD"), last_known_alive_on=d("2024-04-01")),
            None,
            os_row("2024-06-21", 113, 7, "Alive at last contact", "Last known alive date"),
            id="a later dated fact in the course extends last known alive",
        ),
        pytest.param(
            course(),
            None,
            os_row("2024-03-01", 1, 7, "Alive at last contact", "Last known alive date"),
            id="nothing after C1D1 → censored at C1D1",
        ),
        pytest.param(
            course(last_known_alive_on=d("2024-09-01")),
            d("2024-08-01"),
            os_row("2024-08-01", 154, 8, "Alive at data cutoff", "Data cutoff date"),
            id="cutoff with later facts → censored at the cutoff",
        ),
        pytest.param(
            course(death_on=d("2024-09-01"), last_known_alive_on=d("2024-07-10")),
            d("2024-08-01"),
            os_row("2024-08-01", 154, 8, "Alive at data cutoff", "Data cutoff date"),
            id="death after the cutoff → alive at the cutoff",
        ),
        pytest.param(
            course(last_known_alive_on=d("2024-07-10")),
            d("2024-08-01"),
            os_row("2024-07-10", 132, 7, "Alive at last contact", "Last known alive date"),
            id="cutoff after every fact → censored at last known alive",
        ),
        pytest.param(
            course(death_on=d("2024-08-01")),
            d("2024-08-01"),
            os_row("2024-08-01", 154, 0, "Death", None),
            id="death on the cutoff date → event",
        ),
    ],
)
def test_overall_survival(
    subject: SubjectCourse, cutoff: date | None, expected: TimeToEvent
) -> None:
    """OS: death is the event; otherwise last known alive, or the cutoff when facts run past it."""
    assert overall_survival(subject, cutoff) == expected


def test_os_none_for_never_treated() -> None:
    """A subject never treated has no OS row."""
    assert overall_survival(course(c1d1=None), None) is None


# --- DoR ---

RESPONDER = {"first_confirmed_response_on": d("2024-04-26")}


@pytest.mark.parametrize(
    ("subject", "cutoff", "expected"),
    [
        pytest.param(
            course(
                at("2024-04-26", "PR"), at("2024-06-21", "PR"), at("2024-08-16", "PD"), **RESPONDER
            ),
            None,
            dor_row("2024-08-16", 113, 0, "Disease progression", None),
            id="PD after confirmed response → event",
        ),
        pytest.param(
            course(at("2024-04-26", "PR"), at("2024-06-21", "PR"), **RESPONDER),
            None,
            dor_row("2024-06-21", 57, 2, NO_PD, LAST_ADEQUATE),
            id="ongoing response → censored at last adequate assessment",
        ),
        pytest.param(
            course(
                at("2024-04-26", "PR"),
                at("2024-06-21", "PR"),
                death_on=d("2024-07-01"),
                **RESPONDER,
            ),
            None,
            dor_row("2024-07-01", 67, 0, "Death", None),
            id="death during response → event",
        ),
        pytest.param(
            course(
                at("2024-04-26", "PR"), at("2024-06-21", "PR"), at("2024-11-01", "PD"), **RESPONDER
            ),
            None,
            dor_row("2024-06-21", 57, 6, MISSED, LAST_ADEQUATE),
            id="PD after two missed visits → censored at last adequate",
        ),
        pytest.param(
            course(
                at("2024-04-26", "PR"),
                at("2024-06-21", "PR"),
                at("2024-08-16", "PD"),
                new_therapy_on=d("2024-07-01"),
                **RESPONDER,
            ),
            None,
            dor_row("2024-06-21", 57, 5, NEW_THERAPY, BEFORE_THERAPY),
            id="new therapy before PD → censored at last adequate before it",
        ),
        pytest.param(
            course(
                at("2024-04-26", "PR"), at("2024-06-21", "PR"), at("2024-08-16", "PD"), **RESPONDER
            ),
            d("2024-06-01"),
            dor_row("2024-04-26", 1, 2, NO_PD, LAST_ADEQUATE),
            id="cutoff before confirmation: censored at the response itself, never C1D1",
        ),
        pytest.param(
            course(
                at("2024-04-26", "PR"),
                at("2024-06-21", "PR"),
                at("2024-08-16", "PD"),
                death_on=d("2024-03-20"),
                **RESPONDER,
            ),
            None,
            dor_row("2024-08-16", 113, 0, "Disease progression", None),
            id="facts before the response origin do not count",
        ),
    ],
)
def test_duration_of_response(
    subject: SubjectCourse, cutoff: date | None, expected: TimeToEvent
) -> None:
    """DoR runs from the first confirmed response with PFS events and censoring."""
    assert duration_of_response(subject, RULES, cutoff) == expected


def test_dor_none_for_non_responders() -> None:
    """No confirmed response (or one after the cutoff) gives no DoR row."""
    assert duration_of_response(course(at("2024-04-26", "SD")), RULES, None) is None
    responder = course(at("2024-04-26", "PR"), **RESPONDER)
    assert duration_of_response(responder, RULES, d("2024-04-01")) is None


# --- ADTTE rows ---


def test_time_to_event_refuses_inconsistent_rows() -> None:
    """AVAL must equal ADT − STARTDT + 1 and CNSDTDSC goes with censoring only."""
    with pytest.raises(ValueError, match="AVAL"):
        pfs_row("2024-04-26", 56, 0, "Disease progression", None)
    with pytest.raises(ValueError, match="CNSR"):
        pfs_row("2024-04-26", 57, 99, "?", LAST_ADEQUATE)
    with pytest.raises(ValueError, match="CNSDTDSC"):
        pfs_row("2024-04-26", 57, 2, NO_PD, None)


def test_censoring_table_is_stable() -> None:
    """The CNSR codes are a published contract: analysis programs filter on them."""
    assert dict(CENSORING_REASONS) == {
        1: "No baseline tumor assessment",
        2: "No progression or death",
        3: "Treatment discontinued without documented progression",
        4: "Withdrawn from study without documented progression",
        5: "New anticancer therapy started before progression",
        6: "Progression or death after two or more missed tumor assessments",
        7: "Alive at last contact",
        8: "Alive at data cutoff",
    }
    assert LAST_ADEQUATE in CENSOR_DATE_DESCRIPTIONS


_RESPONSES: list[Response] = ["CR", "PR", "SD", "PD", "NE"]
_dates = st.dates(min_value=date(2024, 3, 1), max_value=date(2025, 12, 31))


@st.composite
def courses(draw: st.DrawFn) -> SubjectCourse:
    """Random subject histories from C1D1 2024-03-01."""
    points = tuple(
        TimePointResponse(on, r, r)
        for on, r in zip(
            sorted(draw(st.sets(_dates, max_size=6))),
            draw(st.lists(st.sampled_from(_RESPONSES), min_size=6, max_size=6)),
            strict=False,
        )
    )
    optional = st.none() | _dates
    return SubjectCourse(
        usubjid="S1",
        c1d1=C1D1,
        has_baseline=draw(st.booleans()),
        time_points=points,
        death_on=draw(optional),
        last_known_alive_on=draw(optional),
        new_therapy_on=draw(optional),
        discontinued_on=draw(optional),
        withdrawn_on=draw(optional),
        first_confirmed_response_on=draw(optional),
    )


def _as_of(subject: SubjectCourse, cutoff: date) -> SubjectCourse:
    """The course as it stood at the cutoff: every later fact removed."""

    def keep(on: date | None) -> date | None:
        return on if on is not None and on <= cutoff else None

    return dataclasses.replace(
        subject,
        time_points=tuple(tp for tp in subject.time_points if tp.assessed_on <= cutoff),
        death_on=keep(subject.death_on),
        last_known_alive_on=keep(subject.last_known_alive_on),
        new_therapy_on=keep(subject.new_therapy_on),
        discontinued_on=keep(subject.discontinued_on),
        withdrawn_on=keep(subject.withdrawn_on),
        first_confirmed_response_on=keep(subject.first_confirmed_response_on),
    )


@given(courses(), _dates)
def test_cutoff_equals_data_as_of_cutoff(subject: SubjectCourse, cutoff: date) -> None:
    """PFS and DoR at a cutoff equal PFS and DoR of the data as it stood at that cutoff."""
    snapshot = _as_of(subject, cutoff)
    assert progression_free_survival(subject, RULES, cutoff) == progression_free_survival(
        snapshot, RULES, cutoff
    )
    assert duration_of_response(subject, RULES, cutoff) == duration_of_response(
        snapshot, RULES, cutoff
    )
    row = progression_free_survival(subject, RULES, cutoff)
    assert row is not None
    assert row.adt <= cutoff


# --- Clopper–Pearson ---


@pytest.mark.parametrize(
    ("successes", "n", "level", "low", "high"),
    [
        # Reference values from scipy.stats.beta.ppf (an independent implementation), 6 decimals.
        pytest.param(0, 10, 0.95, 0.0, 0.308497, id="0/10"),
        pytest.param(5, 10, 0.95, 0.187086, 0.812914, id="5/10"),
        pytest.param(10, 10, 0.95, 0.691503, 1.0, id="10/10"),
        pytest.param(3, 27, 0.95, 0.023527, 0.291587, id="3/27"),
        pytest.param(1, 27, 0.95, 0.000937, 0.189706, id="1/27"),
        pytest.param(13, 27, 0.95, 0.286673, 0.680503, id="13/27"),
        pytest.param(27, 27, 0.95, 0.872297, 1.0, id="27/27"),
        pytest.param(7, 27, 0.90, 0.128522, 0.432302, id="7/27 at 90 %"),
        pytest.param(500, 1000, 0.95, 0.468549, 0.531451, id="500/1000 (no overflow)"),
        pytest.param(3, 2000, 0.95, 0.000309, 0.004377, id="3/2000"),
    ],
)
def test_clopper_pearson_known_values(
    successes: int, n: int, level: float, low: float, high: float
) -> None:
    """The exact interval matches independently computed beta quantiles."""
    got_low, got_high = clopper_pearson(successes, n, level)
    assert got_low == pytest.approx(low, abs=1e-6)
    assert got_high == pytest.approx(high, abs=1e-6)


@pytest.mark.parametrize("n", [1, 5, 27, 100])
def test_clopper_pearson_closed_forms_at_the_edges(n: int) -> None:
    """0/n and n/n have closed forms: 1 − (α/2)^(1/n) and (α/2)^(1/n)."""
    edge = 0.025 ** (1 / n)
    assert clopper_pearson(0, n)[1] == pytest.approx(1 - edge, abs=1e-12)
    assert clopper_pearson(n, n)[0] == pytest.approx(edge, abs=1e-12)


@given(
    st.integers(min_value=1, max_value=200).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
    )
)
def test_clopper_pearson_contains_the_estimate(case: tuple[int, int]) -> None:
    """The interval always contains the observed proportion and stays within [0, 1]."""
    successes, n = case
    low, high = clopper_pearson(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0
    assert math.isfinite(low)
    assert math.isfinite(high)


@pytest.mark.parametrize(
    ("successes", "n", "level"),
    [
        pytest.param(-1, 10, 0.95, id="negative successes"),
        pytest.param(11, 10, 0.95, id="more successes than subjects"),
        pytest.param(0, 0, 0.95, id="no subjects"),
        pytest.param(1, 10, 1.0, id="level 1"),
        pytest.param(1, 10, 0.0, id="level 0"),
    ],
)
def test_clopper_pearson_refuses_bad_input(successes: int, n: int, level: float) -> None:
    """Impossible counts or levels raise instead of returning a meaningless interval."""
    with pytest.raises(ValueError, match=r"\S"):
        clopper_pearson(successes, n, level)
