"""ADaM conformance of ADSL/ADTTE/ADRS/ADAE: variables, cross-dataset rules, admiralonco dates."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest

from ledger.demo import run_demo
from ledger.ledger_reader import LedgerReader
from ledger.projections.conformance import (
    RULES,
    DatasetConformanceError,
    check_dataset,
    check_transport,
)
from ledger.projections.dataset_columns import CODELISTS, DATASET_COLUMNS, DATASET_LABELS, Column
from ledger.projections.dataset_table import Dataset
from ledger.projections.datasets import AnalysisDatasets, build_datasets
from ledger.projections.export import MANIFEST_NAME, write_datasets
from tests.builders import TRIAL_ID
from tests.test_datasets import C1D1, TRIAL, EntryStream, censoring_trial, tumor_data

# Variables each dataset must hold (ADaM IG 1.3 and the admiral/admiralonco templates), with the
# IG's label and type, in the order they must come in the file (other variables may sit between).
STANDARD: dict[str, list[tuple[str, str, str]]] = {
    "adsl": [
        ("STUDYID", "Study Identifier", "text"),
        ("USUBJID", "Unique Subject Identifier", "text"),
        ("SUBJID", "Subject Identifier for the Study", "text"),
        ("SITEID", "Study Site Identifier", "text"),
        ("AGE", "Age", "int"),
        ("AGEU", "Age Units", "text"),
        ("SEX", "Sex", "text"),
        ("RACE", "Race", "text"),
        ("ARM", "Description of Planned Arm", "text"),
        ("ACTARM", "Description of Actual Arm", "text"),
        ("TRT01P", "Planned Treatment for Period 01", "text"),
        ("TRT01PN", "Planned Treatment for Period 01 (N)", "float"),
        ("TRT01A", "Actual Treatment for Period 01", "text"),
        ("TRT01AN", "Actual Treatment for Period 01 (N)", "float"),
        ("TRTSDT", "Date of First Exposure to Treatment", "date"),
        ("TRTEDT", "Date of Last Exposure to Treatment", "date"),
        ("TRTDURD", "Total Treatment Duration (Days)", "int"),
        ("ITTFL", "Intent-To-Treat Population Flag", "text"),
        ("SAFFL", "Safety Population Flag", "text"),
        ("FASFL", "Full Analysis Set Population Flag", "text"),
        ("EFFFL", "Efficacy Population Flag", "text"),
        ("DTHFL", "Subject Death Flag", "text"),
        ("DTHDT", "Date of Death", "date"),
        ("LSTALVDT", "Date Last Known Alive", "date"),
    ],
    "adtte": [
        ("STUDYID", "Study Identifier", "text"),
        ("USUBJID", "Unique Subject Identifier", "text"),
        ("ASEQ", "Analysis Sequence Number", "int"),
        ("PARAMCD", "Parameter Code", "text"),
        ("PARAM", "Parameter", "text"),
        ("PARAMN", "Parameter (N)", "int"),
        ("TRTP", "Planned Treatment", "text"),
        ("TRTA", "Actual Treatment", "text"),
        ("STARTDT", "Time-to-Event Origin Date for Subject", "date"),
        ("ADT", "Analysis Date", "date"),
        ("AVAL", "Analysis Value", "int"),
        ("CNSR", "Censor", "int"),
        ("EVNTDESC", "Event or Censoring Description", "text"),
        ("CNSDTDSC", "Censor Date Description", "text"),
        ("SRCDOM", "Source Data", "text"),
        ("SRCVAR", "Source Variable", "text"),
        ("SRCSEQ", "Source Sequence Number", "int"),
        ("FASFL", "Full Analysis Set Population Flag", "text"),
    ],
    "adrs": [
        ("STUDYID", "Study Identifier", "text"),
        ("USUBJID", "Unique Subject Identifier", "text"),
        ("ASEQ", "Analysis Sequence Number", "int"),
        ("PARAMCD", "Parameter Code", "text"),
        ("PARAM", "Parameter", "text"),
        ("PARAMN", "Parameter (N)", "int"),
        ("TRTP", "Planned Treatment", "text"),
        ("TRTA", "Actual Treatment", "text"),
        ("AVISIT", "Analysis Visit", "text"),
        ("AVISITN", "Analysis Visit (N)", "int"),
        ("ADT", "Analysis Date", "date"),
        ("ADY", "Analysis Relative Day", "int"),
        ("AVAL", "Analysis Value", "int"),
        ("AVALC", "Analysis Value (C)", "text"),
        ("ANL01FL", "Analysis Flag 01", "text"),
        ("SRCDOM", "Source Data", "text"),
        ("SRCVAR", "Source Variable", "text"),
        ("SRCSEQ", "Source Sequence Number", "int"),
    ],
    "adae": [
        ("STUDYID", "Study Identifier", "text"),
        ("USUBJID", "Unique Subject Identifier", "text"),
        ("AESEQ", "Sequence Number", "int"),
        ("AETERM", "Reported Term for the Adverse Event", "text"),
        ("AEDECOD", "Dictionary-Derived Term", "text"),
        ("AEBODSYS", "Body System or Organ Class", "text"),
        ("TRTA", "Actual Treatment", "text"),
        ("ASTDT", "Analysis Start Date", "date"),
        ("ASTDY", "Analysis Start Relative Day", "int"),
        ("AENDT", "Analysis End Date", "date"),
        ("ATOXGRN", "Analysis Toxicity Grade (N)", "int"),
        ("ATOXGR", "Analysis Toxicity Grade", "text"),
        ("AESER", "Serious Event", "text"),
        ("AEREL", "Causality", "text"),
        ("AREL", "Analysis Causality", "text"),
        ("TRTEMFL", "Treatment Emergent Analysis Flag", "text"),
        ("SAFFL", "Safety Population Flag", "text"),
    ],
}
REQUIRED = [
    pytest.param(stem, name, label, kind, id=f"{stem}.{name}")
    for stem, variables in STANDARD.items()
    for name, label, kind in variables
]


@pytest.fixture(scope="module")
def datasets() -> AnalysisDatasets:
    """The censoring-table trial (one subject per FDA row, plus a confirmed responder), with two
    adverse events for 01-001 and one for 01-010 so that ADAE has rows."""
    stream = censoring_trial()
    for subject, day, ae_id, grade in (("01-001", 4, "AE-1", 2), ("01-001", 2, "AE-2", 1),
                                       ("01-010", 30, "AE-1", 3)):
        stream.fact("adverse_event.reported", subject, C1D1 + timedelta(days=day - 1), {
            "ae_id": ae_id, "term": "nausea", "grade": grade, "serious": False,
            "related": grade > 1,
        })
    return build_datasets(stream.entries, as_of=None, cutoff=None)


@pytest.mark.parametrize(("stem", "name", "label", "kind"), REQUIRED)
def test_required_variable_is_in_the_table_and_the_frame(
    datasets: AnalysisDatasets, stem: str, name: str, label: str, kind: str
) -> None:
    """Each required ADaM variable is in its column table with the IG's label and its kind, and
    in the dataset."""
    columns = {c.name: c for c in DATASET_COLUMNS[stem]}
    assert (columns[name].label, columns[name].kind) == (label, kind)
    assert name in datasets.frames()[stem].columns


@pytest.mark.parametrize("stem", list(STANDARD))
def test_required_variables_come_in_the_standard_order(
    datasets: AnalysisDatasets, stem: str
) -> None:
    """The required variables appear in the table, and in the frame, in the order listed above
    (identifiers first, then parameter, treatment, timing, value, flags, sources)."""
    wanted = [name for name, _, _ in STANDARD[stem]]
    for names in ([c.name for c in DATASET_COLUMNS[stem]], list(datasets.frames()[stem].columns)):
        assert [n for n in names if n in wanted] == wanted


@pytest.mark.parametrize(
    "column",
    [pytest.param(c, id=f"{stem}.{c.name}") for stem, cols in DATASET_COLUMNS.items()
     for c in cols],
)
def test_every_variable_is_sas_v5_shaped(column: Any) -> None:
    """Names ≤ 8 upper-case, labels ≤ 40 printable ASCII, codelists known, methods for derived."""
    assert re.fullmatch(r"[A-Z][A-Z0-9_]{0,7}", column.name)
    assert 0 < len(column.label) <= 40 and column.label.isascii()
    assert column.codelist is None or column.codelist in CODELISTS or column.codelist in (
        "DOSELVL", "COHORT"
    )


def test_adtte_starts_at_trtsdt_and_sources_point_at_real_records(
    datasets: AnalysisDatasets,
) -> None:
    """PFS/OS STARTDT = ADSL.TRTSDT; SRCSEQ names an ADRS record with the same date; SRCVAR holds
    ADT in the ADSL variable it names."""
    adsl = datasets.adsl.set_index("USUBJID")
    adrs = datasets.adrs.set_index(["USUBJID", "ASEQ"])
    checked = 0
    for row in datasets.adtte.itertuples(index=False):
        if row.PARAMCD in ("PFS", "OS"):
            assert adsl.loc[row.USUBJID, "TRTSDT"] == row.STARTDT
        if row.SRCDOM == "ADRS":
            assert adrs.loc[(row.USUBJID, int(row.SRCSEQ)), "ADT"] == row.ADT
            checked += 1
        elif row.SRCDOM == "ADSL":
            assert pd.isna(row.SRCSEQ)
            assert adsl.loc[row.USUBJID, row.SRCVAR] == row.ADT
    assert checked > 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> AnalysisDatasets:
    """The seed-3 demo (envelope v2, deaths, withdrawals, an expansion) as exported in full."""
    run = run_demo(tmp_path_factory.mktemp("demo"), seed=3)
    with LedgerReader(run.store) as service:
        return build_datasets(service.entries(TRIAL_ID), as_of=None, cutoff=None)


def test_cross_dataset_rules_hold_on_the_demo(demo: AnalysisDatasets) -> None:
    """On a whole demo trial: PFS/OS start at ADSL.TRTSDT; every SRCSEQ names an ADRS OVR record
    of that subject with that ADT (or, from ADSL, SRCVAR holds ADT); the dead have LSTALVDT =
    DTHDT and nobody has an ADTTE date after LSTALVDT; TRTP/TRTA, SAFFL and FASFL are ADSL's;
    TRTEMFL is ASTDT on or after TRTSDT."""
    adsl = demo.adsl.set_index("USUBJID")
    adrs = demo.adrs.set_index(["USUBJID", "ASEQ"])
    dead = adsl[adsl["DTHFL"] == "Y"]
    assert len(dead) > 0 and (dead["LSTALVDT"] == dead["DTHDT"]).all()
    pointers = 0
    for row in demo.adtte.itertuples(index=False):
        subject = adsl.loc[row.USUBJID]
        if row.PARAMCD in ("PFS", "OS"):
            assert subject["TRTSDT"] == row.STARTDT, row
        assert subject["LSTALVDT"] >= row.ADT, row
        assert (
            subject["TRT01P"], subject["TRT01A"], subject["FASFL"]
        ) == (row.TRTP, row.TRTA, row.FASFL)
        if row.SRCDOM == "ADRS":
            source = adrs.loc[(row.USUBJID, int(row.SRCSEQ))]
            assert (source["PARAMCD"], source["ADT"], row.SRCVAR) == ("OVR", row.ADT, "ADT"), row
            pointers += 1
        else:
            assert row.SRCDOM == "ADSL" and pd.isna(row.SRCSEQ), row
            assert subject[row.SRCVAR] == row.ADT, row
    for row in demo.adrs[demo.adrs["SRCDOM"].notna()].itertuples(index=False):
        source = adrs.loc[(row.USUBJID, int(row.SRCSEQ))]
        assert (source["PARAMCD"], source["ADT"]) == ("OVR", row.ADT), row
        pointers += 1
    assert pointers > 20
    for row in demo.adae.itertuples(index=False):
        subject = adsl.loc[row.USUBJID]
        assert (subject["TRT01A"], subject["SAFFL"]) == (row.TRTA, row.SAFFL), row
        assert (row.TRTEMFL == "Y") == (subject["TRTSDT"] <= row.ASTDT), row


def test_sequence_numbers_are_unique_per_subject(datasets: AnalysisDatasets) -> None:
    """ASEQ (ADTTE, ADRS) and AESEQ (ADAE) run 1..n within each subject."""
    for frame, column in ((datasets.adtte, "ASEQ"), (datasets.adrs, "ASEQ"),
                          (datasets.adae, "AESEQ")):
        for _, group in frame.groupby("USUBJID"):
            assert sorted(group[column].astype(int)) == list(range(1, len(group) + 1))


def test_adsl_populations_treatment_and_last_alive(datasets: AnalysisDatasets) -> None:
    """ITT all enrolled, SAFFL treated, TRT01P/TRT01PN from the dose, LSTALVDT = DTHDT if died."""
    adsl = datasets.adsl.set_index("SUBJID")
    assert (adsl["ITTFL"] == "Y").all()
    assert adsl.loc["01-011", ["SAFFL", "ACTARM", "ACTARMCD"]].tolist() == [
        "N", "Assigned, Not Treated", "NOTTRT"
    ]
    first = adsl.loc["01-001"]
    assert (first["TRT01P"], first["TRT01PN"], first["TRT01AN"], first["TRTDURD"]) == (
        "FRUQ 3 MG + HAIC", 3.0, 3.0, 3
    )
    assert adsl.loc["01-007", "LSTALVDT"] == adsl.loc["01-007", "DTHDT"] == date(2025, 2, 10)
    assert adsl.loc["01-002", "EFFFL"] == "N"  # no baseline scan
    assert adsl.loc["01-001", "EFFFL"] == "Y"
    assert pd.isna(first["AGE"]) and pd.isna(first["SEX"])  # envelope v1: no demographics


def test_adrs_parameters_and_numeric_values(datasets: AnalysisDatasets) -> None:
    """Responder 01-010: RSP and CRSP are Y (AVAL 1) dated at the first PR; CBOR PR is AVAL 2."""
    adrs = datasets.adrs[datasets.adrs["USUBJID"] == f"{TRIAL}-01-010"].set_index("PARAMCD")
    assert adrs.loc["RSP", ["AVALC", "AVAL", "ADT"]].tolist() == ["Y", 1, date(2025, 3, 3)]
    assert adrs.loc["CRSP", ["AVALC", "AVAL", "ADT"]].tolist() == ["Y", 1, date(2025, 3, 3)]
    assert adrs.loc["CBOR", ["AVALC", "AVAL"]].tolist() == ["PR", 2]
    ovr = adrs.loc[["OVR"]]
    assert ovr["AVISIT"].tolist() == ["WEEK 8", "WEEK 16", "WEEK 24"]
    assert ovr["ANL01FL"].tolist() == ["Y", "Y", "Y"]


RESPONSE_AVAL = {"CR": 1, "PR": 2, "SD": 3, "NON-CR/NON-PD": 4, "PD": 5, "NE": 6}
"""admiralonco ``aval_resp``: CDISC response terms and their codes."""


def test_adrs_values_are_cdisc_terms_with_their_codes(datasets: AnalysisDatasets) -> None:
    """OVR/BOR/CBOR hold CDISC response terms, RSP/CRSP Y/N, AVAL their admiralonco code; each
    subject with a response has one BOR, CBOR, RSP, CRSP; RSP = Y exactly when BOR is CR or PR,
    CRSP = Y exactly when CBOR is; parameter rows carry ANL01FL = Y."""
    adrs = datasets.adrs
    assert set(adrs["PARAMCD"]) == {"OVR", "BOR", "CBOR", "RSP", "CRSP"}
    for row in adrs.itertuples(index=False):
        if row.PARAMCD in ("OVR", "BOR", "CBOR"):
            assert RESPONSE_AVAL[row.AVALC] == row.AVAL, row
        else:
            assert (row.AVALC, row.AVAL) in (("Y", 1), ("N", 0)), row
        assert ["OVR", "BOR", "CBOR", "RSP", "CRSP"].index(row.PARAMCD) + 1 == row.PARAMN
    for subject, group in adrs[adrs["PARAMCD"] != "OVR"].groupby("USUBJID"):
        by_param = group.set_index("PARAMCD")
        assert sorted(by_param.index) == ["BOR", "CBOR", "CRSP", "RSP"], subject
        assert (by_param["ANL01FL"] == "Y").all()
        assert (by_param.loc["RSP", "AVALC"] == "Y") == (
            by_param.loc["BOR", "AVALC"] in ("CR", "PR")
        )
        assert (by_param.loc["CRSP", "AVALC"] == "Y") == (
            by_param.loc["CBOR", "AVALC"] in ("CR", "PR")
        )
    assert {"PR", "PD", "NE"} <= set(adrs["AVALC"])  # the fixture exercises the terms


def _scans(stream: EntryStream, subject: str, calls: list[tuple[int, float]]) -> None:
    """Post-baseline scans on study days (C1D1 = day 1) with both target lesions at ``mm``
    (0 mm: target and non-target disease gone, a CR)."""
    for day, mm in calls:
        data = tumor_data(mm, mm)
        if mm == 0:
            data["non_target"] = "CR"
        stream.fact("tumor.assessed", subject, C1D1 + timedelta(days=day - 1), data)


ADMIRAL_DATES = [
    pytest.param(
        [(57, 25), (85, 0), (113, 0)], "CR", 85, "CR", 85,
        id="CBOR CR dated at the confirmed CR, not the earlier PR",
    ),
    pytest.param(
        [(29, 45), (57, 45)], "SD", 57, "SD", 57,
        id="CBOR SD dated at the first SD on or after day 49",
    ),
    pytest.param(
        [(29, 45), (43, 45), (50, 45), (57, 45)], "SD", 50, "SD", 50,
        id="SD dated at the first visit past the minimum, not the first SD",
    ),
    pytest.param(
        [(29, 45), (49, 45)], "SD", 49, "SD", 49,
        id="SD on day 49 itself qualifies",
    ),
    pytest.param(
        [(29, 35), (57, 40)], "PR", 29, "SD", 57,
        id="unconfirmed PR: BOR at the PR, CBOR SD at the first qualifying visit",
    ),
    pytest.param(
        [(57, 30), (113, 30)], "PR", 57, "PR", 57,
        id="CBOR PR dated at the first PR that was confirmed",
    ),
    pytest.param(
        [(29, 45), (43, 70)], "PD", 43, "PD", 43,
        id="SD too short then PD: dated at the PD",
    ),
]


@pytest.mark.parametrize(("calls", "bor", "bor_day", "cbor", "cbor_day"), ADMIRAL_DATES)
def test_bor_and_cbor_are_dated_as_admiralonco_dates_them(
    calls: list[tuple[int, float]], bor: str, bor_day: int, cbor: str, cbor_day: int
) -> None:
    """The BOR and CBOR rows' ADT is the visit admiralonco's bor_*/cbor_* event selects, and
    SRCSEQ points at the OVR record of that visit."""
    stream = EntryStream()
    stream.treated("01-001")
    _scans(stream, "01-001", calls)
    adrs = build_datasets(stream.entries, as_of=None, cutoff=None).adrs
    ovr_seq = {r.ADT: r.ASEQ for r in adrs[adrs["PARAMCD"] == "OVR"].itertuples()}
    rows = adrs.set_index("PARAMCD")
    for paramcd, response, day in (("BOR", bor, bor_day), ("CBOR", cbor, cbor_day)):
        on = C1D1 + timedelta(days=day - 1)
        assert rows.loc[paramcd, ["AVALC", "ADT", "ADY"]].tolist() == [response, on, day]
        assert rows.loc[paramcd, "SRCSEQ"] == ovr_seq[on]


def test_anl01fl_keeps_the_worst_response_of_a_day() -> None:
    """Two scans on one day (PR, then SD): admiralonco's worst_resp keeps the SD for analysis
    (ANL01FL = Y on it alone), and the parameters are derived from it."""
    stream = EntryStream()
    stream.treated("01-001")
    _scans(stream, "01-001", [(57, 34), (57, 38)])
    adrs = build_datasets(stream.entries, as_of=None, cutoff=None).adrs
    ovr = adrs[adrs["PARAMCD"] == "OVR"]
    assert sorted(zip(ovr["AVALC"], ovr["ANL01FL"].fillna(""), strict=True)) == [
        ("PR", ""), ("SD", "Y")
    ]
    rows = adrs.set_index("PARAMCD")
    assert rows.loc["BOR", "AVALC"] == rows.loc["CBOR", "AVALC"] == "SD"
    assert rows.loc["RSP", "AVALC"] == "N"
    assert rows.loc["BOR", "ADT"] == rows.loc["CBOR", "ADT"] == C1D1 + timedelta(days=56)


def test_envelope_v2_demographics_and_meddra_fill_adsl_and_adae() -> None:
    """v2 enrollment data give AGE (from the birth date), SEX, RACE, ECOG, BMI; MedDRA codes fill
    AEDECOD/AEBODSYS."""
    stream = EntryStream()
    stream.fact("subject.enrolled", "01-001", date(2025, 1, 2), {
        "cohort": "A", "birth_date": "1960-01-03", "sex": "female", "race": "Asian",
        "ecog": 1, "weight_kg": 64.0, "height_cm": 160.0,
    })
    stream.fact("haic.administered", "01-001", C1D1,
                {"cycle": 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000})
    stream.fact("adverse_event.reported", "01-001", C1D1 + timedelta(days=3), {
        "ae_id": "AE-1", "term": "high blood pressure", "grade": 3, "serious": False,
        "related": True, "meddra_pt": "Hypertension", "meddra_soc": "Vascular disorders",
    })
    datasets = build_datasets(stream.entries, as_of=None, cutoff=None)
    adsl = datasets.adsl.iloc[0]
    assert (adsl["AGE"], adsl["AGEU"], adsl["SEX"], adsl["RACE"], adsl["ECOGBL"]) == (
        64, "YEARS", "F", "ASIAN", 1
    )
    assert adsl["BMIBL"] == 25.0
    ae = datasets.adae.iloc[0]
    assert (ae["AEDECOD"], ae["AEBODSYS"], ae["ATOXGR"], ae["AREL"], ae["AESEQ"]) == (
        "Hypertension", "Vascular disorders", "3", "Y", 1
    )


def test_death_before_treatment_start_exports_and_is_flagged(tmp_path: Path) -> None:
    """A death dated before C1D1 no longer stops the export: OS/PFS take it on day 1, flagged."""
    stream = EntryStream()
    stream.treated("01-001")
    stream.fact("subject.died", "01-001", C1D1 - timedelta(days=2))
    datasets = build_datasets(stream.entries, as_of=None, cutoff=None)
    rows = datasets.adtte.set_index("PARAMCD")
    assert rows.loc["OS", ["AVAL", "CNSR", "DTCONFL"]].tolist() == [1, 0, "Y"]
    assert rows.loc["PFS", ["AVAL", "CNSR"]].tolist() == [1, 0]
    assert datasets.adsl.iloc[0]["DTHDT"] == C1D1 - timedelta(days=2)
    assert datasets.adsl.iloc[0]["DTCONFL"] == "Y"
    for fmt in ("csv", "xpt"):
        write_datasets(datasets, fmt=fmt, out=tmp_path / fmt,  # type: ignore[arg-type]
                       software_version="test")
        assert (tmp_path / fmt / MANIFEST_NAME).is_file()


def test_assessment_before_treatment_start_is_listed_not_analysed() -> None:
    """A post-baseline PD dated before C1D1 is an OVR row without ANL01FL and no PFS event."""
    stream = EntryStream()
    stream.treated("01-001")
    stream.tumor("01-001", C1D1 - timedelta(days=1), 80, 80)
    datasets = build_datasets(stream.entries, as_of=None, cutoff=None)
    ovr = datasets.adrs[datasets.adrs["PARAMCD"] == "OVR"].iloc[0]
    assert (ovr["AVALC"], ovr["ANL01FL"], ovr["AVISIT"]) == ("PD", None, "UNSCHEDULED")
    pfs = datasets.adtte.set_index("PARAMCD").loc["PFS"]
    assert pfs["CNSR"] != 0
    assert datasets.adsl.iloc[0]["DTCONFL"] == "Y"


def test_long_ae_term_is_split_into_continuation_variables(tmp_path: Path) -> None:
    """150 'Ü' (300 bytes) go into AETERM (200 bytes) and AETERM1 (100), joined back equal."""
    term = "Ü" * 150
    stream = EntryStream()
    stream.treated("01-001")
    stream.fact("adverse_event.reported", "01-001", C1D1 + timedelta(days=1),
                {"ae_id": "AE-1", "term": term, "grade": 2, "serious": False, "related": False})
    datasets = build_datasets(stream.entries, as_of=None, cutoff=None)
    write_datasets(datasets, fmt="xpt", out=tmp_path, software_version="test")
    frame, meta = pyreadstat.read_xport(str(tmp_path / "adae.xpt"), encoding="utf-8")
    columns = list(frame.columns)
    assert columns[columns.index("AETERM") + 1] == "AETERM1"
    assert meta.column_names_to_labels["AETERM1"] == "Reported Term for the Adverse Event (1)"
    assert len(frame.loc[0, "AETERM"].encode("utf-8")) == 200
    assert frame.loc[0, "AETERM"] + frame.loc[0, "AETERM1"] == term
    assert b'Name="AETERM1"' in (tmp_path / "define.xml").read_bytes()


# --- Checks on write (conformance.RULES), one broken variable per row --------------------------

def _relabel(stem: str, name: str, label: str) -> tuple[Column, ...]:
    return tuple(
        replace(c, label=label) if c.name == name else c for c in DATASET_COLUMNS[stem]
    )


def _rename(stem: str, name: str, new: str) -> tuple[Column, ...]:
    return tuple(replace(c, name=new) if c.name == name else c for c in DATASET_COLUMNS[stem])


def _set(table: Dataset, name: str, value: object) -> Dataset:
    """``table`` with the first row's ``name`` holding ``value``."""
    index = table.names.index(name)
    first, *rest = table.rows
    changed = (*first[:index], value, *first[index + 1:])
    return Dataset(table.columns, (changed, *rest))


def _swap(table: Dataset, first: str, second: str) -> Dataset:
    """``table`` with variables ``first`` and ``second`` trading places, cells and all."""
    order = list(range(len(table.columns)))
    i, j = table.names.index(first), table.names.index(second)
    order[i], order[j] = order[j], order[i]
    return _pick(table, order)


def _drop(table: Dataset, name: str) -> Dataset:
    """``table`` without variable ``name`` and its cells."""
    dropped = table.names.index(name)
    return _pick(table, [i for i in range(len(table.columns)) if i != dropped])


def _pick(table: Dataset, order: list[int]) -> Dataset:
    return Dataset(
        tuple(table.columns[i] for i in order),
        tuple(tuple(row[i] for i in order) for row in table.rows),
    )


def _add_extra(table: Dataset) -> Dataset:
    """``table`` with an extra text variable ``EXTRA`` holding "x" on every row."""
    extra = Column("EXTRA", "Extra", "text")
    return Dataset((*table.columns, extra), tuple((*row, "x") for row in table.rows))


def _rename_data(table: Dataset, name: str, new: str) -> Dataset:
    """``table`` with variable ``name`` called ``new`` (its cells unchanged)."""
    return Dataset(
        tuple(replace(c, name=new) if c.name == name else c for c in table.columns), table.rows
    )


# rule, dataset, variable the error must name, and how the table (columns) or data is broken
Break = tuple[str, str, str, Any, Any]
RULE_BREAKS: list[Break] = [
    ("name", "adtte", "AVALDAYS1", lambda: _rename("adtte", "AVAL", "AVALDAYS1"),
     lambda d: _rename_data(d, "AVAL", "AVALDAYS1")),
    ("name", "adsl", "age",
     lambda: _rename("adsl", "AGE", "age"), lambda d: _rename_data(d, "AGE", "age")),
    ("label", "adsl", "AGE", lambda: _relabel("adsl", "AGE", "Âge"), None),
    ("label", "adae", "AETERM", lambda: _relabel("adae", "AETERM", "T" * 41), None),
    ("label", "adrs", "AVALC", lambda: _relabel("adrs", "AVALC", " "), None),
    ("order", "adrs", "AVALC", None, lambda d: _swap(d, "AVAL", "AVALC")),
    ("order", "adtte", "COHORT", None, lambda d: _drop(d, "COHORT")),
    ("order", "adae", "EXTRA", None, _add_extra),
    ("type", "adtte", "AVAL", None, lambda d: _set(d, "AVAL", "57")),
    ("type", "adtte", "SRCSEQ", None, lambda d: _set(d, "SRCSEQ", 1.5)),
    ("type", "adsl", "SUBJID", None, lambda d: _set(d, "SUBJID", 1)),
    ("format", "adsl", "TRTSDT", None,
     lambda d: _set(d, "TRTSDT", datetime(2025, 1, 6, 12, 30))),
    ("format", "adsl", "TRTSDT", None, lambda d: _set(d, "TRTSDT", "2025-01-06")),
    ("format", "adrs", "SUMDIAM", None, lambda d: _set(d, "SUMDIAM", date(2025, 1, 6))),
    ("length", "adrs", "AVALC", None, lambda d: _set(d, "AVALC", "NON-CR/NON-PD+")),
    ("codelist", "adae", "AESER", None, lambda d: _set(d, "AESER", "U")),
    ("codelist", "adtte", "CNSR", None, lambda d: _set(d, "CNSR", 99)),
    ("codelist", "adrs", "AVALC", None, lambda d: _set(d, "AVALC", "CRU")),
]


def test_every_rule_has_a_row_in_the_breaking_table() -> None:
    """The table below walks conformance.RULES: each rule is broken at least once."""
    assert sorted({rule for rule, *_ in RULE_BREAKS}) == sorted(RULES)


@pytest.mark.parametrize(
    ("rule", "stem", "variable", "break_table", "break_data"),
    [pytest.param(*row, id=f"{row[0]}:{row[1]}.{row[2]}") for row in RULE_BREAKS],
)
def test_conformance_rule_fails_naming_the_variable(
    datasets: AnalysisDatasets, rule: str, stem: str, variable: str,
    break_table: Any, break_data: Any,
) -> None:
    """A dataset broken in one variable fails that rule, the message naming the variable; the
    unbroken dataset passes."""
    codelists = {**CODELISTS, "DOSELVL": (("DL1", ""),), "COHORT": (("DL1", ""),)}
    table = datasets.tables[stem]
    columns = DATASET_COLUMNS[stem]
    check_dataset(stem.upper(), DATASET_LABELS[stem], table, columns, _lenient(codelists, table))
    broken_columns = columns if break_table is None else break_table()
    broken_table = table if break_data is None else break_data(table)
    with pytest.raises(DatasetConformanceError) as error:
        check_dataset(stem.upper(), DATASET_LABELS[stem], broken_table, broken_columns,
                      _lenient(codelists, table))
    assert (error.value.rule, error.value.variable) == (rule, variable)
    assert str(error.value).startswith(f"{stem.upper()} {variable}: ")
    assert str(error.value).endswith(f"({rule} rule)")


def _lenient(codelists: dict[str, Any], table: Dataset) -> dict[str, Any]:
    """The protocol codelists (DOSELVL, COHORT) as the dataset holds them."""
    extra = {
        name: tuple((v, v) for v in sorted(set(table.present(name)))) or (("", ""),)
        for name in ("DOSELVL", "COHORT") if name in table.names
    }
    return {**codelists, **extra}


def test_the_dataset_label_is_checked_too(datasets: AnalysisDatasets) -> None:
    """A dataset label over 40 bytes fails the label rule, naming the dataset label."""
    adsl = datasets.tables["adsl"]
    with pytest.raises(DatasetConformanceError, match=r"ADSL \(dataset label\):.*label rule"):
        check_dataset("ADSL", "S" * 41, adsl, DATASET_COLUMNS["adsl"],
                      _lenient(dict(CODELISTS), adsl))


def test_transport_value_over_200_bytes_fails_the_length_rule() -> None:
    """check_transport (what the XPT writer is held to after splitting) names the variable."""
    frame = pd.DataFrame({"AETERM": ["x" * 200, "é" * 101]})
    with pytest.raises(DatasetConformanceError) as error:
        check_transport("ADAE", frame, {"AETERM": "Reported Term for the Adverse Event"})
    assert (error.value.rule, error.value.variable) == ("length", "AETERM")
    assert "202 bytes" in str(error.value)


@pytest.mark.parametrize("fmt", ["csv", "xpt", "json"])
def test_export_of_a_broken_dataset_fails_before_writing_a_byte(
    datasets: AnalysisDatasets, tmp_path: Path, fmt: str
) -> None:
    """write_datasets checks every dataset first: a broken ADAE leaves the folder empty."""
    broken_adae = _set(datasets.tables["adae"], "AESER", "U")
    broken = replace(datasets, tables={**datasets.tables, "adae": broken_adae})
    with pytest.raises(DatasetConformanceError, match=r"^ADAE AESER: .*\(codelist rule\)$"):
        write_datasets(broken, fmt=fmt, out=tmp_path / fmt,  # type: ignore[arg-type]
                       software_version="test")
    assert not (tmp_path / fmt).exists()
