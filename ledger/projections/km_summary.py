"""Kaplan–Meier by ADTTE parameter (:func:`summarise_endpoint`: overall and per group) and the
contract's §8 summary tables: `km_summary` (median, log-log limits and the 6/12-month
landmarks per PARAMCD × stratum, as R reports them) and the reverse-Kaplan–Meier median
follow-up, with the byte-stable CSV writer of ``km_summary.csv``.

Strata: ``overall``, each dose level (§8), and, as an addition to §8, each enrollment cohort as
``COHORT=<cohort>`` (so cohort A, dosed at level A, is told apart from the dose level A that
also holds the expansion at that dose)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import pandas as pd

from ledger.projections.dataset_table import CSV_FLOAT_FORMAT
from ledger.projections.survival import (
    LANDMARK_DAYS,
    LANDMARK_MONTHS,
    FollowUpResult,
    KaplanMeierResult,
    fit_kaplan_meier,
    median_follow_up,
)

__all__ = [
    "ADTTE_COLUMNS",
    "COHORT_COLUMN",
    "FOLLOW_UP_COLUMNS",
    "KM_SUMMARY_COLUMNS",
    "OVERALL_LABEL",
    "EndpointSummary",
    "endpoint_rows",
    "follow_up_summary",
    "km_summary",
    "km_summary_csv",
    "summarise_endpoint",
]


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


ADTTE_COLUMNS: Final = ("PARAMCD", "AVAL", "CNSR")
"""The ADTTE columns every Kaplan–Meier fit reads."""

OVERALL_LABEL: Final = "Overall"
"""The label of the all-subjects result."""


@dataclass(frozen=True)
class EndpointSummary:
    """Kaplan–Meier results for one ADTTE parameter: all subjects, then each group in order."""

    paramcd: str
    group_col: str
    overall: KaplanMeierResult
    groups: tuple[KaplanMeierResult, ...]
    """One result per group value, sorted by value; each labelled ``str(value)``."""

    def group(self, label: str) -> KaplanMeierResult:
        """The result for one group label, or KeyError naming the labels there are."""
        for result in self.groups:
            if result.label == label:
                return result
        known = ", ".join(r.label for r in self.groups)
        raise KeyError(f"no {self.group_col} group {label!r}; groups are: {known}")

    @property
    def summary(self) -> pd.DataFrame:
        """Overall row first, then one row per group; ``stratum`` tells them apart."""
        rows = [{"stratum": "overall", **self.overall.summary_row()}]
        rows += [{"stratum": self.group_col, **g.summary_row()} for g in self.groups]
        labels = [self.overall.label, *(g.label for g in self.groups)]
        return pd.DataFrame(rows, index=pd.Index(labels, name="label"))


def summarise_endpoint(adtte: pd.DataFrame, paramcd: str, group_col: str) -> EndpointSummary:
    """Fit Kaplan–Meier for one PARAMCD of an ADTTE frame, overall and per ``group_col`` value."""
    rows, values = endpoint_rows(adtte, paramcd, group_col)

    def fit(subset: pd.DataFrame, label: str) -> KaplanMeierResult:
        return fit_kaplan_meier(
            subset["AVAL"].to_numpy(dtype=float), subset["CNSR"].to_numpy() == 0, label
        )

    groups = tuple(fit(rows.loc[rows[group_col] == v], str(v)) for v in values)
    return EndpointSummary(
        paramcd=paramcd,
        group_col=group_col,
        overall=fit(rows, OVERALL_LABEL),
        groups=groups,
    )


def endpoint_rows(
    adtte: pd.DataFrame, paramcd: str, group_col: str
) -> tuple[pd.DataFrame, list[object]]:
    """The checked rows of one PARAMCD and its group values in order (numbers by value)."""
    missing = [c for c in (*ADTTE_COLUMNS, group_col) if c not in adtte.columns]
    if missing:
        raise ValueError(f"ADTTE frame lacks column(s): {', '.join(missing)}")
    rows = adtte.loc[adtte["PARAMCD"] == paramcd]
    if rows.empty:
        known = ", ".join(sorted(str(p) for p in adtte["PARAMCD"].dropna().unique()))
        raise ValueError(f"no ADTTE rows with PARAMCD {paramcd!r}; present: {known or 'none'}")
    if "USUBJID" in rows.columns and rows["USUBJID"].duplicated().any():
        dupes = sorted(str(s) for s in rows.loc[rows["USUBJID"].duplicated(), "USUBJID"])
        raise ValueError(f"PARAMCD {paramcd!r} has more than one row for: {', '.join(dupes)}")
    for column in ("AVAL", "CNSR", group_col):
        if rows[column].isna().any():
            raise ValueError(f"PARAMCD {paramcd!r}: {column} is missing on some rows")
    for column in ("AVAL", "CNSR"):
        if not pd.api.types.is_numeric_dtype(rows[column]):
            raise ValueError(f"PARAMCD {paramcd!r}: {column} must be numeric")
    cnsr = rows["CNSR"].to_numpy(dtype=float)
    if np.any(cnsr < 0) or np.any(cnsr != np.floor(cnsr)):
        raise ValueError(f"PARAMCD {paramcd!r}: CNSR must be 0 (event) or a positive integer")
    values = list(rows[group_col].unique())
    try:
        values.sort()
    except TypeError:
        values.sort(key=str)
    return rows, values


KM_SUMMARY_COLUMNS: Final = (
    "PARAMCD", "STRATUM", "N", "EVENTS", "MEDIAN", "LCL", "UCL",
    "S6", "S6_LCL", "S6_UCL", "S12", "S12_LCL", "S12_UCL",
)  # fmt: skip
"""The columns of ``km_summary.csv`` (contract §8), in order."""

FOLLOW_UP_COLUMNS: Final = ("PARAMCD", "STRATUM", "N", "CENSORED", "MEDIAN", "LCL", "UCL")
"""The columns of :func:`follow_up_summary`, in order."""

OVERALL_STRATUM: Final = "overall"
_Fit = TypeVar("_Fit", KaplanMeierResult, FollowUpResult)
_DOSE_LEVEL_COLUMN: Final = "DOSELVL"
COHORT_COLUMN: Final = "COHORT"
"""ADTTE's enrollment cohort: what the report passes as ``cohort_col``."""


def km_summary(
    adtte: pd.DataFrame, group_col: str = _DOSE_LEVEL_COLUMN, cohort_col: str | None = None
) -> pd.DataFrame:
    """The §8 ``km_summary`` table: one row per PARAMCD × stratum, times in days.

    PARAMCDs in code-point order; within each, ``overall`` first, then each dose level (by
    value), then, when ``cohort_col`` is given, each of its values (by value) as the stratum
    ``<cohort_col>=<value>`` (R's name for a ``survfit(... ~ COHORT)`` stratum, which no dose
    level name can be). MEDIAN, LCL, UCL and the landmark columns are NaN where R reports NA
    (not reached, not estimable); N and EVENTS are integers. An ADTTE without rows gives an
    empty table.
    """
    rows: list[dict[str, object]] = []
    for paramcd in _paramcds(adtte, group_col, cohort_col):
        summary = summarise_endpoint(adtte, paramcd, group_col)
        cohorts = (
            () if cohort_col is None else (summarise_endpoint(adtte, paramcd, cohort_col).groups)
        )
        for stratum, result in _strata(summary.overall, summary.groups, cohort_col, cohorts):
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


def follow_up_summary(
    adtte: pd.DataFrame, group_col: str = _DOSE_LEVEL_COLUMN, cohort_col: str | None = None
) -> pd.DataFrame:
    """Median follow-up (reverse Kaplan–Meier) per PARAMCD × stratum, in km_summary's order."""

    def fit(frame: pd.DataFrame, label: str) -> FollowUpResult:
        events = frame["CNSR"].to_numpy() == 0
        return median_follow_up(frame["AVAL"].to_numpy(dtype=float), events, label)

    def fit_groups(paramcd: str, column: str) -> tuple[FollowUpResult, ...]:
        subset, values = endpoint_rows(adtte, paramcd, column)
        return tuple(fit(subset.loc[subset[column] == v], str(v)) for v in values)

    rows: list[dict[str, object]] = []
    for paramcd in _paramcds(adtte, group_col, cohort_col):
        overall = fit(endpoint_rows(adtte, paramcd, group_col)[0], OVERALL_LABEL)
        groups = fit_groups(paramcd, group_col)
        cohorts = () if cohort_col is None else fit_groups(paramcd, cohort_col)
        for stratum, result in _strata(overall, groups, cohort_col, cohorts):
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
        index=False, lineterminator="\n", float_format=CSV_FLOAT_FORMAT, na_rep=""
    )
    return text.encode("utf-8")


def _paramcds(adtte: pd.DataFrame, group_col: str, cohort_col: str | None) -> list[str]:
    wanted = (*ADTTE_COLUMNS, group_col, *(() if cohort_col is None else (cohort_col,)))
    missing = [c for c in wanted if c not in adtte.columns]
    if missing:
        raise ValueError(f"ADTTE frame lacks column(s): {', '.join(missing)}")
    if adtte["PARAMCD"].isna().any():
        raise ValueError("ADTTE: PARAMCD is missing on some rows")
    return sorted({str(p) for p in adtte["PARAMCD"]})


def _strata(
    overall: _Fit, groups: tuple[_Fit, ...], cohort_col: str | None, cohorts: tuple[_Fit, ...]
) -> list[tuple[str, _Fit]]:
    if any(g.label == OVERALL_STRATUM for g in groups):
        raise ValueError(f"a group is called {OVERALL_STRATUM!r}, the name of the whole-set row")
    strata = [(OVERALL_STRATUM, overall)]
    strata.extend((g.label, g) for g in groups)
    strata.extend((f"{cohort_col}={c.label}", c) for c in cohorts)
    return strata


def _typed_frame(
    rows: list[dict[str, object]], columns: tuple[str, ...], counts: tuple[str, ...]
) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    dtypes = {c: ("int64" if c in counts else "float64") for c in columns[2:]}
    return frame.astype({"PARAMCD": object, "STRATUM": object, **dtypes})
