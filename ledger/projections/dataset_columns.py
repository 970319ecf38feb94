"""The analysis datasets' variables, labels, keys and codelists (what CSV, XPT, define.xml follow).

Tables only: each dataset's columns in file order (``*_COLUMNS``), its label and natural keys, the
ADRS/ADTTE parameter names and codes, and the codelists of the coded variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ledger.projections import endpoints
from ledger.projections.recist import (
    CR,
    NE,
    NON_CR_NON_PD,
    PD,
    PR,
    SD,
)

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
    _col("RACE", "Race", "text", "Collected", "RACE"),
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
    _col("TRTSDT", "Date of First Exposure to Treatment", "date", "Derived",
         method="C1D1: the first HAIC, else the first fruquintinib dose."),
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
    _col("STARTDT", "Time-to-Event Origin Date for Subject", "date", "Derived",
         method="ADSL.TRTSDT (C1D1) for PFS and OS; the first confirmed CR/PR for DOR."),
    _col("ADT", "Analysis Date", "date", "Derived",
         method="The event date, or the censoring date CNSDTDSC names."),
    _col("AVAL", "Analysis Value", "int", "Derived", method="Days: ADT - STARTDT + 1."),
    _col("CNSR", "Censor", "int", "Derived", "CNSR",
         "0 for an event; else the FDA PFS censoring table's code (see the codelist)."),
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
    _col("ASTDT", "Analysis Start Date", "date", "Collected"),  # the onset
    _col("ASTDY", "Analysis Start Relative Day", "int", "Derived", method="ASTDT - TRTSDT + 1."),
    _col("AENDT", "Analysis End Date", "date", "Collected"),  # the resolution
    _col("AERESFL", "Resolved Flag", "text", "Derived", "NY"),
    _col("ATOXGRN", "Analysis Toxicity Grade (N)", "int", "Derived", "ATOXGRN",
         "The highest CTCAE v5 grade reported or updated."),
    _col("ATOXGR", "Analysis Toxicity Grade", "text", "Derived", "ATOXGR",
         "ATOXGRN as text."),
    _col("AESER", "Serious Event", "text", "Collected", "NY"),
    _col("AEREL", "Causality", "text", "Collected", "NY"),  # related to study treatment
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
RESPONSE_TERMS: Final[Mapping[str, str]] = {
    CR: "CR", PR: "PR", SD: "SD", NON_CR_NON_PD: "NON-CR/NON-PD", PD: "PD", NE: "NE",
}
"""The ledger's RECIST responses (:mod:`ledger.projections.recist`) → the CDISC controlled terms
ADRS AVALC carries (admiralonco spells them so; ``NON_CR_NON_PD`` is the envelope's spelling)."""
_RESPONSE_CODES: Final[Mapping[str, int]] = {
    "CR": 1, "PR": 2, "SD": 3, "NON-CR/NON-PD": 4, "PD": 5, "NE": 6,
}
"""ADRS AVAL of a response term, admiralonco ``aval_resp``."""
_YES_NO_CODES: Final[Mapping[str, int]] = {"Y": 1, "N": 0}
_WORST_FIRST: Final[Mapping[str, int]] = {NE: 1, CR: 2, PR: 3, SD: 4, NON_CR_NON_PD: 5, PD: 6}
"""admiralonco's ``worst_resp`` order: of two assessments on one day the higher one counts."""

_NY: Final = (("N", "No"), ("Y", "Yes"))
_RESPONSE_DECODES: Final = (
    ("CR", "Complete response"), ("PR", "Partial response"), ("SD", "Stable disease"),
    ("NON-CR/NON-PD", "Non-CR/non-PD"), ("PD", "Progressive disease"), ("NE", "Not evaluable"),
)
CODELISTS: Final[Mapping[str, tuple[tuple[str | int, str], ...]]] = {
    "NY": _NY,
    "Y": (("Y", "Yes"),),
    "AGEU": (("YEARS", "Years"),),
    "SEX": (("F", "Female"), ("M", "Male"), ("U", "Unknown"),
            ("UNDIFFERENTIATED", "Undifferentiated")),
    "RACE": (("AMERICAN INDIAN OR ALASKA NATIVE", "American Indian or Alaska Native"),
             ("ASIAN", "Asian"),
             ("BLACK OR AFRICAN AMERICAN", "Black or African American"),
             ("NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
              "Native Hawaiian or Other Pacific Islander"),
             ("WHITE", "White"),
             ("MULTIPLE", "Multiple"),
             ("OTHER", "Other"),
             ("NOT REPORTED", "Not reported"),
             ("UNKNOWN", "Unknown")),
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
    "AVALC_ADRS": (*_RESPONSE_DECODES, ("Y", "Yes (RSP, CRSP)"), ("N", "No (RSP, CRSP)")),
    "RESPONSE": _RESPONSE_DECODES,
    "AVAL_RESPONSE": tuple((_RESPONSE_CODES[term], decode) for term, decode in _RESPONSE_DECODES),
    "AVAL_NY": ((1, "Yes"), (0, "No")),
    "ATOXGRN": tuple((g, f"CTCAE grade {g}") for g in range(1, 6)),
    "ATOXGR": tuple((str(g), f"CTCAE grade {g}") for g in range(1, 6)),
    "SRCDOM": (("ADSL", "Subject-Level Analysis Dataset"),
               ("ADRS", "Tumor Response Analysis Dataset")),
}
"""Codelists of the coded variables (``Column.codelist``): value → decode, for define.xml.
DOSELVL and COHORT are protocol-specific and come from the protocol at export time."""

NCI_CODES: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = {
    "NY": ("C66742", {"N": "C49487", "Y": "C49488"}),
    "AGEU": ("C66781", {"YEARS": "C29848"}),
    "SEX": ("C66731", {"F": "C16576", "M": "C20197", "U": "C17998",
                       "UNDIFFERENTIATED": "C45908"}),
    "RACE": ("C74457", {"AMERICAN INDIAN OR ALASKA NATIVE": "C41259", "ASIAN": "C41260",
                        "BLACK OR AFRICAN AMERICAN": "C16352",
                        "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER": "C41219",
                        "WHITE": "C41261", "NOT REPORTED": "C43234", "UNKNOWN": "C17998"}),
}
"""CDISC/NCI controlled terminology of the codelists that follow it (No Yes Response, Age Unit,
Sex, Race): codelist → (its NCI code, term → the term's NCI code). A value of the codelist
without a code here (RACE MULTIPLE, OTHER) is a sponsor extension of the extensible codelist
(define.xml ``def:ExtendedValue="Yes"``)."""
