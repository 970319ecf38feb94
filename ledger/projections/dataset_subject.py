"""One subject's dataset rows (ADSL, ADTTE, ADRS, ADAE) from the facts the ledger folded: the
derivation :func:`ledger.projections.datasets.build_datasets` runs for every enrolled subject
(the decisions it takes where the rules leave room are listed there)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.aggregates.facts import (
    ANTICANCER_THERAPY_STARTED,
    SUBJECT_DIED,
    SUBJECT_ENROLLED,
    SUBJECT_WITHDRAWN,
    TREATMENT_DISCONTINUED,
    TUMOR_ASSESSED,
    FactBook,
)
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.safety import ADVERSE_EVENT_TYPES, assess_dlt_window
from ledger.projections import endpoints
from ledger.projections.adrs_rows import analysed_time_points, response_rows, tumor_assessment
from ledger.projections.adtte_rows import tte_row
from ledger.projections.best_response import best_overall_response
from ledger.projections.dataset_rows import (
    NOT_TREATED,
    NOT_TREATED_CD,
    TREATMENT_TYPES,
    WITHDRAWAL_REASONS,
    RowContext,
    adverse_event_rows,
    baseline_demographics,
    end_of_treatment_status,
    first_date_of,
    first_fact,
    last_alive_on,
    number_rows,
    site_id,
    treatment_start,
)
from ledger.projections.endpoints import SubjectCourse
from ledger.projections.recist import AssessmentRules, derive_time_points


@dataclass(frozen=True, slots=True)
class TrialFacts:
    """What every subject's derivation reads from the folded ledger, the same for all subjects."""

    trial_id: str
    protocol: ProtocolDefinition
    rules: AssessmentRules
    levels: Mapping[str, float]
    """Dose level name → fruquintinib mg, in protocol order."""
    expansion_level: str | None
    """The dose level ``expansion.opened`` recorded (the MTD), if the expansion opened."""
    facts: FactBook
    cutoff: date | None


@dataclass(frozen=True, slots=True)
class SubjectRows:
    """One subject's derived rows, before they are collected into datasets."""

    adsl: dict[str, Any]
    adtte: list[dict[str, Any]]
    adrs: list[dict[str, Any]]
    adae: list[dict[str, Any]]
    confirmed: str | None
    """The confirmed best overall response (CBOR), None for a subject never treated."""


def derive_subject(
    trial: TrialFacts, subject_id: str, cohort: str, source: str | None
) -> SubjectRows | None:
    """One subject's rows from the facts known by the cutoff; None if enrolled after the cutoff."""
    cutoff = trial.cutoff
    all_facts = trial.facts.of_subject(subject_id)
    facts = all_facts if cutoff is None else [f for f in all_facts if f.occurred_on <= cutoff]
    # The book of everything known answers for this subject alike when nothing is cut off.
    book = trial.facts if cutoff is None else FactBook.of(facts)
    by_type = book.of_subject_by_type(subject_id)
    all_by_type = trial.facts.of_subject_by_type(subject_id)
    enrolled = next(iter(by_type.get(SUBJECT_ENROLLED, ())), None)
    if enrolled is None:
        return None  # enrolled after the cutoff: not yet in the study on that day
    rules = trial.rules
    studyid = trial.trial_id
    usubjid = f"{studyid}-{subject_id}"
    level = trial.expansion_level if cohort == EXPANSION else cohort
    dose_mg = trial.levels.get(level) if level is not None else None
    doselvl = level if dose_mg is not None else None
    arm = f"FRUQ {dose_mg:g} MG + HAIC" if dose_mg is not None else None
    armcd = f"FRUQ{dose_mg:g}MG" if dose_mg is not None else None

    c1d1 = treatment_start(by_type)
    treatment_dates = [f.occurred_on for t in TREATMENT_TYPES for f in by_type.get(t, ())]
    treated = bool(treatment_dates)
    trta = arm if treated else None
    death_on = first_date_of(by_type, SUBJECT_DIED)
    withdrawn = first_fact(by_type, SUBJECT_WITHDRAWN)
    discontinued = first_fact(by_type, TREATMENT_DISCONTINUED)
    window = assess_dlt_window(book, subject_id, trial.protocol)

    # Responses: RECIST on the assessments known by the cutoff. A post-baseline assessment dated
    # before C1D1 is a date conflict: it is listed (OVR, ANL01FL blank) but, as in admiralonco,
    # only the ANL01FL records (on or after treatment start, the worst of each day) count towards
    # best response, PFS and DOR.
    assessments = [tumor_assessment(f) for f in all_by_type.get(TUMOR_ASSESSED, ())]
    time_points_all = derive_time_points(assessments)
    time_points = tuple(tp for tp in time_points_all if cutoff is None or tp.assessed_on <= cutoff)
    known = [a for a in assessments if cutoff is None or a.assessed_on <= cutoff]
    best = (
        None if c1d1 is None
        else best_overall_response(analysed_time_points(time_points, c1d1), c1d1, rules)
    )
    all_death_on = first_date_of(all_by_type, SUBJECT_DIED)
    conflict = c1d1 is not None and (
        (death_on is not None and death_on < c1d1)
        or any(tp.assessed_on < c1d1 for tp in time_points)
    )

    adtte: list[dict[str, Any]] = []
    adrs: list[dict[str, Any]] = []
    if c1d1 is not None:
        assert best is not None
        adrs = response_rows(
            RowContext(studyid, usubjid, c1d1, arm, trta, doselvl), time_points, best, rules
        )
        # A death dated before C1D1 cannot be placed after the origin: the time-to-event rows
        # take it on C1D1 (day 1, the earliest day they can hold) and carry DTCONFL = Y; ADSL
        # keeps the recorded DTHDT. Nothing is dropped and no AVAL is ever below 1.
        course_death_on = None if all_death_on is None else max(all_death_on, c1d1)
        course = SubjectCourse(
            usubjid=usubjid,
            c1d1=c1d1,
            has_baseline=any(a.baseline for a in known),
            time_points=tuple(analysed_time_points(time_points_all, c1d1)),
            death_on=course_death_on,
            last_known_alive_on=last_alive_on(all_by_type),
            new_therapy_on=first_date_of(all_by_type, ANTICANCER_THERAPY_STARTED),
            discontinued_on=first_date_of(all_by_type, TREATMENT_DISCONTINUED),
            withdrawn_on=first_date_of(all_by_type, SUBJECT_WITHDRAWN),
            first_confirmed_response_on=best.first_confirmed_response_on,
        )
        rows = (
            endpoints.progression_free_survival(course, rules, cutoff),
            endpoints.overall_survival(course, cutoff),
            endpoints.duration_of_response(course, rules, cutoff),
        )
        context = RowContext(studyid, usubjid, c1d1, arm, trta, doselvl)
        adtte = [tte_row(context, row, cohort, adrs, conflict) for row in rows if row is not None]
        number_rows(adtte, "ASEQ", ("PARAMCD",))

    baseline = baseline_demographics(enrolled)
    has_post_baseline = any(tp.assessed_on >= c1d1 for tp in time_points) if c1d1 else False
    efffl = treated and any(a.baseline for a in known) and has_post_baseline
    dltevlfl = {True: "Y", False: "N", None: None}[window.evaluable]
    trtedt = max(treatment_dates, default=None)
    end_of_treatment = end_of_treatment_status(treated, discontinued, withdrawn, death_on)
    adsl = {
        "STUDYID": studyid,
        "USUBJID": usubjid,
        "SUBJID": subject_id,
        "SITEID": site_id(subject_id, source),
        **baseline,
        "COHORT": cohort,
        "ARMCD": armcd,
        "ARM": arm,
        "ACTARMCD": armcd if treated else NOT_TREATED_CD,
        "ACTARM": arm if treated else NOT_TREATED,
        "TRT01P": arm,
        "TRT01PN": dose_mg,
        "TRT01A": trta,
        "TRT01AN": dose_mg if treated else None,
        "DOSELVL": doselvl,
        "DOSEMG": dose_mg,
        "ENRLDT": enrolled.occurred_on,
        "TRTSDT": c1d1,
        "TRTEDT": trtedt,
        "TRTDURD": None if c1d1 is None or trtedt is None else (trtedt - c1d1).days + 1,
        "ITTFL": "Y",
        "SAFFL": "Y" if treated else "N",
        "FASFL": "Y" if treated else "N",
        "EFFFL": "Y" if efffl else "N",
        "DLTEVLFL": dltevlfl,
        "DLTFL": ("Y" if window.has_dlt else "N") if window.evaluable else None,
        "EOTSTT": end_of_treatment[0],
        "DCTREAS": end_of_treatment[1],
        "EOSSTT": "DISCONTINUED" if death_on or withdrawn else "ONGOING",
        "DCSREAS": "DEATH"
        if death_on
        else (
            None if withdrawn is None else WITHDRAWAL_REASONS.get(str(withdrawn.data["reason"]))
        ),
        "DTHFL": "Y" if death_on else None,
        "DTHDT": death_on,
        "LSTALVDT": death_on if death_on else last_alive_on(by_type),
        "DTCONFL": "Y" if conflict else None,
    }
    return SubjectRows(
        adsl=adsl,
        adtte=adtte,
        adrs=adrs,
        adae=adverse_event_rows(
            RowContext(studyid, usubjid, c1d1, arm, trta, doselvl),
            book.of_subject(subject_id, ADVERSE_EVENT_TYPES),  # the facts it reads, by the cutoff
            window.candidates,
            "Y" if treated else "N",
        ),
        confirmed=None if best is None else best.confirmed,
    )
