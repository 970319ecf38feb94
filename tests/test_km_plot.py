"""The Kaplan–Meier figure: a real PNG, the same bytes every time."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ledger.projections.km_plot import (
    PlotOptions,
    default_title,
    kaplan_meier_figure,
    plot_kaplan_meier,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


DAYS_PER_MONTH = 365.25 / 12

# (AVAL days, CNSR) per dose level; CNSR 0 is an event.
PFS_BY_LEVEL = {
    1: [(35, 0), (61, 0), (88, 1), (120, 0), (183, 2)],
    2: [(42, 0), (95, 1), (150, 0), (210, 0), (240, 3), (301, 0)],
    3: [(70, 0), (140, 0), (200, 1), (260, 0), (330, 0), (400, 1)],
}


def adtte() -> pd.DataFrame:
    """Three dose levels of PFS rows (days), with censoring, plus OS rows that must be ignored."""
    data = PFS_BY_LEVEL
    rows = [
        {
            "USUBJID": f"S-{level}{i}",
            "PARAMCD": paramcd,
            "PARAM": f"{name} (days)",
            "AVAL": aval,
            "CNSR": cnsr,
            "DOSELVL": level,
        }
        for level, subjects in data.items()
        for i, (aval, cnsr) in enumerate(subjects)
        for paramcd, name in (("PFS", "Progression-free survival"), ("OS", "Overall survival"))
    ]
    return pd.DataFrame(rows)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, payload) chunks, checking each CRC."""
    assert data.startswith(PNG_SIGNATURE)
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + payload) == crc
        chunks.append((kind, payload))
        offset += 12 + length
    return chunks


def test_writes_a_valid_png_of_deck_size(tmp_path: Path) -> None:
    """The file is a well-formed PNG, about 1200 px wide, with real content."""
    path = plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "km.png")
    data = path.read_bytes()
    chunks = png_chunks(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    figure = kaplan_meier_figure(adtte(), "PFS", "DOSELVL")
    assert (width, height) == (1200, 922)  # 8 in at 150 dpi; 5.4 in + 0.25 in per group
    assert (figure.get_figwidth(), figure.get_figheight()) == (8.0, pytest.approx(6.15))


def lifelines_fit(level: int) -> KaplanMeierFitter:
    """An independent Kaplan–Meier fit of one dose level's PFS rows."""
    durations = [aval for aval, _ in PFS_BY_LEVEL[level]]
    events = [cnsr == 0 for _, cnsr in PFS_BY_LEVEL[level]]
    return KaplanMeierFitter().fit(durations, events)


def drawn(figure: Figure) -> tuple[list[Line2D], list[Line2D]]:
    """The step curves and the censoring-tick lines of the survival axes, in group order."""
    lines = figure.axes[0].get_lines()
    return (
        [line for line in lines if line.get_drawstyle() == "steps-post"],
        [line for line in lines if line.get_marker() == "|"],
    )


def test_curves_are_the_kaplan_meier_steps_in_months() -> None:
    """Each group's step curve is its Kaplan–Meier estimate, x in months since C1D1."""
    steps, _ = drawn(kaplan_meier_figure(adtte(), "PFS", "DOSELVL"))
    assert len(steps) == len(PFS_BY_LEVEL)
    for line, level in zip(steps, PFS_BY_LEVEL, strict=True):
        survival = lifelines_fit(level).survival_function_.iloc[:, 0]
        expected_months = [t / DAYS_PER_MONTH for t in survival.index]
        assert list(line.get_xdata()) == pytest.approx(expected_months)
        assert list(line.get_ydata()) == pytest.approx(list(survival))


def test_censoring_ticks_sit_on_the_curve_at_the_censored_times() -> None:
    """A tick per censored time, at that month and at the curve's height there."""
    _, ticks = drawn(kaplan_meier_figure(adtte(), "PFS", "DOSELVL"))
    for line, level in zip(ticks, PFS_BY_LEVEL, strict=True):
        censored = [aval for aval, cnsr in PFS_BY_LEVEL[level] if cnsr != 0]
        heights = lifelines_fit(level).predict(censored)
        assert list(line.get_xdata()) == pytest.approx([t / DAYS_PER_MONTH for t in censored])
        assert list(line.get_ydata()) == pytest.approx(list(heights))


def test_axes_titles_and_legend_say_months_and_the_counts() -> None:
    """Title and x axis in months, ticks every 2 months to past the last time (400 d = 13.1 mo),
    and each legend entry gives the group's events/n and median in months."""
    figure = kaplan_meier_figure(adtte(), "PFS", "DOSELVL")
    curves = figure.axes[0]
    assert figure.get_suptitle() == default_title(adtte(), "PFS", "DOSELVL")
    assert "(months)" in figure.get_suptitle()
    assert curves.get_xlabel() == "Months since first dose (C1D1)"
    assert curves.get_ylabel() == "Progression-free survival probability"
    assert list(curves.get_xticks()) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert curves.get_xlim() == (0.0, 14.0)
    legend = curves.get_legend()
    assert legend is not None
    expected = []
    for level, rows in PFS_BY_LEVEL.items():
        events = sum(1 for _, cnsr in rows if cnsr == 0)
        median = lifelines_fit(level).median_survival_time_ / DAYS_PER_MONTH
        expected.append(f"DOSELVL {level}: {events}/{len(rows)} events, median {median:.1f} mo")
    assert [text.get_text() for text in legend.get_texts()] == expected


@pytest.mark.parametrize(("tick_months", "ticks"), [(None, range(0, 15, 2)), (6, range(0, 19, 6))])
def test_number_at_risk_table_counts_subjects_still_followed(
    tick_months: int | None, ticks: range
) -> None:
    """Under each x tick, per group: the subjects whose AVAL is at least that many months."""
    figure = kaplan_meier_figure(adtte(), "PFS", "DOSELVL", PlotOptions(tick_months=tick_months))
    table = figure.axes[1]
    assert table.get_title(loc="left") == "Number at risk"
    assert [label.get_text() for label in table.get_yticklabels()] == [
        f"DOSELVL {level}" for level in PFS_BY_LEVEL
    ]
    shown = {text.get_position(): text.get_text() for text in table.texts}
    expected = {
        (month, row): str(sum(1 for aval, _ in rows if aval >= month * DAYS_PER_MONTH))
        for row, rows in enumerate(PFS_BY_LEVEL.values())
        for month in ticks
    }
    assert shown == expected


def test_bands_and_footnote_are_drawn_when_asked() -> None:
    """With bands, one shaded band per group and its note; the footnote is printed last."""
    plain = kaplan_meier_figure(adtte(), "PFS", "DOSELVL")
    options = PlotOptions(confidence_bands=True, footnote="Data cut-off 2026-06-30.")
    banded = kaplan_meier_figure(adtte(), "PFS", "DOSELVL", options)
    assert len(plain.axes[0].collections) == 0
    assert len(banded.axes[0].collections) == len(PFS_BY_LEVEL)
    notes = [text.get_text() for text in banded.texts]
    assert notes[-2:] == [
        "Shaded bands: pointwise 95% confidence intervals (log-log).",
        "Data cut-off 2026-06-30.",
    ]


def test_png_carries_no_software_or_time_stamp(tmp_path: Path) -> None:
    """No tEXt/tIME chunk names the software version or a date."""
    data = plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "km.png").read_bytes()
    kinds = {kind for kind, _ in png_chunks(data)}
    assert not kinds & {b"tIME", b"iTXt", b"zTXt"}
    texts = [payload for kind, payload in png_chunks(data) if kind == b"tEXt"]
    assert not [t for t in texts if t.startswith((b"Software", b"Creation Time"))]


@pytest.mark.parametrize("bands", [False, True], ids=["curves only", "with CI bands"])
def test_same_input_gives_identical_bytes(tmp_path: Path, bands: bool) -> None:
    """Rendering twice gives byte-identical files."""
    first = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "a.png", PlotOptions(confidence_bands=bands)
    ).read_bytes()
    second = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "b.png", PlotOptions(confidence_bands=bands)
    ).read_bytes()
    assert first == second


def test_bands_and_titles_change_the_picture(tmp_path: Path) -> None:
    """Options reach the figure: bands and a custom title give different images."""
    plain = plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "plain.png").read_bytes()
    bands = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "bands.png", PlotOptions(confidence_bands=True)
    ).read_bytes()
    titled = plot_kaplan_meier(
        adtte(),
        "PFS",
        "DOSELVL",
        tmp_path / "titled.png",
        PlotOptions(title="DSMB 3: PFS by dose level"),
    ).read_bytes()
    assert len({plain, bands, titled}) == 3


def test_returns_path_and_accepts_str(tmp_path: Path) -> None:
    """A str path is accepted and the written file's Path is returned."""
    target = tmp_path / "os.png"
    assert (
        plot_kaplan_meier(adtte(), "OS", "DOSELVL", str(target), PlotOptions(tick_months=6))
        == target
    )
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_unknown_parameter_is_refused(tmp_path: Path) -> None:
    """A PARAMCD with no rows fails before anything is written."""
    with pytest.raises(ValueError, match="PARAMCD 'DOR'"):
        plot_kaplan_meier(adtte(), "DOR", "DOSELVL", tmp_path / "dor.png")
    assert not (tmp_path / "dor.png").exists()


def test_tick_step_must_be_positive(tmp_path: Path) -> None:
    """A zero tick step is refused with a clear message."""
    with pytest.raises(ValueError, match="tick_months must be positive"):
        plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "x.png", PlotOptions(tick_months=0))


# (PARAM as ADTTE has it, the parameter name the default title quotes), row by row.
TITLE_UNITS = [
    pytest.param("Progression-Free Survival (days)", "Progression-Free Survival", id="ADTTE days"),
    pytest.param("Overall Survival (Days)", "Overall Survival", id="capital Days"),
    pytest.param("Duration of Response (weeks) ", "Duration of Response", id="weeks, space"),
    pytest.param("Time to Progression", "Time to Progression", id="no unit"),
    pytest.param("Survival (days) at site", "Survival (days) at site", id="unit not at the end"),
]


@pytest.mark.parametrize(("param", "name"), TITLE_UNITS)
def test_default_title_names_months_the_axis_unit(param: str, name: str) -> None:
    """The default title drops PARAM's own time unit and says months, the x axis's unit."""
    frame = adtte().assign(PARAM=param)
    title = default_title(frame, "PFS", "DOSELVL")
    assert title == f"Kaplan–Meier estimate of {name} (months) by DOSELVL"
    assert "day" not in title.removeprefix(f"Kaplan–Meier estimate of {name}").lower()


def test_default_title_without_param_uses_paramcd() -> None:
    """Without a PARAM column the title quotes PARAMCD, still in months."""
    frame = adtte().drop(columns="PARAM")
    title = default_title(frame, "OS", "DOSELVL")
    assert title == "Kaplan–Meier estimate of OS (months) by DOSELVL"


def test_the_plot_draws_the_default_title(tmp_path: Path) -> None:
    """Without a title the figure is the one drawn with `default_title` given explicitly."""
    implicit = plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "a.png").read_bytes()
    explicit = plot_kaplan_meier(
        adtte(),
        "PFS",
        "DOSELVL",
        tmp_path / "b.png",
        PlotOptions(title=default_title(adtte(), "PFS", "DOSELVL")),
    ).read_bytes()
    old = plot_kaplan_meier(
        adtte(),
        "PFS",
        "DOSELVL",
        tmp_path / "c.png",
        PlotOptions(title="Kaplan–Meier estimate of Progression-free survival (days) by DOSELVL"),
    ).read_bytes()
    assert implicit == explicit != old
