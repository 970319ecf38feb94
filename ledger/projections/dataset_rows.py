"""Dataset rows every dataset shares, ADSL's parts and ADAE: the common context of one subject's
rows, demographics, treatment start and end and the adverse event rows (collected into datasets
by :func:`ledger.projections.dataset_table.dataset_table`). ADRS rows are
:mod:`ledger.projections.adrs_rows`, ADTTE rows :mod:`ledger.projections.adtte_rows`;
:mod:`ledger.projections.dataset_subject` puts one subject's rows together."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

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
from ledger.projections.dataset_table import sort_key
from ledger.projections.recist import study_day

TREATMENT_TYPES: Final = (HAIC_ADMINISTERED, FRUQUINTINIB_DOSED)
NOT_ALIVE_EVIDENCE: Final = (SUBJECT_DIED, DLT_ADJUDICATED)
WITHDRAWAL_REASONS: Final = {
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


NOT_TREATED: Final = "Assigned, Not Treated"
NOT_TREATED_CD: Final = "NOTTRT"
_SEX: Final[Mapping[str, str]] = {
    "M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "U": "U", "UNKNOWN": "U",
    "UNDIFFERENTIATED": "UNDIFFERENTIATED",
}


@dataclass(frozen=True, slots=True)
class RowContext:
    """What every row of one subject repeats."""

    studyid: str
    usubjid: str
    c1d1: date | None
    trtp: str | None
    trta: str | None
    doselvl: str | None


def baseline_demographics(enrolled: Fact) -> dict[str, Any]:
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


def number_rows(rows: list[dict[str, Any]], column: str, order: Sequence[str]) -> None:
    """Number one subject's rows 1, 2, … in ``order`` (the datasets' own sort), in place."""
    rows.sort(key=lambda r: tuple(sort_key(r[k]) for k in order))
    for seq, row in enumerate(rows, start=1):
        row[column] = seq


def end_of_treatment_status(
    treated: bool, discontinued: Fact | None, withdrawn: Fact | None, death_on: date | None
) -> tuple[str | None, str | None]:
    """EOTSTT and DCTREAS: a recorded discontinuation first, else leaving the study ends it."""
    if not treated:
        return None, None
    if discontinued is not None:
        return "DISCONTINUED", _TREATMENT_REASONS.get(str(discontinued.data["reason"]), "OTHER")
    if withdrawn is not None:
        return "DISCONTINUED", WITHDRAWAL_REASONS.get(str(withdrawn.data["reason"]), "OTHER")
    if death_on is not None:
        return "DISCONTINUED", "DEATH"
    return "ONGOING", None


FactsByType = Mapping[str, Sequence[Fact]]
"""One subject's facts by type, each type's in ledger order (`FactBook.of_subject_by_type`)."""


def treatment_start(facts: FactsByType) -> date | None:
    """C1D1: the first HAIC, or the first fruquintinib dose of a subject never given HAIC."""
    c1d1 = first_haic_date(facts.get(HAIC_ADMINISTERED, ()))
    if c1d1 is None:
        return first_date_of(facts, FRUQUINTINIB_DOSED)
    return c1d1


def first_fact(facts: FactsByType, type_: str) -> Fact | None:
    matching = facts.get(type_, ())
    return min(matching, key=lambda f: (f.occurred_on, f.position)) if matching else None


def first_date_of(facts: FactsByType, type_: str) -> date | None:
    fact = first_fact(facts, type_)
    return None if fact is None else fact.occurred_on


def last_alive_on(facts: FactsByType) -> date | None:
    """The latest date of a fact that shows the subject alive (any but `NOT_ALIVE_EVIDENCE`)."""
    return max(
        (
            fact.occurred_on
            for type_, group in facts.items()
            if type_ not in NOT_ALIVE_EVIDENCE
            for fact in group
        ),
        default=None,
    )


def site_id(subject_id: str, source: str | None) -> str | None:
    """Site number: the subject number's prefix ("01-003" → "01"), else the source's suffix."""
    prefix, dash, _ = subject_id.partition("-")
    if dash and prefix:
        return prefix
    if source and "-" in source:
        return source.rsplit("-", 1)[1]
    return source


def adverse_event_rows(
    context: RowContext,
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
    number_rows(rows, "AESEQ", ("ASTDT", "AESPID"))
    return rows


def _text_or_none(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
