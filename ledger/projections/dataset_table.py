"""A dataset as the export writes it: its column table and its rows, sorted, without pandas.

Every writer and check reads this one shape: CSV (:func:`csv_bytes`), Dataset-JSON, define.xml
and the checks on write; only the transport file (XPT) and the analyses (Kaplan–Meier, the
report, the diff) turn it into a pandas frame (:meth:`Dataset.frame`), so an export to CSV or
JSON never imports pandas. A missing cell is ``None`` whatever the column's kind: a NaN the
derivation gives is stored as ``None`` (:func:`dataset_table`), as pandas' dtypes made it missing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from ledger.projections.dataset_columns import Column, ColumnKind

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CSV_FLOAT_FORMAT", "Dataset", "csv_bytes", "dataset_table"]

CSV_FLOAT_FORMAT: Final = "%.10g"
"""Ten significant digits: exact for diameters and day counts, stable across platforms."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """One dataset: its variables in file order and its rows, each a tuple in that order."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def __len__(self) -> int:
        return len(self.rows)

    def values(self, name: str) -> list[Any]:
        """Every cell of variable ``name``, in row order (``None`` where missing)."""
        index = self._index(name)
        return [row[index] for row in self.rows]

    def present(self, name: str) -> list[Any]:
        """The cells of ``name`` that are not missing, in row order."""
        return [value for value in self.values(name) if value is not None]

    def where(self, name: str, value: object) -> Dataset:
        """The rows whose ``name`` equals ``value``, in order."""
        index = self._index(name)
        return Dataset(self.columns, tuple(row for row in self.rows if row[index] == value))

    def select(self, columns: Sequence[Column]) -> Dataset:
        """The dataset of ``columns``, each cell taken from the variable of the column's name
        (itself when its columns are those already)."""
        if tuple(columns) == self.columns:
            return self
        picked = [self._index(column.name) for column in columns]
        return Dataset(tuple(columns), tuple(tuple(row[i] for i in picked) for row in self.rows))

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{name}: not a variable of this dataset") from None

    def frame(self) -> pd.DataFrame:
        """The dataset as a pandas frame: ``int`` as Int64, ``float`` as float64 (NaN where
        missing), text and dates as objects; a new frame on every call (callers may change it)."""
        return self._frame.copy()

    @cached_property
    def _frame(self) -> pd.DataFrame:
        import pandas as pd  # only the transport file and the analyses need frames

        data: dict[str, pd.Series[Any]] = {}
        for index, column in enumerate(self.columns):
            values = [row[index] for row in self.rows]
            if column.kind == "int":
                data[column.name] = pd.Series(values, dtype="Int64")
            elif column.kind == "float":
                data[column.name] = pd.Series(
                    [float("nan") if v is None else v for v in values], dtype="float64"
                )
            else:
                data[column.name] = pd.Series(values, dtype=object)
        return pd.DataFrame(data, columns=list(self.names))

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, columns: Sequence[Column]) -> Dataset:
        """A frame's rows as a dataset of ``columns`` (its variables, in order); pandas' missing
        cells (NA, NaT, NaN) become ``None``."""
        names = [column.name for column in columns]
        present = frame[names].notna().to_numpy()
        cells = frame[names].astype(object).to_numpy()
        rows = tuple(
            tuple(cell if known else None for cell, known in zip(row, flags, strict=True))
            for row, flags in zip(cells.tolist(), present.tolist(), strict=True)
        )
        return cls(tuple(columns), rows)


def dataset_table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], sort_by: Sequence[str]
) -> Dataset:
    """Derived rows (dicts by variable) as a dataset: sorted by ``sort_by`` with missing values
    last, each row's cells in the order of ``columns``."""
    keyed = sorted(rows, key=lambda r: tuple(sort_key(r[k]) for k in sort_by))
    by_column = [_cells(column.kind, [row[column.name] for row in keyed]) for column in columns]
    return Dataset(tuple(columns), tuple(zip(*by_column, strict=True)))


def sort_key(value: object) -> tuple[int, str]:
    """The datasets' sort order of one value: by its text, missing values last."""
    return (1, "") if value is None else (0, str(value))


def _cells(kind: ColumnKind, values: list[Any]) -> list[Any]:
    """One column's derived values as its cells: each passed through its kind's rule
    (:data:`_CELL`) when one of them needs it, else the list as it is (the usual case, checked
    per column rather than called per cell)."""
    rule = _CELL[kind]
    if kind != "float":  # a float cell always goes through its rule (an int becomes a float)
        held = set(map(type, values))
        if held <= {int, type(None)} if kind == "int" else float not in held:
            return values
    return [rule(value) for value in values]


# What the pandas dtypes the datasets had (Int64, float64, object) made of a derived cell, kept
# so that the files stay what they were: NaN is missing in every kind, a whole float or a bool
# in an integer column is that integer.


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _float_cell(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _int_cell(value: Any) -> Any:
    if value is None or _is_nan(value):
        return None
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    return value  # anything else is left for the checks on write to name


def _object_cell(value: Any) -> Any:
    return None if _is_nan(value) else value


_CELL: Final[Mapping[str, Callable[[Any], Any]]] = {
    "float": _float_cell, "int": _int_cell, "text": _object_cell, "date": _object_cell,
}


def csv_bytes(dataset: Dataset) -> bytes:
    """The dataset's CSV exactly as ``ledger export`` writes it: a header of the variable names,
    one line per row ending in ``\\n``, quoted only where needed, floats with ten significant
    digits, dates ISO-8601, missing cells empty (what pandas' ``to_csv`` wrote before; the
    report hashes the same bytes)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(dataset.names)
    # The csv module writes None as an empty cell and str() of any other value: the export's
    # text of a text, integer or date (ISO-8601) cell. Only floats need a format of their own.
    floats = [index for index, column in enumerate(dataset.columns) if column.kind == "float"]
    writer.writerows(_floats_formatted(row, floats) for row in dataset.rows)
    return buffer.getvalue().encode("utf-8")


def _floats_formatted(row: tuple[Any, ...], floats: list[int]) -> list[Any]:
    cells = list(row)
    for index in floats:
        value = cells[index]
        if value is not None:
            cells[index] = CSV_FLOAT_FORMAT % value
    return cells
