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
* ADaM variables follow the ADaM IG 1.3 and the pharmaverse admiral/admiralonco templates: ADRS
  parameters OVR, BOR, CBOR, RSP, CRSP with ``AVAL`` coded as admiralonco's ``aval_resp``,
  ANL01FL (OVR on or after TRTSDT, the worst of a day), best responses dated at the visit
  admiralonco's events select (CBOR = CR at the confirmed CR, SD at the first SD-or-better visit
  on or after the minimum SD day); ADTTE SRCDOM/SRCVAR/SRCSEQ name the ADRS record (by ASEQ) or
  ADSL variable the analysis date came from (blank for censoring at the data cutoff).
* Envelope v2 demographics (``birth_date``/``age``, ``sex``, ``race``, ``ecog``, ``weight_kg``,
  ``height_cm``) fill ADSL; v1 subjects have them blank. AEDECOD/AEBODSYS are the MedDRA codes
  sent with the report, blank when uncoded (never the verbatim term dressed up as a code).

What the ledger accepts, the datasets hold; clinical impossibilities are flagged, never fatal:

* A death dated before C1D1: ADSL keeps the recorded DTHDT; the time-to-event rows place the death
  on C1D1 (AVAL 1, the earliest day they can hold), so PFS and OS agree it ended follow-up, and
  ``DTCONFL = "Y"`` on the subject's ADSL and ADTTE rows says the dates conflict.
* A post-baseline assessment dated before C1D1 is an OVR row with ANL01FL blank (AVISIT
  UNSCHEDULED, a negative ADY); it counts towards neither best response nor PFS, and the subject
  is flagged ``DTCONFL = "Y"``. Facts before enrollment are kept as dated (negative study days).
* Text longer than 200 bytes is exported whole in CSV and split into continuation variables in
  transport files (:func:`ledger.projections.xpt.split_long_text`).

Output is deterministic: rows sorted by (USUBJID, PARAMCD, ADT) (ADAE by USUBJID, ASTDT, AESPID),
columns in the order of the ``*_COLUMNS`` tables below, dates as :class:`datetime.date` (written as
ISO-8601 in CSV, as SAS ``DATE9.`` numbers in transport files).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal

import pandas as pd

from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
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
    derive_time_points,
    study_day,
)
from ledger.projections.survival import EndpointSummary, summarise_endpoint

__all__ = [
    "ADAE_COLUMNS",
    "ADRS_COLUMNS",
    "ADSL_COLUMNS",
    "ADTTE_COLUMNS",
    "CODELISTS",
    "DATASET_COLUMNS",
    "DATASET_KEYS",
    "DATASET_LABELS",
    "DISCREPANCY_COLUMNS",
    "AnalysisDatasets",
    "Column",
    "Provenance",
    "ResponseRate",
    "build_datasets",
]

ColumnKind = Literal["text", "date", "int", "float"]
Origin = Literal["Derived", "Assigned", "Collected", "Predecessor"]


@dataclass(frozen=True, slots=True)
class Column:
    """One dataset variable: SAS v5 name (≤ 8), label (≤ 40 ASCII) and value kind.

    The rest is the variable's define.xml metadata: ``origin`` (Define-XML 2.1 origin type),
    ``codelist`` (a key of :data:`CODELISTS` when the values are coded) and ``method`` (how a
    derived value is computed, in one sentence; empty when the label says it all).
    """

    name: str
    label: str
    kind: ColumnKind
    origin: Origin = "Derived"
    codelist: str | None = None
    method: str = ""


def _columns(*spec: tuple[str, str, ColumnKind]) -> tuple[Column, ...]:
    return tuple(Column(name, label, kind) for name, label, kind in spec)


def _col(
    name: str,
    label: str,
    kind: ColumnKind,
    origin: Origin = "Derived",
    codelist: str | None = None,
    method: str = "",
) -> Column:
    return Column(name, label, kind, origin, codelist, method)


_STUDYID = _col("STUDYID", "Study Identifier", "text", "Assigned")
_USUBJID = _col("USUBJID", "Unique Subject Identifier", "text", "Derived",
                method="STUDYID, a hyphen and SUBJID.")
_DOSELVL = _col("DOSELVL", "Dose Level", "text", "Assigned", "DOSELVL",
                "The enrollment cohort; EXPANSION subjects take the level expansion.opened named.")
_COHORT = _col("COHORT", "Enrollment Cohort", "text", "Collected", "COHORT")
_TRTP = _col("TRTP", "Planned Treatment", "text", "Predecessor", method="ADSL.TRT01P.")
_TRTA = _col("TRTA", "Actual Treatment", "text", "Predecessor", method="ADSL.TRT01A.")
_SRCDOM = _col("SRCDOM", "Source Data", "text", "Assigned", "SRCDOM",
               "The dataset holding the record the analysis date was taken from.")
_SRCVAR = _col("SRCVAR", "Source Variable", "text", "Assigned",
               method="The variable of SRCDOM holding the analysis date.")
_SRCSEQ = _col("SRCSEQ", "Source Sequence Number", "int", "Derived",
               method="ASEQ of the SRCDOM record (blank when SRCDOM is ADSL).")
_DTCONFL = _col("DTCONFL", "Date Conflict Flag", "text", "Derived", "Y",
                "Y when a death or post-baseline assessment is dated before treatment start.")

ADSL_COLUMNS: Final = (
    _STUDYID,
    _USUBJID,
    _col("SUBJID", "Subject Identifier for the Study", "text", "Collected"),
    _col("SITEID", "Study Site Identifier", "text", "Derived",
         method="The subject number's prefix before the hyphen, else the source's suffix."),
    _col("AGE", "Age", "int", "Collected",
         method="The age sent at enrollment, else whole years from BRTHDT to ENRLDT."),
    _col("AGEU", "Age Units", "text", "Assigned", "AGEU"),
    _col("SEX", "Sex", "text", "Collected", "SEX"),
    _col("RACE", "Race", "text", "Collected"),
    _col("BRTHDT", "Date of Birth", "date", "Collected"),
    _COHORT,
    _col("ARMCD", "Planned Arm Code", "text", "Assigned"),
    _col("ARM", "Description of Planned Arm", "text", "Assigned"),
    _col("ACTARMCD", "Actual Arm Code", "text", "Derived",
         method="ARMCD when the subject was dosed, else NOTTRT."),
    _col("ACTARM", "Description of Actual Arm", "text", "Derived",
         method="ARM when the subject was dosed, else Assigned, Not Treated."),
    _col("TRT01P", "Planned Treatment for Period 01", "text", "Assigned"),
    _col("TRT01PN", "Planned Treatment for Period 01 (N)", "float", "Assigned",
         method="The planned fruquintinib dose in mg."),
    _col("TRT01A", "Actual Treatment for Period 01", "text", "Derived",
         method="TRT01P when the subject was dosed, else blank."),
    _col("TRT01AN", "Actual Treatment for Period 01 (N)", "float", "Derived",
         method="TRT01PN when the subject was dosed, else blank."),
    _DOSELVL,
    _col("DOSEMG", "Assigned Fruquintinib Dose (mg)", "float", "Assigned"),
    _col("ENRLDT", "Date of Enrollment", "date", "Collected"),
    _col("TRTSDT", "Date of First Exposure (C1D1)", "date", "Derived",
         method="The first HAIC, else the first fruquintinib dose."),
    _col("TRTEDT", "Date of Last Exposure to Treatment", "date", "Derived",
         method="The last HAIC or fruquintinib dose."),
    _col("TRTDURD", "Total Treatment Duration (Days)", "int", "Derived",
         method="TRTEDT - TRTSDT + 1."),
    _col("ITTFL", "Intent-To-Treat Population Flag", "text", "Derived", "NY",
         "Y for every enrolled subject."),
    _col("SAFFL", "Safety Population Flag", "text", "Derived", "NY",
         "Y when the subject received any dose of study treatment."),
    _col("FASFL", "Full Analysis Set Population Flag", "text", "Derived", "NY",
         "Y when the subject received any dose of study treatment."),
    _col("EFFFL", "Efficacy Population Flag", "text", "Derived", "NY",
         "Y when SAFFL = Y with a baseline and a post-baseline tumor assessment."),
    _col("DLTEVLFL", "DLT-Evaluable Population Flag", "text", "Derived", "NY",
         "The cycle-1 DLT window rules of the protocol; blank while the window is open."),
    _col("DLTFL", "Dose-Limiting Toxicity Flag", "text", "Derived", "NY",
         "Y when an adjudicated DLT fell in the DLT window; blank if not DLT-evaluable."),
    _col("ECOGBL", "Baseline ECOG Performance Status", "int", "Collected"),
    _col("WEIGHTBL", "Baseline Weight (kg)", "float", "Collected"),
    _col("HEIGHTBL", "Baseline Height (cm)", "float", "Collected"),
    _col("BMIBL", "Baseline BMI (kg/m2)", "float", "Derived",
         method="WEIGHTBL / (HEIGHTBL / 100) squared, rounded to 0.1."),
    _col("EOTSTT", "End of Treatment Status", "text", "Derived", "STATUS"),
    _col("DCTREAS", "Reason for Discontinuation of Treatment", "text", "Derived"),
    _col("EOSSTT", "End of Study Status", "text", "Derived", "STATUS"),
    _col("DCSREAS", "Reason for Discontinuation from Study", "text", "Derived"),
    _col("DTHFL", "Subject Death Flag", "text", "Derived", "Y"),
    _col("DTHDT", "Date of Death", "date", "Collected"),
    _col("LSTALVDT", "Date Last Known Alive", "date", "Derived",
         method="DTHDT for a subject who died, else the latest dated fact about the subject "
                "(a DLT adjudication excepted)."),
    _DTCONFL,
)

ADTTE_COLUMNS: Final = (
    _STUDYID,
    _USUBJID,
    _col("ASEQ", "Analysis Sequence Number", "int", "Derived",
         method="1, 2, ... within USUBJID in PARAMCD order."),
    _col("PARAMCD", "Parameter Code", "text", "Assigned", "PARAMCD_ADTTE"),
    _col("PARAM", "Parameter", "text", "Assigned", "PARAM_ADTTE"),
    _col("PARAMN", "Parameter (N)", "int", "Assigned", "PARAMN_ADTTE"),
    _TRTP,
    _TRTA,
    _col("STARTDT", "Time-to-Event Origin Date", "date", "Derived",
         method="ADSL.TRTSDT (C1D1) for PFS and OS; the first confirmed CR/PR for DOR."),
    _col("ADT", "Analysis Date", "date", "Derived",
         method="The event date, or the censoring date CNSDTDSC names."),
    _col("AVAL", "Analysis Value (days)", "int", "Derived", method="ADT - STARTDT + 1."),
    _col("CNSR", "Censor (0 = event)", "int", "Derived", "CNSR",
         "FDA PFS censoring table; see the codelist for each code."),
    _col("EVNTDESC", "Event or Censoring Description", "text", "Derived", "EVNTDESC"),
    _col("CNSDTDSC", "Censor Date Description", "text", "Derived", "CNSDTDSC"),
    _SRCDOM,
    _SRCVAR,
    _SRCSEQ,
    _col("FASFL", "Full Analysis Set Population Flag", "text", "Predecessor", "NY",
         "ADSL.FASFL."),
    _DOSELVL,
    _COHORT,
    _DTCONFL,
)

ADRS_COLUMNS: Final = (
    _STUDYID,
    _USUBJID,
    _col("ASEQ", "Analysis Sequence Number", "int", "Derived",
         method="1, 2, ... within USUBJID in PARAMCD, ADT order."),
    _col("PARAMCD", "Parameter Code", "text", "Assigned", "PARAMCD_ADRS"),
    _col("PARAM", "Parameter", "text", "Assigned", "PARAM_ADRS"),
    _col("PARAMN", "Parameter (N)", "int", "Assigned", "PARAMN_ADRS"),
    _TRTP,
    _TRTA,
    _col("AVISIT", "Analysis Visit", "text", "Derived",
         method="The scheduled assessment (every visit interval from C1D1) whose window holds "
                "ADT, else UNSCHEDULED; blank on subject-level parameters."),
    _col("AVISITN", "Analysis Visit (N)", "int", "Derived",
         method="The number in AVISIT; blank when UNSCHEDULED."),
    _col("ADT", "Analysis Date", "date", "Derived",
         method="OVR: the assessment date. BOR/CBOR/RSP/CRSP: the visit that qualifies, "
                "as admiralonco dates it."),
    _col("ADY", "Analysis Relative Day", "int", "Derived", method="ADT - ADSL.TRTSDT + 1."),
    _col("AVAL", "Analysis Value", "int", "Derived", None,
         "Responses coded as admiralonco aval_resp (CR 1 ... NE 6); RSP/CRSP Y 1, N 0."),
    _col("AVALC", "Analysis Value (C)", "text", "Derived", "AVALC_ADRS",
         "RECIST 1.1 as derived by the ledger from the recorded lesion measurements."),
    _col("ANL01FL", "Analysis Flag 01", "text", "Derived", "Y",
         "OVR: on or after TRTSDT, the worst response of its date; every parameter row: Y."),
    _col("ANL02FL", "Analysis Flag 02", "text", "Derived", "Y",
         "OVR: up to and including the first PD."),
    _col("INVRESP", "Investigator Response", "text", "Collected", "AVALC_ADRS"),
    _col("DISCRFL", "Derived vs Investigator Discrepancy Flag", "text", "Derived", "NY"),
    _col("SUMDIAM", "Sum of Target Diameters (mm)", "float", "Derived"),
    _col("PCHGBL", "Percent Change from Baseline Sum", "float", "Derived"),
    _col("PCHGNAD", "Percent Change from Nadir Sum", "float", "Derived"),
    _SRCDOM,
    _SRCVAR,
    _SRCSEQ,
    _DOSELVL,
)

ADAE_COLUMNS: Final = (
    _STUDYID,
    _USUBJID,
    _col("AESEQ", "Sequence Number", "int", "Derived",
         method="1, 2, ... within USUBJID in ASTDT, AESPID order."),
    _col("AESPID", "Sponsor-Defined Identifier", "text", "Collected"),
    _col("AETERM", "Reported Term for the Adverse Event", "text", "Collected"),
    _col("AEDECOD", "Dictionary-Derived Term", "text", "Collected",
         method="MedDRA preferred term sent with the report; blank when not coded."),
    _col("AEBODSYS", "Body System or Organ Class", "text", "Collected",
         method="MedDRA system organ class sent with the report; blank when not coded."),
    _TRTA,
    _col("ASTDT", "Analysis Start Date (onset)", "date", "Collected"),
    _col("ASTDY", "Analysis Start Relative Day", "int", "Derived", method="ASTDT - TRTSDT + 1."),
    _col("AENDT", "Analysis End Date (resolved)", "date", "Collected"),
    _col("AERESFL", "Resolved Flag", "text", "Derived", "NY"),
    _col("ATOXGRN", "Worst CTCAE v5 Grade", "int", "Derived", "ATOXGRN",
         "The highest grade reported or updated."),
    _col("ATOXGR", "Analysis Toxicity Grade", "text", "Derived", "ATOXGR",
         "ATOXGRN as text."),
    _col("AESER", "Serious Event", "text", "Collected", "NY"),
    _col("AEREL", "Related to Study Treatment", "text", "Collected", "NY"),
    _col("AREL", "Analysis Causality", "text", "Derived", "NY", "AEREL."),
    _col("TRTEMFL", "Treatment Emergent Analysis Flag", "text", "Derived", "NY",
         "Y when ASTDT is on or after ADSL.TRTSDT."),
    _col("SAFFL", "Safety Population Flag", "text", "Predecessor", "NY", "ADSL.SAFFL."),
    _col("DLTCNDFL", "DLT Candidate Flag", "text", "Derived", "NY"),
    _col("DLTADJ", "DLT Adjudication (Y/N, blank pending)", "text", "Collected", "NY"),
    _DOSELVL,
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

DATASET_COLUMNS: Final[Mapping[str, tuple[Column, ...]]] = {
    "adsl": ADSL_COLUMNS,
    "adtte": ADTTE_COLUMNS,
    "adrs": ADRS_COLUMNS,
    "adae": ADAE_COLUMNS,
}
"""Every exported dataset's variables, in file order: what CSV, XPT and define.xml all follow."""

DATASET_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "adsl": ("STUDYID", "USUBJID"),
    "adtte": ("STUDYID", "USUBJID", "PARAMCD"),
    "adrs": ("STUDYID", "USUBJID", "ASEQ"),
    "adae": ("STUDYID", "USUBJID", "AESEQ"),
}
"""Natural keys of each dataset (define.xml KeySequence)."""

PARAM_OVR: Final = "Overall Response by Visit (RECIST 1.1)"
PARAM_BOR: Final = "Best Overall Response (unconfirmed)"
PARAM_CBOR: Final = "Best Overall Response (confirmed)"
PARAM_RSP: Final = "Response (confirmation not required)"
PARAM_CRSP: Final = "Confirmed Response (CR or PR)"
_ADRS_PARAMS: Final = {
    "OVR": PARAM_OVR,
    "BOR": PARAM_BOR,
    "CBOR": PARAM_CBOR,
    "RSP": PARAM_RSP,
    "CRSP": PARAM_CRSP,
}
_ADRS_PARAMN: Final = {"OVR": 1, "BOR": 2, "CBOR": 3, "RSP": 4, "CRSP": 5}
_ADTTE_PARAMN: Final = {"OS": 1, "PFS": 2, "DOR": 3}
_RESPONSE_CODES: Final[Mapping[str, int]] = {
    CR: 1, PR: 2, SD: 3, NON_CR_NON_PD: 4, PD: 5, NE: 6,
}
"""ADRS AVAL of a response, admiralonco ``aval_resp`` (NON-CR/NON-PD spelt as the ledger does)."""
_YES_NO_CODES: Final[Mapping[str, int]] = {"Y": 1, "N": 0}
_WORST_FIRST: Final[Mapping[str, int]] = {NE: 1, CR: 2, PR: 3, SD: 4, NON_CR_NON_PD: 5, PD: 6}
"""admiralonco's ``worst_resp`` order: of two assessments on one day the higher one counts."""

_NY: Final = (("N", "No"), ("Y", "Yes"))
CODELISTS: Final[Mapping[str, tuple[tuple[str | int, str], ...]]] = {
    "NY": _NY,
    "Y": (("Y", "Yes"),),
    "AGEU": (("YEARS", "Years"),),
    "SEX": (("F", "Female"), ("M", "Male"), ("U", "Unknown"),
            ("UNDIFFERENTIATED", "Undifferentiated")),
    "STATUS": (("DISCONTINUED", "Discontinued"), ("ONGOING", "Ongoing")),
    "PARAMCD_ADTTE": tuple(endpoints.PARAMS.items()),
    "PARAM_ADTTE": tuple((v, v) for v in endpoints.PARAMS.values()),
    "PARAMN_ADTTE": tuple((n, endpoints.PARAMS[c]) for c, n in _ADTTE_PARAMN.items()),
    "CNSR": ((endpoints.EVENT, "Event (disease progression or death)"),
             *sorted(endpoints.CENSORING_REASONS.items())),
    "EVNTDESC": ((endpoints.PROGRESSION, "Event: disease progression"),
                 (endpoints.DEATH, "Event: death"),
                 *((v, f"Censored (CNSR {k})")
                   for k, v in sorted(endpoints.CENSORING_REASONS.items()))),
    "CNSDTDSC": tuple((v, f"Censored at the {v[0].lower()}{v[1:]}")
                      for v in sorted(endpoints.CENSOR_DATE_DESCRIPTIONS)),
    "PARAMCD_ADRS": tuple(_ADRS_PARAMS.items()),
    "PARAM_ADRS": tuple((v, v) for v in _ADRS_PARAMS.values()),
    "PARAMN_ADRS": tuple((n, _ADRS_PARAMS[c]) for c, n in _ADRS_PARAMN.items()),
    "AVALC_ADRS": ((CR, "Complete response"), (PR, "Partial response"),
                   (SD, "Stable disease"), (NON_CR_NON_PD, "Non-CR/non-PD"),
                   (PD, "Progressive disease"), (NE, "Not evaluable"),
                   ("Y", "Yes (RSP, CRSP)"), ("N", "No (RSP, CRSP)")),
    "ATOXGRN": tuple((g, f"CTCAE grade {g}") for g in range(1, 6)),
    "ATOXGR": tuple((str(g), f"CTCAE grade {g}") for g in range(1, 6)),
    "SRCDOM": (("ADSL", "Subject-Level Analysis Dataset"),
               ("ADRS", "Tumor Response Analysis Dataset")),
}
"""Codelists of the coded variables (``Column.codelist``): value → decode, for define.xml.
DOSELVL and COHORT are protocol-specific and come from the protocol at export time."""

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
    armcd = f"FRUQ{dose_mg:g}MG" if dose_mg is not None else None

    c1d1 = _treatment_start(facts)
    treatment_dates = [f.occurred_on for f in facts if f.type in _TREATMENT_TYPES]
    treated = bool(treatment_dates)
    trta = arm if treated else None
    death_on = _first(facts, SUBJECT_DIED)
    withdrawn = _first_fact(facts, SUBJECT_WITHDRAWN)
    discontinued = _first_fact(facts, TREATMENT_DISCONTINUED)
    window = assess_dlt_window(FactBook.of(facts), subject_id, protocol)
    alive_dates = [f.occurred_on for f in facts if f.type not in _NOT_ALIVE_EVIDENCE]

    # Responses: RECIST on the assessments known by the cutoff. A post-baseline assessment dated
    # before C1D1 is a date conflict: it is listed (OVR, ANL01FL blank) but, as in admiralonco,
    # only assessments on or after treatment start count towards best response and PFS.
    assessments = [_assessment(f) for f in all_facts if f.type == TUMOR_ASSESSED]
    time_points_all = derive_time_points(assessments)
    time_points = tuple(
        tp for tp in time_points_all if cutoff is None or tp.assessed_on <= cutoff
    )
    known = [a for a in assessments if cutoff is None or a.assessed_on <= cutoff]
    on_treatment = tuple(tp for tp in time_points if c1d1 is not None and tp.assessed_on >= c1d1)
    best = best_overall_response(on_treatment, c1d1, rules) if c1d1 is not None else None
    all_death_on = _first(all_facts, SUBJECT_DIED)
    conflict = c1d1 is not None and (
        (death_on is not None and death_on < c1d1)
        or any(tp.assessed_on < c1d1 for tp in time_points)
    )

    adtte: list[dict[str, Any]] = []
    adrs: list[dict[str, Any]] = []
    if c1d1 is not None:
        assert best is not None
        adrs = _response_rows(
            _Context(studyid, usubjid, c1d1, arm, trta, doselvl), time_points, best, rules
        )
        # A death dated before C1D1 cannot be placed after the origin: the time-to-event rows
        # take it on C1D1 (day 1, the earliest day they can hold) and carry DTCONFL = Y; ADSL
        # keeps the recorded DTHDT. Nothing is dropped and no AVAL is ever below 1.
        course_death_on = None if all_death_on is None else max(all_death_on, c1d1)
        course = SubjectCourse(
            usubjid=usubjid,
            c1d1=c1d1,
            has_baseline=any(a.baseline for a in known),
            time_points=tuple(tp for tp in time_points_all if tp.assessed_on >= c1d1),
            death_on=course_death_on,
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
            first_confirmed_response_on=best.first_confirmed_response_on,
        )
        rows = (
            endpoints.progression_free_survival(course, rules, cutoff),
            endpoints.overall_survival(course, cutoff),
            endpoints.duration_of_response(course, rules, cutoff),
        )
        context = _Context(studyid, usubjid, c1d1, arm, trta, doselvl)
        adtte = [
            _tte_row(context, row, cohort, adrs, conflict) for row in rows if row is not None
        ]
        _number(adtte, "ASEQ", ("PARAMCD",))

    enrolled = next(f for f in facts if f.type == SUBJECT_ENROLLED)
    baseline = _baseline(enrolled)
    has_post_baseline = any(tp.assessed_on >= c1d1 for tp in time_points) if c1d1 else False
    efffl = treated and any(a.baseline for a in known) and has_post_baseline
    dltevlfl = {True: "Y", False: "N", None: None}[window.evaluable]
    trtedt = max(treatment_dates, default=None)
    end_of_treatment = _end_of_treatment(treated, discontinued, withdrawn, death_on)
    adsl = {
        "STUDYID": studyid,
        "USUBJID": usubjid,
        "SUBJID": subject_id,
        "SITEID": _site(subject_id, enrollment.source),
        **baseline,
        "COHORT": cohort,
        "ARMCD": armcd,
        "ARM": arm,
        "ACTARMCD": armcd if treated else _NOT_TREATED_CD,
        "ACTARM": arm if treated else _NOT_TREATED,
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
        "DCSREAS": "DEATH" if death_on else (
            None if withdrawn is None else _WITHDRAWAL_REASONS.get(str(withdrawn.data["reason"]))
        ),
        "DTHFL": "Y" if death_on else None,
        "DTHDT": death_on,
        "LSTALVDT": death_on if death_on else max(alive_dates, default=None),
        "DTCONFL": "Y" if conflict else None,
    }
    return _Subject(
        adsl=adsl,
        adtte=adtte,
        adrs=adrs,
        adae=_adverse_event_rows(
            _Context(studyid, usubjid, c1d1, arm, trta, doselvl), facts, window.candidates,
            "Y" if treated else "N",
        ),
        confirmed=None if best is None else best.confirmed,
    )


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
                and (response is None or r["AVALC"] == response)
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

    def row(paramcd: str, on: date | None, avalc: str, inv: str | None) -> dict[str, Any]:
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
            "INVRESP": inv,
            "DISCRFL": None if inv is None else ("Y" if inv != avalc else "N"),
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

    counted = [tp for i, tp in enumerate(ordered) if i in analysed]
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
