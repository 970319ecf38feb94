"""ADRS rows of one subject: an OVR record per assessment (AVISIT, ANL01FL, ANL02FL), then BOR,
CBOR, RSP and CRSP, dated as admiralonco dates them, with the investigator's calls beside the
derived ones. The responses themselves come from :mod:`ledger.projections.recist`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from ledger.aggregates.facts import Fact
from ledger.projections.best_response import BestResponse, best_overall_response, up_to_first_pd
from ledger.projections.dataset_columns import (
    _ADRS_PARAMN,
    _ADRS_PARAMS,
    _RESPONSE_CODES,
    _WORST_FIRST,
    _YES_NO_CODES,
    RESPONSE_TERMS,
)
from ledger.projections.dataset_rows import RowContext, number_rows
from ledger.projections.recist import (
    CR,
    NE,
    NON_CR_NON_PD,
    PD,
    PR,
    SD,
    AssessmentRules,
    TargetLesion,
    TimePointResponse,
    TumorAssessment,
    study_day,
)


def tumor_assessment(fact: Fact) -> TumorAssessment:
    data = fact.data
    lesions = tuple(
        TargetLesion(
            lesion_id=str(lesion["lesion_id"]),
            diameter_mm=None if lesion["diameter_mm"] is None else float(lesion["diameter_mm"]),
            nodal=bool(lesion["nodal"]),
        )
        for lesion in data["target_lesions"]
    )
    return TumorAssessment(
        assessed_on=fact.occurred_on,
        baseline=bool(data["baseline"]),
        target_lesions=lesions,
        non_target=str(data["non_target"]),
        new_lesions=bool(data["new_lesions"]),
        investigator_response=data.get("investigator_response"),
    )


def ovr_seq(
    adrs: Sequence[Mapping[str, Any]], on: date | None, response: str | None
) -> int | None:
    """ASEQ of the analysed OVR record on ``on`` (with that response, when one is named)."""
    for flagged in (True, False):
        for r in adrs:
            if (
                r["PARAMCD"] == "OVR"
                and r["ADT"] == on
                and (response is None or r["AVALC"] == RESPONSE_TERMS[response])
                and (r["ANL01FL"] == "Y" or not flagged)
            ):
                return int(r["ASEQ"])
    return None


def _visit(on: date, c1d1: date, rules: AssessmentRules) -> tuple[str, int | None]:
    """AVISIT, AVISITN: the scheduled assessment whose window holds ``on``, else UNSCHEDULED."""
    days = (on - c1d1).days
    number = round(days / rules.visit_interval_days)
    scheduled = number * rules.visit_interval_days
    if number < 1 or abs(days - scheduled) > rules.visit_window_days:
        return "UNSCHEDULED", None
    if scheduled % 7 == 0:
        return f"WEEK {scheduled // 7}", scheduled // 7
    return f"DAY {scheduled + 1}", scheduled + 1


def response_rows(
    context: RowContext,
    time_points: Sequence[TimePointResponse],
    best: BestResponse,
    rules: AssessmentRules,
) -> list[dict[str, Any]]:
    """OVR per visit, then BOR, CBOR, RSP, CRSP per subject, dated as admiralonco dates them."""
    c1d1 = context.c1d1
    assert c1d1 is not None

    def row(paramcd: str, on: date | None, response: str, inv: str | None) -> dict[str, Any]:
        # The dataset edge: RECIST responses leave as CDISC terms (NON-CR/NON-PD), RSP/CRSP as
        # Y/N; the discrepancy flag compares the ledger's own values.
        avalc = RESPONSE_TERMS.get(response, response)
        return {
            "STUDYID": context.studyid,
            "USUBJID": context.usubjid,
            "ASEQ": None,
            "PARAMCD": paramcd,
            "PARAM": _ADRS_PARAMS[paramcd],
            "PARAMN": _ADRS_PARAMN[paramcd],
            "TRTP": context.trtp,
            "TRTA": context.trta,
            "AVISIT": None,
            "AVISITN": None,
            "ADT": on,
            "ADY": None if on is None else study_day(on, c1d1),
            "AVAL": _RESPONSE_CODES.get(avalc, _YES_NO_CODES.get(avalc)),
            "AVALC": avalc,
            "ANL01FL": "Y",
            "ANL02FL": None,
            "INVRESP": None if inv is None else RESPONSE_TERMS.get(inv, inv),
            "DISCRFL": None if inv is None else ("Y" if inv != response else "N"),
            "SUMDIAM": None,
            "PCHGBL": None,
            "PCHGNAD": None,
            "SRCDOM": None,
            "SRCVAR": None,
            "SRCSEQ": None,
            "DOSELVL": context.doselvl,
        }

    ordered = sorted(time_points, key=lambda t: t.assessed_on)
    analysed = _analysed(ordered, c1d1)
    first_pd = next((tp.assessed_on for tp in ordered if tp.response == PD), None)
    rows = []
    for index, tp in enumerate(ordered):
        visit = row("OVR", tp.assessed_on, tp.response, tp.investigator_response)
        visit["DISCRFL"] = None if tp.investigator_response is None else (
            "Y" if tp.discrepant else "N"
        )
        visit["AVISIT"], visit["AVISITN"] = _visit(tp.assessed_on, c1d1, rules)
        visit["ANL01FL"] = "Y" if index in analysed else None
        visit["ANL02FL"] = "Y" if first_pd is None or tp.assessed_on <= first_pd else None
        visit["SUMDIAM"] = tp.target_sum_mm
        visit["PCHGBL"] = tp.pct_change_from_baseline
        visit["PCHGNAD"] = tp.pct_change_from_nadir
        rows.append(visit)

    counted = analysed_time_points(ordered, c1d1)
    investigator = _investigator_best(counted, c1d1, rules)
    rows.append(row("BOR", _best_on(counted, best.unconfirmed, c1d1, rules), best.unconfirmed,
                    None if investigator is None else investigator.unconfirmed))
    cbor_on = (
        _confirmed_cr_on(counted, rules)
        if best.confirmed == CR
        else best.first_confirmed_response_on
        or _best_on(counted, best.confirmed, c1d1, rules)
    )
    rows.append(row("CBOR", cbor_on, best.confirmed,
                    None if investigator is None else investigator.confirmed))
    responded = best.unconfirmed in (CR, PR)
    first_response = next(
        (tp.assessed_on for tp in up_to_first_pd(counted) if tp.response in (CR, PR)), None
    )
    rows.append(row("RSP", first_response if responded else None, "Y" if responded else "N",
                    None))
    confirmed = best.confirmed in (CR, PR)
    rows.append(row("CRSP", best.first_confirmed_response_on if confirmed else None,
                    "Y" if confirmed else "N", None))
    number_rows(rows, "ASEQ", ("PARAMCD", "ADT"))
    for r in rows:
        if r["PARAMCD"] != "OVR" and r["ADT"] is not None:
            r["SRCDOM"], r["SRCVAR"] = "ADRS", "ADT"
            r["SRCSEQ"] = ovr_seq(rows, r["ADT"], None)
    return rows


def analysed_time_points(
    time_points: Sequence[TimePointResponse], c1d1: date
) -> list[TimePointResponse]:
    """The time points whose OVR records ANL01FL flags, by date: what best response, like
    admiralonco's BOR from the ANL01FL records, is derived from (a second scan of the same day
    that is not the worst of it counts for nothing)."""
    ordered = sorted(time_points, key=lambda t: t.assessed_on)
    analysed = _analysed(ordered, c1d1)
    return [tp for i, tp in enumerate(ordered) if i in analysed]


def _analysed(ordered: Sequence[TimePointResponse], c1d1: date) -> set[int]:
    """Indexes of the OVR records ANL01FL flags: on or after C1D1, the worst one of each date."""
    chosen: dict[date, int] = {}
    for index, tp in enumerate(ordered):
        if tp.assessed_on < c1d1:
            continue
        held = chosen.get(tp.assessed_on)
        if held is None or _WORST_FIRST[tp.response] >= _WORST_FIRST[ordered[held].response]:
            chosen[tp.assessed_on] = index
    return set(chosen.values())


def _best_on(
    time_points: Sequence[TimePointResponse], response: str, c1d1: date, rules: AssessmentRules
) -> date | None:
    """The date admiralonco gives a best response: the first visit (up to the first PD) with it;
    for SD or NON-CR/NON-PD the first SD-or-better visit on or after the minimum SD day
    (``bor_sd``); for NE the first visit (``bor_ne``); None without visits."""
    points = up_to_first_pd(time_points)
    if response in (SD, NON_CR_NON_PD):
        return next(
            (
                tp.assessed_on
                for tp in points
                if tp.response in (CR, PR, SD, NON_CR_NON_PD)
                and study_day(tp.assessed_on, c1d1) >= rules.min_sd_days
            ),
            None,
        )
    if response == NE:
        return points[0].assessed_on if points else None
    return next((tp.assessed_on for tp in points if tp.response == response), None)


def _confirmed_cr_on(
    time_points: Sequence[TimePointResponse], rules: AssessmentRules
) -> date | None:
    """Date of the first CR confirmed by a later CR ≥ ``confirmation_days`` after it with only CR
    or NE between (admiralonco ``cbor_cr``; the same pairing as the RECIST CBOR rule)."""
    points = up_to_first_pd(time_points)
    for i, first in enumerate(points):
        if first.response != CR:
            continue
        for later in points[i + 1:]:
            if later.response not in (CR, NE):
                break
            if later.response == CR and (
                later.assessed_on - first.assessed_on
            ).days >= rules.confirmation_days:
                return first.assessed_on
    return None


def _investigator_best(
    time_points: Sequence[TimePointResponse], c1d1: date, rules: AssessmentRules
) -> BestResponse | None:
    """The RECIST best-response rules applied to the investigator's calls (missing call = NE)."""
    if not any(tp.investigator_response for tp in time_points):
        return None
    calls = [
        TimePointResponse(
            assessed_on=tp.assessed_on,
            response=tp.investigator_response or NE,  # type: ignore[arg-type]
            target_response=tp.target_response,
        )
        for tp in time_points
    ]
    return best_overall_response(calls, c1d1, rules)
