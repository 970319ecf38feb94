"""Survival statistics and exact binomial intervals checked against values R itself produced.

``tests/fixtures/r/km_reference.R`` (R 4.2, survival 3.5) read the committed inputs in that folder
and wrote ``km_expected.csv`` and ``binom_expected.csv``; these tests only read them, so they run
without R. Inputs: hand-built edge cases (``km_cases.csv``: S sitting at 0.5, everyone at risk
having the event, heavy censoring, landmarks at S = 1 and S = 0), R's ``aml`` data and the ADTTE
of several ``ledger demo`` seeds. Every number must equal R's to 1e-9 relative, and every NA must
be missing here.
"""

from __future__ import annotations

import csv
import io
import math
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from ledger.projections.endpoints import clopper_pearson
from ledger.projections.km_summary import (
    COHORT_COLUMN,
    KM_SUMMARY_COLUMNS,
    follow_up_summary,
    km_summary,
    km_summary_csv,
)

FIXTURES = Path(__file__).parent / "fixtures" / "r"
RELATIVE = 1e-9

_KM_VALUE_COLUMNS = KM_SUMMARY_COLUMNS[2:]
_FOLLOW_UP_COLUMNS = {"FU_MEDIAN": "MEDIAN", "FU_LCL": "LCL", "FU_UCL": "UCL"}


def _read_expected(name: str) -> list[dict[str, str]]:
    with open(FIXTURES / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


KM_EXPECTED = _read_expected("km_expected.csv")
BINOM_EXPECTED = _read_expected("binom_expected.csv")


@cache
def _input(source: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / source, dtype={"DOSELVL": str, "COHORT": str})


def _cohort_col(source: str) -> str | None:
    """The demo inputs carry COHORT, and R gave their per-cohort strata too."""
    return COHORT_COLUMN if COHORT_COLUMN in _input(source).columns else None


def _summary(source: str) -> pd.DataFrame:
    return km_summary(_input(source), cohort_col=_cohort_col(source))


@cache
def _km(source: str) -> pd.DataFrame:
    return _summary(source).set_index(["PARAMCD", "STRATUM"])


@cache
def _follow_up(source: str) -> pd.DataFrame:
    frame = follow_up_summary(_input(source), cohort_col=_cohort_col(source))
    return frame.set_index(["PARAMCD", "STRATUM"])


def _r_value(text: str) -> float | None:
    return None if text == "NA" else float(text)


def _disagreements(got: dict[str, float], expected: dict[str, str]) -> dict[str, object]:
    """Columns where a value differs from R's, as (ours, R's)."""
    wrong: dict[str, object] = {}
    for column, value in got.items():
        want = _r_value(expected[column])
        mine = None if pd.isna(value) else float(value)
        if want is None or mine is None:
            if want is not mine:
                wrong[column] = (mine, expected[column])
        elif not math.isclose(mine, want, rel_tol=RELATIVE, abs_tol=0.0):
            wrong[column] = (mine, expected[column])
    return wrong


def _row_id(row: dict[str, str]) -> str:
    return f"{row['SOURCE'].removesuffix('.csv')} {row['PARAMCD']} {row['STRATUM']}"


@pytest.mark.parametrize("expected", [pytest.param(r, id=_row_id(r)) for r in KM_EXPECTED])
def test_km_summary_row_equals_r(expected: dict[str, str]) -> None:
    """N, events, median with limits and S(6 m)/S(12 m) with limits equal R survfit, NA for NA."""
    got = _km(expected["SOURCE"]).loc[(expected["PARAMCD"], expected["STRATUM"])]
    assert _disagreements({c: got[c] for c in _KM_VALUE_COLUMNS}, expected) == {}


@pytest.mark.parametrize("expected", [pytest.param(r, id=_row_id(r)) for r in KM_EXPECTED])
def test_median_follow_up_equals_r(expected: dict[str, str]) -> None:
    """The reverse Kaplan–Meier median follow-up and its limits equal R's."""
    got = _follow_up(expected["SOURCE"]).loc[(expected["PARAMCD"], expected["STRATUM"])]
    values = {r_name: got[ours] for r_name, ours in _FOLLOW_UP_COLUMNS.items()}
    assert _disagreements(values, expected) == {}


@pytest.mark.parametrize("source", sorted({r["SOURCE"] for r in KM_EXPECTED}))
def test_km_summary_has_r_rows_in_order(source: str) -> None:
    """One row per PARAMCD × stratum, PARAMCDs sorted, overall, the dose levels, then the
    cohorts: R's order."""
    frame = _summary(source)
    expected = [(r["PARAMCD"], r["STRATUM"]) for r in KM_EXPECTED if r["SOURCE"] == source]
    assert list(zip(frame["PARAMCD"], frame["STRATUM"], strict=True)) == expected
    assert tuple(frame.columns) == KM_SUMMARY_COLUMNS


@pytest.mark.parametrize(
    ("paramcd", "stratum", "column", "condition"),
    [
        pytest.param("HALF", "overall", "MEDIAN", "2.5", id="midpoint where S sits at 0.5"),
        pytest.param("ALLEND", "C", "LCL", "NA", id="lower limit NA when all die at once"),
        pytest.param("ALLEND", "A", "UCL", "NA", id="upper limit NA when all at risk die last"),
        pytest.param("HEAVY", "overall", "MEDIAN", "NA", id="median not reached"),
        pytest.param("LM1", "B", "S6_LCL", "NA", id="S = 1 after a censoring: no limits"),
        pytest.param("LM0", "A", "S6_UCL", "NA", id="S = 0: no limits"),
        pytest.param("LMNE", "overall", "S12", "NA", id="landmark beyond follow-up"),
    ],
)
def test_r_fixture_covers_the_edge_case(
    paramcd: str, stratum: str, column: str, condition: str
) -> None:
    """The R reference really contains each edge case the contract names, and we agree on it."""
    (expected,) = (
        r for r in KM_EXPECTED
        if (r["SOURCE"], r["PARAMCD"], r["STRATUM"]) == ("km_cases.csv", paramcd, stratum)
    )  # fmt: skip
    assert expected[column] == condition
    value = _km("km_cases.csv").loc[(paramcd, stratum), column]
    assert _disagreements({column: value}, expected) == {}


@pytest.mark.parametrize(
    "source", sorted({r["SOURCE"] for r in KM_EXPECTED if r["SOURCE"].startswith("demo_")})
)
def test_r_fixture_has_every_cohort_of_the_demo(source: str) -> None:
    """R gave a COHORT=<cohort> stratum for every PARAMCD × cohort of the demo input, and a
    cohort stratum differs from the dose level of the same name once the expansion joined it."""
    data = _input(source)
    expected = {(p, f"COHORT={c}") for p, c in zip(data["PARAMCD"], data["COHORT"], strict=True)}
    got = {(r["PARAMCD"], r["STRATUM"]) for r in KM_EXPECTED if r["SOURCE"] == source}
    assert expected <= got
    if (data["COHORT"] == "EXPANSION").any():
        level = data.loc[data["COHORT"] == "EXPANSION", "DOSELVL"].iloc[0]
        km = _km(source)
        paramcd = data["PARAMCD"].iloc[0]
        assert km.loc[(paramcd, level), "N"] > km.loc[(paramcd, f"COHORT={level}"), "N"]


@pytest.mark.parametrize(
    "source", sorted({r["SOURCE"] for r in KM_EXPECTED if r["SOURCE"].startswith("demo_")})
)
def test_km_summary_csv_is_byte_stable_and_readable(source: str) -> None:
    """Two writes give the same bytes; read back, the numbers are R's to 10 digits, NA empty."""
    shuffled = _input(source).sample(frac=1.0, random_state=7)
    first = km_summary_csv(_summary(source))
    second = km_summary_csv(km_summary(shuffled, cohort_col=COHORT_COLUMN))
    assert first == second
    assert first.startswith((",".join(KM_SUMMARY_COLUMNS) + "\n").encode())
    assert b"\r" not in first
    assert b"nan" not in first.lower()
    for row in csv.DictReader(io.StringIO(first.decode("utf-8"))):
        (expected,) = (
            r for r in KM_EXPECTED
            if (r["SOURCE"], r["PARAMCD"], r["STRATUM"]) == (source, row["PARAMCD"], row["STRATUM"])
        )  # fmt: skip
        for column in _KM_VALUE_COLUMNS:
            want = _r_value(expected[column])
            if want is None:
                assert row[column] == "", column
            else:
                assert float(row[column]) == pytest.approx(want, rel=1e-9, abs=5e-11), column


@pytest.mark.parametrize(
    "expected",
    [pytest.param(r, id=f"{r['K']}/{r['N']} at {r['LEVEL']}") for r in BINOM_EXPECTED],
)
def test_clopper_pearson_equals_r_binom_test(expected: dict[str, str]) -> None:
    """The exact interval equals R ``binom.test(k, n, conf.level)$conf.int``."""
    low, high = clopper_pearson(int(expected["K"]), int(expected["N"]), float(expected["LEVEL"]))
    got = {"LOWER": low, "UPPER": high}
    for column, value in got.items():
        want = float(expected[column])
        assert math.isclose(value, want, rel_tol=RELATIVE, abs_tol=1e-15), (column, value, want)


@pytest.mark.parametrize(
    "source", sorted({r["SOURCE"] for r in KM_EXPECTED if r["SOURCE"].startswith("demo_")})
)
def test_r_inputs_are_what_the_demo_exports_today(source: str, tmp_path: Path) -> None:
    """The demo inputs R read are today's ``ledger export`` ADTTE of that seed (the file, read
    back), so R's numbers are those of what a reviewer receives, and ``ledger report`` writes
    them: a change to the ADTTE derivation shows here, and the fixtures must be regenerated."""
    from ledger.demo import run_demo
    from ledger.ledger_reader import LedgerReader
    from ledger.projections.export import export_datasets
    from tests.builders import TRIAL_ID

    seed = int(source.removeprefix("demo_seed").removesuffix("_adtte.csv"))
    run = run_demo(tmp_path / "demo", seed=seed)
    with LedgerReader(run.store) as service:
        export_datasets(service.entries(TRIAL_ID), as_of=None, cutoff=None, fmt="csv",
                        out=tmp_path / "export", software_version="test")
    exported = pd.read_csv(tmp_path / "export" / "adtte.csv", dtype={"DOSELVL": str, "COHORT": str})
    keys = ["USUBJID", "PARAMCD"]
    got = exported[list(_input(source).columns)].sort_values(keys).reset_index(drop=True)
    want = _input(source).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
