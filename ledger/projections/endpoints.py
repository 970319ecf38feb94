"""PFS, OS and DoR as ADTTE rows, and the exact Clopper–Pearson interval for ORR.

Censoring follows clinical-rules.md §3 (the FDA PFS table) row by row; the protocol's parameters
(missed-visit threshold) come in through :class:`~ledger.projections.recist.AssessmentRules`. Every
function takes the data cutoff explicitly and never consults the clock, so a dataset can be rebuilt
exactly as it was delivered. Facts dated after the cutoff are dropped *before* any rule is applied,
which makes each result identical to the one computed from the data as it stood at the cutoff.

Day counts follow the protocol: ``AVAL = ADT − STARTDT + 1`` (STARTDT = C1D1, or the first confirmed
response for DoR), so an event on C1D1 has AVAL 1.

Censoring codes (``CNSR``), stable across releases because analysis programs filter on them:

====  ===================================================================
CNSR  EVNTDESC (reason)
====  ===================================================================
0     event: "Disease progression" or "Death"
1     No baseline tumor assessment
2     No progression or death
3     Treatment discontinued without documented progression
4     Withdrawn from study without documented progression
5     New anticancer therapy started before progression
6     Progression or death after two or more missed tumor assessments
7     Alive at last contact (OS)
8     Alive at data cutoff (OS)
====  ===================================================================

``CNSDTDSC`` says which date the censoring used (one of :data:`CENSOR_DATE_DESCRIPTIONS`), kept
apart from the reason because one reason can fall back to another date: a subject with no adequate
assessment is censored at C1D1 whatever the reason. Events carry ``CNSDTDSC = None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final

from ledger.projections.recist import NE, PD, AssessmentRules, TimePointResponse

EVENT: Final = 0

NO_BASELINE: Final = 1
NO_PROGRESSION: Final = 2
TREATMENT_DISCONTINUED: Final = 3
WITHDRAWN: Final = 4
NEW_ANTICANCER_THERAPY: Final = 5
MISSED_ASSESSMENTS: Final = 6
ALIVE_AT_LAST_CONTACT: Final = 7
ALIVE_AT_CUTOFF: Final = 8

CENSORING_REASONS: Final[Mapping[int, str]] = MappingProxyType(
    {
        NO_BASELINE: "No baseline tumor assessment",
        NO_PROGRESSION: "No progression or death",
        TREATMENT_DISCONTINUED: "Treatment discontinued without documented progression",
        WITHDRAWN: "Withdrawn from study without documented progression",
        NEW_ANTICANCER_THERAPY: "New anticancer therapy started before progression",
        MISSED_ASSESSMENTS: "Progression or death after two or more missed tumor assessments",
        ALIVE_AT_LAST_CONTACT: "Alive at last contact",
        ALIVE_AT_CUTOFF: "Alive at data cutoff",
    }
)
"""CNSR code → EVNTDESC for censored rows (0 is the event and is not listed)."""

PROGRESSION: Final = "Disease progression"
DEATH: Final = "Death"

C1D1_DATE: Final = "C1D1"
LAST_ADEQUATE: Final = "Last adequate tumor assessment"
LAST_ADEQUATE_BEFORE_THERAPY: Final = "Last adequate tumor assessment before new anticancer therapy"
RESPONSE_ORIGIN: Final = "First confirmed response"
LAST_KNOWN_ALIVE: Final = "Last known alive date"
DATA_CUTOFF: Final = "Data cutoff date"

CENSOR_DATE_DESCRIPTIONS: Final[frozenset[str]] = frozenset(
    {
        C1D1_DATE,
        LAST_ADEQUATE,
        LAST_ADEQUATE_BEFORE_THERAPY,
        RESPONSE_ORIGIN,
        LAST_KNOWN_ALIVE,
        DATA_CUTOFF,
    }
)
"""Every value CNSDTDSC can take on a censored row."""

PARAMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "PFS": "Progression-Free Survival (days)",
        "OS": "Overall Survival (days)",
        "DOR": "Duration of Response (days)",
    }
)
"""PARAMCD → PARAM (labels ≤ 40 characters, for SAS v5 transport files)."""


@dataclass(frozen=True)
class SubjectCourse:
    """Everything the time-to-event rules need about one subject, already folded from the ledger.

    ``c1d1`` is ``None`` for a subject never treated (outside the full analysis set).
    ``time_points`` are the derived post-baseline responses (see ``recist.derive_time_points``).
    ``last_known_alive_on`` is the latest dated fact about the subject, supplied by the caller, who
    sees every kind of record. Why treatment stopped does not change the censoring, which treats
    every stop of treatment without PD alike (FDA table).
    """

    usubjid: str
    c1d1: date | None
    has_baseline: bool
    time_points: tuple[TimePointResponse, ...] = ()
    death_on: date | None = None
    last_known_alive_on: date | None = None
    new_therapy_on: date | None = None
    discontinued_on: date | None = None
    withdrawn_on: date | None = None
    first_confirmed_response_on: date | None = None


@dataclass(frozen=True)
class TimeToEvent:
    """One ADTTE row. ``aval`` is checked against the dates so the two can never disagree."""

    usubjid: str
    paramcd: str
    param: str
    startdt: date
    adt: date
    aval: int
    cnsr: int
    evntdesc: str
    cnsdtdsc: str | None

    def __post_init__(self) -> None:
        """Refuse a row whose AVAL, CNSR or descriptions contradict the conventions above."""
        if self.aval != (self.adt - self.startdt).days + 1:
            raise ValueError(f"AVAL {self.aval} != ADT − STARTDT + 1 for {self.usubjid}")
        if self.adt < self.startdt:
            raise ValueError(f"ADT {self.adt} before STARTDT {self.startdt} for {self.usubjid}")
        if self.cnsr != EVENT and self.cnsr not in CENSORING_REASONS:
            raise ValueError(f"unknown CNSR {self.cnsr}")
        if (self.cnsr == EVENT) != (self.cnsdtdsc is None):
            raise ValueError("CNSDTDSC is set exactly when the row is censored")


@dataclass(frozen=True)
class _Outcome:
    adt: date
    cnsr: int
    evntdesc: str
    cnsdtdsc: str | None


def _row(usubjid: str, paramcd: str, startdt: date, outcome: _Outcome) -> TimeToEvent:
    return TimeToEvent(
        usubjid=usubjid,
        paramcd=paramcd,
        param=PARAMS[paramcd],
        startdt=startdt,
        adt=outcome.adt,
        aval=(outcome.adt - startdt).days + 1,
        cnsr=outcome.cnsr,
        evntdesc=outcome.evntdesc if outcome.cnsr == EVENT else CENSORING_REASONS[outcome.cnsr],
        cnsdtdsc=outcome.cnsdtdsc,
    )


def _censored(code: int, on: date, date_description: str) -> _Outcome:
    return _Outcome(on, code, CENSORING_REASONS[code], date_description)


def _known_by(on: date | None, cutoff: date | None) -> date | None:
    """The date if it is known at the cutoff, else ``None``: later facts do not exist yet."""
    if on is None or (cutoff is not None and on > cutoff):
        return None
    return on


def _last_adequate(
    points: Iterable[TimePointResponse], start: date, start_description: str
) -> tuple[date, str]:
    """Last adequate (non-NE) assessment among ``points``, or the start date when there is none."""
    adequate = [tp.assessed_on for tp in points if tp.response != NE]
    if adequate:
        return max(adequate), LAST_ADEQUATE
    return start, start_description


def _progression_outcome(
    course: SubjectCourse,
    start: date,
    start_description: str,
    rules: AssessmentRules,
    cutoff: date | None,
) -> _Outcome:
    """PFS-style outcome from ``start``: shared by PFS (start C1D1) and DoR (start = response).

    Rows of the FDA table, in the order they take precedence:

    * new anticancer therapy before PD/death → censored at the last adequate assessment on or
      before the therapy start (a same-day scan is read before the first dose, as a same-day PD
      scan counts as the event);
    * PD (the assessment that showed it, scheduled or not) or death, whichever is first → event,
      unless it lies more than ``missed_visits_days`` after the last adequate assessment before it
      (or ``start`` if none) → censored there. This also decides "death before the first
      post-baseline assessment": an event when within the threshold of C1D1;
    * no event: withdrawn (4), treatment discontinued (3) or ongoing (2), each censored at the last
      adequate assessment, or at ``start`` if there is none.

    Treatment discontinuation or withdrawal never censors a PD or death that was recorded.
    """
    points = sorted(
        (
            tp
            for tp in course.time_points
            if tp.assessed_on >= start and _known_by(tp.assessed_on, cutoff) is not None
        ),
        key=lambda tp: tp.assessed_on,
    )
    death_on = _known_by(course.death_on, cutoff)
    if death_on is not None and death_on < start:
        death_on = None  # a death before the origin cannot end a response that had not started
    new_therapy_on = _known_by(course.new_therapy_on, cutoff)
    pd_index = next((i for i, tp in enumerate(points) if tp.response == PD), None)
    pd_on = None if pd_index is None else points[pd_index].assessed_on

    event_on: date | None = None
    event_desc = ""
    before_event: list[TimePointResponse] = []
    if pd_on is not None and pd_index is not None and (death_on is None or pd_on <= death_on):
        event_on, event_desc, before_event = pd_on, PROGRESSION, points[:pd_index]
    elif death_on is not None:
        event_on, event_desc = death_on, DEATH
        before_event = [tp for tp in points if tp.assessed_on <= death_on]

    if new_therapy_on is not None and (event_on is None or new_therapy_on < event_on):
        on, description = _last_adequate(
            (tp for tp in points if tp.assessed_on <= new_therapy_on), start, start_description
        )
        if description == LAST_ADEQUATE:
            description = LAST_ADEQUATE_BEFORE_THERAPY
        return _censored(NEW_ANTICANCER_THERAPY, on, description)

    if event_on is not None:
        anchor, description = _last_adequate(before_event, start, start_description)
        if (event_on - anchor).days > rules.missed_visits_days:
            return _censored(MISSED_ASSESSMENTS, anchor, description)
        return _Outcome(event_on, EVENT, event_desc, None)

    on, description = _last_adequate(points, start, start_description)
    if _known_by(course.withdrawn_on, cutoff) is not None:
        return _censored(WITHDRAWN, on, description)
    if _known_by(course.discontinued_on, cutoff) is not None:
        return _censored(TREATMENT_DISCONTINUED, on, description)
    return _censored(NO_PROGRESSION, on, description)


def progression_free_survival(
    course: SubjectCourse, rules: AssessmentRules, cutoff: date | None
) -> TimeToEvent | None:
    """PFS row from C1D1, or ``None`` for a subject not treated (by the cutoff).

    No baseline tumor assessment → censored at C1D1 (CNSR 1), whatever follows: without a baseline
    no progression can be measured. Otherwise see :func:`_progression_outcome`.
    """
    c1d1 = _known_by(course.c1d1, cutoff)
    if c1d1 is None:
        return None
    if not course.has_baseline:
        return _row(course.usubjid, "PFS", c1d1, _censored(NO_BASELINE, c1d1, C1D1_DATE))
    outcome = _progression_outcome(course, c1d1, C1D1_DATE, rules, cutoff)
    return _row(course.usubjid, "PFS", c1d1, outcome)


def duration_of_response(
    course: SubjectCourse, rules: AssessmentRules, cutoff: date | None
) -> TimeToEvent | None:
    """DoR row from the first confirmed CR/PR, or ``None`` for a non-responder.

    Events and censoring as PFS, with the response date in place of C1D1, so it is never censored
    at C1D1: the origin is itself an adequate assessment. The caller must derive
    ``first_confirmed_response_on`` from data as of the same cutoff (a response confirmed only after
    the cutoff is not yet a response); an origin after the cutoff gives ``None``.
    """
    origin = _known_by(course.first_confirmed_response_on, cutoff)
    if origin is None or course.c1d1 is None:
        return None
    outcome = _progression_outcome(course, origin, RESPONSE_ORIGIN, rules, cutoff)
    return _row(course.usubjid, "DOR", origin, outcome)


def overall_survival(course: SubjectCourse, cutoff: date | None) -> TimeToEvent | None:
    """OS row from C1D1, or ``None`` for a subject not treated (by the cutoff).

    Death (on or before the cutoff) → event. Otherwise censored at the last date known alive: the
    latest of ``last_known_alive_on`` and every other dated fact in the course (CNSR 7), or at the
    cutoff itself (CNSR 8) when a fact dated after the cutoff, a death included, shows the subject
    was alive on the cutoff date.
    """
    c1d1 = _known_by(course.c1d1, cutoff)
    if c1d1 is None:
        return None
    if (death_on := _known_by(course.death_on, cutoff)) is not None:
        return _row(course.usubjid, "OS", c1d1, _Outcome(death_on, EVENT, DEATH, None))
    alive = [
        d
        for d in (
            c1d1,
            course.last_known_alive_on,
            course.new_therapy_on,
            course.discontinued_on,
            course.withdrawn_on,
            course.first_confirmed_response_on,
            *(tp.assessed_on for tp in course.time_points),
        )
        if d is not None
    ]
    if cutoff is not None and (
        any(d > cutoff for d in alive) or (course.death_on is not None and course.death_on > cutoff)
    ):
        return _row(course.usubjid, "OS", c1d1, _censored(ALIVE_AT_CUTOFF, cutoff, DATA_CUTOFF))
    last_alive = max(alive)
    outcome = _censored(ALIVE_AT_LAST_CONTACT, last_alive, LAST_KNOWN_ALIVE)
    return _row(course.usubjid, "OS", c1d1, outcome)


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion, as R ``binom.test``.

    The lower bound is the Beta(x, n − x + 1) quantile α/2, the upper the Beta(x + 1, n − x)
    quantile 1 − α/2; 0 and 1 at the edges. Computed by ``scipy.stats.binomtest``.
    """
    if isinstance(successes, bool) or isinstance(n, bool):
        raise TypeError("successes and n are counts")
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 ≤ successes ≤ n and n ≥ 1, got {successes}/{n}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    from scipy.stats import binomtest  # 0.5 s to import: only when an interval is asked for

    interval = binomtest(successes, n).proportion_ci(confidence_level=level, method="exact")
    return float(interval.low), float(interval.high)
