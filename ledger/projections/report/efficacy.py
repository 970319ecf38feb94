"""Efficacy for the report: Kaplan–Meier figures, the median table, follow-up and ORR.

The numbers are :func:`~ledger.projections.km_summary.km_summary` and
:func:`~ledger.projections.km_summary.follow_up_summary` of the exported ADTTE (R-equal), the
curves are :func:`~ledger.projections.km_plot.plot_kaplan_meier` with confidence bands, censor
ticks and numbers at risk, embedded as PNG data (the plot writes PNG files; the bytes carry no
timestamp or version, so the page stays deterministic).
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd

from ledger.projections.datasets import ResponseRate
from ledger.projections.km_format import format_months
from ledger.projections.km_plot import PlotOptions, plot_kaplan_meier
from ledger.projections.km_summary import COHORT_COLUMN, follow_up_summary, km_summary

__all__ = [
    "ENDPOINTS",
    "FollowUpRow",
    "KmFigure",
    "KmRow",
    "OrrRow",
    "follow_up_rows",
    "km_figures",
    "km_input",
    "km_rows",
    "km_tables",
    "orr_rows",
]

ENDPOINTS: Final[Mapping[str, str]] = {
    "PFS": "Progression-free survival",
    "OS": "Overall survival",
    "DOR": "Duration of response (confirmed responders)",
}
UNASSIGNED: Final = "unassigned"
_OVERALL_COLUMN: Final = "Population"
_DOSE_COLUMN: Final = "Dose level"


@dataclass(frozen=True, slots=True)
class KmFigure:
    paramcd: str
    title: str
    data_uri: str


@dataclass(frozen=True, slots=True)
class KmRow:
    paramcd: str
    stratum: str
    n: int
    events: int
    median: str
    """Days (months), or NR."""
    ci: str
    s6: str
    s12: str


@dataclass(frozen=True, slots=True)
class FollowUpRow:
    stratum: str
    n: int
    censored: int
    median: str
    """Days (months), or NR."""
    ci: str


@dataclass(frozen=True, slots=True)
class OrrRow:
    label: str
    responders: int
    n: int
    rate: str
    ci: str


def km_input(adtte: pd.DataFrame) -> pd.DataFrame:
    """ADTTE as km_summary reads it: a subject without a dose level is stratum "unassigned"."""
    if adtte["DOSELVL"].isna().any():
        return adtte.assign(DOSELVL=adtte["DOSELVL"].astype(object).fillna(UNASSIGNED))
    return adtte


def _days(value: float, missing: str) -> str:
    if math.isnan(value):
        return missing
    return f"{value:g} ({format_months(value)})"


def _limits(low: float, high: float, missing: str) -> str:
    def one(value: float) -> str:
        return missing if math.isnan(value) else f"{value:g}"

    return f"{one(low)}–{one(high)}"


def _rate(estimate: float, low: float, high: float) -> str:
    if math.isnan(estimate):
        return "NE"
    if math.isnan(low) or math.isnan(high):
        return f"{100 * estimate:.1f}% (NE)"
    return f"{100 * estimate:.1f}% ({100 * low:.1f}–{100 * high:.1f})"


def _stratum(value: object, levels: Mapping[str, float]) -> str:
    text = str(value)
    cohort = text.removeprefix(f"{COHORT_COLUMN}=")
    if cohort != text:
        return f"cohort {cohort}"
    return f"{text} ({levels[text]:g} mg)" if text in levels else text


def km_rows(summary: pd.DataFrame, levels: Mapping[str, float]) -> list[KmRow]:
    """The km_summary table formatted for reading: days with months, rates in percent."""
    rows = []
    for r in summary.to_dict("records"):
        rows.append(
            KmRow(
                paramcd=str(r["PARAMCD"]),
                stratum=_stratum(r["STRATUM"], levels),
                n=int(r["N"]),
                events=int(r["EVENTS"]),
                median=_days(float(r["MEDIAN"]), "NR"),
                ci=_limits(float(r["LCL"]), float(r["UCL"]), "NR"),
                s6=_rate(float(r["S6"]), float(r["S6_LCL"]), float(r["S6_UCL"])),
                s12=_rate(float(r["S12"]), float(r["S12_LCL"]), float(r["S12_UCL"])),
            )
        )
    return rows


def follow_up_rows(
    follow_up: pd.DataFrame, levels: Mapping[str, float], paramcd: str = "OS"
) -> list[FollowUpRow]:
    """Median follow-up of one endpoint (reverse Kaplan–Meier), overall then by dose level."""
    rows = []
    for r in follow_up.loc[follow_up["PARAMCD"] == paramcd].to_dict("records"):
        rows.append(
            FollowUpRow(
                stratum=_stratum(r["STRATUM"], levels),
                n=int(r["N"]),
                censored=int(r["CENSORED"]),
                median=_days(float(r["MEDIAN"]), "NR"),
                ci=_limits(float(r["LCL"]), float(r["UCL"]), "NR"),
            )
        )
    return rows


def km_tables(adtte: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(km_summary, follow_up_summary) of the ADTTE: overall, by dose level, by cohort."""
    frame = km_input(adtte)
    return (km_summary(frame, cohort_col=COHORT_COLUMN),
            follow_up_summary(frame, cohort_col=COHORT_COLUMN))


def km_figures(
    adtte: pd.DataFrame, levels: Mapping[str, float], footnote: str
) -> list[KmFigure]:
    """PFS, OS and DoR, overall then by dose level; an endpoint without rows is left out."""
    frame = km_input(adtte)
    frame = frame.assign(
        **{
            _OVERALL_COLUMN: "All subjects",
            _DOSE_COLUMN: [
                f"{lv} ({levels[lv]:g} mg)" if lv in levels else str(lv)
                for lv in frame["DOSELVL"]
            ],
        }
    )
    figures = []
    with tempfile.TemporaryDirectory(prefix="ledger-report-") as scratch:
        for paramcd, name in ENDPOINTS.items():
            if not (frame["PARAMCD"] == paramcd).any():
                continue
            for suffix, column, title in (
                ("overall", _OVERALL_COLUMN, f"{name}: all subjects"),
                ("by_dose", _DOSE_COLUMN, f"{name}: by dose level"),
            ):
                path = Path(scratch) / f"km_{paramcd.lower()}_{suffix}.png"
                options = PlotOptions(
                    title=title, confidence_bands=True, footnote=footnote, dpi=200
                )
                plot_kaplan_meier(frame, paramcd, column, path, options)
                encoded = base64.b64encode(path.read_bytes()).decode("ascii")
                figures.append(KmFigure(paramcd, title, f"data:image/png;base64,{encoded}"))
    return figures


def orr_rows(rates: Sequence[ResponseRate]) -> list[OrrRow]:
    """Confirmed ORR with its exact (Clopper–Pearson) 95 % interval, overall then by level."""
    rows = []
    for r in rates:
        if r.n:
            rate = f"{100 * r.rate:.1f}%"
            ci = f"{100 * r.lower:.1f}–{100 * r.upper:.1f}%"
        else:
            rate, ci = "–", "–"
        rows.append(OrrRow(r.label, r.responders, r.n, rate, ci))
    return rows
