"""ADaM-shaped analysis datasets (ADSL, ADTTE, ADRS, ADAE) folded from the ledger's records.

``build_datasets`` is a pure fold over contract-shaped :class:`~ledger.entries.LedgerEntry` records
with both clocks explicit, never "now":

* ``as_of`` (transaction time): records with ``recorded_at > as_of`` are not read, so a correction,
  void or late fact changes the datasets only from the moment the ledger recorded it.
  Corrections and voids are applied by :class:`~ledger.aggregates.facts.FactBook`, the same book
  the Trial aggregate keeps, so datasets and decisions read amendments alike.
* ``cutoff`` (valid time): clinical facts dated after it are left out of every dataset, and the
  time-to-event rows are censored at it by :mod:`ledger.projections.endpoints`, which receives the
  cutoff itself (it alone decides "alive at the cutoff" from facts dated after it).

Responses come from :mod:`ledger.projections.recist`, censoring from
:mod:`ledger.projections.endpoints`, C1D1, DLT windows and adverse events from
:mod:`ledger.aggregates.safety`: nothing clinical is re-derived here. Decisions taken here, where
the rules leave room, each noted where applied:

* C1D1 (TRTSDT, STARTDT) is the first HAIC; a subject dosed with fruquintinib but never given HAIC
  (a deviation, but a treated subject) starts at the first fruquintinib dose, so the full analysis
  set and the time-to-event sets hold the same subjects.
* "Last known alive" is the latest dated fact about the subject other than a death or a DLT
  adjudication (a committee's date, not a contact with the subject).
* A subject enrolled in the expansion cohort takes the dose level that ``expansion.opened``
  recorded (the MTD).
* The investigator's best response (ADRS ``INVRESP`` on BOR/CBOR rows) is the same RECIST BOR rules
  applied to the investigator's time-point calls, a visit without a call counting as NE.

Output is deterministic: rows sorted by (USUBJID, PARAMCD, ADT) (ADAE by USUBJID, ASTDT, AESPID),
columns in the order of the ``*_COLUMNS`` tables below, dates as :class:`datetime.date` (written as
ISO-8601 in CSV, as SAS ``DATE9.`` numbers in transport files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal

import pandas as pd

from ledger.aggregates.facts import (
    ADVERSE_EVENT_UPDATED,
    ANTICANCER_THERAPY_STARTED,
    CLINICAL_FACT_TYPES,
    DLT_ADJUDICATED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    RECORD_CORRECTED,
    RECORD_VOIDED,
    SUBJECT_DIED,
    SUBJECT_ENROLLED,
    SUBJECT_WITHDRAWN,
    TREATMENT_DISCONTINUED,
    TUMOR_ASSESSED,
    Fact,
    FactBook,
)
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.aggregates.safety import adverse_events, assess_dlt_window, first_haic_date
from ledger.entries import LedgerEntry, known_as_of
from ledger.projections import endpoints
from ledger.projections.endpoints import SubjectCourse, TimeToEvent, clopper_pearson
from ledger.projections.recist import (
    CR,
    NE,
    PD,
    PR,
    AssessmentRules,
    BestResponse,
    TargetLesion,
    TimePointResponse,
    TumorAssessment,
    best_overall_response,
    derive_time_points,
    study_day,
)
from ledger.projections.survival import EndpointSummary, summarise_endpoint

__all__ = [
    "ADAE_COLUMNS",
    "ADRS_COLUMNS",
    "ADSL_COLUMNS",
    "ADTTE_COLUMNS",
    "DATASET_LABELS",
    "DISCREPANCY_COLUMNS",
    "AnalysisDatasets",
    "Column",
    "Provenance",
    "ResponseRate",
    "build_datasets",
]

ColumnKind = Literal["text", "date", "int", "float"]


@dataclass(frozen=True, slots=True)
class Column:
    """One dataset variable: SAS v5 name (≤ 8), label (≤ 40 ASCII) and value kind."""

    name: str
    label: str
    kind: ColumnKind


def _columns(*spec: tuple[str, str, ColumnKind]) -> tuple[Column, ...]:
    return tuple(Column(name, label, kind) for name, label, kind in spec)


ADSL_COLUMNS: Final = _columns(
    ("STUDYID", "Study Identifier", "text"),
    ("USUBJID", "Unique Subject Identifier", "text"),
    ("SUBJID", "Subject Identifier for the Study", "text"),
    ("SITEID", "Study Site Identifier", "text"),
    ("COHORT", "Enrollment Cohort", "text"),
    ("ARM", "Description of Planned Arm", "text"),
    ("TRT01A", "Actual Treatment for Period 01", "text"),
    ("DOSELVL", "Dose Level", "text"),
    ("DOSEMG", "Assigned Fruquintinib Dose (mg)", "float"),
    ("ENRLDT", "Date of Enrollment", "date"),
    ("TRTSDT", "Date of First Exposure (C1D1)", "date"),
    ("TRTEDT", "Date of Last Exposure to Treatment", "date"),
    ("FASFL", "Full Analysis Set Population Flag", "text"),
    ("DLTEVLFL", "DLT-Evaluable Population Flag", "text"),
    ("DLTFL", "Dose-Limiting Toxicity Flag", "text"),
    ("EOTSTT", "End of Treatment Status", "text"),
    ("DCTREAS", "Reason for Discontinuation of Treatment", "text"),
    ("EOSSTT", "End of Study Status", "text"),
    ("DCSREAS", "Reason for Discontinuation from Study", "text"),
    ("DTHFL", "Subject Death Flag", "text"),
    ("DTHDT", "Date of Death", "date"),
    ("LSTALVDT", "Date Last Known Alive", "date"),
)

ADTTE_COLUMNS: Final = _columns(
    ("STUDYID", "Study Identifier", "text"),
    ("USUBJID", "Unique Subject Identifier", "text"),
    ("PARAMCD", "Parameter Code", "text"),
    ("PARAM", "Parameter", "text"),
    ("STARTDT", "Time-to-Event Origin Date", "date"),
    ("ADT", "Analysis Date", "date"),
    ("AVAL", "Analysis Value (days)", "int"),
    ("CNSR", "Censor (0 = event)", "int"),
    ("EVNTDESC", "Event or Censoring Description", "text"),
    ("CNSDTDSC", "Censor Date Description", "text"),
    ("DOSELVL", "Dose Level", "text"),
    ("COHORT", "Enrollment Cohort", "text"),
)

ADRS_COLUMNS: Final = _columns(
    ("STUDYID", "Study Identifier", "text"),
    ("USUBJID", "Unique Subject Identifier", "text"),
    ("PARAMCD", "Parameter Code", "text"),
    ("PARAM", "Parameter", "text"),
    ("ADT", "Analysis Date", "date"),
    ("ADY", "Analysis Relative Day", "int"),
    ("AVALC", "Analysis Value (C)", "text"),
    ("INVRESP", "Investigator Response", "text"),
    ("DISCRFL", "Derived vs Investigator Discrepancy Flag", "text"),
    ("SUMDIAM", "Sum of Target Diameters (mm)", "float"),
    ("PCHGBL", "Percent Change from Baseline Sum", "float"),
    ("PCHGNAD", "Percent Change from Nadir Sum", "float"),
    ("DOSELVL", "Dose Level", "text"),
)

ADAE_COLUMNS: Final = _columns(
    ("STUDYID", "Study Identifier", "text"),
    ("USUBJID", "Unique Subject Identifier", "text"),
    ("AESPID", "Sponsor-Defined Identifier", "text"),
    ("AETERM", "Reported Term for the Adverse Event", "text"),
    ("ASTDT", "Analysis Start Date (onset)", "date"),
    ("ASTDY", "Analysis Start Relative Day", "int"),
    ("AENDT", "Analysis End Date (resolved)", "date"),
    ("AERESFL", "Resolved Flag", "text"),
    ("ATOXGRN", "Worst CTCAE v5 Grade", "int"),
    ("AESER", "Serious Event", "text"),
    ("AEREL", "Related to Study Treatment", "text"),
    ("TRTEMFL", "Treatment Emergent Analysis Flag", "text"),
    ("DLTCNDFL", "DLT Candidate Flag", "text"),
    ("DLTADJ", "DLT Adjudication (Y/N, blank pending)", "text"),
    ("DOSELVL", "Dose Level", "text"),
)

DISCREPANCY_COLUMNS: Final = _columns(
    ("USUBJID", "Unique Subject Identifier", "text"),
    ("PARAMCD", "Parameter Code", "text"),
    ("ADT", "Analysis Date", "date"),
    ("AVALC", "Derived Response (RECIST 1.1)", "text"),
    ("INVRESP", "Investigator Response", "text"),
    ("SUMDIAM", "Sum of Target Diameters (mm)", "float"),
    ("PCHGBL", "Percent Change from Baseline Sum", "float"),
    ("PCHGNAD", "Percent Change from Nadir Sum", "float"),
    ("DOSELVL", "Dose Level", "text"),
)

DATASET_LABELS: Final[Mapping[str, str]] = {
    "adsl": "Subject-Level Analysis Dataset",
    "adtte": "Time-to-Event Analysis Dataset",
    "adrs": "Tumor Response Analysis Dataset",
    "adae": "Adverse Events Analysis Dataset",
}

PARAM_OVR: Final = "Overall Response by Visit (RECIST 1.1)"
PARAM_BOR: Final = "Best Overall Response (unconfirmed)"
PARAM_CBOR: Final = "Best Overall Response (confirmed)"
_ADRS_PARAMS: Final = {"OVR": PARAM_OVR, "BOR": PARAM_BOR, "CBOR": PARAM_CBOR}

_EXPANSION: Final = "EXPANSION"
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


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where the datasets come from: the ledger read, up to which record, under which protocol."""

    trial_id: str
    protocol_id: str
    protocol_version: str
    last_position: int
    last_recorded_at: datetime
    entries_read: int
    as_of: datetime | None
    cutoff: date | None


@dataclass(frozen=True, slots=True)
class ResponseRate:
    """Confirmed objective response rate (CR or PR) with its exact Clopper–Pearson 95 % interval."""

    label: str
    responders: int
    n: int
    lower: float
    upper: float

    @property
    def rate(self) -> float:
        return self.responders / self.n if self.n else float("nan")

    def describe(self) -> str:
        """E.g. "ORR 7/27 = 25.9% (95% CI 11.1–46.3%)"; "ORR 0/0 (no subjects)" when empty."""
        if not self.n:
            return f"ORR {self.label}: 0/0 (no subjects)"
        return (
            f"ORR {self.label}: {self.responders}/{self.n} = {100 * self.rate:.1f}% "
            f"(95% CI {100 * self.lower:.1f}–{100 * self.upper:.1f}%)"
        )


@dataclass(frozen=True, eq=False)
class AnalysisDatasets:
    """The datasets as the ledger knew them at ``as_of``, for facts up to ``cutoff``."""

    provenance: Provenance
    adsl: pd.DataFrame
    adtte: pd.DataFrame
    adrs: pd.DataFrame
    adae: pd.DataFrame
    discrepancies: pd.DataFrame
    """Every ADRS row where the investigator's call differs from the derived response."""
    orr: tuple[ResponseRate, ...]
    """Overall first (label "Overall"), then one per dose level in protocol order."""
    dose_levels: Mapping[str, float] = field(default_factory=dict)
    """Dose level name → fruquintinib mg, in protocol order."""

    def frames(self) -> dict[str, pd.DataFrame]:
        """The four submission datasets by file stem, in a fixed order."""
        return {"adsl": self.adsl, "adtte": self.adtte, "adrs": self.adrs, "adae": self.adae}

    @property
    def orr_summary(self) -> pd.DataFrame:
        """ORR rows (overall, then by dose level): responders, n, rate and 95 % CI."""
        return pd.DataFrame(
            [
                {"label": r.label, "responders": r.responders, "n": r.n, "rate": r.rate,
                 "lower_95": r.lower, "upper_95": r.upper}
                for r in self.orr
            ]
        ).set_index("label")

    def kaplan_meier(self, paramcd: str, group_col: str = "DOSELVL") -> EndpointSummary | None:
        """Kaplan–Meier results for PFS, OS or DOR, overall and per group; None without rows."""
        if not (self.adtte["PARAMCD"] == paramcd).any():
            return None
        return summarise_endpoint(self.adtte, paramcd, group_col)


# --- the fold ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Enrollment:
    cohort: str
    source: str | None


@dataclass(slots=True)
class _LedgerState:
    """What the fold keeps: the protocol, the book of facts, and the ledger's own expansion dose."""

    trial_id: str = ""
    protocol: Mapping[str, Any] | None = None
    facts: FactBook = field(default_factory=FactBook)
    enrollments: dict[str, _Enrollment] = field(default_factory=dict)
    expansion_level: str | None = None
    last_position: int = 0
    last_recorded_at: datetime | None = None
    entries_read: int = 0

    def evolve(self, entry: LedgerEntry) -> None:
        self.last_position = entry.position
        self.last_recorded_at = entry.recorded_at
        self.entries_read += 1
        data = entry.data
        if entry.type == "trial.opened":
            self.trial_id = entry.trial_id
            self.protocol = data["protocol"]
        elif entry.type == "expansion.opened":
            self.expansion_level = str(data["at_cohort"])
        elif entry.type in CLINICAL_FACT_TYPES:
            if entry.event_id is None or entry.occurred_on is None:
                raise ValueError(f"{entry.type} at position {entry.position} lacks event_id/date")
            self.facts.add(
                Fact(
                    event_id=entry.event_id,
                    type=entry.type,
                    subject_id=entry.subject_id,
                    occurred_on=entry.occurred_on,
                    data=data,
                    position=entry.position,
                )
            )
            if entry.type == SUBJECT_ENROLLED and entry.subject_id is not None:
                self.enrollments[entry.subject_id] = _Enrollment(str(data["cohort"]), entry.source)
        elif entry.type == RECORD_CORRECTED:
            # The same reading of a correction as Trial.RecordCorrected.
            corrected_on = data.get("occurred_on")
            self.facts.correct(
                str(data["target_event_id"]),
                data["data"],
                date.fromisoformat(corrected_on) if corrected_on else None,
            )
        elif entry.type == RECORD_VOIDED:
            self.facts.void(str(data["target_event_id"]))


def build_datasets(
    entries: Iterable[LedgerEntry], *, as_of: datetime | None, cutoff: date | None
) -> AnalysisDatasets:
    """Fold one trial's ledger entries (in ledger order) into the analysis datasets.

    ``as_of``: transaction time; entries recorded after it are not read (None: everything given).
    ``cutoff``: valid time; clinical facts dated after it are ignored (None: no cutoff).
    Raises ValueError when no ``trial.opened`` entry was recorded by ``as_of``.
    """
    state = _LedgerState()
    for entry in known_as_of(entries, as_of):
        state.evolve(entry)
    if state.protocol is None or state.last_recorded_at is None:
        when = "at all" if as_of is None else f"by {as_of.isoformat()}"
        raise ValueError(f"no trial.opened entry was recorded {when}: nothing to analyse")
    return _derive(state, as_of, cutoff)


# --- from the folded state to datasets --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Subject:
    """One subject's derived rows, before they are collected into frames."""

    adsl: dict[str, Any]
    adtte: list[dict[str, Any]]
    adrs: list[dict[str, Any]]
    adae: list[dict[str, Any]]
    confirmed: str | None


def _derive(state: _LedgerState, as_of: datetime | None, cutoff: date | None) -> AnalysisDatasets:
    assert state.protocol is not None and state.last_recorded_at is not None
    protocol = ProtocolDefinition.from_mapping(state.protocol)
    rules = AssessmentRules.from_mapping(state.protocol["assessments"])
    levels = {level.name: level.dose_mg for level in protocol.dose_levels}
    subjects: list[_Subject] = []
    for subject_id in sorted(state.enrollments):
        all_facts = state.facts.of_subject(subject_id)
        facts = [f for f in all_facts if cutoff is None or f.occurred_on <= cutoff]
        enrollment = next((f for f in facts if f.type == SUBJECT_ENROLLED), None)
        if enrollment is None:
            continue  # enrolled after the cutoff: not yet in the study on that day
        subjects.append(
            _subject(state, protocol, rules, levels, subject_id, all_facts, facts, cutoff)
        )

    adsl = _frame([s.adsl for s in subjects], ADSL_COLUMNS, ["USUBJID"])
    adtte = _frame([r for s in subjects for r in s.adtte], ADTTE_COLUMNS,
                   ["USUBJID", "PARAMCD", "ADT"])
    adrs = _frame([r for s in subjects for r in s.adrs], ADRS_COLUMNS,
                  ["USUBJID", "PARAMCD", "ADT"])
    adae = _frame([r for s in subjects for r in s.adae], ADAE_COLUMNS,
                  ["USUBJID", "ASTDT", "AESPID"])
    discrepant = adrs.loc[adrs["DISCRFL"] == "Y", [c.name for c in DISCREPANCY_COLUMNS]]
    discrepancies = discrepant.reset_index(drop=True)

    fas = [s for s in subjects if s.adsl["FASFL"] == "Y"]
    orr = [_rate("Overall", fas)]
    for level in levels:
        orr.append(_rate(level, [s for s in fas if s.adsl["DOSELVL"] == level]))

    return AnalysisDatasets(
        provenance=Provenance(
            trial_id=state.trial_id,
            protocol_id=protocol.protocol_id,
            protocol_version=protocol.protocol_version,
            last_position=state.last_position,
            last_recorded_at=state.last_recorded_at,
            entries_read=state.entries_read,
            as_of=as_of,
            cutoff=cutoff,
        ),
        adsl=adsl,
        adtte=adtte,
        adrs=adrs,
        adae=adae,
        discrepancies=discrepancies,
        orr=tuple(orr),
        dose_levels=levels,
    )


def _rate(label: str, subjects: Sequence[_Subject]) -> ResponseRate:
    responders = sum(1 for s in subjects if s.confirmed in (CR, PR))
    n = len(subjects)
    lower, upper = clopper_pearson(responders, n) if n else (float("nan"), float("nan"))
    return ResponseRate(label=label, responders=responders, n=n, lower=lower, upper=upper)


def _subject(
    state: _LedgerState,
    protocol: ProtocolDefinition,
    rules: AssessmentRules,
    levels: Mapping[str, float],
    subject_id: str,
    all_facts: Sequence[Fact],
    facts: Sequence[Fact],
    cutoff: date | None,
) -> _Subject:
    studyid = state.trial_id
    usubjid = f"{studyid}-{subject_id}"
    enrollment = state.enrollments[subject_id]
    cohort = enrollment.cohort
    level = state.expansion_level if cohort == _EXPANSION else cohort
    dose_mg = levels.get(level) if level is not None else None
    doselvl = level if dose_mg is not None else None
    arm = f"FRUQ {dose_mg:g} MG + HAIC" if dose_mg is not None else None

    c1d1 = _treatment_start(facts)
    treatment_dates = [f.occurred_on for f in facts if f.type in _TREATMENT_TYPES]
    death_on = _first(facts, SUBJECT_DIED)
    withdrawn = _first_fact(facts, SUBJECT_WITHDRAWN)
    discontinued = _first_fact(facts, TREATMENT_DISCONTINUED)
    window = assess_dlt_window(FactBook.of(facts), subject_id, protocol)
    alive_dates = [f.occurred_on for f in facts if f.type not in _NOT_ALIVE_EVIDENCE]

    # Responses: RECIST on the assessments known by the cutoff.
    assessments = [_assessment(f) for f in all_facts if f.type == TUMOR_ASSESSED]
    time_points_all = derive_time_points(assessments)
    time_points = tuple(
        tp for tp in time_points_all if cutoff is None or tp.assessed_on <= cutoff
    )
    known = [a for a in assessments if cutoff is None or a.assessed_on <= cutoff]
    best = best_overall_response(time_points, c1d1, rules) if c1d1 is not None else None

    adtte: list[dict[str, Any]] = []
    adrs: list[dict[str, Any]] = []
    if c1d1 is not None:
        course = SubjectCourse(
            usubjid=usubjid,
            c1d1=c1d1,
            has_baseline=any(a.baseline for a in known),
            time_points=time_points_all,
            death_on=_first(all_facts, SUBJECT_DIED),
            last_known_alive_on=max(
                (f.occurred_on for f in all_facts if f.type not in _NOT_ALIVE_EVIDENCE),
                default=None,
            ),
            new_therapy_on=_first(all_facts, ANTICANCER_THERAPY_STARTED),
            discontinued_on=_first(all_facts, TREATMENT_DISCONTINUED),
            discontinuation_reason=None if discontinued is None else str(
                discontinued.data["reason"]
            ),
            withdrawn_on=_first(all_facts, SUBJECT_WITHDRAWN),
            first_confirmed_response_on=None if best is None else best.first_confirmed_response_on,
        )
        rows = (
            endpoints.progression_free_survival(course, rules, cutoff),
            endpoints.overall_survival(course, cutoff),
            endpoints.duration_of_response(course, rules, cutoff),
        )
        adtte = [_tte_row(studyid, row, doselvl, cohort) for row in rows if row is not None]
        assert best is not None
        adrs = _response_rows(studyid, usubjid, c1d1, time_points, best, rules, doselvl)

    dltevlfl = {True: "Y", False: "N", None: None}[window.evaluable]
    adsl = {
        "STUDYID": studyid,
        "USUBJID": usubjid,
        "SUBJID": subject_id,
        "SITEID": _site(subject_id, enrollment.source),
        "COHORT": cohort,
        "ARM": arm,
        "TRT01A": arm if treatment_dates else None,
        "DOSELVL": doselvl,
        "DOSEMG": dose_mg,
        "ENRLDT": _first(facts, SUBJECT_ENROLLED),
        "TRTSDT": c1d1,
        "TRTEDT": max(treatment_dates, default=None),
        "FASFL": "Y" if treatment_dates else "N",
        "DLTEVLFL": dltevlfl,
        "DLTFL": ("Y" if window.has_dlt else "N") if window.evaluable else None,
        "EOTSTT": _end_of_treatment(bool(treatment_dates), discontinued, withdrawn, death_on)[0],
        "DCTREAS": _end_of_treatment(bool(treatment_dates), discontinued, withdrawn, death_on)[1],
        "EOSSTT": "DISCONTINUED" if death_on or withdrawn else "ONGOING",
        "DCSREAS": "DEATH" if death_on else (
            None if withdrawn is None else _WITHDRAWAL_REASONS.get(str(withdrawn.data["reason"]))
        ),
        "DTHFL": "Y" if death_on else None,
        "DTHDT": death_on,
        "LSTALVDT": None if death_on else max(alive_dates, default=None),
    }
    return _Subject(
        adsl=adsl,
        adtte=adtte,
        adrs=adrs,
        adae=_adverse_event_rows(studyid, usubjid, facts, window.candidates, c1d1, doselvl),
        confirmed=None if best is None else best.confirmed,
    )


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
    studyid: str, row: TimeToEvent, doselvl: str | None, cohort: str
) -> dict[str, Any]:
    return {
        "STUDYID": studyid,
        "USUBJID": row.usubjid,
        "PARAMCD": row.paramcd,
        "PARAM": row.param,
        "STARTDT": row.startdt,
        "ADT": row.adt,
        "AVAL": row.aval,
        "CNSR": row.cnsr,
        "EVNTDESC": row.evntdesc,
        "CNSDTDSC": row.cnsdtdsc,
        "DOSELVL": doselvl,
        "COHORT": cohort,
    }


def _response_rows(
    studyid: str,
    usubjid: str,
    c1d1: date,
    time_points: Sequence[TimePointResponse],
    best: BestResponse,
    rules: AssessmentRules,
    doselvl: str | None,
) -> list[dict[str, Any]]:
    def row(paramcd: str, on: date | None, avalc: str, inv: str | None) -> dict[str, Any]:
        return {
            "STUDYID": studyid,
            "USUBJID": usubjid,
            "PARAMCD": paramcd,
            "PARAM": _ADRS_PARAMS[paramcd],
            "ADT": on,
            "ADY": None if on is None else study_day(on, c1d1),
            "AVALC": avalc,
            "INVRESP": inv,
            "DISCRFL": None if inv is None else ("Y" if inv != avalc else "N"),
            "SUMDIAM": None,
            "PCHGBL": None,
            "PCHGNAD": None,
            "DOSELVL": doselvl,
        }

    rows = []
    for tp in time_points:
        visit = row("OVR", tp.assessed_on, tp.response, tp.investigator_response)
        visit["DISCRFL"] = None if tp.investigator_response is None else (
            "Y" if tp.discrepant else "N"
        )
        visit["SUMDIAM"] = tp.target_sum_mm
        visit["PCHGBL"] = tp.pct_change_from_baseline
        visit["PCHGNAD"] = tp.pct_change_from_nadir
        rows.append(visit)

    investigator = _investigator_best(time_points, c1d1, rules)
    rows.append(row("BOR", _first_with(time_points, best.unconfirmed), best.unconfirmed,
                    None if investigator is None else investigator.unconfirmed))
    cbor_on = best.first_confirmed_response_on or _first_with(time_points, best.confirmed)
    rows.append(row("CBOR", cbor_on, best.confirmed,
                    None if investigator is None else investigator.confirmed))
    return rows


def _first_with(time_points: Sequence[TimePointResponse], response: str) -> date | None:
    """Date of the first time point (up to the first PD) with this response; None for NE."""
    if response == NE:
        return None
    for tp in sorted(time_points, key=lambda t: t.assessed_on):
        if tp.response == response:
            return tp.assessed_on
        if tp.response == PD:
            break
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
    studyid: str,
    usubjid: str,
    facts: Sequence[Fact],
    candidates: frozenset[str],
    c1d1: date | None,
    doselvl: str | None,
) -> list[dict[str, Any]]:
    resolved: dict[str, tuple[date, int, bool]] = {}
    for fact in facts:
        if fact.type == ADVERSE_EVENT_UPDATED and fact.data.get("resolved") is not None:
            ae_id = str(fact.data["ae_id"])
            key = (fact.occurred_on, fact.position, bool(fact.data["resolved"]))
            if ae_id not in resolved or key[:2] > resolved[ae_id][:2]:
                resolved[ae_id] = key
    rows = []
    for ae in adverse_events(facts).values():
        latest = resolved.get(ae.ae_id)
        is_resolved = latest is not None and latest[2]
        rows.append(
            {
                "STUDYID": studyid,
                "USUBJID": usubjid,
                "AESPID": ae.ae_id,
                "AETERM": ae.term,
                "ASTDT": ae.onset,
                "ASTDY": None if c1d1 is None else study_day(ae.onset, c1d1),
                "AENDT": latest[0] if latest is not None and is_resolved else None,
                "AERESFL": "Y" if is_resolved else "N",
                "ATOXGRN": ae.worst_grade,
                "AESER": "Y" if ae.serious else "N",
                "AEREL": "Y" if ae.related else "N",
                "TRTEMFL": "Y" if c1d1 is not None and ae.onset >= c1d1 else "N",
                "DLTCNDFL": "Y" if ae.ae_id in candidates else "N",
                "DLTADJ": {True: "Y", False: "N", None: None}[ae.adjudicated_dlt],
                "DOSELVL": doselvl,
            }
        )
    return rows


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
