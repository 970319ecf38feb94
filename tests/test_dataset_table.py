"""The dataset table (ledger.projections.dataset_table): CSV bytes pandas would have written, the
datasets' sort order, frames with the old dtypes, and the cell readers."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.projections.dataset_columns import Column, ColumnKind
from ledger.projections.dataset_rows import number_rows
from ledger.projections.dataset_table import CSV_FLOAT_FORMAT, Dataset, csv_bytes, dataset_table

KINDS: tuple[ColumnKind, ...] = ("text", "int", "float", "date")


def pandas_csv(dataset: Dataset) -> bytes:
    """What ``ledger export`` wrote before the dataset table: pandas' CSV of the frame."""
    text = dataset.frame().to_csv(index=False, lineterminator="\n", float_format="%.10g")
    return text.encode("utf-8")


def one_row(kind: ColumnKind, value: object) -> Dataset:
    """A variable of ``kind`` holding ``value`` beside a plain text variable, as
    :func:`dataset_table` builds it (a NaN float becomes a missing cell there)."""
    columns = (Column("VAL", "Value", kind), Column("NEXT", "Next", "text"))
    return dataset_table([{"VAL": value, "NEXT": "n"}], columns, ["VAL"])


# --- csv_bytes is pandas' CSV, one edge value per row -------------------------------------------

CSV_EDGES = [
    pytest.param("text", 'say "hi"', id="text: quotes"),
    pytest.param("text", '"', id="text: a lone quote"),
    pytest.param("text", "a,b", id="text: comma"),
    pytest.param("text", "a\rb", id="text: CR"),
    pytest.param("text", "a\nb", id="text: LF"),
    pytest.param("text", "\r", id="text: lone CR"),
    pytest.param("text", "a\r\nb", id="text: CRLF"),
    pytest.param("text", "Größe ✓ 漢字 😀", id="text: Unicode"),
    pytest.param("text", "  leading", id="text: leading spaces"),
    pytest.param("text", "trailing  ", id="text: trailing spaces"),
    pytest.param("text", "\tTAB", id="text: tab"),
    pytest.param("text", "", id="text: empty string"),
    pytest.param("text", "NaN", id="text: the word NaN"),
    pytest.param("text", None, id="text: missing"),
    pytest.param("int", 0, id="int: zero"),
    pytest.param("int", -7, id="int: negative"),
    pytest.param("int", 2**53 + 1, id="int: beyond float precision"),
    pytest.param("int", -(2**63), id="int: int64 minimum"),
    pytest.param("int", 2**63 - 1, id="int: int64 maximum"),
    pytest.param("int", None, id="int: missing"),
    pytest.param("float", 0.1, id="float: 0.1"),
    pytest.param("float", 1 / 3, id="float: one third"),
    pytest.param("float", 2.0, id="float: whole"),
    pytest.param("float", 1e20, id="float: 1e20"),
    pytest.param("float", 1e-7, id="float: 1e-7"),
    pytest.param("float", 12345678901.5, id="float: more than ten digits"),
    pytest.param("float", -0.0, id="float: negative zero"),
    pytest.param("float", math.inf, id="float: inf"),
    pytest.param("float", -math.inf, id="float: -inf"),
    pytest.param("float", 1.7976931348623157e308, id="float: largest"),
    pytest.param("float", 5e-324, id="float: smallest subnormal"),
    pytest.param("float", math.nan, id="float: NaN"),
    pytest.param("float", None, id="float: missing"),
    pytest.param("date", date(999, 1, 1), id="date: year 999"),
    pytest.param("date", date(9999, 12, 31), id="date: 9999-12-31"),
    pytest.param("date", date(2024, 2, 29), id="date: leap day"),
    pytest.param("date", None, id="date: missing"),
]


@pytest.mark.parametrize(("kind", "value"), CSV_EDGES)
def test_csv_bytes_are_pandas_csv_on_an_edge_value(kind: ColumnKind, value: object) -> None:
    """The value as the first of two variables, and alone (a lone empty cell is quoted): the
    bytes equal pandas' to_csv of the same dataset's frame."""
    dataset = one_row(kind, value)
    assert csv_bytes(dataset) == pandas_csv(dataset)
    alone = Dataset(dataset.columns[:1], tuple(row[:1] for row in dataset.rows))
    assert csv_bytes(alone) == pandas_csv(alone)


# What each edge is written as, row by row: the bytes themselves, not only agreement with pandas.
CSV_CELLS = [
    pytest.param("text", 'say "hi"', b'"say ""hi"""', id="quotes doubled, field quoted"),
    pytest.param("text", "a,b", b'"a,b"', id="comma quoted"),
    pytest.param("text", "a\nb", b'"a\nb"', id="LF kept inside quotes"),
    pytest.param("text", "a\r\nb", b'"a\r\nb"', id="CRLF kept inside quotes"),
    pytest.param("text", " x ", b" x ", id="spaces kept, unquoted"),
    pytest.param("text", "Größe", "Größe".encode(), id="UTF-8"),
    pytest.param("text", "", b"", id="empty string empty"),
    pytest.param("text", None, b"", id="missing text empty"),
    pytest.param("int", 2**53 + 1, b"9007199254740993", id="int exact"),
    pytest.param("int", None, b"", id="missing int empty"),
    pytest.param("float", 1 / 3, b"0.3333333333", id="ten significant digits"),
    pytest.param("float", 2.0, b"2", id="whole float without point"),
    pytest.param("float", 1e20, b"1e+20", id="large float in exponent form"),
    pytest.param("float", -0.0, b"-0", id="negative zero signed"),
    pytest.param("float", math.inf, b"inf", id="inf"),
    pytest.param("float", math.nan, b"", id="NaN empty"),
    pytest.param("date", date(999, 1, 1), b"0999-01-01", id="date ISO, four-digit year"),
    pytest.param("date", None, b"", id="missing date empty"),
]


@pytest.mark.parametrize(("kind", "value", "cell"), CSV_CELLS)
def test_csv_cell_is_written_as(kind: ColumnKind, value: object, cell: bytes) -> None:
    """Header line, then the row: the cell, a comma, the next variable; each line ends in LF."""
    assert csv_bytes(one_row(kind, value)) == b"VAL,NEXT\n" + cell + b",n\n"


def test_csv_float_format_is_ten_significant_digits() -> None:
    assert CSV_FLOAT_FORMAT == "%.10g"


def test_csv_of_a_dataset_without_rows_is_its_header() -> None:
    dataset = Dataset(tuple(Column(f"V{kind.upper()}", kind, kind) for kind in KINDS), ())
    assert csv_bytes(dataset) == b"VTEXT,VINT,VFLOAT,VDATE\n" == pandas_csv(dataset)


# --- csv_bytes is pandas' CSV on random rows of every kind -------------------------------------

_CELLS: dict[ColumnKind, st.SearchStrategy[Any]] = {
    "text": st.none() | st.text() | st.sampled_from(['"', ",", "\r", "\n", "\r\n", " ", ""]),
    "int": st.none() | st.integers(-(2**63), 2**63 - 1),
    "float": st.none() | st.floats(allow_nan=True, allow_infinity=True),
    "date": st.none() | st.dates(),
}


@st.composite
def datasets_of_every_kind(draw: st.DrawFn) -> Dataset:
    """One to six variables of random kinds and up to eight rows of random cells."""
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    columns = [Column(f"V{i}", f"Variable {i}", kind) for i, kind in enumerate(kinds)]
    rows = draw(st.lists(
        st.fixed_dictionaries({c.name: _CELLS[c.kind] for c in columns}), max_size=8
    ))
    return dataset_table(rows, columns, [columns[0].name])


@settings(max_examples=400, deadline=None)
@given(datasets_of_every_kind())
def test_csv_bytes_are_pandas_csv_on_random_rows(dataset: Dataset) -> None:
    assert csv_bytes(dataset) == pandas_csv(dataset)


# --- dataset_table: the datasets' sort order, cells in column order -----------------------------

SUBJECT_DAY = (Column("DAY", "Day", "date"), Column("USUBJID", "Subject", "text"))

# Unsorted rows (subject, day) and the order dataset_table gives them, by subject then day.
SORTS = [
    pytest.param(
        [("S-2", date(2025, 1, 2)), ("S-1", date(2025, 1, 3)), ("S-1", date(2025, 1, 1))],
        [("S-1", date(2025, 1, 1)), ("S-1", date(2025, 1, 3)), ("S-2", date(2025, 1, 2))],
        id="by the first key, then the second",
    ),
    pytest.param(
        [("S-1", None), ("S-1", date(2025, 1, 1)), (None, date(2024, 1, 1))],
        [("S-1", date(2025, 1, 1)), ("S-1", None), (None, date(2024, 1, 1))],
        id="missing values last, in every key",
    ),
    pytest.param(
        [("S-10", date(2025, 1, 1)), ("S-9", date(2025, 1, 1))],
        [("S-10", date(2025, 1, 1)), ("S-9", date(2025, 1, 1))],
        id="by text, not by number",
    ),
    pytest.param(
        [("S-1", date(999, 1, 1)), ("S-1", date(2025, 1, 1))],
        [("S-1", date(999, 1, 1)), ("S-1", date(2025, 1, 1))],
        id="dates by their ISO text",
    ),
]


@pytest.mark.parametrize(("given_rows", "sorted_rows"), SORTS)
def test_dataset_table_sorts_rows_as_the_datasets_do(
    given_rows: list[tuple[str | None, date | None]],
    sorted_rows: list[tuple[str | None, date | None]],
) -> None:
    """Sorted by the keys with missing values last; cells follow the column table (DAY first),
    not the keys' order nor the dicts' order."""
    rows = [{"USUBJID": subject, "DAY": day} for subject, day in given_rows]
    table = dataset_table(rows, SUBJECT_DAY, ["USUBJID", "DAY"])
    assert table.columns == SUBJECT_DAY
    assert table.rows == tuple((day, subject) for subject, day in sorted_rows)


def test_equal_keys_keep_the_order_given() -> None:
    rows = [{"K": "a", "N": 1}, {"K": "b", "N": 2}, {"K": "a", "N": 3}]
    table = dataset_table(rows, (Column("K", "Key", "text"), Column("N", "N", "int")), ["K"])
    assert table.rows == (("a", 1), ("a", 3), ("b", 2))


def test_sequence_numbers_follow_the_dataset_order() -> None:
    """number_rows (ASEQ) and dataset_table sort alike, so sequence numbers come out 1, 2, …"""
    rows: list[dict[str, Any]] = [
        {"PARAMCD": "OVR", "ADT": None}, {"PARAMCD": "BOR", "ADT": date(2025, 3, 1)},
        {"PARAMCD": "OVR", "ADT": date(2025, 2, 1)}, {"PARAMCD": "OVR", "ADT": date(2025, 1, 9)},
    ]
    number_rows(rows, "ASEQ", ["PARAMCD", "ADT"])
    columns = (Column("PARAMCD", "P", "text"), Column("ADT", "D", "date"),
               Column("ASEQ", "S", "int"))
    table = dataset_table(rows, columns, ["PARAMCD", "ADT"])
    assert table.values("ASEQ") == [1, 2, 3, 4]
    assert table.values("ADT") == [date(2025, 3, 1), date(2025, 1, 9), date(2025, 2, 1), None]


# What each kind's cell holds after dataset_table, row by row.
CELLS = [
    pytest.param("float", math.nan, None, id="float NaN is missing"),
    pytest.param("float", None, None, id="float None is missing"),
    pytest.param("float", 3, 3.0, id="float from an int is a float"),
    pytest.param("float", 2.5, 2.5, id="float kept"),
    pytest.param("int", 4, 4, id="int kept"),
    pytest.param("int", 3.0, 3, id="int from a whole float is the int"),
    pytest.param("int", True, 1, id="int from a bool is the int"),
    pytest.param("int", -0.0, 0, id="int from minus zero is zero"),
    pytest.param("int", math.nan, None, id="int NaN is missing"),
    pytest.param("int", None, None, id="int None is missing"),
    pytest.param("text", "", "", id="empty text is not missing"),
    pytest.param("text", math.nan, None, id="text NaN is missing"),
    pytest.param("date", date(2025, 1, 6), date(2025, 1, 6), id="date kept"),
    pytest.param("date", math.nan, None, id="date NaN is missing"),
]


@pytest.mark.parametrize(("kind", "value", "cell"), CELLS)
def test_dataset_table_cell(kind: ColumnKind, value: object, cell: object) -> None:
    ((held, _),) = one_row(kind, value).rows
    assert held == cell
    assert type(held) is type(cell)


def _frame_as_exported_before(rows: list[dict[str, Any]], columns: tuple[Column, ...]) -> bytes:
    """The CSV the export wrote before datasets left pandas (9f0ff15's `dataset_frame` and
    `to_csv`): the reference the cell rules above keep the files equal to."""
    data: dict[str, pd.Series[Any]] = {}
    for column in columns:
        values = [row[column.name] for row in rows]
        if column.kind == "int":
            data[column.name] = pd.Series(values, dtype="Int64")
        elif column.kind == "float":
            data[column.name] = pd.Series(
                [float("nan") if v is None else float(v) for v in values], dtype="float64")
        else:
            data[column.name] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(data, columns=[c.name for c in columns])
    text = frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    return text.encode("utf-8")


@pytest.mark.parametrize(("kind", "value", "cell"), CELLS)
def test_each_cell_is_written_as_the_pandas_frame_wrote_it(
    kind: ColumnKind, value: object, cell: object
) -> None:
    """Whatever a derived cell holds, the CSV is the bytes the old frame path gave."""
    columns = (Column("VAL", "Value", kind), Column("NEXT", "Next", "text"))
    rows = [{"VAL": value, "NEXT": "n"}]
    assert csv_bytes(dataset_table(rows, columns, ["VAL"])) == _frame_as_exported_before(
        rows, columns)


# --- Dataset.frame and Dataset.of_frame -------------------------------------------------------

MIXED_COLUMNS = (
    Column("TEXT", "Text", "text"), Column("INT", "Int", "int"),
    Column("FLOAT", "Float", "float"), Column("DATE", "Date", "date"),
)
MIXED = Dataset(MIXED_COLUMNS, (
    ("a", 1, 0.5, date(2025, 1, 1)),
    (None, None, None, None),
    ("", 2**53 + 1, -0.0, date(999, 1, 1)),
))


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("TEXT", "object"), ("INT", "Int64"), ("FLOAT", "float64"), ("DATE", "object")],
)
def test_frame_dtype_follows_the_kind(name: str, dtype: str) -> None:
    frame = MIXED.frame()
    assert list(frame.columns) == list(MIXED.names)
    assert str(frame[name].dtype) == dtype


def test_frame_holds_the_cells_with_pandas_missing_values() -> None:
    frame = MIXED.frame()
    assert frame["TEXT"].tolist() == ["a", None, ""]
    assert frame["INT"].tolist() == [1, pd.NA, 2**53 + 1]
    assert math.isnan(frame["FLOAT"][1])
    assert math.copysign(1, frame["FLOAT"][2]) == -1
    assert frame["DATE"].tolist() == [date(2025, 1, 1), None, date(999, 1, 1)]


def test_frame_is_new_on_every_call() -> None:
    first = MIXED.frame()
    first.loc[0, "TEXT"] = "changed"
    assert MIXED.frame().loc[0, "TEXT"] == "a"


def test_of_frame_gives_back_the_rows() -> None:
    back = Dataset.of_frame(MIXED.frame(), MIXED.columns)
    assert back.columns == MIXED.columns
    assert back.rows == MIXED.rows
    assert [type(v) for v in back.values("INT")] == [int, type(None), int]


def test_of_frame_picks_the_columns_in_their_order() -> None:
    frame = pd.DataFrame({"B": [1.5, None], "A": ["x", None], "C": [1, 2]})
    columns = (Column("A", "A", "text"), Column("B", "B", "float"))
    assert Dataset.of_frame(frame, columns).rows == (("x", 1.5), (None, None))


@settings(max_examples=200, deadline=None)
@given(datasets_of_every_kind())
def test_of_frame_of_frame_is_the_dataset(dataset: Dataset) -> None:
    back = Dataset.of_frame(dataset.frame(), dataset.columns)
    assert back.rows == dataset.rows


# --- where, present, values -------------------------------------------------------------------

SMALL = Dataset((Column("ID", "Id", "text"), Column("FLAG", "Flag", "text"),
                 Column("N", "N", "int")), (
    ("a", "Y", 1),
    ("b", None, None),
    ("c", "Y", 0),
    ("d", "N", 3),
))


def test_values_are_every_cell_in_row_order() -> None:
    assert SMALL.values("FLAG") == ["Y", None, "Y", "N"]
    assert SMALL.values("N") == [1, None, 0, 3]


def test_present_leaves_out_only_missing_cells() -> None:
    assert SMALL.present("FLAG") == ["Y", "Y", "N"]
    assert SMALL.present("N") == [1, 0, 3]  # 0 is a value, not missing


@pytest.mark.parametrize(
    ("value", "ids"),
    [("Y", ["a", "c"]), ("N", ["d"]), (None, ["b"]), ("y", [])],
)
def test_where_keeps_the_rows_holding_the_value_in_order(value: object, ids: list[str]) -> None:
    picked = SMALL.where("FLAG", value)
    assert picked.columns == SMALL.columns
    assert picked.values("ID") == ids
    assert len(picked) == len(ids)


def test_select_takes_each_columns_cells_by_name_in_the_order_given() -> None:
    n, flag_code = Column("N", "Count", "int"), Column("FLAG", "Flag code", "text")
    picked = SMALL.select((n, flag_code))
    assert picked.columns == (n, flag_code)
    assert picked.rows == ((1, "Y"), (None, None), (0, "Y"), (3, "N"))
    assert SMALL.select(SMALL.columns) is SMALL


def test_an_unknown_variable_is_refused_not_read_as_empty() -> None:
    for read in (SMALL.values, SMALL.present):
        with pytest.raises(KeyError, match="OTHER: not a variable of this dataset"):
            read("OTHER")
    with pytest.raises(KeyError, match="OTHER: not a variable of this dataset"):
        SMALL.where("OTHER", "Y")
    with pytest.raises(KeyError, match="OTHER: not a variable of this dataset"):
        SMALL.select((Column("OTHER", "Other", "text"),))
