"""Kaplan–Meier figure for a safety-committee deck: curves by group with a numbers-at-risk table.

The figure is drawn from the frozen results of :mod:`ledger.projections.survival`, so the plot and
the tables quote the same numbers. It is built on a bare :class:`matplotlib.figure.Figure` with
the Agg canvas — no pyplot, so no global figure registry to leak into or to close — under
matplotlib's default style plus the settings below, whatever the user's ``matplotlibrc`` says.
The PNG carries no "Software" (version) tag and no timestamp: the same input gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import matplotlib as mpl
import matplotlib.style
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.typing import RcKeyType

from ledger.projections.km_format import format_months
from ledger.projections.km_summary import EndpointSummary, summarise_endpoint
from ledger.projections.survival import DAYS_PER_MONTH, KaplanMeierResult

__all__ = ["PlotOptions", "default_title", "kaplan_meier_figure", "plot_kaplan_meier"]

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies and in greyscale.
_COLOURS: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

_Y_LABELS: Final = {
    "PFS": "Progression-free survival probability",
    "OS": "Overall survival probability",
    "DOR": "Probability of remaining in response",
}
_X_LABELS: Final = {
    "PFS": "Months since first dose (C1D1)",
    "OS": "Months since first dose (C1D1)",
    "DOR": "Months since first confirmed response",
}
# A parameter name's trailing time unit, "(days)" in ADTTE's PARAM: the plot's axis is in months.
_TIME_UNIT: Final = re.compile(r"\s*\((?:days?|weeks?|months?|years?)\)\s*$", re.IGNORECASE)
_TICK_STEPS_MONTHS: Final = (1, 2, 3, 6, 12, 24)
_MAX_TICKS: Final = 12
_LONG_LABEL: Final = 18  # group labels longer than this get a one-column legend

_RC: Final[dict[RcKeyType, object]] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True, slots=True)
class PlotOptions:
    """How the figure is drawn and written; the defaults are the deck's."""

    title: str | None = None
    """None: :func:`default_title` (naming the axis's unit, months)."""
    confidence_bands: bool = False
    """Shade each curve's pointwise log-log 95 % band."""
    tick_months: int | None = None
    """Spacing of the x ticks and the at-risk columns; None: chosen from 1, 2, 3, 6, 12, 24."""
    footnote: str | None = None
    """Printed under the standard notes (e.g. the data cut-off)."""
    dpi: int = 150


def plot_kaplan_meier(
    adtte: pd.DataFrame,
    paramcd: str,
    group_col: str,
    path: str | Path,
    options: PlotOptions | None = None,
) -> Path:
    """Write a Kaplan–Meier PNG of ``paramcd`` by ``group_col`` to ``path`` and return the path."""
    options = PlotOptions() if options is None else options
    figure = kaplan_meier_figure(adtte, paramcd, group_col, options)
    out = Path(path)
    with _house_style():
        figure.savefig(out, format="png", dpi=options.dpi, metadata={"Software": None})
    return out


def kaplan_meier_figure(
    adtte: pd.DataFrame, paramcd: str, group_col: str, options: PlotOptions | None = None
) -> Figure:
    """The figure :func:`plot_kaplan_meier` writes: one step curve per group with censoring ticks,
    the numbers at risk at each x tick below, notes at the foot; time in months."""
    options = PlotOptions() if options is None else options
    summary = summarise_endpoint(adtte, paramcd, group_col)
    title = default_title(adtte, paramcd, group_col) if options.title is None else options.title
    with _house_style():
        return _draw(summary, title, options)


@contextmanager
def _house_style() -> Iterator[None]:
    with matplotlib.style.context("default"), mpl.rc_context(_RC):
        yield


def default_title(adtte: pd.DataFrame, paramcd: str, group_col: str) -> str:
    """ "Kaplan–Meier estimate of <PARAM> (months) by <group_col>": ADTTE's PARAM names AVAL's unit
    (days), the plot's time axis is in months, so the title names months whatever PARAM said."""
    name = _TIME_UNIT.sub("", _parameter_name(adtte, paramcd))
    return f"Kaplan–Meier estimate of {name} (months) by {group_col}"


def _parameter_name(adtte: pd.DataFrame, paramcd: str) -> str:
    if "PARAM" in adtte.columns:
        names = sorted({str(p) for p in adtte.loc[adtte["PARAMCD"] == paramcd, "PARAM"].dropna()})
        if len(names) == 1:
            return names[0]
    return paramcd


def _tick_step(max_months: float, requested: int | None) -> int:
    if requested is not None:
        if requested <= 0:
            raise ValueError(f"tick_months must be positive, got {requested}")
        return requested
    for step in _TICK_STEPS_MONTHS:
        if max_months / step <= _MAX_TICKS:
            return step
    return _TICK_STEPS_MONTHS[-1]


def _draw(summary: EndpointSummary, title: str, options: PlotOptions) -> Figure:
    groups = summary.groups
    max_months = max(g.timeline_days[-1] for g in groups) / DAYS_PER_MONTH
    step = _tick_step(max_months, options.tick_months)
    x_max = step * max(1, math.ceil(max_months / step))
    ticks = list(range(0, x_max + 1, step))

    notes = [
        "Kaplan–Meier estimates. Tick marks (|): censored observations. 1 month = 30.4375 days."
    ]
    if options.confidence_bands:
        notes.append("Shaded bands: pointwise 95% confidence intervals (log-log).")
    if options.footnote:
        notes.append(options.footnote)
    note_height = 0.03 * len(notes) + 0.01
    # The layout engine places axes above a bottom strip kept for the notes.
    figure = Figure(
        figsize=(8.0, 5.4 + 0.25 * len(groups)),
        layout=ConstrainedLayoutEngine(rect=(0.0, note_height, 1.0, 1.0 - note_height)),
    )
    FigureCanvasAgg(figure)
    curves, table = figure.subplots(
        2, 1, sharex=True, height_ratios=(5.0, 0.55 + 0.32 * len(groups))
    )

    names = [_display_name(g, summary.group_col) for g in groups]
    for index, result in enumerate(groups):
        colour = _COLOURS[index % len(_COLOURS)]
        _draw_curve(curves, result, names[index], colour, options.confidence_bands)

    curves.set_xlim(0, x_max)
    curves.set_xticks(ticks)
    curves.set_ylim(0.0, 1.02)
    curves.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    curves.grid(axis="y", color="#DDDDDD", linewidth=0.6)
    curves.set_axisbelow(True)
    figure.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
    curves.set_ylabel(_Y_LABELS.get(summary.paramcd, "Survival probability"))
    curves.set_xlabel(_X_LABELS.get(summary.paramcd, "Time (months)"))
    curves.tick_params(axis="x", labelbottom=True)
    # Above the plotting area, so that it can never hide a curve.
    curves.legend(
        title=None if all(n.startswith(summary.group_col) for n in names) else summary.group_col,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.02),
        ncols=1 if max(len(n) for n in names) > _LONG_LABEL else min(2, len(groups)),
        frameon=False,
        alignment="left",
        borderaxespad=0.0,
    )

    _draw_risk_table(table, groups, names, ticks)
    for line, text in enumerate(notes):
        figure.text(
            0.01, note_height - 0.03 * (line + 1), text, fontsize=7.5, color="#555555", va="bottom"
        )
    return figure


def _display_name(result: KaplanMeierResult, group_col: str) -> str:
    """The group label, prefixed with the column name when it is a bare number ("DOSELVL 2")."""
    if any(ch.isalpha() for ch in result.label):
        return result.label
    return f"{group_col} {result.label}"


def _draw_curve(axes: Axes, result: KaplanMeierResult, name: str, colour: str, bands: bool) -> None:
    months = [t / DAYS_PER_MONTH for t in result.timeline_days]
    median = format_months(result.median_days)
    unit = "" if median in ("NR", "NE") else " mo"
    label = f"{name}: {result.events}/{result.n} events, median {median}{unit}"
    if bands:
        axes.fill_between(
            months,
            result.ci_lower,
            result.ci_upper,
            step="post",
            color=colour,
            alpha=0.15,
            linewidth=0,
        )
    axes.step(months, result.survival, where="post", color=colour, linewidth=1.8, label=label)
    censored = [result.survival_at_day(t).estimate for t in result.censored_days]
    axes.plot(
        [t / DAYS_PER_MONTH for t in result.censored_days],
        censored,
        linestyle="none",
        marker="|",
        markersize=9,
        markeredgewidth=1.4,
        color=colour,
    )


def _draw_risk_table(
    axes: Axes, groups: tuple[KaplanMeierResult, ...], names: list[str], ticks: list[int]
) -> None:
    axes.set_ylim(len(groups) - 0.5, -0.5)
    axes.set_yticks(range(len(groups)), names)
    for index, (result, tick_label) in enumerate(zip(groups, axes.get_yticklabels(), strict=True)):
        colour = _COLOURS[index % len(_COLOURS)]
        tick_label.set_color(colour)
        tick_label.set_fontweight("bold")
        for month in ticks:
            axes.text(
                month,
                index,
                str(result.number_at_risk(month * DAYS_PER_MONTH)),
                ha="center",
                va="center",
                fontsize=9,
                color=colour,
            )
    axes.set_title("Number at risk", loc="left", fontsize=9, fontweight="bold")
    axes.tick_params(axis="both", length=0)
    axes.tick_params(axis="y", pad=14)
    axes.tick_params(axis="x", labelbottom=False)
    for spine in axes.spines.values():
        spine.set_visible(False)
