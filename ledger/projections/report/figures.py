"""The report's own figures (escalation timeline, waterfall, spider, swimmer) as inline SVG.

Drawn on bare :class:`~matplotlib.figure.Figure` objects (no pyplot), under matplotlib's default
style plus fixed settings whatever the user's ``matplotlibrc`` says, the way
:mod:`ledger.projections.km_plot` draws. Deterministic: no date or creator in the SVG metadata, a
fixed ``svg.hashsalt`` per figure, text as glyph paths (the figure looks the same in every
browser and printer); every ``id`` is prefixed with the figure's name so that several figures can
sit in one HTML page without their ids colliding. Colours are Okabe–Ito (colour-blind safe), and
every colour-coded category also differs in marker shape or is labelled.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, Final

import matplotlib as mpl
import matplotlib.dates as mdates
import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.typing import RcKeyType

from ledger.aggregates.protocol import EXPANSION
from ledger.projections.report.figure_data import DltLane, SpiderLine, SwimmerLane, WaterfallBar
from ledger.projections.report.ledger_reading import LedgerDecision
from ledger.projections.survival import DAYS_PER_MONTH

__all__ = [
    "LEVEL_COLOURS",
    "RESPONSE_COLOURS",
    "level_colours",
    "spider_svg",
    "swimmer_svg",
    "timeline_svg",
    "waterfall_svg",
]

# Okabe–Ito. Dose levels take the colours km_plot gives groups, in the same order.
LEVEL_COLOURS: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
RESPONSE_COLOURS: Final[Mapping[str, str]] = {
    "CR": "#0072B2",
    "PR": "#56B4E9",
    "SD": "#E69F00",
    "NON-CR/NON-PD": "#F0E442",
    "PD": "#D55E00",
    "NE": "#999999",
}
_NO_LEVEL: Final = "#777777"
_WIDTH_IN: Final = 7.2  # A4 portrait text width at 15 mm margins
_MANY_SUBJECTS: Final = 60  # beyond this, subject labels would not be legible

_RC: Final[dict[RcKeyType, object]] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "path",
}


_EPOCH: Final = date(1970, 1, 1)


def _day_number(day: date) -> float:
    """matplotlib's date number (days since its default epoch, 1970-01-01, which the default
    style in force while drawing sets)."""
    return float((day - _EPOCH).days)


def level_colours(levels: Sequence[str]) -> dict[str, str]:
    """Dose level name → colour, in protocol order."""
    return {level: LEVEL_COLOURS[i % len(LEVEL_COLOURS)] for i, level in enumerate(levels)}


@contextmanager
def _style(name: str) -> Iterator[None]:
    with matplotlib.style.context("default"), mpl.rc_context({**_RC, "svg.hashsalt": name}):
        yield


def _figure(height_in: float) -> Figure:
    figure = Figure(figsize=(_WIDTH_IN, height_in), layout="constrained")
    FigureCanvasSVG(figure)
    return figure


_PROLOG: Final = re.compile(r"\A.*?(?=<svg\b)", re.S)
_ID: Final = re.compile(r'\bid="([^"]+)"')
_REF: Final = re.compile(r'(url\(#|href="#)([^)"]+)')


def _svg(figure: Figure, name: str) -> str:
    """The figure as an SVG element for inline use: no XML prolog, ids prefixed with ``name``."""
    buffer = io.StringIO()
    figure.savefig(
        buffer,
        format="svg",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
    )
    text = _PROLOG.sub("", buffer.getvalue(), count=1)
    text = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', text)
    return _REF.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", text).strip() + "\n"


def _reference_lines(axes: Axes) -> Line2D:
    """RECIST 1.1's +20 % and −30 % lines and zero; returns the legend handle for them."""
    for value in (20.0, -30.0):
        axes.axhline(value, color="#333333", linestyle="--", linewidth=0.8)
    axes.axhline(0.0, color="#000000", linewidth=0.6)
    return Line2D([], [], color="#333333", linestyle="--", linewidth=0.8,
                  label="+20% (PD) and −30% (PR) thresholds")


def _legend_above(axes: Axes, handles: Sequence[Line2D | Patch], title: str | None) -> None:
    """Above the plotting area, so that it can never hide data (km_plot's placement)."""
    axes.legend(handles=handles, title=title, loc="lower left", bbox_to_anchor=(0.0, 1.02),
                ncols=min(len(handles), 4) or 1, frameon=False, alignment="left",
                borderaxespad=0.0)


def waterfall_svg(bars: Sequence[WaterfallBar], name: str = "waterfall") -> str:
    """Best % change per subject, tallest first, coloured by confirmed best overall response."""
    with _style(name):
        figure = _figure(4.2)
        axes = figure.subplots()
        xs = range(len(bars))
        axes.bar(xs, [b.best_pchg for b in bars], width=0.8,
                 color=[RESPONSE_COLOURS.get(b.response, _NO_LEVEL) for b in bars],
                 edgecolor="#333333", linewidth=0.4)
        thresholds = _reference_lines(axes)
        if len(bars) <= _MANY_SUBJECTS:
            axes.set_xticks(list(xs), [f"{b.subjid} ({b.doselvl or '–'})" for b in bars],
                            rotation=90, fontsize=7)
        else:
            axes.set_xticks([])
        axes.set_xlim(-0.7, max(len(bars), 1) - 0.3)
        low = min([-100.0, *(b.best_pchg for b in bars)])
        high = max([40.0, *(b.best_pchg for b in bars)])
        axes.set_ylim(low - 5, high + 10)
        axes.set_ylabel("Best change from baseline in\nsum of target diameters (%)")
        axes.set_xlabel("Subject (dose level)")
        present = [r for r in RESPONSE_COLOURS if any(b.response == r for b in bars)]
        handles: list[Line2D | Patch] = [
            Patch(facecolor=RESPONSE_COLOURS[r], edgecolor="#333333", label=r) for r in present
        ]
        _legend_above(axes, [*handles, thresholds],
                      "Confirmed best overall response (RECIST 1.1)")
        return _svg(figure, name)


def spider_svg(
    lines: Sequence[SpiderLine], levels: Sequence[str], name: str = "spider"
) -> str:
    """% change from baseline over time, one line per subject, coloured by dose level."""
    colours = level_colours(levels)
    with _style(name):
        figure = _figure(4.2)
        axes = figure.subplots()
        for line in lines:
            colour = colours.get(line.doselvl or "", _NO_LEVEL)
            axes.plot(line.weeks, line.pchg, color=colour, linewidth=1.0, marker="o",
                      markersize=3, alpha=0.9)
        thresholds = _reference_lines(axes)
        axes.set_xlabel("Weeks since first dose (C1D1)")
        axes.set_ylabel("Change from baseline in\nsum of target diameters (%)")
        axes.set_xlim(left=0)
        shown = [lv for lv in levels if any(line.doselvl == lv for line in lines)]
        handles = [Line2D([], [], color=colours[lv], marker="o", markersize=3,
                          label=f"Dose level {lv}") for lv in shown]
        _legend_above(axes, [*handles, thresholds], None)
        return _svg(figure, name)


def swimmer_svg(
    lanes: Sequence[SwimmerLane],
    levels: Mapping[str, float],
    name: str = "swimmer",
) -> str:
    """Time on treatment per subject with responses, progression, death and ongoing marks."""
    colours = level_colours(list(levels))
    height = min(max(2.5, 0.75 + 0.19 * len(lanes)), 9.5)
    with _style(name):
        figure = _figure(height)
        axes = figure.subplots()
        for y, lane in enumerate(lanes):
            colour = colours.get(lane.doselvl or "", _NO_LEVEL)
            end = lane.duration_days / DAYS_PER_MONTH
            last = max([lane.duration_days, lane.progression_day or 0, lane.death_day or 0])
            if last > lane.duration_days:  # followed off treatment
                axes.plot([end, last / DAYS_PER_MONTH], [y, y], color="#AAAAAA",
                          linewidth=0.8, linestyle=":")
            axes.barh(y, end, height=0.6, color=colour, alpha=0.85, linewidth=0)
            for day, response in lane.responses:
                axes.plot(day / DAYS_PER_MONTH, y, linestyle="none", **_MARKS[response])
            if lane.progression_day is not None:
                axes.plot(lane.progression_day / DAYS_PER_MONTH, y, linestyle="none",
                          **_MARKS["PD"])
            if lane.death_day is not None:
                axes.plot(lane.death_day / DAYS_PER_MONTH, y, linestyle="none",
                          **_MARKS["Death"])
            if lane.ongoing:
                axes.plot(end + 0.15, y, linestyle="none", **_MARKS["Ongoing"])
        axes.set_ylim(len(lanes) - 0.5, -0.5)
        if len(lanes) <= _MANY_SUBJECTS * 2:
            axes.set_yticks(range(len(lanes)),
                            [f"{lane.subjid} ({lane.doselvl or '–'})" for lane in lanes],
                            fontsize=7)
        axes.set_xlim(left=0)
        axes.set_xlabel("Months since first dose (C1D1)")
        axes.set_ylabel("Subject (dose level)")
        handles: list[Line2D | Patch] = [
            Patch(color=colours[lv], alpha=0.85, label=f"{lv} ({mg:g} mg) on treatment")
            for lv, mg in levels.items() if any(lane.doselvl == lv for lane in lanes)
        ]
        handles += [Line2D([], [], linestyle="none", label=key, **marks)
                    for key, marks in _MARKS.items()]
        figure.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False,
                      fontsize=7)
        return _svg(figure, name)


_MARKS: Final[Mapping[str, dict[str, Any]]] = {
    "CR": {"marker": "*", "markersize": 10, "color": "#000000"},
    "PR": {"marker": "^", "markersize": 6, "markerfacecolor": "#FFFFFF",
           "markeredgecolor": "#000000"},
    "PD": {"marker": "s", "markersize": 5, "markerfacecolor": "#FFFFFF",
           "markeredgecolor": "#000000", "markeredgewidth": 1.2},
    "Death": {"marker": "X", "markersize": 7, "color": "#000000"},
    "Ongoing": {"marker": ">", "markersize": 6, "color": "#000000"},
}


def timeline_svg(
    lanes: Sequence[DltLane],
    decisions: Sequence[LedgerDecision],
    cohorts: Mapping[str, str],
    name: str = "timeline",
) -> str:
    """The DLT windows of each cohort on a calendar, with the ledger's decisions as lines.

    ``cohorts``: cohort name → its panel title, in the order the panels are stacked.
    """
    panels = [(c, [lane for lane in lanes if lane.cohort == c]) for c in cohorts]
    panels = [(c, rows) for c, rows in panels if rows]
    panels += [(c, [lane for lane in lanes if lane.cohort == c])
               for c in sorted({lane.cohort for lane in lanes} - set(cohorts))]
    colours = level_colours([c for c in cohorts if c != EXPANSION])
    heights = [max(len(rows), 2) for _, rows in panels] or [2]
    with _style(name):
        figure = _figure(min(1.6 + 0.2 * sum(heights), 10.0))
        grid = figure.subplots(len(heights), 1, sharex=True, height_ratios=heights,
                               squeeze=False)
        axes_list = [row[0] for row in grid]
        for axes, (cohort, rows) in zip(axes_list, panels, strict=False):
            _timeline_panel(axes, cohorts.get(cohort, cohort), rows, colours)
        dated = [d for d in decisions if d.on is not None]
        for axes in axes_list:
            for decision in dated:
                assert decision.on is not None
                axes.axvline(_day_number(decision.on), color="#444444", linestyle="--",
                             linewidth=0.7)
        top = axes_list[0]
        same_day: dict[date, list[str]] = {}
        for decision in dated:
            assert decision.on is not None
            same_day.setdefault(decision.on, []).append(str(decision.number))
        for day, numbers in same_day.items():  # decisions of one day share one label
            top.annotate(",".join(numbers), (_day_number(day), 1.0),
                         xycoords=("data", "axes fraction"), xytext=(0, 2),
                         textcoords="offset points", ha="center", va="bottom", fontsize=7,
                         bbox={"boxstyle": "round,pad=0.15", "fc": "#FFFFFF", "ec": "#444444",
                               "lw": 0.6})
        bottom = axes_list[-1]
        locator = mdates.AutoDateLocator(minticks=4, maxticks=9)  # type: ignore[no-untyped-call]
        formatter = mdates.DateFormatter("%b\n%Y")  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(formatter)
        bottom.set_xlabel("Calendar date")
        figure.legend(handles=_TIMELINE_LEGEND, loc="outside lower center", ncols=3,
                      frameon=False, fontsize=7)
        return _svg(figure, name)


_TIMELINE_LEGEND: Final = [
    Patch(facecolor="#666666", label="DLT window, evaluable"),
    Patch(facecolor="#FFFFFF", edgecolor="#666666", hatch="////",
          label="not evaluable (replaced)"),
    Patch(facecolor="#FFFFFF", edgecolor="#666666", label="window open"),
    Line2D([], [], linestyle="none", marker="X", color="#000000", markersize=7,
           label="adjudicated DLT (onset)"),
    Line2D([], [], color="#444444", linestyle="--", linewidth=0.7,
           label="ledger decision (numbered)"),
]


def _timeline_panel(
    axes: Axes,
    title: str,
    rows: Sequence[DltLane],
    colours: Mapping[str, str],
) -> None:
    for y, lane in enumerate(rows):
        colour = colours.get(lane.doselvl or "", _NO_LEVEL)
        start = _day_number(lane.start)
        width = _day_number(lane.window_end + timedelta(days=1)) - start
        if lane.evaluable is None:
            style: dict[str, Any] = {"facecolor": "#FFFFFF", "edgecolor": colour}
        elif lane.evaluable:
            style = {"facecolor": colour, "edgecolor": colour}
        else:
            style = {"facecolor": "#FFFFFF", "edgecolor": colour, "hatch": "////"}
        axes.barh(y, width, left=start, height=0.6, linewidth=0.8, **style)
        for onset in lane.dlt_onsets:
            axes.plot(_day_number(onset), y, linestyle="none", marker="X",
                      color="#000000", markersize=7)
    axes.set_ylim(max(len(rows), 2) - 0.5, -0.5)
    axes.set_yticks(range(len(rows)), [lane.subjid for lane in rows], fontsize=7)
    axes.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8, fontweight="bold")
    axes.grid(axis="x", color="#E5E5E5", linewidth=0.5)
    axes.set_axisbelow(True)
