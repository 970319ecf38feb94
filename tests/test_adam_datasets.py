"""ADaM conformance of ADSL/ADTTE/ADRS/ADAE: variables, cross-dataset rules, admiralonco dates."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest

from ledger.projections.datasets import (
    CODELISTS,
    DATASET_COLUMNS,
    AnalysisDatasets,
    build_datasets,
)
from ledger.projections.export import MANIFEST_NAME, write_datasets
from tests.test_datasets import C1D1, TRIAL, EntryStream, censoring_trial, tumor_data

# Variables each dataset must hold (ADaM IG 1.3 and the admiral/admiralonco templates), row by row.
REQUIRED = [
    pytest.param(stem, name, kind, id=f"{stem}.{name}")
    for stem, names in {
        "adsl": {
            "STUDYID": "text", "USUBJID": "text", "SUBJID": "text", "SITEID": "text",
            "AGE": "int", "AGEU": "text", "SEX": "text", "RACE": "text", "ARM": "text",
            "ACTARM": "text", "TRT01P": "text", "TRT01PN": "float", "TRT01A": "text",
            "TRT01AN": "float", "TRTSDT": "date", "TRTEDT": "date", "TRTDURD": "int",
            "SAFFL": "text", "ITTFL": "text", "EFFFL": "text", "FASFL": "text",
            "DTHFL": "text", "DTHDT": "date", "LSTALVDT": "date",
        },
        "adtte": {
            "STUDYID": "text", "USUBJID": "text", "ASEQ": "int", "PARAMCD": "text",
            "PARAM": "text", "PARAMN": "int", "TRTP": "text", "TRTA": "text", "STARTDT": "date",
            "ADT": "date", "AVAL": "int", "CNSR": "int", "EVNTDESC": "text", "CNSDTDSC": "text",
            "SRCDOM": "text", "SRCVAR": "text", "SRCSEQ": "int", "FASFL": "text",
        },
        "adrs": {
            "STUDYID": "text", "USUBJID": "text", "ASEQ": "int", "PARAMCD": "text",
            "PARAM": "text", "PARAMN": "int", "TRTP": "text", "TRTA": "text", "AVISIT": "text",
            "AVISITN": "int", "ADT": "date", "ADY": "int", "AVAL": "int", "AVALC": "text",
            "ANL01FL": "text", "SRCDOM": "text", "SRCVAR": "text", "SRCSEQ": "int",
        },
        "adae": {
            "STUDYID": "text", "USUBJID": "text", "AESEQ": "int", "AETERM": "text",
            "AEDECOD": "text", "AEBODSYS": "text", "TRTA": "text", "ASTDT": "date",
            "ATOXGR": "text", "ATOXGRN": "int", "AESER": "text", "AREL": "text",
            "AEREL": "text", "TRTEMFL": "text", "SAFFL": "text",
        },
    }.items()
    for name, kind in names.items()
]


@pytest.fixture(scope="module")
def datasets() -> AnalysisDatasets:
    """The censoring-table trial (one subject per FDA row, plus a confirmed responder)."""
    return build_datasets(censoring_trial().entries, as_of=None, cutoff=None)


@pytest.mark.parametrize(("stem", "name", "kind"), REQUIRED)
def test_required_variable_is_in_the_table_and_the_frame(
    datasets: AnalysisDatasets, stem: str, name: str, kind: str
) -> None:
    """Each required ADaM variable is in its column table with its kind, and in the dataset."""
    columns = {c.name: c for c in DATASET_COLUMNS[stem]}
    assert columns[name].kind == kind
    assert name in datasets.frames()[stem].columns


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
        [(57, 25), (85, 0), (113, 0)], "CR", 85,
        id="CBOR CR dated at the confirmed CR, not the earlier PR",
    ),
    pytest.param(
        [(29, 45), (57, 45)], "SD", 57,
        id="CBOR SD dated at the first SD on or after day 49",
    ),
    pytest.param(
        [(57, 30), (113, 30)], "PR", 57,
        id="CBOR PR dated at the first PR that was confirmed",
    ),
]


@pytest.mark.parametrize(("calls", "cbor", "day"), ADMIRAL_DATES)
def test_cbor_is_dated_as_admiralonco_dates_it(
    calls: list[tuple[int, float]], cbor: str, day: int
) -> None:
    """The CBOR row's ADT is the visit admiralonco's cbor_cr/cbor_pr/bor_sd event selects."""
    stream = EntryStream()
    stream.treated("01-001")
    _scans(stream, "01-001", calls)
    adrs = build_datasets(stream.entries, as_of=None, cutoff=None).adrs.set_index("PARAMCD")
    assert adrs.loc["CBOR", "AVALC"] == cbor
    assert adrs.loc["CBOR", "ADT"] == C1D1 + timedelta(days=day - 1)


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
