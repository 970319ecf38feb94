"""RECIST 1.1 responses derived from lesion measurements (clinical-rules.md §2).

The ledger records the site's measurements and the investigator's own call side by side; this module
is the ledger's independent reading of the measurements, so that a disagreement can be listed rather
than silently trusted. Everything here is a pure function over frozen dataclasses and the
standard library: the rules are tables, and tables are easiest to audit (and to test row by row)
as plain code.

This module reads one assessment at a time (RECIST 1.1 tables 1 and 2);
:mod:`ledger.projections.best_response` reads a subject's time points together (table 3).

Decisions this module takes where RECIST 1.1 leaves room, each documented where it is applied:

* Arithmetic on diameters is exact decimal arithmetic on the recorded values (``Decimal(str(x))``),
  because the thresholds are boundaries ("≥ 30 %", "≥ 20 % and ≥ 5 mm") and a binary-float rounding
  error must never move a subject across one.
* A lesion "too small to measure" is recorded by the site as 5 mm (RECIST 1.1 §3.2 / Appendix
  I); the module takes the 5 mm at face value and does not try to recognise it.
* An unmeasured target lesion (``diameter_mm is None``) makes the target response NE, unless the
  lesions that *were* measured already meet PD: diameters cannot be negative, so the missing ones
  could only add to the increase.
* Study days count C1D1 as day 1 (``study_day = date − C1D1 + 1``), the same convention as ADaM
  ``AVAL = ADT − STARTDT + 1`` in the protocol, so "SD met at or after day 49" means an
  assessment on or after ``C1D1 + 48 days``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Final, Literal

from ledger.aggregates.protocol import AssessmentSchedule

Response = Literal["CR", "PR", "SD", "NON_CR_NON_PD", "PD", "NE"]
"""An overall (or target) response at one time point, or a best overall response."""

CR: Final = "CR"
PR: Final = "PR"
SD: Final = "SD"
NON_CR_NON_PD: Final = "NON_CR_NON_PD"
PD: Final = "PD"
NE: Final = "NE"

RESPONSES: Final[frozenset[str]] = frozenset({CR, PR, SD, NON_CR_NON_PD, PD, NE})

NON_TARGET_STATUSES: Final[frozenset[str]] = frozenset({"NONE", CR, NON_CR_NON_PD, PD, NE})
"""Values of ``TumorAssessment.non_target``: ``NONE`` means no non-target disease is recorded."""

_CR_NODE_SHORT_AXIS_MM: Final = Decimal(10)
_PR_FRACTION_OF_BASELINE: Final = Decimal("0.70")
_PD_FRACTION_OF_NADIR: Final = Decimal("1.20")
_PD_ABSOLUTE_INCREASE_MM: Final = Decimal(5)


@dataclass(frozen=True)
class AssessmentRules:
    """Protocol parameters for response and censoring, passed in so that no rule is hard-coded.

    The defaults equal the protocol (protocol.md, "Assessments"); a trial amendment changes the
    protocol definition, and the caller builds a new ``AssessmentRules`` from it with
    :meth:`of`, so the rules that applied stay visible in the ledger rather than in code.
    """

    confirmation_days: int = 28
    """A CR/PR is confirmed by a later assessment at least this many days after it."""
    min_sd_days: int = 49
    """SD needs an SD-or-better time point on or after this study day (C1D1 is day 1)."""
    visit_interval_days: int = 56
    """Scheduled tumor assessments: every this many days from C1D1."""
    visit_window_days: int = 7
    """Allowed deviation (±) from a scheduled assessment date."""
    missed_visits_days: int = 119
    """PD/death more than this many days after the last adequate assessment (or C1D1) follows
    two or more missed visits; the protocol's 2 × 56 + 7."""

    def __post_init__(self) -> None:
        """Refuse nonsense early: every parameter is a day count, so a positive integer."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{f.name} must be an integer number of days, got {value!r}")
            if value <= 0:
                raise ValueError(f"{f.name} must be positive, got {value}")

    @classmethod
    def of(cls, schedule: AssessmentSchedule) -> AssessmentRules:
        """The rules of a protocol's validated ``assessments`` section (``ProtocolDefinition``)."""
        return cls(
            confirmation_days=schedule.confirmation_days,
            min_sd_days=schedule.min_sd_days,
            visit_interval_days=schedule.interval_days,
            visit_window_days=schedule.window_days,
            missed_visits_days=schedule.missed_visits_days,
        )


def study_day(on: date, c1d1: date) -> int:
    """Study day of ``on`` with C1D1 as day 1, the protocol's ``ADT − STARTDT + 1`` convention."""
    return (on - c1d1).days + 1


@dataclass(frozen=True)
class TargetLesion:
    """One target lesion measurement: long axis if non-nodal, short axis if nodal, as recorded.

    ``diameter_mm`` is ``None`` when the lesion was not measured at this assessment. A lesion the
    site judged too small to measure is recorded as 5 mm, per RECIST 1.1, and is taken as given.
    """

    lesion_id: str
    diameter_mm: float | None
    nodal: bool

    def __post_init__(self) -> None:
        """A diameter is a finite, non-negative length; anything else is a recording error."""
        d = self.diameter_mm
        if d is not None and (isinstance(d, bool) or not math.isfinite(d) or d < 0):
            raise ValueError(f"lesion {self.lesion_id}: diameter must be ≥ 0 mm, got {d!r}")


@dataclass(frozen=True)
class TumorAssessment:
    """One tumor assessment of one subject, as the site recorded it."""

    assessed_on: date
    baseline: bool
    target_lesions: tuple[TargetLesion, ...]
    non_target: str
    """``NONE``, ``CR``, ``NON_CR_NON_PD``, ``PD`` or ``NE``."""
    new_lesions: bool
    investigator_response: str | None = None

    def __post_init__(self) -> None:
        """Validate coded values at the edge so the table functions only see known codes."""
        if self.non_target not in NON_TARGET_STATUSES:
            raise ValueError(f"unknown non-target status {self.non_target!r}")
        if self.investigator_response is not None and self.investigator_response not in RESPONSES:
            raise ValueError(f"unknown investigator response {self.investigator_response!r}")
        ids = [lesion.lesion_id for lesion in self.target_lesions]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate target lesion id on {self.assessed_on}: {ids}")


@dataclass(frozen=True)
class TimePointResponse:
    """The ledger's derived response at one post-baseline assessment, beside the investigator's.

    ``target_response`` is ``None`` when the subject has no target disease at baseline (or no
    baseline at all). Sums are reported only when every target lesion was measured; the percent
    changes are ``None`` when a sum or its reference is missing or the reference is 0 mm.
    ``discrepant`` is computed, never passed: it is true when the investigator recorded a response
    that differs from the derived one, so the disagreement listing cannot drift from the data.
    """

    assessed_on: date
    response: Response
    target_response: Response | None = None
    target_sum_mm: float | None = None
    nadir_sum_mm: float | None = None
    pct_change_from_baseline: float | None = None
    pct_change_from_nadir: float | None = None
    investigator_response: str | None = None
    discrepant: bool = field(init=False)

    def __post_init__(self) -> None:
        """Derive the discrepancy flag from the two responses it compares."""
        object.__setattr__(
            self, "discrepant", not _same_call(self.investigator_response, self.response)
        )


def _same_call(investigator: str | None, derived: Response) -> bool:
    """No investigator call disagrees with nothing; SD is how a CRF without a non-CR/non-PD box
    records non-target-only disease that is neither CR nor PD (RECIST 1.1 §4.3.2 prefers the
    latter name), so the two agree."""
    if investigator is None or investigator == derived:
        return True
    return investigator == SD and derived == NON_CR_NON_PD


def _mm(value: float) -> Decimal:
    """Exact decimal for a recorded diameter, so that 30 % means 30 % and not 29.999999 %."""
    return Decimal(str(value))


def _sum_decimal(lesions: Iterable[TargetLesion]) -> Decimal | None:
    total = Decimal(0)
    for lesion in lesions:
        if lesion.diameter_mm is None:
            return None
        total += _mm(lesion.diameter_mm)
    return total


def _meets_pd(current: Decimal, nadir: Decimal) -> bool:
    """PD: ≥ 20 % above the nadir *and* ≥ 5 mm above it in absolute terms (both, per RECIST)."""
    return current >= nadir * _PD_FRACTION_OF_NADIR and current - nadir >= _PD_ABSOLUTE_INCREASE_MM


def _target_response_decimal(
    lesions: Sequence[TargetLesion], baseline_sum: Decimal | None, nadir_sum: Decimal | None
) -> Response:
    measured = [_mm(x.diameter_mm) for x in lesions if x.diameter_mm is not None]
    complete = len(measured) == len(lesions)
    if complete and all(
        (_mm(x.diameter_mm) < _CR_NODE_SHORT_AXIS_MM) if x.nodal else (_mm(x.diameter_mm) == 0)
        for x in lesions
        if x.diameter_mm is not None
    ):
        # CR before PD: nodes < 10 mm are normal by definition, so a node moving from 4 to 9 mm
        # is not disease that could progress even though the sum rises by 5 mm.
        return CR
    if nadir_sum is not None and _meets_pd(sum(measured, Decimal(0)), nadir_sum):
        # Unmeasured lesions can only add to the sum, so PD shown by the measured ones stands.
        return PD
    if not complete or baseline_sum is None:
        # Without every lesion (or without a baseline sum) neither PR nor SD can be excluded.
        return NE
    if sum(measured, Decimal(0)) <= baseline_sum * _PR_FRACTION_OF_BASELINE:
        return PR
    return SD


def target_response(
    lesions: Sequence[TargetLesion], baseline_sum_mm: float | None, nadir_sum_mm: float | None
) -> Response:
    """Target-lesion response at one time point (clinical-rules.md §2 thresholds).

    CR: every non-nodal lesion 0 mm and every nodal lesion < 10 mm; checked first because normal
    nodes cannot progress. PD: sum ≥ 20 % above the nadir and ≥ 5 mm above it, judged on the
    measured lesions even when some are missing. NE: any lesion unmeasured (and no PD), or no
    baseline sum. PR: sum ≥ 30 % below the baseline sum. SD: otherwise.
    """
    baseline = None if baseline_sum_mm is None else _mm(baseline_sum_mm)
    nadir = None if nadir_sum_mm is None else _mm(nadir_sum_mm)
    return _target_response_decimal(lesions, baseline, nadir)


def overall_response_with_target(target: Response, non_target: str, new_lesions: bool) -> Response:
    """Time-point response for a subject with target disease (RECIST 1.1 table 1), row by row.

    ``non_target`` ``NONE`` reads as the table's "CR (or none)"; ``NE`` as "not evaluated" /
    "not all evaluated".
    """
    if non_target not in NON_TARGET_STATUSES:
        raise ValueError(f"unknown non-target status {non_target!r}")
    if new_lesions or PD in (target, non_target):
        return PD  # rows "any / any / yes", "PD / any / any", "any / PD / any"
    if target == NE:
        return NE  # "not all evaluated / non-PD / no"
    if target == CR:
        if non_target in ("CR", "NONE"):
            return CR  # "CR / CR (or none) / no"
        return PR  # "CR / non-CR/non-PD / no" and "CR / not evaluated / no"
    if target == PR:
        return PR  # "PR / non-PD or not all evaluated / no"
    if target == SD:
        return SD  # "SD / non-PD or not all evaluated / no"
    raise ValueError(f"not a target response: {target!r}")


def overall_response_non_target_only(non_target: str, new_lesions: bool) -> Response:
    """Time-point response for a subject with non-target disease only (RECIST 1.1 table 2).

    ``NONE`` here means the site recorded no non-target disease for a subject whose only disease
    is non-target: CR must be called explicitly, so this reads as not evaluated (NE).
    """
    if non_target not in NON_TARGET_STATUSES:
        raise ValueError(f"unknown non-target status {non_target!r}")
    if new_lesions or non_target == PD:
        return PD  # "unequivocal PD / any" and "any / yes"
    if non_target == CR:
        return CR
    if non_target == NON_CR_NON_PD:
        return NON_CR_NON_PD
    return NE  # "not all evaluated / no" (and NONE, see above)


def _pct_change(current: Decimal | None, reference: Decimal | None) -> float | None:
    if current is None or reference is None or reference == 0:
        return None
    return float((current - reference) / reference * 100)


def _not_evaluable(assessment: TumorAssessment) -> TimePointResponse:
    return TimePointResponse(
        assessed_on=assessment.assessed_on,
        response=NE,
        investigator_response=assessment.investigator_response,
    )


def derive_time_points(assessments: Iterable[TumorAssessment]) -> tuple[TimePointResponse, ...]:
    """Derived overall response at every post-baseline assessment of one subject, by date.

    Baseline is the latest baseline assessment before the first post-baseline one (a same-day
    baseline sorts first). A baseline-flagged record dated after a post-baseline assessment is
    ignored: re-baselining mid-study would silently reset the reference for PR. Without a baseline
    every post-baseline time point is NE (a lesion cannot be "new" without one). The target lesions
    are the baseline's, matched by ``lesion_id``; a baseline lesion absent from a follow-up counts
    as unmeasured, and a follow-up lesion unknown at baseline is not a target lesion. The nadir is
    the smallest complete sum before the assessment being judged, baseline included. A follow-up
    that records ``NONE`` for non-target disease the baseline had is read as not evaluated.
    """
    ordered = sorted(assessments, key=lambda a: (a.assessed_on, not a.baseline))
    first_post = next((i for i, a in enumerate(ordered) if not a.baseline), len(ordered))
    baseline = ordered[first_post - 1] if first_post > 0 else None
    followups = [a for a in ordered[first_post:] if not a.baseline]
    if baseline is None:
        return tuple(_not_evaluable(a) for a in followups)

    target_ids = [lesion.lesion_id for lesion in baseline.target_lesions]
    has_non_target = baseline.non_target != "NONE"
    baseline_sum = _sum_decimal(baseline.target_lesions) if target_ids else None
    nadir = baseline_sum
    results: list[TimePointResponse] = []
    for a in followups:
        non_target = a.non_target
        if has_non_target and non_target == "NONE":
            non_target = NE
        by_id = {lesion.lesion_id: lesion for lesion in a.target_lesions}
        lesions = tuple(
            by_id.get(i, TargetLesion(i, None, baseline.target_lesions[k].nodal))
            for k, i in enumerate(target_ids)
        )
        current_sum: Decimal | None = None
        target: Response | None = None
        if target_ids:
            current_sum = _sum_decimal(lesions)
            target = _target_response_decimal(lesions, baseline_sum, nadir)
            overall = overall_response_with_target(target, non_target, a.new_lesions)
        elif has_non_target:
            overall = overall_response_non_target_only(non_target, a.new_lesions)
        else:
            # No disease at all at baseline: only a new lesion can change that.
            overall = PD if a.new_lesions else NE
        results.append(
            TimePointResponse(
                assessed_on=a.assessed_on,
                response=overall,
                target_response=target,
                target_sum_mm=None if current_sum is None else float(current_sum),
                nadir_sum_mm=None if nadir is None else float(nadir),
                pct_change_from_baseline=_pct_change(current_sum, baseline_sum),
                pct_change_from_nadir=_pct_change(current_sum, nadir),
                investigator_response=a.investigator_response,
            )
        )
        if current_sum is not None and (nadir is None or current_sum < nadir):
            nadir = current_sum
    return tuple(results)
