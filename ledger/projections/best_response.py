"""RECIST 1.1 best overall response (table 3) over one subject's time-point responses, unconfirmed
and confirmed, with the date the response was confirmed (clinical-rules.md §2).

The time points come from :func:`ledger.projections.recist.derive_time_points`; the rules where
RECIST 1.1 leaves room are chosen in :func:`best_overall_response`, each where it is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from ledger.projections.recist import (
    CR,
    NE,
    NON_CR_NON_PD,
    PD,
    PR,
    SD,
    AssessmentRules,
    Response,
    TimePointResponse,
    study_day,
)


@dataclass(frozen=True)
class BestResponse:
    """Best overall response of one subject, unconfirmed (ADRS BOR) and confirmed (ADRS CBOR).

    ``first_confirmed_response_on`` is the date of the first CR/PR that a later assessment confirmed
    (the DoR origin) and ``confirmation_on`` the date of the assessment that confirmed it; both are
    ``None`` unless the confirmed response is CR or PR.
    """

    unconfirmed: Response
    confirmed: Response
    first_confirmed_response_on: date | None = None
    confirmation_on: date | None = None


_SD_OR_BETTER: Final[frozenset[str]] = frozenset({CR, PR, SD, NON_CR_NON_PD})
_RESPONDING: Final[frozenset[str]] = frozenset({CR, PR})


def up_to_first_pd(time_points: Iterable[TimePointResponse]) -> list[TimePointResponse]:
    """The time points by date up to and including the first PD: all that best response reads."""
    kept: list[TimePointResponse] = []
    for tp in sorted(time_points, key=lambda t: t.assessed_on):
        kept.append(tp)
        if tp.response == PD:
            break
    return kept


def _first_confirmed(
    points: Sequence[TimePointResponse],
    responses: frozenset[str],
    allowed_between: frozenset[str],
    confirmation_days: int,
) -> tuple[date, date] | None:
    """Earliest (response date, confirmation date) pair, or ``None``.

    A time point in ``responses`` is confirmed by a later one in ``responses`` at least
    ``confirmation_days`` after it, with only ``allowed_between`` responses in between (any number
    of NE visits is tolerated: a missed scan does not undo a response).
    """
    for i, first in enumerate(points):
        if first.response not in responses:
            continue
        for later in points[i + 1 :]:
            if later.response not in allowed_between:
                break
            gap = (later.assessed_on - first.assessed_on).days
            if later.response in responses and gap >= confirmation_days:
                return first.assessed_on, later.assessed_on
    return None


def best_overall_response(
    time_points: Iterable[TimePointResponse], c1d1: date, rules: AssessmentRules
) -> BestResponse:
    """Unconfirmed and confirmed best overall response (RECIST 1.1 table 3), hierarchy CR > … > NE.

    Only time points up to and including the first PD count. Confirmed BOR, in order:

    1. CR if a CR is followed ≥ ``confirmation_days`` later by a CR, with only CR/NE between.
    2. PR if a CR or PR is followed ≥ ``confirmation_days`` later by a CR or PR, with only CR/PR/NE
       between. This covers "PR then CR → PR", "PR then PR → PR" and the row "CR then PR", for which
       the table allows SD, PD or PR: we choose **PR**. The ledger's own PD rule already turns real
       regrowth after a CR (≥ 5 mm above a nadir of 0) into PD, so a derived PR after a CR means a
       small residual that makes the first "CR" really a PR, RECIST's second reading of that row.
    3. SD (or NON_CR_NON_PD for non-target-only disease) if any SD-or-better time point falls on
       or after study day ``min_sd_days``. Applied uniformly, also to "PR then SD", whose table cell
       assumes the minimum duration met (RECIST 1.1 §4.4.1 requires it for any SD).
    4. PD if a PD was documented, or if an unconfirmed CR was followed by SD/PR/non-CR/non-PD: had
       the CR been real, that disease reappeared ("CR then SD → PD" when SD is too short).
    5. NE otherwise ("NE then NE", "CR/PR then NE" with SD too short).

    Unconfirmed BOR: CR if any CR, PR if any PR, else steps 3-5 without the CR rule of step 4.
    """
    points = up_to_first_pd(time_points)
    responses = [tp.response for tp in points]
    stable: Response = SD if any(tp.target_response is not None for tp in points) else NON_CR_NON_PD
    sd_met = any(
        tp.response in _SD_OR_BETTER and study_day(tp.assessed_on, c1d1) >= rules.min_sd_days
        for tp in points
    )
    has_pd = PD in responses

    unconfirmed: Response
    if CR in responses:
        unconfirmed = CR
    elif PR in responses:
        unconfirmed = PR
    elif sd_met:
        unconfirmed = stable
    elif has_pd:
        unconfirmed = PD
    else:
        unconfirmed = NE

    days = rules.confirmation_days
    cr_pair = _first_confirmed(points, frozenset({CR}), frozenset({CR, NE}), days)
    response_pair = _first_confirmed(points, _RESPONDING, frozenset({CR, PR, NE}), days)
    first_cr = responses.index(CR) if CR in responses else None
    disease_after_cr = first_cr is not None and any(
        r in (SD, PR, NON_CR_NON_PD) for r in responses[first_cr + 1 :]
    )
    confirmed: Response
    if cr_pair is not None:
        confirmed = CR
    elif response_pair is not None:
        confirmed = PR
    elif sd_met:
        confirmed = stable
    elif has_pd or disease_after_cr:
        confirmed = PD
    else:
        confirmed = NE

    if confirmed in _RESPONDING and response_pair is not None:
        return BestResponse(unconfirmed, confirmed, response_pair[0], response_pair[1])
    return BestResponse(unconfirmed, confirmed)
