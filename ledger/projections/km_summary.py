"""The contract's §8 summary tables: `km_summary` (median, log-log limits and the 6/12-month
landmarks per PARAMCD × stratum, as R reports them) and the reverse-Kaplan–Meier median
follow-up, with the byte-stable CSV writer of ``km_summary.csv``."""

from __future__ import annotations

import math
from typing import Final, TypeVar

import pandas as pd

from ledger.projections.survival import (
    ADTTE_COLUMNS,
    LANDMARK_DAYS,
    LANDMARK_MONTHS,
    OVERALL_LABEL,
    FollowUpResult,
    KaplanMeierResult,
    endpoint_rows,
    median_follow_up,
    summarise_endpoint,
)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


KM_SUMMARY_COLUMNS: Final = (
    "PARAMCD", "STRATUM", "N", "EVENTS", "MEDIAN", "LCL", "UCL",
    "S6", "S6_LCL", "S6_UCL", "S12", "S12_LCL", "S12_UCL",
)  # fmt: skip
"""The columns of ``km_summary.csv`` (contract §8), in order."""

FOLLOW_UP_COLUMNS: Final = ("PARAMCD", "STRATUM", "N", "CENSORED", "MEDIAN", "LCL", "UCL")
"""The columns of :func:`follow_up_summary`, in order."""

KM_CSV_FLOAT_FORMAT: Final = "%.10g"
"""Ten significant digits, as the exported datasets (``export.CSV_FLOAT_FORMAT``)."""

OVERALL_STRATUM: Final = "overall"
_Fit = TypeVar("_Fit", KaplanMeierResult, FollowUpResult)
_DOSE_LEVEL_COLUMN: Final = "DOSELVL"


def km_summary(adtte: pd.DataFrame, group_col: str = _DOSE_LEVEL_COLUMN) -> pd.DataFrame:
    """The §8 ``km_summary`` table: one row per PARAMCD × stratum, times in days.

    PARAMCDs in code-point order; within each, ``overall`` first, then each dose level (by
    value). MEDIAN, LCL, UCL and the landmark columns are NaN where R reports NA (not reached,
    not estimable); N and EVENTS are integers. An ADTTE without rows gives an empty table.
    """
    rows: list[dict[str, object]] = []
    for paramcd in _paramcds(adtte, group_col):
        summary = summarise_endpoint(adtte, paramcd, group_col)
        for stratum, result in _strata(summary.overall, summary.groups):
            median = result.median_estimate
            row: dict[str, object] = {
                "PARAMCD": paramcd,
                "STRATUM": stratum,
                "N": result.n,
                "EVENTS": result.events,
                "MEDIAN": _nan_if_none(median.median),
                "LCL": _nan_if_none(median.lower),
                "UCL": _nan_if_none(median.upper),
            }
            for months in LANDMARK_MONTHS:
                estimate, lower, upper = result.survival_at_day(LANDMARK_DAYS[months])
                row[f"S{months}"] = estimate
                row[f"S{months}_LCL"] = lower
                row[f"S{months}_UCL"] = upper
            rows.append(row)
    return _typed_frame(rows, KM_SUMMARY_COLUMNS, ("N", "EVENTS"))


def follow_up_summary(adtte: pd.DataFrame, group_col: str = _DOSE_LEVEL_COLUMN) -> pd.DataFrame:
    """Median follow-up (reverse Kaplan–Meier) per PARAMCD × stratum, in km_summary's order."""
    rows: list[dict[str, object]] = []
    for paramcd in _paramcds(adtte, group_col):
        subset, values = endpoint_rows(adtte, paramcd, group_col)

        def fit(frame: pd.DataFrame, label: str) -> FollowUpResult:
            events = frame["CNSR"].to_numpy() == 0
            return median_follow_up(frame["AVAL"].to_numpy(dtype=float), events, label)

        overall = fit(subset, OVERALL_LABEL)
        groups = tuple(fit(subset.loc[subset[group_col] == v], str(v)) for v in values)
        for stratum, result in _strata(overall, groups):
            rows.append(
                {
                    "PARAMCD": paramcd,
                    "STRATUM": stratum,
                    "N": result.n,
                    "CENSORED": result.censored,
                    "MEDIAN": _nan_if_none(result.estimate.median),
                    "LCL": _nan_if_none(result.estimate.lower),
                    "UCL": _nan_if_none(result.estimate.upper),
                }
            )
    return _typed_frame(rows, FOLLOW_UP_COLUMNS, ("N", "CENSORED"))


def km_summary_csv(frame: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV: ``\\n`` line ends, floats to 10 significant digits, NaN empty."""
    missing = [c for c in KM_SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"not a km_summary table: lacks {', '.join(missing)}")
    text = frame.loc[:, list(KM_SUMMARY_COLUMNS)].to_csv(
        index=False, lineterminator="\n", float_format=KM_CSV_FLOAT_FORMAT, na_rep=""
    )
    return text.encode("utf-8")


def _paramcds(adtte: pd.DataFrame, group_col: str) -> list[str]:
    missing = [c for c in (*ADTTE_COLUMNS, group_col) if c not in adtte.columns]
    if missing:
        raise ValueError(f"ADTTE frame lacks column(s): {', '.join(missing)}")
    if adtte["PARAMCD"].isna().any():
        raise ValueError("ADTTE: PARAMCD is missing on some rows")
    return sorted({str(p) for p in adtte["PARAMCD"]})


def _strata(overall: _Fit, groups: tuple[_Fit, ...]) -> list[tuple[str, _Fit]]:
    if any(g.label == OVERALL_STRATUM for g in groups):
        raise ValueError(f"a group is called {OVERALL_STRATUM!r}, the name of the whole-set row")
    strata = [(OVERALL_STRATUM, overall)]
    strata.extend((g.label, g) for g in groups)
    return strata


def _typed_frame(
    rows: list[dict[str, object]], columns: tuple[str, ...], counts: tuple[str, ...]
) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    dtypes = {c: ("int64" if c in counts else "float64") for c in columns[2:]}
    return frame.astype({"PARAMCD": object, "STRATUM": object, **dtypes})
