"""Kaplan–Meier results checked against R's ``aml`` data and hand-computed product limits."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from ledger.projections.km_format import format_landmark, format_median, format_months
from ledger.projections.km_summary import (
    KM_SUMMARY_COLUMNS,
    km_summary,
    km_summary_csv,
    summarise_endpoint,
)
from ledger.projections.survival import (
    DAYS_PER_MONTH,
    KaplanMeierResult,
    MedianEstimate,
    fit_kaplan_meier,
    median_follow_up,
)

# R survival's `aml` data (Miller 1981), in weeks; "+" marks a censored time.
# Maintained:    9, 13, 13+, 18, 23, 28+, 31, 34, 45+, 48, 161+
# Nonmaintained: 5, 5, 8, 8, 12, 16+, 23, 27, 30, 33, 43, 45
MAINTAINED = (
    (9, 1), (13, 1), (13, 0), (18, 1), (23, 1), (28, 0), (31, 1), (34, 1), (45, 0), (48, 1),
    (161, 0),
)  # fmt: skip
NONMAINTAINED = (
    (5, 1), (5, 1), (8, 1), (8, 1), (12, 1), (16, 0), (23, 1), (27, 1), (30, 1), (33, 1),
    (43, 1), (45, 1),
)  # fmt: skip


def fit(rows: tuple[tuple[int, int], ...], label: str, scale: int = 1) -> KaplanMeierResult:
    return fit_kaplan_meier([t * scale for t, _ in rows], [e for _, e in rows], label)


def aml_adtte() -> pd.DataFrame:
    """The aml data as an ADTTE frame (one PFS row per subject), plus OS rows to be ignored."""
    rows: list[dict[str, object]] = []
    for arm, data in (("Maintained", MAINTAINED), ("Nonmaintained", NONMAINTAINED)):
        for t, e in data:
            n = len(rows) + 1
            rows.append({"USUBJID": f"AML-{n:02d}", "PARAMCD": "PFS", "AVAL": t,
                         "CNSR": 0 if e else 1, "TRT01A": arm})  # fmt: skip
            rows.append({"USUBJID": f"AML-{n:02d}", "PARAMCD": "OS", "AVAL": 999,
                         "CNSR": 1, "TRT01A": arm})  # fmt: skip
    return pd.DataFrame(rows)


def test_aml_maintained_median_and_loglog_interval() -> None:
    """Maintained: median 31 weeks, log-log 95% CI 13–NA, as R survfit(conf.type="log-log")."""
    result = fit(MAINTAINED, "Maintained")
    assert (result.n, result.events) == (11, 7)
    assert result.median_days == 31.0
    assert result.median_ci == (13.0, math.inf)


def test_aml_nonmaintained_median_and_loglog_interval() -> None:
    """Nonmaintained: median 23 weeks, log-log 95% CI 5–33."""
    result = fit(NONMAINTAINED, "Nonmaintained")
    assert (result.n, result.events) == (12, 11)
    assert result.median_days == 23.0
    assert result.median_ci == (5.0, 33.0)


@pytest.mark.parametrize(
    ("rows", "time", "expected"),
    [
        # Maintained: S = Π (1 − d/n) over event times ≤ t
        pytest.param(MAINTAINED, 9, 10 / 11, id="M S(9) = 10/11"),
        pytest.param(MAINTAINED, 13, 10 / 11 * 9 / 10, id="M S(13) = 9/11"),
        pytest.param(MAINTAINED, 17.5, 9 / 11, id="M S(17.5): flat until the next event"),
        pytest.param(MAINTAINED, 18, 9 / 11 * 7 / 8, id="M S(18): 13+ left the risk set"),
        pytest.param(MAINTAINED, 31, 9 / 11 * 7 / 8 * 6 / 7 * 4 / 5, id="M S(31) = 27/55"),
        pytest.param(MAINTAINED, 161, 27 / 55 * 3 / 4 * 1 / 2, id="M S(161) = 81/440"),
        pytest.param(NONMAINTAINED, 5, 10 / 12, id="N S(5): tied events"),
        pytest.param(NONMAINTAINED, 23, 10 / 12 * 8 / 10 * 7 / 8 * 5 / 6, id="N S(23) = 35/72"),
        pytest.param(NONMAINTAINED, 45, 0.0, id="N S(45) = 0: last subject has the event"),
    ],
)
def test_aml_survival_matches_hand_product_limit(
    rows: tuple[tuple[int, int], ...], time: float, expected: float
) -> None:
    """S(t) equals the product-limit value worked out by hand."""
    assert fit(rows, "aml").survival_at_day(time).estimate == pytest.approx(expected, abs=1e-12)


def test_interval_is_log_log_exponential_greenwood() -> None:
    """The band at t=9 (Maintained) is S^exp(±1.96·se/|log S|), not R's default log band."""
    s = 10 / 11
    greenwood = 1 / (11 * 10)
    se = math.sqrt(greenwood) / abs(math.log(s))
    z = 1.959963984540054
    lower, upper = s ** math.exp(z * se), s ** math.exp(-z * se)
    estimate = fit(MAINTAINED, "Maintained").survival_at_day(9)
    assert estimate == pytest.approx((s, lower, upper), abs=1e-9)
    assert estimate.lower == pytest.approx(0.5081, abs=5e-5)  # R: conf.type = "log-log"


def test_hand_built_median_with_censoring() -> None:
    """Days 2, 4+, 5, 7, 9+, 10: S steps 5/6, 5/8, 5/12, so the median is day 7."""
    # t=2: 6 at risk, 1 event -> 5/6. t=4: censored, no step. t=5: 4 at risk -> 5/6·3/4 = 5/8
    # (0.625). t=7: 3 at risk -> 5/8·2/3 = 5/12 (0.4167), the first S(t) ≤ 0.5: median 7.
    # t=9: censored. t=10: 1 at risk, event -> 0.
    result = fit_kaplan_meier([2, 4, 5, 7, 9, 10], [1, 0, 1, 1, 0, 1], "tiny")
    assert result.median_days == 7.0
    assert result.survival == pytest.approx((1.0, 5 / 6, 5 / 6, 5 / 8, 5 / 12, 5 / 12, 0.0))
    assert result.timeline_days == (0.0, 2.0, 4.0, 5.0, 7.0, 9.0, 10.0)
    assert result.censored_days == (4.0, 9.0)
    assert [result.number_at_risk(d) for d in (0, 2, 3, 5, 10, 11)] == [6, 6, 5, 4, 1, 0]


def test_median_where_curve_sits_exactly_at_half() -> None:
    """Events at 1, 2, 3, 4: S = 0.5 on [2, 3), so the median is the midpoint 2.5, as R's."""
    assert fit_kaplan_meier([1, 2, 3, 4], [True] * 4, "exact").median_days == 2.5


def test_median_survives_rounding_of_an_exact_half() -> None:
    """Days 2, 15, 90, 153, 211+, 318: S(90) = 5/6·4/5·3/4 = 1/2, so the median is (90 + 153)/2."""
    durations, events = [2, 15, 90, 153, 211, 318], [1, 1, 1, 1, 0, 1]
    result = fit_kaplan_meier(durations, events, "half")
    assert result.median_days == 121.5
    # lifelines multiplies exp(Σ log(1 − d/n)), reads 0.5000000000000001 as above one half and
    # moves on to day 153; R's tolerance of √ε keeps it at one half.
    kmf = KaplanMeierFitter().fit(durations, events)
    assert kmf.survival_function_.loc[90.0].iloc[0] > 0.5
    assert kmf.median_survival_time_ == 153.0


def test_median_at_half_until_the_end_is_the_start_of_the_stretch() -> None:
    """Days 1, 2, 3+, 4+: S stays 0.5 from day 2 on, and R's print(fit) gives 2 (no midpoint)."""
    result = fit_kaplan_meier([1, 2, 3, 4], [1, 1, 0, 0], "tail")
    assert (result.median_days, result.median_estimate.median) == (2.0, 2.0)


def test_limits_are_not_reached_when_everyone_at_risk_has_the_event() -> None:
    """Three deaths on day 100: S drops from 1 to 0, R gives median 100 with both limits NA."""
    result = fit_kaplan_meier([100, 100, 100], [1, 1, 1], "all at once")
    assert result.median_estimate == MedianEstimate(100.0, None, None)
    assert result.median_ci == (math.inf, math.inf)
    assert format_median(result, "OS") == "median OS 3.3 months (95% CI NR–NR)"


def test_median_not_reached_without_events() -> None:
    """All censored: the curve stays at 1 and the median and its interval are inf (NR)."""
    result = fit_kaplan_meier([30, 60, 90], [0, 0, 0], "none")
    assert (result.events, result.median_days, result.median_ci) == (0, math.inf, (math.inf,) * 2)
    assert format_median(result, "OS") == "median OS NR (95% CI NR–NR)"


def test_landmarks_read_at_6_and_12_months_of_30_4375_days() -> None:
    """aml Maintained in days (weeks × 7): S(182.625) = 27/44 and S(365.25) = 81/440."""
    result = fit(MAINTAINED, "Maintained", scale=7)
    assert set(result.survival_at) == {6, 12}
    assert result.survival_at[6].estimate == pytest.approx(27 / 44)
    assert result.survival_at[12].estimate == pytest.approx(81 / 440)
    assert result.survival_at[6] == result.survival_at_day(161)  # last step before 182.625
    assert 6 * DAYS_PER_MONTH == 182.625


def test_landmark_beyond_follow_up_is_not_estimable() -> None:
    """With follow-up ending censored at day 90, S at 6 months is NaN and prints "NE"."""
    result = fit_kaplan_meier([30, 60, 90], [1, 0, 0], "short")
    assert all(math.isnan(v) for v in result.survival_at[6])
    assert format_landmark(result, 6, "PFS") == "6-month PFS rate NE"


def test_landmark_after_curve_reaches_zero_is_zero() -> None:
    """When the last subject had the event, S stays 0 after it, with no interval (R: NA)."""
    estimate, lower, upper = fit_kaplan_meier([30, 60], [1, 1], "all events").survival_at[12]
    assert estimate == 0.0
    assert math.isnan(lower)
    assert math.isnan(upper)


def test_landmark_at_one_after_a_censored_time_has_no_interval() -> None:
    """S(6 m) = 1 after a censoring at day 100 prints without limits, R's NA."""
    result = fit_kaplan_meier([100, 400, 500], [0, 1, 0], "late events")
    assert result.survival_at[6].estimate == 1.0
    assert format_landmark(result, 6, "OS") == "6-month OS rate 100.0% (95% CI NE)"


def test_results_are_deterministic_values() -> None:
    """Two fits of the same data are equal, hash equally, and have equal summaries."""
    a, b = fit(NONMAINTAINED, "N"), fit(NONMAINTAINED, "N")
    assert a == b
    assert hash(a) == hash(b)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.n = 3  # type: ignore[misc]


def test_summary_frame_columns() -> None:
    """`.summary` is one row: counts, median with interval, and S with interval per landmark."""
    summary = fit(MAINTAINED, "Maintained").summary
    assert list(summary.index) == ["Maintained"]
    assert list(summary.columns) == [
        "n", "events", "censored", "median_days", "median_lower_95", "median_upper_95",
        "median_months", "S_6m", "S_6m_lower_95", "S_6m_upper_95",
        "S_12m", "S_12m_lower_95", "S_12m_upper_95",
    ]  # fmt: skip
    assert summary.loc["Maintained", "median_upper_95"] == math.inf


def test_summarise_endpoint_overall_and_per_group() -> None:
    """One PARAMCD is selected; groups come sorted and equal a direct fit of their rows."""
    summary = summarise_endpoint(aml_adtte(), "PFS", "TRT01A")
    assert [g.label for g in summary.groups] == ["Maintained", "Nonmaintained"]
    assert summary.group("Maintained") == fit(MAINTAINED, "Maintained")
    assert summary.group("Nonmaintained") == fit(NONMAINTAINED, "Nonmaintained")
    assert (summary.overall.label, summary.overall.n, summary.overall.events) == ("Overall", 23, 18)
    assert list(summary.summary.index) == ["Overall", "Maintained", "Nonmaintained"]
    assert list(summary.summary["stratum"]) == ["overall", "TRT01A", "TRT01A"]


def test_summarise_endpoint_sorts_numeric_groups_by_value() -> None:
    """Dose levels 10, 2, 1 come back in the order 1, 2, 10."""
    frame = pd.DataFrame(
        {"PARAMCD": "OS", "AVAL": [5, 6, 7, 8], "CNSR": [0, 1, 0, 2], "DOSELVL": [10, 2, 1, 2]}
    )
    assert [g.label for g in summarise_endpoint(frame, "OS", "DOSELVL").groups] == ["1", "2", "10"]


def test_unknown_group_label_names_the_known_ones() -> None:
    """Asking for a group that is not there says which groups exist."""
    with pytest.raises(KeyError, match="Maintained, Nonmaintained"):
        summarise_endpoint(aml_adtte(), "PFS", "TRT01A").group("Placebo")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda f: f.drop(columns="CNSR"), "lacks column.*CNSR", id="missing CNSR"),
        pytest.param(lambda f: f.assign(PARAMCD="OS"), "PARAMCD 'PFS'", id="unknown PARAMCD"),
        pytest.param(lambda f: f.assign(USUBJID="X"), "more than one row", id="duplicate subject"),
        pytest.param(lambda f: f.assign(CNSR=-1), "CNSR must be 0", id="negative CNSR"),
        pytest.param(lambda f: f.assign(TRT01A=None), "TRT01A is missing", id="missing group"),
        pytest.param(lambda f: f.assign(AVAL=-3), "must be finite and ≥ 0", id="negative AVAL"),
    ],
)
def test_summarise_endpoint_rejects_bad_frames(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    """Malformed ADTTE input fails with a message naming the problem."""
    frame = aml_adtte()
    frame = frame.loc[frame["PARAMCD"] == "PFS"]
    with pytest.raises(ValueError, match=message):
        summarise_endpoint(change(frame), "PFS", "TRT01A")


@pytest.mark.parametrize(
    ("durations", "events", "message"),
    [
        pytest.param([1, 2], [1], "2 values but events has 1", id="length mismatch"),
        pytest.param([], [], "no subjects", id="empty"),
        pytest.param([1, float("nan")], [1, 1], "finite", id="NaN duration"),
        pytest.param([1, 2], [0, 2], "0/1 or booleans", id="CNSR code passed as event"),
    ],
)
def test_fit_rejects_bad_input(durations: list[float], events: list[int], message: str) -> None:
    """Inconsistent or impossible durations and event flags are refused."""
    with pytest.raises(ValueError, match=message):
        fit_kaplan_meier(durations, events, "bad")


def test_format_median_headline() -> None:
    """Median and interval print in months to one decimal, "NR" for a bound not reached."""
    result = dataclasses.replace(
        fit(MAINTAINED, "Maintained"), median_days=170.45, median_ci=(97.4, math.inf)
    )
    assert format_median(result, "PFS") == "median PFS 5.6 months (95% CI 3.2–NR)"


def test_format_landmark_percentages() -> None:
    """Landmark survival prints as a percentage with its interval."""
    result = fit(MAINTAINED, "Maintained", scale=7)
    low, high = (round(100 * v, 1) for v in result.survival_at[6][1:])
    assert format_landmark(result, 6, "PFS") == f"6-month PFS rate 61.4% (95% CI {low}–{high}%)"


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        pytest.param(2.25 * DAYS_PER_MONTH, "2.3", id="half rounds up, not to even"),
        pytest.param(0.0, "0.0", id="zero"),
        pytest.param(math.inf, "NR", id="not reached"),
        pytest.param(math.nan, "NE", id="not estimable"),
    ],
)
def test_format_months(days: float, expected: str) -> None:
    """Months print half-up to one decimal, with NR/NE for inf/NaN."""
    assert format_months(days) == expected


def test_median_follow_up_is_the_reverse_kaplan_meier_median() -> None:
    """Days 10, 20+, 30+: reversed, G = 1/2 on [20, 30) and 0 at 30, so the median is 25."""
    result = median_follow_up([10, 20, 30], [1, 0, 0], "fu")
    assert (result.n, result.censored) == (3, 2)
    assert result.estimate.median == 25.0
    assert list(result.summary.columns) == [
        "n", "censored", "median_days", "median_lower_95", "median_upper_95",
    ]  # fmt: skip


def test_km_summary_rows_follow_summarise_endpoint() -> None:
    """One row per PARAMCD × stratum: overall first, then each group; NaN where R gives NA."""
    frame = km_summary(aml_adtte(), "TRT01A")
    assert tuple(frame.columns) == KM_SUMMARY_COLUMNS
    assert list(zip(frame["PARAMCD"], frame["STRATUM"], strict=True)) == [
        ("OS", "overall"), ("OS", "Maintained"), ("OS", "Nonmaintained"),
        ("PFS", "overall"), ("PFS", "Maintained"), ("PFS", "Nonmaintained"),
    ]  # fmt: skip
    maintained = frame.iloc[4]
    assert (maintained["N"], maintained["EVENTS"]) == (11, 7)
    assert (maintained["MEDIAN"], maintained["LCL"]) == (31.0, 13.0)
    assert math.isnan(maintained["UCL"])


def test_km_summary_of_an_empty_adtte_is_an_empty_table() -> None:
    """No rows (nobody enrolled yet): the header only."""
    empty = pd.DataFrame(columns=["USUBJID", "PARAMCD", "AVAL", "CNSR", "DOSELVL"])
    assert km_summary_csv(km_summary(empty)) == (",".join(KM_SUMMARY_COLUMNS) + "\n").encode()


def test_km_summary_csv_writes_fixed_floats_and_empty_cells() -> None:
    """Floats to 10 significant digits, integers as integers, an empty cell for NA."""
    frame = km_summary(pd.DataFrame(
        {"PARAMCD": "OS", "AVAL": [200, 200, 200], "CNSR": 0, "DOSELVL": "A"}
    ))  # fmt: skip
    lines = km_summary_csv(frame).decode().splitlines()
    # R: all die on day 200, so both median limits are NA; S(182.625) is read before the first
    # time, where survfit0 gives 1 (1–1); S(365.25) is 0 with no interval.
    assert lines[1] == "OS,overall,3,3,200,,,1,1,1,0,,"
    frame.loc[0, "S6"] = 1 / 3
    assert km_summary_csv(frame).decode().splitlines()[1].split(",")[7] == "0.3333333333"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(
            pd.DataFrame({"PARAMCD": ["OS"], "AVAL": [3], "CNSR": [0]}),
            "lacks column.*DOSELVL", id="no dose level column",
        ),
        pytest.param(
            pd.DataFrame({"PARAMCD": ["OS"], "AVAL": ["3 days"], "CNSR": [0], "DOSELVL": ["A"]}),
            "AVAL must be numeric", id="text AVAL",
        ),
        pytest.param(
            pd.DataFrame({"PARAMCD": [None], "AVAL": [3], "CNSR": [0], "DOSELVL": ["A"]}),
            "PARAMCD is missing", id="missing PARAMCD",
        ),
        pytest.param(
            pd.DataFrame({"PARAMCD": ["OS"], "AVAL": [3], "CNSR": [0], "DOSELVL": ["overall"]}),
            "called 'overall'", id="dose level named overall",
        ),
    ],
)  # fmt: skip
def test_km_summary_rejects_bad_frames(frame: pd.DataFrame, message: str) -> None:
    """Malformed ADTTE input fails with one line naming the problem."""
    with pytest.raises(ValueError, match=message):
        km_summary(frame)


def test_km_summary_csv_refuses_another_table() -> None:
    """Writing a frame without the §8 columns is refused, naming what is missing."""
    with pytest.raises(ValueError, match="lacks MEDIAN"):
        km_summary_csv(km_summary(aml_adtte(), "TRT01A").drop(columns="MEDIAN"))
