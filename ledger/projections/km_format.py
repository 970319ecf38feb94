"""Kaplan–Meier figures as printed: months, medians and landmark rates with their intervals.

Rounded half-up (SAS ``ROUND``), never banker's rounding; "NR" where a median is not reached,
"NE" where a value is not estimable (see :mod:`ledger.projections.survival`).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from ledger.projections.survival import DAYS_PER_MONTH, KaplanMeierResult, days_to_months

__all__ = ["format_landmark", "format_median", "format_months"]

_NOT_REACHED: Final = "NR"
_NOT_ESTIMABLE: Final = "NE"


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
    rate = _round_half_up(100.0 * estimate.estimate, digits)
    if math.isnan(estimate.lower) or math.isnan(estimate.upper):  # S is 1 or 0: R gives NA
        return f"{months}-month {endpoint} rate {rate}% (95% CI {_NOT_ESTIMABLE})"
    low, high = (_round_half_up(100.0 * v, digits) for v in estimate[1:])
    return f"{months}-month {endpoint} rate {rate}% (95% CI {low}–{high}%)"
