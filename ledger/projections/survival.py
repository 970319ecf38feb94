"""Kaplan–Meier estimates for ADTTE-shaped data, equal to R's ``survival::survfit``.

The lifelines way: fit, then read what was computed into small frozen objects with a ``.summary``
frame, so results are plain data (tuples of floats), equal for equal input and safe to keep,
compare and plot. The arithmetic itself follows R (survival 3.5, ``survfitkm.c``, ``survmean``,
``survfit_confint``, ``summary.survfit``) step by step, because a regulator re-runs the numbers as

    fit <- survfit(Surv(AVAL, CNSR == 0) ~ 1, conf.type = "log-log")

and ``tests/fixtures/r/km_reference.R`` holds exactly that check. Conventions, each R's:

* Durations are in days (ADTTE ``AVAL``); ``CNSR`` is 0 for an event and a positive code for a
  censored observation.
* S(t) is the product of (n − d)/n over event times ≤ t; its standard error is Greenwood's
  (of log S). Intervals are pointwise 95 % **log-log** (R ``conf.type = "log-log"``; R's default
  is ``"log"``): S^exp(±z·se/log S). Where S is 1 or 0 R reports no interval (NA; NaN here), in
  particular once everyone still at risk has had the event, where the Greenwood term is infinite
  (lifelines sets that term to 0, so its band collapses onto the curve; R does not). At time 0
  (before any observation) the interval is 1–1, as R's ``survfit0``.
* The median and its limits are R's ``print(fit)``/``summary(fit)$table`` values: the first time
  the curve (or the lower/upper limit curve) is below 0.5 + √ε, except that where it sits at 0.5
  (within √ε) over an interval, the midpoint of that interval (as SAS LIFETEST does). A curve that
  stays at 0.5 to the end gives the start of that stretch. Never reached: ``math.inf`` ("NR") in
  :class:`KaplanMeierResult`, ``None`` in :class:`MedianEstimate`, an empty cell in the CSV.
* One month is 30.4375 days (365.25 / 12), the usual ADaM/SAP convention; landmark survival at
  6 and 12 months is read at exactly 182.625 and 365.25 days, as R
  ``summary(fit, times = c(182.625, 365.25), extend = TRUE)``, and reported only when the landmark
  is within follow-up (≤ the longest duration) or S has already reached 0 there; otherwise not
  estimable (NaN, "NE"), as R's default ``extend = FALSE`` leaves such times out.
* Median follow-up is the median of the reverse Kaplan–Meier curve (censoring as the event):
  R ``survfit(Surv(AVAL, CNSR != 0) ~ 1, conf.type = "log-log")``, same median rule.

The ADTTE side (one PARAMCD, overall and by group) is :mod:`ledger.projections.km_summary`; the
printed figures are :mod:`ledger.projections.km_format`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "CONFIDENCE_LEVEL",
    "DAYS_PER_MONTH",
    "LANDMARK_DAYS",
    "LANDMARK_MONTHS",
    "FollowUpResult",
    "KaplanMeierResult",
    "MedianEstimate",
    "SurvivalAt",
    "days_to_months",
    "fit_kaplan_meier",
    "median_follow_up",
]

DAYS_PER_MONTH: Final = 30.4375
"""Days in an average month (365.25 / 12)."""

LANDMARK_MONTHS: Final = (6, 12)
"""Months at which survival is read by default."""

LANDMARK_DAYS: Final = {months: months * DAYS_PER_MONTH for months in LANDMARK_MONTHS}
"""The exact days at which the landmarks are read: 182.625 and 365.25."""

CONFIDENCE_LEVEL: Final = 0.95
"""Level of every interval in this module."""

_Z: Final = NormalDist().inv_cdf(1.0 - (1.0 - CONFIDENCE_LEVEL) / 2)
"""R's ``qnorm(0.975)``."""

_R_TOLERANCE: Final = math.sqrt(2.0**-52)
"""R's ``sqrt(.Machine$double.eps)``: how close to 0.5 counts as "at 0.5" for the median."""


def days_to_months(days: float) -> float:
    """Convert days to months of 30.4375 days."""
    return days / DAYS_PER_MONTH


class SurvivalAt(NamedTuple):
    """S(t) with its pointwise log-log 95 % interval; NaN where R reports NA.

    All three are NaN beyond follow-up; the limits alone are NaN where S is 1 or 0.
    """

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class MedianEstimate:
    """A median time in days with its 95 % log-log limits; ``None`` where R reports NA."""

    median: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class KaplanMeierResult:
    """A fitted Kaplan–Meier curve with R's numbers; times are in days."""

    label: str
    n: int
    events: int
    median_days: float
    """R's median (midpoint rule); ``math.inf`` when not reached."""
    median_ci: tuple[float, float]
    """R's 95 % log-log limits of the median; ``math.inf`` where R reports NA."""
    survival_at: dict[int, SurvivalAt] = field(hash=False)
    """Landmark month -> (S, lower, upper)."""
    timeline_days: tuple[float, ...]
    """Step times, starting at 0: every distinct event or censoring time."""
    survival: tuple[float, ...]
    ci_lower: tuple[float, ...]
    """Pointwise log-log limits at each timeline time; 1 at time 0, NaN where S is 1 or 0."""
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
    def median_estimate(self) -> MedianEstimate:
        """Median and limits with ``None`` for not reached (R's NA), as in the §8 table."""
        return MedianEstimate(
            median=_none_if_missing(self.median_days),
            lower=_none_if_missing(self.median_ci[0]),
            upper=_none_if_missing(self.median_ci[1]),
        )

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
    def summary(self) -> pd.DataFrame:
        """One row, indexed by label: counts, median with interval, landmark survival."""
        return pd.DataFrame([self.summary_row()], index=pd.Index([self.label], name="label"))

    def summary_row(self) -> dict[str, float | int]:
        """The :attr:`summary` row as a dict: counts, median with limits, landmarks with limits."""
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
    durations, observed = _checked(durations_days, events, label)
    curve = _product_limit(durations, observed)
    median = _r_median(curve)
    return KaplanMeierResult(
        label=label,
        n=len(durations),
        events=int(observed.sum()),
        median_days=_inf_if_none(median.median),
        median_ci=(_inf_if_none(median.lower), _inf_if_none(median.upper)),
        survival_at={
            m: _read_step(curve.times, curve.survival, curve.lower, curve.upper, m * DAYS_PER_MONTH)
            for m in landmarks_months
        },
        timeline_days=curve.times,
        survival=curve.survival,
        ci_lower=curve.lower,
        ci_upper=curve.upper,
        at_risk=curve.at_risk,
        censored_days=tuple(t for t, c in zip(curve.times, curve.censored, strict=True) if c > 0),
    )


@dataclass(frozen=True)
class FollowUpResult:
    """Median follow-up by reverse Kaplan–Meier (censoring counted as the event); days."""

    label: str
    n: int
    censored: int
    estimate: MedianEstimate

    @property
    def summary(self) -> pd.DataFrame:
        """One row, indexed by label: n, censored, median follow-up with its interval."""
        row = {
            "n": self.n,
            "censored": self.censored,
            "median_days": _nan_if_none(self.estimate.median),
            "median_lower_95": _nan_if_none(self.estimate.lower),
            "median_upper_95": _nan_if_none(self.estimate.upper),
        }
        return pd.DataFrame([row], index=pd.Index([self.label], name="label"))


def median_follow_up(
    durations_days: npt.ArrayLike, events: npt.ArrayLike, label: str
) -> FollowUpResult:
    """Median follow-up: the reverse Kaplan–Meier median (R ``Surv(AVAL, CNSR != 0)``).

    ``events`` is the event indicator (1/True = event), as for :func:`fit_kaplan_meier`; the
    reverse curve treats the censored subjects as the events.
    """
    durations, observed = _checked(durations_days, events, label)
    curve = _product_limit(durations, ~observed)
    return FollowUpResult(
        label=label,
        n=len(durations),
        censored=int((~observed).sum()),
        estimate=_r_median(curve),
    )


def _checked(
    durations_days: npt.ArrayLike, events: npt.ArrayLike, label: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
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
    return durations, flags.astype(bool)


class _Curve(NamedTuple):
    """R's survfit curve with a time-0 row in front (``survfit0``); NaN where R has NA."""

    times: tuple[float, ...]
    at_risk: tuple[int, ...]
    censored: tuple[int, ...]
    survival: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]


def _product_limit(durations: npt.NDArray[np.float64], observed: npt.NDArray[np.bool_]) -> _Curve:
    """The product-limit curve, its Greenwood error and log-log band, in R's order of operations.

    Each distinct time gets a row, event or not. At a time with d events among n at risk,
    ``S *= (n − d)/n`` and the Greenwood sum grows by d/(n(n − d)), infinite when d = n.
    """
    order = np.sort(durations)
    times = [float(t) for t in np.unique(durations)]
    at_risk = [int(len(order) - np.searchsorted(order, t, side="left")) for t in times]
    deaths = [int(np.count_nonzero(observed & (durations == t))) for t in times]
    censored = [int(np.count_nonzero(~observed & (durations == t))) for t in times]
    survival: list[float] = []
    lower: list[float] = []
    upper: list[float] = []
    km, greenwood = 1.0, 0.0
    for n, d in zip(at_risk, deaths, strict=True):
        if d > 0:
            km *= (n - d) / n
            greenwood = math.inf if d == n else greenwood + d / (n * (n - d))
        low, high = _log_log_limits(km, math.sqrt(greenwood))
        survival.append(km)
        lower.append(low)
        upper.append(high)
    if times[0] > 0.0:  # survfit0: the curve starts at (0, 1) with the interval 1–1
        return _Curve(
            times=(0.0, *times),
            at_risk=(len(durations), *at_risk),
            censored=(0, *censored),
            survival=(1.0, *survival),
            lower=(1.0, *lower),
            upper=(1.0, *upper),
        )
    return _Curve(
        tuple(times), tuple(at_risk), tuple(censored), tuple(survival), tuple(lower), tuple(upper)
    )


def _log_log_limits(survival: float, std_err: float) -> tuple[float, float]:
    """R ``survfit_confint(conf.type = "log-log")``: NA (NaN) where S is 0 or 1."""
    if survival in (0.0, 1.0):
        return math.nan, math.nan
    log_s = math.log(survival)
    shift = _Z * std_err / log_s
    centre = math.log(-log_s)
    return math.exp(-math.exp(centre - shift)), math.exp(-math.exp(centre + shift))


def _r_median(curve: _Curve) -> MedianEstimate:
    """Median and 95 % limits as R's ``survmean``: the limit curves read by the same rule."""
    return MedianEstimate(
        median=_r_half_time(curve.times, curve.survival),
        lower=_r_half_time(curve.times, curve.lower),
        upper=_r_half_time(curve.times, curve.upper),
    )


def _r_half_time(times: Sequence[float], values: Sequence[float]) -> float | None:
    """R ``survmean``'s ``minmin``: first time below 0.5 + tol; a flat 0.5 gives the midpoint.

    NA (NaN) values are skipped. If the first value kept is 0.5 within the tolerance and a lower
    value follows, the result is halfway between their times; ``None`` if nothing is kept.
    """
    kept = [
        (t, v)
        for t, v in zip(times, values, strict=True)
        if not math.isnan(v) and v < 0.5 + _R_TOLERANCE
    ]
    if not kept:
        return None
    first_time, first_value = kept[0]
    if abs(first_value - 0.5) < _R_TOLERANCE:
        for time, value in kept:
            if value < first_value:
                return (first_time + time) / 2
    return first_time


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


def _inf_if_none(value: float | None) -> float:
    return math.inf if value is None else value


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def _none_if_missing(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value
