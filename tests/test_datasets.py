"""ADSL/ADTTE/ADRS/ADAE folded from hand-built ledger entries, with expected rows written by hand.

Every subject starts treatment (C1D1, first HAIC) on 2025-01-06, so AVAL = days since 2025-01-06
plus one: 2025-01-06 → 1, 02-10 → 36, 03-03 → 57, 03-10 → 64, 03-20 → 74, 04-01 → 86,
04-28 → 113, 06-02 → 148, 06-23 → 169, 07-15 → 191. Baseline target lesions T1 + T2 = 100 mm.
"""

from __future__ import annotations

import gc
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from ledger.aggregates.facts import cycle_collection_paused
from ledger.entries import LedgerEntry
from ledger.projections.dataset_columns import (
    ADAE_COLUMNS,
    ADRS_COLUMNS,
    ADSL_COLUMNS,
    ADTTE_COLUMNS,
)
from ledger.projections.datasets import AnalysisDatasets, build_datasets
from ledger.protocol_files import bundled_protocol

TRIAL = "NCT05406206"
C1D1 = date(2025, 1, 6)
OPENED_AT = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def records(frame: pd.DataFrame) -> list[Any]:
    """Rows as named tuples, typed loosely: the columns hold mixed kinds by design."""
    return list(frame.itertuples(index=False))


class EntryStream:
    """Builds contract-shaped entries in ledger order; recorded_at only moves forward."""

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []
        self.clock = OPENED_AT
        self._append("trial.opened", None, None, {"protocol": bundled_protocol().to_mapping()})

    def _append(
        self, type_: str, subject: str | None, on: date | None, data: Mapping[str, Any],
        *, at: datetime | None = None, reason: str | None = None,
    ) -> str:
        self.clock = max(self.clock + timedelta(seconds=1), at or self.clock)
        event_id = str(uuid.UUID(int=len(self.entries) + 1))
        self.entries.append(
            LedgerEntry(
                position=len(self.entries) + 1, type=type_, trial_id=TRIAL,
                recorded_at=self.clock, data=data, subject_id=subject, occurred_on=on,
                event_id=event_id, source="edc-site-01", entered_by="crc.01", reason=reason,
            )
        )
        return event_id

    def fact(
        self, type_: str, subject: str, on: date, data: Mapping[str, Any] | None = None,
        *, at: datetime | None = None,
    ) -> str:
        return self._append(type_, subject, on, data or {}, at=at)

    def tumor(
        self, subject: str, on: date, t1: float, t2: float, *, baseline: bool = False,
        new: bool = False, inv: str | None = None, at: datetime | None = None,
    ) -> str:
        return self.fact("tumor.assessed", subject, on, tumor_data(t1, t2, baseline, new, inv),
                         at=at)

    def treated(self, subject: str, cohort: str = "A", *, baseline: bool = True) -> None:
        """Enrolled 2025-01-02, baseline scan 2024-12-30 (100 mm), HAIC and doses from C1D1."""
        self.fact("subject.enrolled", subject, date(2025, 1, 2), {"cohort": cohort})
        if baseline:
            self.tumor(subject, date(2024, 12, 30), 50, 50, baseline=True)
        self.fact("haic.administered", subject, C1D1,
                  {"cycle": 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000})
        for day in range(3):
            self.fact("fruquintinib.dosed", subject, C1D1 + timedelta(days=day), {"dose_mg": 3})

    def correct(
        self, target: str, subject: str, data: Mapping[str, Any], *, at: datetime | None = None
    ) -> str:
        return self._append("record.corrected", subject, None,
                            {"target_event_id": target, "data": data, "occurred_on": None},
                            at=at, reason="source data verification")

    def void(self, target: str, subject: str, *, at: datetime | None = None) -> str:
        return self._append("record.voided", subject, None, {"target_event_id": target},
                            at=at, reason="entered for the wrong subject")


def tumor_data(
    t1: float, t2: float, baseline: bool = False, new: bool = False, inv: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "baseline": baseline,
        "target_lesions": [
            {"lesion_id": "T1", "diameter_mm": t1, "nodal": False},
            {"lesion_id": "T2", "diameter_mm": t2, "nodal": False},
        ],
        "non_target": "NON_CR_NON_PD",
        "new_lesions": new,
    }
    if inv is not None:
        data["investigator_response"] = inv
    return data


V1, V2, V3 = date(2025, 3, 3), date(2025, 4, 28), date(2025, 6, 23)


def censoring_trial() -> EntryStream:
    """One subject per row of the PFS censoring table (clinical-rules.md §3), plus a responder."""
    s = EntryStream()
    s.treated("01-001")  # PD documented: event
    s.tumor("01-001", V1, 40, 40)
    s.tumor("01-001", V2, 50, 50)  # +25 % and +20 mm over the nadir 80 → PD
    s.fact("subject.alive", "01-001", date(2025, 6, 2))
    s.treated("01-002", baseline=False)  # no baseline assessment
    s.tumor("01-002", V1, 45, 45)
    s.treated("01-003")  # no PD, no death
    s.tumor("01-003", V1, 45, 45)
    s.tumor("01-003", V2, 45, 45)
    s.treated("01-004")  # treatment stopped for toxicity
    s.tumor("01-004", V1, 45, 45)
    s.fact("treatment.discontinued", "01-004", date(2025, 3, 10), {"reason": "toxicity"})
    s.treated("01-005")  # withdrawn from the study
    s.tumor("01-005", V1, 45, 45)
    s.fact("subject.withdrawn", "01-005", date(2025, 3, 20), {"reason": "lost_to_follow_up"})
    s.treated("01-006")  # new anticancer therapy before PD
    s.tumor("01-006", V1, 45, 45)
    s.fact("anticancer_therapy.started", "01-006", date(2025, 3, 20), {"therapy": "TAS-102"})
    s.tumor("01-006", V2, 65, 65)
    s.treated("01-007")  # death before the first post-baseline assessment
    s.fact("subject.died", "01-007", date(2025, 2, 10))
    s.treated("01-008")  # death between adequate assessments
    s.tumor("01-008", V1, 45, 45)
    s.fact("subject.died", "01-008", date(2025, 4, 1))
    s.treated("01-009")  # PD after two or more missed assessments
    s.tumor("01-009", V1, 45, 45)
    s.tumor("01-009", date(2025, 7, 15), 70, 70)
    s.treated("01-010")  # confirmed PR, then PD the investigator called SD
    s.tumor("01-010", V1, 30, 30, inv="PR")
    s.tumor("01-010", V2, 25, 25, inv="PR")
    s.tumor("01-010", V3, 35, 35, inv="SD")
    s.fact("subject.enrolled", "01-011", date(2025, 1, 3), {"cohort": "A"})  # never treated
    return s


def tte(datasets: AnalysisDatasets) -> dict[tuple[str, str], tuple[Any, ...]]:
    """ADTTE as {(subject, PARAMCD): (ADT, AVAL, CNSR, EVNTDESC, CNSDTDSC)}."""
    frame = datasets.adtte
    return {
        (row.USUBJID.removeprefix(f"{TRIAL}-"), row.PARAMCD): (
            row.ADT.isoformat(), int(row.AVAL), int(row.CNSR), row.EVNTDESC, row.CNSDTDSC
        )
        for row in records(frame)
    }


LAST = "Last adequate tumor assessment"
C1 = "C1D1"
ALIVE = "Last known alive date"

EXPECTED_PFS = {
    "01-001": ("2025-04-28", 113, 0, "Disease progression", None),
    "01-002": ("2025-01-06", 1, 1, "No baseline tumor assessment", C1),
    "01-003": ("2025-04-28", 113, 2, "No progression or death", LAST),
    "01-004": ("2025-03-03", 57, 3, "Treatment discontinued without documented progression", LAST),
    "01-005": ("2025-03-03", 57, 4, "Withdrawn from study without documented progression", LAST),
    "01-006": ("2025-03-03", 57, 5, "New anticancer therapy started before progression",
               "Last adequate tumor assessment before new anticancer therapy"),
    "01-007": ("2025-02-10", 36, 0, "Death", None),
    "01-008": ("2025-04-01", 86, 0, "Death", None),
    "01-009": ("2025-03-03", 57, 6,
               "Progression or death after two or more missed tumor assessments", LAST),
    "01-010": ("2025-06-23", 169, 0, "Disease progression", None),
}
EXPECTED_OS = {
    "01-001": ("2025-06-02", 148, 7, "Alive at last contact", ALIVE),
    "01-002": ("2025-03-03", 57, 7, "Alive at last contact", ALIVE),
    "01-003": ("2025-04-28", 113, 7, "Alive at last contact", ALIVE),
    "01-004": ("2025-03-10", 64, 7, "Alive at last contact", ALIVE),
    "01-005": ("2025-03-20", 74, 7, "Alive at last contact", ALIVE),
    "01-006": ("2025-04-28", 113, 7, "Alive at last contact", ALIVE),
    "01-007": ("2025-02-10", 36, 0, "Death", None),
    "01-008": ("2025-04-01", 86, 0, "Death", None),
    "01-009": ("2025-07-15", 191, 7, "Alive at last contact", ALIVE),
    "01-010": ("2025-06-23", 169, 7, "Alive at last contact", ALIVE),
}


@pytest.mark.parametrize("subject", sorted(EXPECTED_PFS))
def test_pfs_row_per_censoring_rule(subject: str) -> None:
    """Each PFS censoring-table row comes out of the fold with the hand-derived date and code."""
    rows = tte(build_datasets(censoring_trial().entries, as_of=None, cutoff=None))
    assert rows[(subject, "PFS")] == EXPECTED_PFS[subject]


@pytest.mark.parametrize("subject", sorted(EXPECTED_OS))
def test_os_row_per_subject(subject: str) -> None:
    """OS is death from any cause, else censored at the latest dated fact about the subject."""
    rows = tte(build_datasets(censoring_trial().entries, as_of=None, cutoff=None))
    assert rows[(subject, "OS")] == EXPECTED_OS[subject]


def test_dor_only_for_the_confirmed_responder() -> None:
    """DoR runs from the first confirmed PR (03-03) to PD (06-23): 113 days, an event."""
    rows = tte(build_datasets(censoring_trial().entries, as_of=None, cutoff=None))
    dor = {key: value for key, value in rows.items() if key[1] == "DOR"}
    assert dor == {("01-010", "DOR"): ("2025-06-23", 113, 0, "Disease progression", None)}
    frame = build_datasets(censoring_trial().entries, as_of=None, cutoff=None).adtte
    assert frame.loc[frame["PARAMCD"] == "DOR", "STARTDT"].tolist() == [V1]


def test_cutoff_censors_pfs_and_os_at_the_cutoff() -> None:
    """Cutoff 2025-04-01: the 04-28 PD is ignored (CNSR 2 at 03-03) and OS is CNSR 8 at cutoff."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=date(2025, 4, 1))
    rows = tte(datasets)
    assert rows[("01-001", "PFS")] == ("2025-03-03", 57, 2, "No progression or death", LAST)
    assert rows[("01-001", "OS")] == (
        "2025-04-01", 86, 8, "Alive at data cutoff", "Data cutoff date"
    )
    assert rows[("01-008", "OS")] == ("2025-04-01", 86, 0, "Death", None)
    ovr = datasets.adrs[datasets.adrs["PARAMCD"] == "OVR"]
    assert max(ovr["ADT"]) <= date(2025, 4, 1)


def test_cutoff_before_treatment_leaves_subjects_out_of_the_time_to_event_data() -> None:
    """A cutoff before C1D1 means nobody was treated yet: enrolled, not in the FAS, no ADTTE."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=date(2025, 1, 4))
    assert datasets.adtte.empty
    assert set(datasets.adsl["FASFL"]) == {"N"}
    assert len(datasets.adsl) == 11


def test_adrs_rows_of_the_responder_written_by_hand() -> None:
    """Per-visit OVR, BOR and CBOR for 01-010, with the investigator's SD at PD flagged."""
    adrs = build_datasets(censoring_trial().entries, as_of=None, cutoff=None).adrs
    rows = adrs[
        (adrs["USUBJID"] == f"{TRIAL}-01-010") & adrs["PARAMCD"].isin(["OVR", "BOR", "CBOR"])
    ]
    got = [
        (r.PARAMCD, r.ADT.isoformat(), int(r.ADY), r.AVALC, r.INVRESP, r.DISCRFL,
         None if math.isnan(r.SUMDIAM) else r.SUMDIAM,
         None if math.isnan(r.PCHGBL) else round(r.PCHGBL, 4),
         None if math.isnan(r.PCHGNAD) else round(r.PCHGNAD, 4))
        for r in records(rows)
    ]
    assert got == [
        ("BOR", "2025-03-03", 57, "PR", "PR", "N", None, None, None),
        ("CBOR", "2025-03-03", 57, "PR", "PR", "N", None, None, None),
        ("OVR", "2025-03-03", 57, "PR", "PR", "N", 60.0, -40.0, -40.0),
        ("OVR", "2025-04-28", 113, "PR", "PR", "N", 50.0, -50.0, -16.6667),
        ("OVR", "2025-06-23", 169, "PD", "SD", "Y", 70.0, -30.0, 40.0),
    ]


def test_discrepancy_listing_and_orr() -> None:
    """The listing holds the one disagreement; ORR is 1/10 with the exact 95 % interval."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    listing = datasets.discrepancies
    assert listing[["USUBJID", "ADT", "AVALC", "INVRESP"]].values.tolist() == [
        [f"{TRIAL}-01-010", V3, "PD", "SD"]
    ]
    overall = datasets.orr[0]
    assert (overall.label, overall.responders, overall.n) == ("Overall", 1, 10)
    # Clopper–Pearson for 1/10: lower = 1 − 0.975^(1/10), upper from Beta(2, 9) (R binom.test).
    assert overall.lower == pytest.approx(1 - 0.975 ** (1 / 10), abs=1e-9)
    assert overall.upper == pytest.approx(0.4450161, abs=1e-6)
    assert [(r.label, r.n) for r in datasets.orr[1:]] == [("A", 10), ("B", 0), ("C", 0)]


def test_pfs_median_worked_out_by_hand() -> None:
    """PFS times 1+, 36, 57+×4, 86, 113, 113+, 169: S = 8/9, 2/3, 4/9 → median 113 days."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    pfs = datasets.kaplan_meier("PFS")
    assert pfs is not None
    assert pfs.overall.median_days == 113.0
    assert pfs.overall.survival_at_day(86).estimate == pytest.approx(2 / 3)
    os_ = datasets.kaplan_meier("OS")
    assert os_ is not None and math.isinf(os_.overall.median_days)  # 2 deaths in 10


def test_adsl_rows_and_columns() -> None:
    """ADSL: one row per enrolled subject, FAS = treated, deaths flagged, ADaM columns in order."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    adsl = datasets.adsl.set_index("SUBJID")
    assert list(datasets.adsl.columns) == [c.name for c in ADSL_COLUMNS]
    assert list(datasets.adtte.columns) == [c.name for c in ADTTE_COLUMNS]
    assert list(datasets.adrs.columns) == [c.name for c in ADRS_COLUMNS]
    assert list(datasets.adae.columns) == [c.name for c in ADAE_COLUMNS]
    assert len(adsl) == 11
    assert adsl.loc["01-011", "FASFL"] == "N"
    assert pd.isna(adsl.loc["01-011", "TRTSDT"])
    first = adsl.loc["01-001"]
    assert (first["SITEID"], first["ARM"], first["DOSELVL"], first["TRTSDT"], first["TRTEDT"]) == (
        "01", "FRUQ 3 MG + HAIC", "A", C1D1, date(2025, 1, 8)
    )
    assert adsl.loc["01-007", ["DTHFL", "DTHDT"]].tolist() == ["Y", date(2025, 2, 10)]
    assert adsl.loc["01-005", ["EOSSTT", "DCSREAS"]].tolist() == [
        "DISCONTINUED", "LOST TO FOLLOW-UP"
    ]


def test_adae_worst_grade_resolution_and_dlt() -> None:
    """ADAE: worst grade across updates, resolution date, DLT candidate and adjudication."""
    s = EntryStream()
    s.treated("01-001")
    s.fact("adverse_event.reported", "01-001", date(2025, 1, 15),
           {"ae_id": "AE-1", "term": "hypertension", "grade": 2, "serious": False,
            "related": True})
    s.fact("adverse_event.updated", "01-001", date(2025, 1, 18), {"ae_id": "AE-1", "grade": 3})
    s.fact("dlt.adjudicated", "01-001", date(2025, 1, 20), {"ae_id": "AE-1", "dlt": True})
    s.fact("adverse_event.updated", "01-001", date(2025, 2, 1), {"ae_id": "AE-1",
                                                                 "resolved": True})
    s.fact("adverse_event.reported", "01-001", date(2025, 1, 10),
           {"ae_id": "AE-2", "term": "fatigue", "grade": 1, "serious": False, "related": False})
    adae = build_datasets(s.entries, as_of=None, cutoff=None).adae
    got = [
        (r.AESPID, r.ASTDT, int(r.ASTDY), r.AENDT, r.AERESFL, int(r.ATOXGRN), r.AEREL,
         r.TRTEMFL, r.DLTCNDFL, r.DLTADJ)
        for r in records(adae)
    ]
    assert got == [
        ("AE-2", date(2025, 1, 10), 5, None, "N", 1, "N", "Y", "N", None),
        ("AE-1", date(2025, 1, 15), 10, date(2025, 2, 1), "Y", 3, "Y", "Y", "Y", "Y"),
    ]
    cut = build_datasets(s.entries, as_of=None, cutoff=date(2025, 1, 16)).adae
    assert cut[["AESPID", "ATOXGRN", "DLTCNDFL", "AERESFL"]].values.tolist() == [
        ["AE-2", 1, "N", "N"], ["AE-1", 2, "N", "N"]
    ]


# --- transaction time: corrections, voids and late facts ------------------------------------

T1 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2025, 5, 15, 12, 0, tzinfo=UTC)
T3 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
AFTER_T3 = T3 + timedelta(minutes=1)


def amended_trial() -> EntryStream:
    """01-003's second scan corrected to PD at T2; 01-007's death voided at T3; late death."""
    s = censoring_trial()
    target = next(
        e.event_id for e in s.entries
        if e.subject_id == "01-003" and e.type == "tumor.assessed" and e.occurred_on == V2
    )
    death = next(
        e.event_id for e in s.entries if e.subject_id == "01-007" and e.type == "subject.died"
    )
    assert target is not None and death is not None
    s.clock = max(s.clock, T1)
    s.correct(target, "01-003", tumor_data(65, 65), at=T2)
    s.void(death, "01-007", at=T3)
    s.fact("subject.died", "01-004", date(2025, 4, 20), at=T3)  # reported late
    return s


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        pytest.param(T1, ("2025-04-28", 113, 2, "No progression or death", LAST),
                     id="before the correction: SD"),
        pytest.param(T2, ("2025-04-28", 113, 0, "Disease progression", None),
                     id="once corrected: PD"),
    ],
)
def test_correction_applies_from_when_it_was_recorded(
    as_of: datetime, expected: tuple[Any, ...]
) -> None:
    """A correction recorded at T2 changes PFS as of T2 and later, never before."""
    rows = tte(build_datasets(amended_trial().entries, as_of=as_of, cutoff=None))
    assert rows[("01-003", "PFS")] == expected


def test_void_applies_from_when_it_was_recorded() -> None:
    """A voided death is a death before T3 and no death from T3 on."""
    entries = amended_trial().entries
    before = tte(build_datasets(entries, as_of=T2, cutoff=None))
    after = tte(build_datasets(entries, as_of=AFTER_T3, cutoff=None))
    assert before[("01-007", "OS")] == ("2025-02-10", 36, 0, "Death", None)
    assert after[("01-007", "OS")] == ("2025-01-08", 3, 7, "Alive at last contact", ALIVE)
    assert after[("01-007", "PFS")] == ("2025-01-06", 1, 2, "No progression or death", C1)
    adsl = build_datasets(entries, as_of=AFTER_T3, cutoff=None).adsl.set_index("SUBJID")
    assert pd.isna(adsl.loc["01-007", "DTHFL"])


def test_late_fact_counts_from_when_recorded_and_respects_the_cutoff() -> None:
    """A death dated 04-20 but recorded at T3 is absent as of T2, present as of T3 (not past D)."""
    entries = amended_trial().entries
    as_of_t2 = tte(build_datasets(entries, as_of=T2, cutoff=None))
    as_of_t3 = tte(build_datasets(entries, as_of=AFTER_T3, cutoff=None))
    cut = tte(build_datasets(entries, as_of=AFTER_T3, cutoff=date(2025, 4, 10)))
    assert as_of_t2[("01-004", "OS")][2] == 7
    assert as_of_t3[("01-004", "OS")] == ("2025-04-20", 105, 0, "Death", None)
    assert cut[("01-004", "OS")] == ("2025-04-10", 95, 8, "Alive at data cutoff",
                                     "Data cutoff date")


def test_provenance_names_the_last_entry_read() -> None:
    """Provenance: protocol from trial.opened, position and time of the last entry as of T."""
    stream = amended_trial()
    datasets = build_datasets(stream.entries, as_of=T2, cutoff=date(2025, 4, 10))
    last = [e for e in stream.entries if e.recorded_at <= T2][-1]
    p = datasets.provenance
    assert (p.trial_id, p.protocol_id, p.protocol_version) == (TRIAL, TRIAL, "1.0")
    assert (p.last_position, p.last_recorded_at) == (last.position, last.recorded_at)
    assert (p.as_of, p.cutoff) == (T2, date(2025, 4, 10))


def test_nothing_recorded_yet_is_an_error() -> None:
    """As of a time before the trial was opened there is nothing to analyse."""
    with pytest.raises(ValueError, match=r"no trial\.opened"):
        build_datasets(censoring_trial().entries, as_of=OPENED_AT - timedelta(days=1),
                       cutoff=None)


def test_same_input_same_frames() -> None:
    """The fold is deterministic: two builds give equal frames, sorted by subject and parameter."""
    first = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    second = build_datasets(list(reversed(list(reversed(censoring_trial().entries)))),
                            as_of=None, cutoff=None)
    for name, frame in first.frames().items():
        pd.testing.assert_frame_equal(frame, second.frames()[name], obj=name)
    keys = list(zip(first.adtte["USUBJID"], first.adtte["PARAMCD"], strict=True))
    assert keys == sorted(keys)


def test_the_cycle_collector_is_paused_only_while_building() -> None:
    """build_datasets leaves the collector as it found it, after an error too; nested, off."""
    assert gc.isenabled()
    build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    assert gc.isenabled()
    with pytest.raises(ValueError, match=r"no trial\.opened"):
        build_datasets(censoring_trial().entries, as_of=OPENED_AT - timedelta(days=1),
                       cutoff=None)
    assert gc.isenabled()
    with cycle_collection_paused():
        build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
        assert not gc.isenabled()
    assert gc.isenabled()
