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

This module is the fold and the collection of rows into datasets; one subject's rows are derived by
:mod:`ledger.projections.dataset_subject`. Responses come from :mod:`ledger.projections.recist`
and :mod:`ledger.projections.best_response`, censoring from :mod:`ledger.projections.endpoints`,
C1D1, DLT windows and adverse events from :mod:`ledger.aggregates.safety`: nothing clinical is
re-derived. Decisions taken where the rules leave room, each noted where applied:

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
columns in the order of the ``*_COLUMNS`` tables of :mod:`ledger.projections.dataset_columns`,
dates as :class:`datetime.date` (written as ISO-8601 in CSV, as SAS ``DATE9.`` numbers in
transport files).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from ledger.aggregates.facts import (
    CLINICAL_FACT_TYPES,
    RECORD_CORRECTED,
    RECORD_VOIDED,
    SUBJECT_ENROLLED,
    FactBook,
    cycle_collection_paused,
)
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.entries import LedgerEntry, known_as_of
from ledger.projections.dataset_columns import (
    ADAE_COLUMNS,
    ADRS_COLUMNS,
    ADSL_COLUMNS,
    ADTTE_COLUMNS,
    DISCREPANCY_COLUMNS,
)
from ledger.projections.dataset_subject import SubjectRows, TrialFacts, derive_subject
from ledger.projections.dataset_table import Dataset, dataset_table
from ledger.projections.endpoints import clopper_pearson
from ledger.projections.recist import CR, PR, AssessmentRules

if TYPE_CHECKING:
    import pandas as pd

    from ledger.projections.km_summary import EndpointSummary

__all__ = [
    "AnalysisDatasets",
    "Provenance",
    "ResponseRate",
    "build_datasets",
]


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


@functools.lru_cache(maxsize=256)
def _clopper_pearson(successes: int, n: int) -> tuple[float, float]:
    return clopper_pearson(successes, n)


@dataclass(frozen=True, slots=True)
class ResponseRate:
    """Confirmed objective response rate (CR or PR) with its exact Clopper–Pearson 95 % interval."""

    label: str
    responders: int
    n: int

    @property
    def lower(self) -> float:
        return self._interval()[0]

    @property
    def upper(self) -> float:
        return self._interval()[1]

    def _interval(self) -> tuple[float, float]:
        # Computed when asked for (the report, the headline), not by every export: the exact
        # interval needs scipy, half a second to import.
        if not self.n:
            return float("nan"), float("nan")
        return _clopper_pearson(self.responders, self.n)

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
    """The datasets as the ledger knew them at ``as_of``, for facts up to ``cutoff``.

    ``tables`` are what the export writes (no pandas); ``adsl`` … ``adae`` and ``discrepancies``
    are the same data as pandas frames, made when first asked for (analyses, the report)."""

    provenance: Provenance
    tables: Mapping[str, Dataset]
    """The four submission datasets by file stem, in a fixed order (adsl, adtte, adrs, adae)."""
    orr: tuple[ResponseRate, ...]
    """Overall first (label "Overall"), then one per dose level in protocol order."""
    dose_levels: Mapping[str, float] = field(default_factory=dict)
    """Dose level name → fruquintinib mg, in protocol order."""

    def frames(self) -> dict[str, pd.DataFrame]:
        """The four submission datasets as frames by file stem, in the order of ``tables``."""
        return {stem: table.frame() for stem, table in self.tables.items()}

    @property
    def adsl(self) -> pd.DataFrame:
        return self.tables["adsl"].frame()

    @property
    def adtte(self) -> pd.DataFrame:
        return self.tables["adtte"].frame()

    @property
    def adrs(self) -> pd.DataFrame:
        return self.tables["adrs"].frame()

    @property
    def adae(self) -> pd.DataFrame:
        return self.tables["adae"].frame()

    @cached_property
    def discrepancy_table(self) -> Dataset:
        """Every ADRS row where the investigator's call differs from the derived response."""
        return self.tables["adrs"].where("DISCRFL", "Y").select(DISCREPANCY_COLUMNS)

    @property
    def discrepancies(self) -> pd.DataFrame:
        """:attr:`discrepancy_table` as a frame."""
        return self.discrepancy_table.frame()

    def kaplan_meier(self, paramcd: str, group_col: str = "DOSELVL") -> EndpointSummary | None:
        """Kaplan–Meier results for PFS, OS or DOR, overall and per group; None without rows."""
        from ledger.projections.km_summary import summarise_endpoint  # lifelines, when asked

        if paramcd not in self.tables["adtte"].values("PARAMCD"):
            return None
        return summarise_endpoint(self.adtte, paramcd, group_col)


# --- the fold ---------------------------------------------------------------------------------


_FACT_BOOK_TYPES = frozenset((*CLINICAL_FACT_TYPES, RECORD_CORRECTED, RECORD_VOIDED))


@dataclass(slots=True)
class _Enrollment:
    cohort: str
    source: str | None


@dataclass(slots=True)
class _LedgerState:
    """What the fold keeps: the protocol, the book of facts, and the ledger's own expansion dose."""

    trial_id: str = ""
    protocol: ProtocolDefinition | None = None
    facts: FactBook = field(default_factory=FactBook)
    enrollments: dict[str, _Enrollment] = field(default_factory=dict)
    expansion_level: str | None = None
    last_position: int = 0
    last_recorded_at: datetime | None = None
    entries_read: int = 0

    def evolve(self, entry: LedgerEntry) -> None:
        # Runs once per record read (a hundred thousand at 1,000 subjects): kept lean.
        position = entry.position
        self.last_position = position
        self.last_recorded_at = entry.recorded_at
        self.entries_read += 1
        kind = entry.type
        if kind in _FACT_BOOK_TYPES:
            # Facts, corrections and voids are read by the one fold the Trial aggregate uses too.
            self.facts.fold(entry)
            if kind == SUBJECT_ENROLLED and entry.subject_id is not None:
                self.enrollments[entry.subject_id] = _Enrollment(
                    str(entry.data["cohort"]), entry.source
                )
        elif kind == "trial.opened":
            self.trial_id = entry.trial_id
            self.protocol = ProtocolDefinition.from_mapping(entry.data["protocol"])
        elif kind == "expansion.opened":
            self.expansion_level = str(entry.data["at_cohort"])


def build_datasets(
    entries: Iterable[LedgerEntry], *, as_of: datetime | None, cutoff: date | None
) -> AnalysisDatasets:
    """Fold one trial's ledger entries (in ledger order) into the analysis datasets.

    ``as_of``: transaction time; entries recorded after it are not read (None: everything given).
    ``cutoff``: valid time; clinical facts dated after it are ignored (None: no cutoff).
    Raises ValueError when no ``trial.opened`` entry was recorded by ``as_of``.
    """
    state = _LedgerState()
    with cycle_collection_paused():
        for entry in known_as_of(entries, as_of):
            state.evolve(entry)
        if state.protocol is None or state.last_recorded_at is None:
            when = "at all" if as_of is None else f"by {as_of.isoformat()}"
            raise ValueError(f"no trial.opened entry was recorded {when}: nothing to analyse")
        return _derive(state, as_of, cutoff)


# --- from the folded state to datasets --------------------------------------------------------


def _derive(state: _LedgerState, as_of: datetime | None, cutoff: date | None) -> AnalysisDatasets:
    assert state.protocol is not None and state.last_recorded_at is not None
    protocol = state.protocol
    levels = {level.name: level.dose_mg for level in protocol.dose_levels}
    trial = TrialFacts(
        trial_id=state.trial_id,
        protocol=protocol,
        rules=AssessmentRules.of(protocol.assessments),
        levels=levels,
        expansion_level=state.expansion_level,
        facts=state.facts,
        cutoff=cutoff,
    )
    subjects: list[SubjectRows] = []
    for subject_id in sorted(state.enrollments):
        enrollment = state.enrollments[subject_id]
        subject = derive_subject(trial, subject_id, enrollment.cohort, enrollment.source)
        if subject is not None:
            subjects.append(subject)

    tables = {
        "adsl": dataset_table([s.adsl for s in subjects], ADSL_COLUMNS, ["USUBJID"]),
        "adtte": dataset_table(
            [r for s in subjects for r in s.adtte], ADTTE_COLUMNS, ["USUBJID", "PARAMCD", "ADT"]
        ),
        "adrs": dataset_table(
            [r for s in subjects for r in s.adrs], ADRS_COLUMNS, ["USUBJID", "PARAMCD", "ADT"]
        ),
        "adae": dataset_table(
            [r for s in subjects for r in s.adae], ADAE_COLUMNS, ["USUBJID", "ASTDT", "AESPID"]
        ),
    }

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
        tables=tables,
        orr=tuple(orr),
        dose_levels=levels,
    )


def _rate(label: str, subjects: Sequence[SubjectRows]) -> ResponseRate:
    responders = sum(1 for s in subjects if s.confirmed in (CR, PR))
    return ResponseRate(label=label, responders=responders, n=len(subjects))
