"""One subject's dataset rows: ADSL demographics, ADTTE sources, ADRS visits and best responses,
ADAE; the derivations `datasets._subject` puts together (see `ledger.projections.datasets`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import pandas as pd

from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    ADVERSE_EVENT_UPDATED,
    DLT_ADJUDICATED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    SUBJECT_DIED,
    Fact,
)
from ledger.aggregates.safety import adverse_events, first_haic_date
from ledger.projections import endpoints
from ledger.projections.dataset_columns import (
    _ADRS_PARAMN,
    _ADRS_PARAMS,
    _ADTTE_PARAMN,
    _RESPONSE_CODES,
    _WORST_FIRST,
    _YES_NO_CODES,
    RESPONSE_TERMS,
    Column,
)
from ledger.projections.endpoints import TimeToEvent
from ledger.projections.recist import (
    CR,
    NE,
    NON_CR_NON_PD,
    PD,
    PR,
    SD,
    AssessmentRules,
    BestResponse,
    TargetLesion,
    TimePointResponse,
    TumorAssessment,
    best_overall_response,
    study_day,
)

_TREATMENT_TYPES: Final = (HAIC_ADMINISTERED, FRUQUINTINIB_DOSED)
_NOT_ALIVE_EVIDENCE: Final = (SUBJECT_DIED, DLT_ADJUDICATED)
_WITHDRAWAL_REASONS: Final = {
    "consent_withdrawn": "WITHDRAWAL BY SUBJECT",
    "lost_to_follow_up": "LOST TO FOLLOW-UP",
}
_TREATMENT_REASONS: Final = {
    "progression": "PROGRESSIVE DISEASE",
    "toxicity": "ADVERSE EVENT",
    "withdrawal": "WITHDRAWAL BY SUBJECT",
    "investigator_decision": "PHYSICIAN DECISION",
    "other": "OTHER",
}


_NOT_TREATED: Final = "Assigned, Not Treated"
_NOT_TREATED_CD: Final = "NOTTRT"
_SEX: Final[Mapping[str, str]] = {
    "M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "U": "U", "UNKNOWN": "U",
    "UNDIFFERENTIATED": "UNDIFFERENTIATED",
}


@dataclass(frozen=True, slots=True)
class _Context:
    """What every row of one subject repeats."""

    studyid: str
    usubjid: str
    c1d1: date | None
    trtp: str | None
    trta: str | None
    doselvl: str | None


def _baseline(enrolled: Fact) -> dict[str, Any]:
    """ADSL demographics from the (current) enrollment data; envelope v1 has none: all blank.

    AGE is the age sent, else whole years from the birth date to enrollment; SEX is mapped to
    CDISC terms (M, F, U, UNDIFFERENTIATED) and kept upper-cased when it is none of them.
    """
    data = enrolled.data
    birth = _iso_date(data.get("birth_date"))
    age = _number_or_none(data.get("age"))
    if age is None and birth is not None:
        on = enrolled.occurred_on
        age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    sex = data.get("sex")
    sex_code = None if not isinstance(sex, str) else _SEX.get(sex.strip().upper(),
                                                              sex.strip().upper())
    race = data.get("race")
    weight = _number_or_none(data.get("weight_kg"))
    height = _number_or_none(data.get("height_cm"))
    ecog = _number_or_none(data.get("ecog"))
    bmi = (
        round(weight / (height / 100) ** 2, 1)
        if weight is not None and height is not None and height > 0
        else None
    )
    return {
        "AGE": None if age is None else int(age),
        "AGEU": None if age is None else "YEARS",
        "SEX": sex_code or None,
        "RACE": race.strip().upper() if isinstance(race, str) and race.strip() else None,
        "BRTHDT": birth,
        "ECOGBL": None if ecog is None else int(ecog),
        "WEIGHTBL": weight,
        "HEIGHTBL": height,
        "BMIBL": bmi,
    }


def _iso_date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _number(rows: list[dict[str, Any]], column: str, order: Sequence[str]) -> None:
    """Number one subject's rows 1, 2, … in ``order`` (the datasets' own sort), in place."""
    rows.sort(key=lambda r: tuple(_sort_key(r[k]) for k in order))
    for seq, row in enumerate(rows, start=1):
        row[column] = seq


def _end_of_treatment(
    treated: bool, discontinued: Fact | None, withdrawn: Fact | None, death_on: date | None
) -> tuple[str | None, str | None]:
    """EOTSTT and DCTREAS: a recorded discontinuation first, else leaving the study ends it."""
    if not treated:
        return None, None
    if discontinued is not None:
        return "DISCONTINUED", _TREATMENT_REASONS.get(str(discontinued.data["reason"]), "OTHER")
    if withdrawn is not None:
        return "DISCONTINUED", _WITHDRAWAL_REASONS.get(str(withdrawn.data["reason"]), "OTHER")
    if death_on is not None:
        return "DISCONTINUED", "DEATH"
    return "ONGOING", None


def _treatment_start(facts: Sequence[Fact]) -> date | None:
    """C1D1: the first HAIC, or the first fruquintinib dose of a subject never given HAIC."""
    c1d1 = first_haic_date(facts)
    if c1d1 is None:
        return _first(facts, FRUQUINTINIB_DOSED)
    return c1d1


def _first_fact(facts: Sequence[Fact], type_: str) -> Fact | None:
    matching = [f for f in facts if f.type == type_]
    return min(matching, key=lambda f: (f.occurred_on, f.position)) if matching else None


def _first(facts: Sequence[Fact], type_: str) -> date | None:
    fact = _first_fact(facts, type_)
    return None if fact is None else fact.occurred_on


def _site(subject_id: str, source: str | None) -> str | None:
    """Site number: the subject number's prefix ("01-003" → "01"), else the source's suffix."""
    prefix, dash, _ = subject_id.partition("-")
    if dash and prefix:
        return prefix
    if source and "-" in source:
        return source.rsplit("-", 1)[1]
    return source


def _assessment(fact: Fact) -> TumorAssessment:
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


def _tte_row(
    context: _Context,
    row: TimeToEvent,
    cohort: str,
    adrs: Sequence[Mapping[str, Any]],
    conflict: bool,
) -> dict[str, Any]:
    srcdom, srcvar, srcseq = _tte_source(row, adrs)
    return {
        "STUDYID": context.studyid,
        "USUBJID": row.usubjid,
        "ASEQ": None,
        "PARAMCD": row.paramcd,
        "PARAM": row.param,
        "PARAMN": _ADTTE_PARAMN.get(row.paramcd),
        "TRTP": context.trtp,
        "TRTA": context.trta,
        "STARTDT": row.startdt,
        "ADT": row.adt,
        "AVAL": row.aval,
        "CNSR": row.cnsr,
        "EVNTDESC": row.evntdesc,
        "CNSDTDSC": row.cnsdtdsc,
        "SRCDOM": srcdom,
        "SRCVAR": srcvar,
        "SRCSEQ": srcseq,
        "FASFL": "Y",
        "DOSELVL": context.doselvl,
        "COHORT": cohort,
        "DTCONFL": "Y" if conflict else None,
    }


_ASSESSMENT_DATES: Final = frozenset(
    {endpoints.LAST_ADEQUATE, endpoints.LAST_ADEQUATE_BEFORE_THERAPY, endpoints.RESPONSE_ORIGIN}
)


def _tte_source(
    row: TimeToEvent, adrs: Sequence[Mapping[str, Any]]
) -> tuple[str | None, str | None, int | None]:
    """SRCDOM, SRCVAR, SRCSEQ of an ADTTE row, the admiralonco event and censor sources.

    Progression and every censoring at a tumor assessment point at the ADRS OVR record of ADT;
    death at ADSL.DTHDT; censoring at C1D1 at ADSL.TRTSDT, at the last contact at
    ADSL.LSTALVDT; censoring at the data cutoff has no source record (all blank).
    """
    if row.cnsr == endpoints.EVENT:
        if row.evntdesc == endpoints.DEATH:
            return "ADSL", "DTHDT", None
        return "ADRS", "ADT", _ovr_seq(adrs, row.adt, PD)
    if row.cnsdtdsc == endpoints.C1D1_DATE:
        return "ADSL", "TRTSDT", None
    if row.cnsdtdsc == endpoints.LAST_KNOWN_ALIVE:
        return "ADSL", "LSTALVDT", None
    if row.cnsdtdsc in _ASSESSMENT_DATES:
        seq = _ovr_seq(adrs, row.adt, None)
        return ("ADRS", "ADT", seq) if seq is not None else (None, None, None)
    return None, None, None


def _ovr_seq(
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


def _response_rows(
    context: _Context,
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

    counted = _analysed_time_points(ordered, c1d1)
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
        (tp.assessed_on for tp in _up_to_pd(counted) if tp.response in (CR, PR)), None
    )
    rows.append(row("RSP", first_response if responded else None, "Y" if responded else "N",
                    None))
    confirmed = best.confirmed in (CR, PR)
    rows.append(row("CRSP", best.first_confirmed_response_on if confirmed else None,
                    "Y" if confirmed else "N", None))
    _number(rows, "ASEQ", ("PARAMCD", "ADT"))
    for r in rows:
        if r["PARAMCD"] != "OVR" and r["ADT"] is not None:
            r["SRCDOM"], r["SRCVAR"] = "ADRS", "ADT"
            r["SRCSEQ"] = _ovr_seq(rows, r["ADT"], None)
    return rows


def _analysed_time_points(
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


def _up_to_pd(time_points: Sequence[TimePointResponse]) -> list[TimePointResponse]:
    kept = []
    for tp in sorted(time_points, key=lambda t: t.assessed_on):
        kept.append(tp)
        if tp.response == PD:
            break
    return kept


def _best_on(
    time_points: Sequence[TimePointResponse], response: str, c1d1: date, rules: AssessmentRules
) -> date | None:
    """The date admiralonco gives a best response: the first visit (up to the first PD) with it;
    for SD or NON-CR/NON-PD the first SD-or-better visit on or after the minimum SD day
    (``bor_sd``); for NE the first visit (``bor_ne``); None without visits."""
    points = _up_to_pd(time_points)
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
    points = _up_to_pd(time_points)
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


def _adverse_event_rows(
    context: _Context,
    facts: Sequence[Fact],
    candidates: frozenset[str],
    saffl: str,
) -> list[dict[str, Any]]:
    c1d1 = context.c1d1
    resolved: dict[str, tuple[date, int, bool]] = {}
    coding: dict[str, Mapping[str, Any]] = {}
    for fact in facts:
        if fact.type == ADVERSE_EVENT_REPORTED:
            coding[str(fact.data["ae_id"])] = fact.data  # the report adverse_events() reads
        if fact.type == ADVERSE_EVENT_UPDATED and fact.data.get("resolved") is not None:
            ae_id = str(fact.data["ae_id"])
            key = (fact.occurred_on, fact.position, bool(fact.data["resolved"]))
            if ae_id not in resolved or key[:2] > resolved[ae_id][:2]:
                resolved[ae_id] = key
    rows = []
    for ae in adverse_events(facts).values():
        latest = resolved.get(ae.ae_id)
        is_resolved = latest is not None and latest[2]
        report = coding.get(ae.ae_id, {})
        rows.append(
            {
                "STUDYID": context.studyid,
                "USUBJID": context.usubjid,
                "AESEQ": None,
                "AESPID": ae.ae_id,
                "AETERM": ae.term,
                "AEDECOD": _text_or_none(report.get("meddra_pt")),
                "AEBODSYS": _text_or_none(report.get("meddra_soc")),
                "TRTA": context.trta,
                "ASTDT": ae.onset,
                "ASTDY": None if c1d1 is None else study_day(ae.onset, c1d1),
                "AENDT": latest[0] if latest is not None and is_resolved else None,
                "AERESFL": "Y" if is_resolved else "N",
                "ATOXGRN": ae.worst_grade,
                "ATOXGR": str(ae.worst_grade),
                "AESER": "Y" if ae.serious else "N",
                "AEREL": "Y" if ae.related else "N",
                "AREL": "Y" if ae.related else "N",
                "TRTEMFL": "Y" if c1d1 is not None and ae.onset >= c1d1 else "N",
                "SAFFL": saffl,
                "DLTCNDFL": "Y" if ae.ae_id in candidates else "N",
                "DLTADJ": {True: "Y", False: "N", None: None}[ae.adjudicated_dlt],
                "DOSELVL": context.doselvl,
            }
        )
    _number(rows, "AESEQ", ("ASTDT", "AESPID"))
    return rows


def _text_or_none(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _frame(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], sort_by: Sequence[str]
) -> pd.DataFrame:
    """Rows as a frame with fixed column order and dtypes, sorted, missing dates last."""
    names = [c.name for c in columns]
    keyed = sorted(rows, key=lambda r: tuple(_sort_key(r[k]) for k in sort_by))
    data: dict[str, pd.Series[Any]] = {}
    for column in columns:
        values = [r[column.name] for r in keyed]
        if column.kind == "int":
            data[column.name] = pd.Series(values, dtype="Int64")
        elif column.kind == "float":
            data[column.name] = pd.Series(
                [float("nan") if v is None else float(v) for v in values], dtype="float64"
            )
        else:
            data[column.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=names)


def _sort_key(value: object) -> tuple[int, str]:
    return (1, "") if value is None else (0, str(value))
