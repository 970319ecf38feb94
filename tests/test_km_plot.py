"""The Kaplan–Meier figure: a real PNG, the same bytes every time."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest

from ledger.projections.km_plot import default_title, plot_kaplan_meier

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def adtte() -> pd.DataFrame:
    """Three dose levels of PFS rows (days), with censoring, plus OS rows that must be ignored."""
    data = {
        1: [(35, 0), (61, 0), (88, 1), (120, 0), (183, 2)],
        2: [(42, 0), (95, 1), (150, 0), (210, 0), (240, 3), (301, 0)],
        3: [(70, 0), (140, 0), (200, 1), (260, 0), (330, 0), (400, 1)],
    }
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
    assert width == 1200  # 8 in at 150 dpi
    assert 800 < height < 1100
    assert 30_000 < len(data) < 400_000


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
        adtte(), "PFS", "DOSELVL", tmp_path / "a.png", confidence_bands=bands
    ).read_bytes()
    second = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "b.png", confidence_bands=bands
    ).read_bytes()
    assert first == second


def test_bands_and_titles_change_the_picture(tmp_path: Path) -> None:
    """Options reach the figure: bands and a custom title give different images."""
    plain = plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "plain.png").read_bytes()
    bands = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "bands.png", confidence_bands=True
    ).read_bytes()
    titled = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "titled.png", title="DSMB 3: PFS by dose level"
    ).read_bytes()
    assert len({plain, bands, titled}) == 3


def test_returns_path_and_accepts_str(tmp_path: Path) -> None:
    """A str path is accepted and the written file's Path is returned."""
    target = tmp_path / "os.png"
    assert plot_kaplan_meier(adtte(), "OS", "DOSELVL", str(target), tick_months=6) == target
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_unknown_parameter_is_refused(tmp_path: Path) -> None:
    """A PARAMCD with no rows fails before anything is written."""
    with pytest.raises(ValueError, match="PARAMCD 'DOR'"):
        plot_kaplan_meier(adtte(), "DOR", "DOSELVL", tmp_path / "dor.png")
    assert not (tmp_path / "dor.png").exists()


def test_tick_step_must_be_positive(tmp_path: Path) -> None:
    """A zero tick step is refused with a clear message."""
    with pytest.raises(ValueError, match="tick_months must be positive"):
        plot_kaplan_meier(adtte(), "PFS", "DOSELVL", tmp_path / "x.png", tick_months=0)


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
        adtte(), "PFS", "DOSELVL", tmp_path / "b.png",
        title=default_title(adtte(), "PFS", "DOSELVL"),
    ).read_bytes()
    old = plot_kaplan_meier(
        adtte(), "PFS", "DOSELVL", tmp_path / "c.png",
        title="Kaplan–Meier estimate of Progression-free survival (days) by DOSELVL",
    ).read_bytes()
    assert implicit == explicit != old
