"""SAS transport v5: round trips through two readers, the v5 limits, reproducible bytes."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest

from ledger.projections.xpt import split_utf8, write_xpt

CREATED = dt.datetime(2026, 7, 1, 9, 30, 5)
LABELS = {
    "STUDYID": "Study Identifier",
    "USUBJID": "Unique Subject Identifier",
    "PARAMCD": "Parameter Code",
    "STARTDT": "Time-to-Event Origin Date for Subject",
    "ADT": "Analysis Date",
    "ADTM": "Analysis Datetime",
    "AVAL": "Analysis Value",
    "CNSR": "Censor",
    "DOSELVL": "Dose Level",
}
# pandas reads an IBM zero as 16**-65 (pandas-dev/pandas#50670); anything below this is zero.
PANDAS_ZERO = 1e-70


def adtte() -> pd.DataFrame:
    """Three ADTTE rows covering text, numbers, zero, missing values, dates and a date-time."""
    return pd.DataFrame(
        {
            "STUDYID": ["NCT05406206"] * 3,
            "USUBJID": ["NCT05406206-001", None, "NCT05406206-003"],
            "PARAMCD": ["PFS", "PFS", "OS"],
            "STARTDT": [dt.date(2024, 1, 2), dt.date(2024, 2, 29), dt.date(1959, 12, 31)],
            "ADT": pd.Series(["2024-03-01", None, "1960-01-01"], dtype="datetime64[ns]"),
            "ADTM": pd.Series(
                ["2024-03-01 14:05:09", None, "1960-01-01 00:00:01"], dtype="datetime64[ns]"
            ),
            "AVAL": [60, 0, 2],
            "CNSR": pd.array([0, 1, None], dtype="Int64"),
            "DOSELVL": [1.5, -2.25, math.nan],
        }
    )


def write(tmp_path: Path, frame: pd.DataFrame | None = None, **kwargs: Any) -> Path:
    """Write the default frame (or ``frame``) as ADTTE, with keyword overrides."""
    frame = adtte() if frame is None else frame
    args: dict[str, Any] = {
        "path": tmp_path / "adtte.xpt",
        "dataset_name": "ADTTE",
        "dataset_label": "Time-to-Event Analysis Dataset",
        "column_labels": {k: v for k, v in LABELS.items() if k in frame.columns},
        "created": CREATED,
    }
    args.update(kwargs)
    return write_xpt(frame, **args)


def test_round_trip_through_pyreadstat(tmp_path: Path) -> None:
    """pyreadstat reads back names, labels, values, DATE9./DATETIME20. and the dataset label."""
    frame, meta = pyreadstat.read_xport(str(write(tmp_path)))
    assert meta.table_name == "ADTTE"
    assert meta.file_label == "Time-to-Event Analysis Dataset"
    assert list(frame.columns) == list(LABELS)
    assert meta.column_labels == list(LABELS.values())
    # pyreadstat 1.3 writes the format's trailing dot, earlier versions did not
    formats = {name: kind.rstrip(".")
               for name, kind in meta.original_variable_types.items() if kind}
    assert (formats["STARTDT"], formats["ADT"], formats["ADTM"]) == ("DATE9", "DATE9", "DATETIME20")
    assert list(frame["USUBJID"]) == ["NCT05406206-001", "", "NCT05406206-003"]
    assert list(frame["STARTDT"]) == [
        dt.date(2024, 1, 2),
        dt.date(2024, 2, 29),
        dt.date(1959, 12, 31),
    ]
    assert frame["ADT"][0] == dt.date(2024, 3, 1)
    assert frame["ADTM"][0] == dt.datetime(2024, 3, 1, 14, 5, 9)
    assert list(frame["AVAL"]) == [60.0, 0.0, 2.0]
    assert list(frame["CNSR"][:2]) == [0.0, 1.0]
    assert math.isnan(frame["CNSR"][2])
    assert list(frame["DOSELVL"][:2]) == [1.5, -2.25]


def test_round_trip_through_pandas(tmp_path: Path) -> None:
    """pandas reads the same file: SAS day/second numbers, labels and header metadata."""
    path = write(tmp_path)
    frame = pd.read_sas(path, format="xport", encoding="utf-8")
    assert list(frame.columns) == list(LABELS)
    assert list(frame["PARAMCD"]) == ["PFS", "PFS", "OS"]
    assert list(frame["STARTDT"]) == [23377.0, 23435.0, -1.0]  # days since 1960-01-01
    assert frame["ADT"][2] < PANDAS_ZERO  # 1960-01-01 is day 0
    assert (
        frame["ADTM"][0]
        == (dt.datetime(2024, 3, 1, 14, 5, 9) - dt.datetime(1960, 1, 1)).total_seconds()
    )
    assert frame["AVAL"][0] == 60.0
    assert frame["AVAL"][1] < PANDAS_ZERO
    assert pd.isna(frame["ADT"][1])
    reader: Any
    with pd.read_sas(path, format="xport", iterator=True) as reader:
        assert [f["label"].decode() for f in reader.fields] == list(LABELS.values())
        assert [f["nform"].decode() for f in reader.fields][3:6] == ["DATE", "DATE", "DATETIME"]
        assert reader.member_info["set_name"] == "ADTTE"
        assert reader.member_info["label"] == "Time-to-Event Analysis Dataset"
        assert reader.member_info["created"] == CREATED
        assert reader.member_info["modified"] == CREATED


def test_boundary_sizes_are_accepted(tmp_path: Path) -> None:
    """8-character names, 40-character labels and 200-byte values are within v5 limits."""
    frame = pd.DataFrame({"ABCDEFG8": ["x" * 200, "é" * 100]})
    path = write(tmp_path, frame, column_labels={"ABCDEFG8": "L" * 40}, dataset_label="D" * 40)
    read, meta = pyreadstat.read_xport(str(path))
    assert list(read["ABCDEFG8"]) == ["x" * 200, "é" * 100]
    assert meta.column_labels == ["L" * 40]


def test_empty_frame_keeps_its_variables(tmp_path: Path) -> None:
    """A dataset with no rows (e.g. no responders for DOR) still carries names and labels."""
    frame = pd.DataFrame(
        {"USUBJID": pd.Series([], dtype=object), "AVAL": pd.Series([], dtype=float)}
    )
    read, meta = pyreadstat.read_xport(str(write(tmp_path, frame)))
    assert (len(read), list(read.columns)) == (0, ["USUBJID", "AVAL"])
    assert meta.column_labels == ["Unique Subject Identifier", "Analysis Value"]


def test_identical_input_gives_identical_bytes(tmp_path: Path) -> None:
    """Two writes a wall-clock second apart are byte-identical: no stamp comes from the clock."""
    first = write(tmp_path, path=tmp_path / "a.xpt").read_bytes()
    time.sleep(1.1)
    second = write(tmp_path, path=tmp_path / "b.xpt").read_bytes()
    assert first == second
    assert first.count(b"01JUL26:09:30:05") == 4


def test_created_changes_only_the_header_stamps(tmp_path: Path) -> None:
    """Another `created` changes the four 16-byte header stamps and nothing else."""
    first = write(tmp_path, path=tmp_path / "a.xpt").read_bytes()
    later = dt.datetime(2027, 12, 31, 23, 59, 58)
    second = write(tmp_path, path=tmp_path / "b.xpt", created=later).read_bytes()
    assert len(first) == len(second)
    differing = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    stamp_bytes = {o + k for o in (144, 160, 464, 480) for k in range(16)}
    assert differing
    assert set(differing) <= stamp_bytes
    assert second.count(b"31DEC27:23:59:58") == 4


def test_aware_created_is_stamped_in_utc(tmp_path: Path) -> None:
    """A time-zone-aware `created` is written as its UTC wall time."""
    created = dt.datetime(2026, 7, 1, 11, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert write(tmp_path, created=created).read_bytes() == write(tmp_path).read_bytes()


def test_overwrites_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """An existing file is replaced and no temporary file is left beside it."""
    (tmp_path / "adtte.xpt").write_bytes(b"old")
    write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["adtte.xpt"]
    assert (tmp_path / "adtte.xpt").read_bytes().startswith(b"HEADER RECORD")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"dataset_name": "ADTTE_LONG"}, "dataset name 'ADTTE_LONG'", id="name > 8"),
        pytest.param({"dataset_name": "adtte"}, "dataset name 'adtte'", id="name lower case"),
        pytest.param({"dataset_name": "1ADTTE"}, "starting with a letter", id="name digit first"),
        pytest.param({"dataset_name": "AD-TTE"}, "dataset name 'AD-TTE'", id="name with dash"),
        pytest.param({"dataset_name": ""}, "dataset name ''", id="empty name"),
        pytest.param({"dataset_label": "x" * 41}, "41 characters", id="dataset label > 40"),
        pytest.param({"dataset_label": "Données"}, "printable ASCII", id="dataset label not ASCII"),
        pytest.param({"dataset_label": " "}, "non-empty", id="blank dataset label"),
        pytest.param(
            {"column_labels": {**LABELS, "AVAL": "A" * 41}},
            "column AVAL label .* 41 characters",
            id="column label > 40",
        ),
        pytest.param(
            {"column_labels": {**LABELS, "CNSR": "Censor\t"}},
            "column CNSR label .* printable ASCII",
            id="column label with tab",
        ),
        pytest.param(
            {"column_labels": {k: v for k, v in LABELS.items() if k != "ADT"}},
            "without a label: ADT",
            id="missing column label",
        ),
        pytest.param(
            {"column_labels": {**LABELS, "TRTA": "Actual Treatment"}},
            "not in the frame: TRTA",
            id="label for unknown column",
        ),
    ],
)
def test_header_rules_are_enforced(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    """Names and labels outside the v5 rules raise ValueError naming the culprit."""
    with pytest.raises(ValueError, match=message):
        write(tmp_path, **overrides)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        pytest.param("AVALUE123", [1.0], "column name 'AVALUE123'", id="column name > 8"),
        pytest.param("aval", [1.0], "column name 'aval'", id="column name lower case"),
        pytest.param("_AVAL", [1.0], "column name '_AVAL'", id="column name underscore first"),
        pytest.param("A VAL", [1.0], "column name 'A VAL'", id="column name with space"),
        pytest.param(
            "USUBJID", ["x", "y" * 201], r"column USUBJID, row 1: .* 201 bytes", id="201 bytes"
        ),
        pytest.param("USUBJID", ["é" * 101], "row 0: .* 202 bytes", id="101 two-byte characters"),
        pytest.param("AVAL", [1.0, math.inf], "row 1: inf cannot be stored", id="infinity"),
        pytest.param("AVAL", [1e76], "cannot be stored as an IBM float", id="IBM overflow"),
        pytest.param("AVAL", [1e-80], "cannot be stored as an IBM float", id="IBM underflow"),
        pytest.param("AFL", [True, False], "column AFL: booleans", id="boolean column"),
        pytest.param("AVAL", ["1", 2], "column AVAL mixes number and text", id="mixed object"),
        pytest.param("ADT", [dt.time(12, 0)], "cannot write time value", id="time of day"),
        pytest.param(
            "ADT",
            pd.to_datetime(["2024-03-01 10:00"]),
            "column ADT: 2024-03-01 10:00:00 has a time of day",
            id="date-time in a *DT column",
        ),
        pytest.param(
            "ADTM",
            pd.to_datetime(["2024-03-01 10:00"]).tz_localize("UTC"),
            "time-zone-aware",
            id="aware date-time",
        ),
    ],
)
def test_value_rules_are_enforced(tmp_path: Path, column: str, values: Any, message: str) -> None:
    """Column names and values outside the v5 rules raise ValueError naming column and row."""
    frame = pd.DataFrame({column: values})
    with pytest.raises(ValueError, match=message):
        write(tmp_path, frame, column_labels={column: "Label"})


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    """Two columns with one name cannot both be written."""
    frame = pd.DataFrame([[1, 2]], columns=["AVAL", "AVAL"])
    with pytest.raises(ValueError, match=r"duplicate column name.*AVAL"):
        write(tmp_path, frame, column_labels={"AVAL": "Analysis Value"})


def test_created_must_be_a_datetime(tmp_path: Path) -> None:
    """A bare date is not a time stamp: there is no wall-clock fallback."""
    with pytest.raises(TypeError, match="created must be a datetime"):
        write(tmp_path, created=dt.date(2026, 7, 1))


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        pytest.param("a" * 200, [200], id="200 bytes fit in one piece"),
        pytest.param("Ü" * 150, [200, 100], id="2-byte characters split at 200 bytes"),
        pytest.param("a" * 199 + "€b", [199, 4], id="a 3-byte character is never cut"),
        pytest.param("a" * 198 + "  bc", [198, 4], id="blanks move to the next piece"),
        pytest.param(" " * 250, [200, 50], id="nothing but blanks still splits"),
    ],
)
def test_split_utf8_rows(text: str, sizes: list[int]) -> None:
    """Pieces of at most 200 bytes, whole characters, that join back to the text."""
    pieces = split_utf8(text)
    assert [len(p.encode("utf-8")) for p in pieces] == sizes
    assert "".join(pieces) == text
