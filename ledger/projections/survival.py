"""Kaplan–Meier estimates for ADTTE-shaped data, read out of lifelines into frozen results.

The lifelines way: fit a ``KaplanMeierFitter``, then read what it computed into small frozen
objects with a ``.summary`` frame. The fitter itself never escapes this module, so results are
plain data (tuples of floats), equal for equal input and safe to keep, compare and plot.

Conventions, each deliberate:

* Durations are in days (ADTTE ``AVAL``); ``CNSR`` is 0 for an event and a positive code for a
  censored observation.
* Confidence intervals are lifelines' pointwise 95 % **log-log** ("exponential Greenwood")
  intervals. R's ``survfit`` defaults to ``conf.type = "log"``, so its default intervals differ;
  they agree with R's ``conf.type = "log-log"``.
* The median is the first time S(t) ≤ 0.5, ``math.inf`` when never reached ("NR"). R takes the
  midpoint when S(t) sits exactly at 0.5 over an interval; lifelines (and this module) does not.
  The comparison allows 1e-9 for rounding: lifelines' own ``median_survival_time_`` misses a
  curve that is exactly 0.5 but computed as 0.5000000000000001 (e.g. 6 subjects, 3 events).
  The median's interval is ``lifelines.utils.median_survival_times`` applied to the log-log band.
* One month is 30.4375 days (365.25 / 12), the usual ADaM/SAP convention; landmark survival at
  6 and 12 months is read at 182.625 and 365.25 days.
* Landmarks beyond the last follow-up are not estimable and come back as NaN ("NE"), as R's
  ``summary(fit, times = ...)`` leaves them out, unless the curve has already reached 0.
* Printed figures are rounded half-up (SAS ``ROUND``), never banker's rounding.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

__all__ = [
    "CONFIDENCE_LEVEL",
    "DAYS_PER_MONTH",
    "LANDMARK_MONTHS",
    "EndpointSummary",
    "KaplanMeierResult",
    "SurvivalAt",
    "days_to_months",
    "fit_kaplan_meier",
    "format_landmark",
    "format_median",
    "format_months",
    "summarise_endpoint",
]

DAYS_PER_MONTH: Final = 30.4375
"""Days in an average month (365.25 / 12)."""

LANDMARK_MONTHS: Final = (6, 12)
"""Months at which survival is read by default."""

CONFIDENCE_LEVEL: Final = 0.95
"""Level of every interval in this module (lifelines ``alpha=0.05``)."""

OVERALL_LABEL: Final = "Overall"

_NOT_REACHED: Final = "NR"
_NOT_ESTIMABLE: Final = "NE"


def days_to_months(days: float) -> float:
    """Convert days to months of 30.4375 days."""
    return days / DAYS_PER_MONTH


class SurvivalAt(NamedTuple):
    """S(t) with its pointwise log-log 95 % interval; NaN throughout when not estimable."""

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class KaplanMeierResult:
    """A fitted Kaplan–Meier curve, read out of lifelines; times are in days."""

    label: str
    n: int
    events: int
    median_days: float
    median_ci: tuple[float, float]
    survival_at: dict[int, SurvivalAt] = field(hash=False)
    """Landmark month -> (S, lower, upper)."""
    timeline_days: tuple[float, ...]
    """Step times, starting at 0: every distinct event or censoring time."""
    survival: tuple[float, ...]
    ci_lower: tuple[float, ...]
    ci_upper: tuple[float, ...]
    at_risk: tuple[int, ...]
    """Subjects at risk just before each timeline time (duration ≥ that time)."""
    censored_days: tuple[float, ...]
    """Distinct times at which at least one subject was censored (for censor ticks)."""

    @property
    def censored(self) -> int:
        """Number of censored subjects."""
        return self.n - self.events

    @property
    def median_months(self) -> float:
        """Median in months (inf when not reached)."""
        return days_to_months(self.median_days)

    def survival_at_day(self, day: float) -> SurvivalAt:
        """Read S(day) and its interval off the step function (right-continuous)."""
        return _read_step(self.timeline_days, self.survival, self.ci_lower, self.ci_upper, day)

    def number_at_risk(self, day: float) -> int:
        """Subjects still at risk at ``day``: those whose duration is ≥ ``day``."""
        i = bisect_left(self.timeline_days, day)
        return self.at_risk[i] if i < len(self.at_risk) else 0

    @property
    def survival_table(self) -> pd.DataFrame:
        """The curve as a frame: one row per timeline time."""
        return pd.DataFrame(
            {
                "timeline_days": self.timeline_days,
                "at_risk": self.at_risk,
                "survival": self.survival,
                "ci_lower": self.ci_lower,
                "ci_upper": self.ci_upper,
            }
        )

    @property
    def summary(self) -> pd.DataFrame:
        """One row, indexed by label: counts, median with interval, landmark survival."""
        return pd.DataFrame([self._summary_row()], index=pd.Index([self.label], name="label"))

    def _summary_row(self) -> dict[str, float | int]:
        row: dict[str, float | int] = {
            "n": self.n,
            "events": self.events,
            "censored": self.censored,
            "median_days": self.median_days,
            "median_lower_95": self.median_ci[0],
            "median_upper_95": self.median_ci[1],
            "median_months": self.median_months,
        }
        for months, (estimate, lower, upper) in sorted(self.survival_at.items()):
            row[f"S_{months}m"] = estimate
            row[f"S_{months}m_lower_95"] = lower
            row[f"S_{months}m_upper_95"] = upper
        return row


@dataclass(frozen=True)
class EndpointSummary:
    """Kaplan–Meier results for one ADTTE parameter: all subjects, then each group in order."""

    paramcd: str
    group_col: str
    overall: KaplanMeierResult
    groups: tuple[KaplanMeierResult, ...]
    """One result per group value, sorted by value; each labelled ``str(value)``."""

    def group(self, label: str) -> KaplanMeierResult:
        """The result for one group label, or KeyError naming the labels there are."""
        for result in self.groups:
            if result.label == label:
                return result
        known = ", ".join(r.label for r in self.groups)
        raise KeyError(f"no {self.group_col} group {label!r}; groups are: {known}")

    @property
    def summary(self) -> pd.DataFrame:
        """Overall row first, then one row per group; ``stratum`` tells them apart."""
        rows = [{"stratum": "overall", **self.overall._summary_row()}]
        rows += [{"stratum": self.group_col, **g._summary_row()} for g in self.groups]
        labels = [self.overall.label, *(g.label for g in self.groups)]
        return pd.DataFrame(rows, index=pd.Index(labels, name="label"))


def fit_kaplan_meier(
    durations_days: npt.ArrayLike,
    events: npt.ArrayLike,
    label: str,
    *,
    landmarks_months: Sequence[int] = LANDMARK_MONTHS,
) -> KaplanMeierResult:
    """Fit Kaplan–Meier to durations (days) and event flags (1/True = event, 0/False = censored).

    Note that ``events`` is the event indicator, the opposite of ADTTE ``CNSR``.
    """
    durations = np.asarray(durations_days, dtype=float)
    flags = np.asarray(events)
    if durations.ndim != 1 or flags.ndim != 1:
        raise ValueError("durations_days and events must be one-dimensional")
    if len(durations) != len(flags):
        raise ValueError(f"durations_days has {len(durations)} values but events has {len(flags)}")
    if len(durations) == 0:
        raise ValueError(f"cannot fit Kaplan–Meier for {label!r}: no subjects")
    if not np.all(np.isfinite(durations)) or np.any(durations < 0):
        raise ValueError(f"durations for {label!r} must be finite and ≥ 0")
    if not np.all(np.isin(flags, (0, 1))):
        raise ValueError(f"events for {label!r} must be 0/1 or booleans (1 = event)")
    observed = flags.astype(bool)

    kmf = KaplanMeierFitter(alpha=1.0 - CONFIDENCE_LEVEL)
    kmf.fit(durations, event_observed=observed, label=label)

    timeline = tuple(float(t) for t in kmf.survival_function_.index)
    survival = tuple(float(s) for s in kmf.survival_function_.iloc[:, 0])
    ci = kmf.confidence_interval_
    ci_lower = tuple(float(v) for v in ci.iloc[:, 0])
    ci_upper = tuple(float(v) for v in ci.iloc[:, 1])
    table = kmf.event_table
    at_risk = tuple(int(v) for v in table["at_risk"])
    if tuple(float(t) for t in table.index) != timeline:  # pragma: no cover - lifelines invariant
        raise RuntimeError("lifelines event table and survival function disagree on times")
    censored_days = tuple(
        float(t) for t, c in zip(table.index, table["censored"], strict=True) if c > 0
    )
    median_ci = median_survival_times(ci)

    return KaplanMeierResult(
        label=label,
        n=len(durations),
        events=int(observed.sum()),
        median_days=_median(timeline, survival),
        median_ci=(float(median_ci.iloc[0, 0]), float(median_ci.iloc[0, 1])),
        survival_at={
            m: _read_step(timeline, survival, ci_lower, ci_upper, m * DAYS_PER_MONTH)
            for m in landmarks_months
        },
        timeline_days=timeline,
        survival=survival,
        ci_lower=ci_lower,
        ci_upper=ci_upper,
        at_risk=at_risk,
        censored_days=censored_days,
    )


_HALF_TOLERANCE: Final = 1e-9


def _median(timeline: Sequence[float], survival: Sequence[float]) -> float:
    """First time S(t) ≤ 0.5, allowing for rounding in lifelines' product; inf if never.

    lifelines multiplies the factors as ``exp(Σ log(1 − d/n))``, so a curve that is exactly 0.5
    can come out as 0.5000000000000001 and ``median_survival_time_`` then jumps to the next
    event time. Comparing with a tolerance gives the value the rule defines.
    """
    for time, value in zip(timeline, survival, strict=True):
        if value <= 0.5 + _HALF_TOLERANCE:
            return time
    return math.inf


def _read_step(
    timeline: Sequence[float],
    survival: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    day: float,
) -> SurvivalAt:
    """S(day) off a right-continuous step function; NaN past follow-up unless S is already 0."""
    if day < 0:
        raise ValueError(f"day must be ≥ 0, got {day}")
    if day > timeline[-1] and survival[-1] > 0.0:
        return SurvivalAt(math.nan, math.nan, math.nan)
    i = bisect_right(timeline, day) - 1
    return SurvivalAt(survival[i], lower[i], upper[i])


_ADTTE_COLUMNS: Final = ("PARAMCD", "AVAL", "CNSR")


def summarise_endpoint(adtte: pd.DataFrame, paramcd: str, group_col: str) -> EndpointSummary:
    """Fit Kaplan–Meier for one PARAMCD of an ADTTE frame, overall and per ``group_col`` value."""
    missing = [c for c in (*_ADTTE_COLUMNS, group_col) if c not in adtte.columns]
    if missing:
        raise ValueError(f"ADTTE frame lacks column(s): {', '.join(missing)}")
    rows = adtte.loc[adtte["PARAMCD"] == paramcd]
    if rows.empty:
        known = ", ".join(sorted(str(p) for p in adtte["PARAMCD"].dropna().unique()))
        raise ValueError(f"no ADTTE rows with PARAMCD {paramcd!r}; present: {known or 'none'}")
    if "USUBJID" in rows.columns and rows["USUBJID"].duplicated().any():
        dupes = sorted(str(s) for s in rows.loc[rows["USUBJID"].duplicated(), "USUBJID"])
        raise ValueError(f"PARAMCD {paramcd!r} has more than one row for: {', '.join(dupes)}")
    for column in ("AVAL", "CNSR", group_col):
        if rows[column].isna().any():
            raise ValueError(f"PARAMCD {paramcd!r}: {column} is missing on some rows")
    cnsr = rows["CNSR"].to_numpy(dtype=float)
    if np.any(cnsr < 0) or np.any(cnsr != np.floor(cnsr)):
        raise ValueError(f"PARAMCD {paramcd!r}: CNSR must be 0 (event) or a positive integer")

    def fit(subset: pd.DataFrame, label: str) -> KaplanMeierResult:
        return fit_kaplan_meier(
            subset["AVAL"].to_numpy(dtype=float), subset["CNSR"].to_numpy() == 0, label
        )

    values = list(rows[group_col].unique())
    try:
        values.sort()
    except TypeError:
        values.sort(key=str)
    groups = tuple(fit(rows.loc[rows[group_col] == v], str(v)) for v in values)
    return EndpointSummary(
        paramcd=paramcd,
        group_col=group_col,
        overall=fit(rows, OVERALL_LABEL),
        groups=groups,
    )


def _round_half_up(value: float, digits: int) -> str:
    quantum = Decimal(1).scaleb(-digits)
    return str(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def format_months(days: float, *, digits: int = 1) -> str:
    """Days as months to ``digits`` places; "NR" for inf (not reached), "NE" for NaN."""
    if math.isnan(days):
        return _NOT_ESTIMABLE
    if math.isinf(days):
        return _NOT_REACHED
    return _round_half_up(days_to_months(days), digits)


def format_median(result: KaplanMeierResult, endpoint: str, *, digits: int = 1) -> str:
    """E.g. "median PFS 5.6 months (95% CI 3.2–NR)"."""
    median = format_months(result.median_days, digits=digits)
    unit = "" if median in (_NOT_REACHED, _NOT_ESTIMABLE) else " months"
    low, high = (format_months(d, digits=digits) for d in result.median_ci)
    return f"median {endpoint} {median}{unit} (95% CI {low}–{high})"


def format_landmark(
    result: KaplanMeierResult, months: int, endpoint: str, *, digits: int = 1
) -> str:
    """E.g. "6-month PFS rate 62.5% (95% CI 22.9–86.1%)"; "NE" beyond follow-up."""
    estimate = result.survival_at.get(months)
    if estimate is None:
        estimate = result.survival_at_day(months * DAYS_PER_MONTH)
    if math.isnan(estimate.estimate):
        return f"{months}-month {endpoint} rate {_NOT_ESTIMABLE}"
    s, low, high = (_round_half_up(100.0 * v, digits) for v in estimate)
    return f"{months}-month {endpoint} rate {s}% (95% CI {low}–{high}%)"
