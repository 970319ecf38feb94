"""Checks on write, as R's ``xportr`` makes them: every dataset against its column table.

Before ``ledger export`` writes a byte, each dataset is held to its table in
:mod:`ledger.projections.dataset_columns`; the first rule broken stops the export with a
:class:`DatasetConformanceError` naming the dataset, the variable and the rule, in one line.
The rules, in the order they are checked (:data:`RULES`):

* ``name``: 1–8 characters, upper-case letters, digits or ``_``, starting with a letter
  (SAS v5), in the table and in the dataset;
* ``label``: non-empty printable ASCII of at most 40 bytes (the dataset's label too);
* ``order``: the dataset's variables are the table's, in the table's order;
* ``type``: character variables (``text``) hold text, numeric ones (``int``, ``float``,
  ``date``) numbers, ``int`` whole numbers;
* ``format``: date variables hold dates, which the transport file shows as ``DATE9.``, and no
  other variable holds dates (it would be written as a date too);
* ``length``: a coded text value is no longer, in UTF-8 bytes, than the longest term of its
  codelist (the declared length); every text value of a transport file is at most 200 bytes
  (after long text is split into continuation variables: :func:`check_transport`);
* ``codelist``: a coded variable's values are terms of its codelist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from ledger.projections.dataset_columns import Column
from ledger.projections.dataset_table import Dataset
from ledger.projections.sas_limits import (
    MAX_CHARACTER_BYTES,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    SAS_NAME,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "RULES",
    "DatasetConformanceError",
    "check_dataset",
    "check_transport",
    "declared_length",
]

RULES: Final = ("name", "label", "order", "type", "format", "length", "codelist")
_NUMERIC_KINDS: Final = frozenset({"int", "float", "date"})

Codelists = Mapping[str, Sequence[tuple[str | int, str]]]


class DatasetConformanceError(Exception):
    """A dataset breaks a rule of its column table: which dataset, variable and rule, and how.

    Not a ``ValueError``: the command line reports it as a failed command (exit 3, one line),
    since no other input would make the same ledger export.
    """

    def __init__(self, dataset: str, variable: str, rule: str, problem: str) -> None:
        super().__init__(f"{dataset} {variable}: {problem} ({rule} rule)")
        self.dataset = dataset
        self.variable = variable
        self.rule = rule


def declared_length(column: Column, codelists: Codelists) -> int | None:
    """The longest value a text variable may hold, in UTF-8 bytes: its codelist's longest term;
    None for free text (bounded only by the transport file's 200 bytes)."""
    if column.kind != "text" or column.codelist is None or column.codelist not in codelists:
        return None
    return max(len(str(value).encode("utf-8")) for value, _ in codelists[column.codelist])


def check_dataset(
    dataset: str,
    label: str,
    table: Dataset,
    columns: Sequence[Column],
    codelists: Codelists,
) -> None:
    """Raise :class:`DatasetConformanceError` at the first rule ``table`` breaks."""
    for column in columns:
        _check_name(dataset, column.name)
        _check_label(dataset, column.name, column.label)
    _check_label(dataset, "(dataset label)", label)
    _check_order(dataset, table, columns)
    for column in columns:
        present = _distinct(table.present(column.name))  # read once for the three checks
        _check_type(dataset, column, present)
        _check_format(dataset, column, present)
        _check_coded(dataset, column, present, codelists)


def check_transport(dataset: str, frame: pd.DataFrame, labels: Mapping[str, str]) -> None:
    """The transport file's own limits on the frame it will hold (continuation variables
    included): names, labels, and text values of at most 200 bytes."""
    for name in frame.columns:
        _check_name(dataset, str(name))
        _check_label(dataset, str(name), labels.get(str(name), ""))
        for value in frame[name]:
            if isinstance(value, str) and len(value.encode("utf-8")) > MAX_CHARACTER_BYTES:
                raise DatasetConformanceError(
                    dataset, str(name), "length",
                    f"a value of {len(value.encode('utf-8'))} bytes; a transport file holds "
                    f"at most {MAX_CHARACTER_BYTES}",
                )


def _distinct(values: list[Any]) -> list[Any]:
    """Each value once, in order of first appearance; 1, 1.0 and True stay apart (each is
    checked as what it is). Unhashable values are all kept: the checks name them."""
    try:
        return list({(type(value), value): value for value in values}.values())
    except TypeError:
        return values


def _check_name(dataset: str, name: str) -> None:
    if not SAS_NAME.fullmatch(name):
        raise DatasetConformanceError(
            dataset, name, "name",
            f"not a SAS v5 name (1–{MAX_NAME_LENGTH} upper-case letters, digits or _, "
            "starting with a letter)",
        )


def _check_label(dataset: str, variable: str, label: str) -> None:
    size = len(label.encode("utf-8"))
    if not label.strip() or size > MAX_LABEL_LENGTH or not label.isascii():
        raise DatasetConformanceError(
            dataset, variable, "label",
            f"label {label!r} is {size} bytes; it must be 1–{MAX_LABEL_LENGTH} bytes of "
            "printable ASCII",
        )
    if not label.isprintable():
        raise DatasetConformanceError(
            dataset, variable, "label", f"label {label!r} must be printable ASCII"
        )


def _check_order(dataset: str, table: Dataset, columns: Sequence[Column]) -> None:
    """A missing or extra variable is named as such before any variable out of place."""
    expected = [c.name for c in columns]
    actual = list(table.names)
    if actual == expected:
        return
    missing = next((name for name in expected if name not in actual), None)
    if missing is not None:
        raise DatasetConformanceError(dataset, missing, "order", "missing from the dataset")
    extra = next((name for name in actual if name not in expected), None)
    if extra is not None:
        raise DatasetConformanceError(dataset, extra, "order", "not a variable of the table")
    position, got, want = next(
        (i, got, want)
        for i, (want, got) in enumerate(zip(expected, actual, strict=True), start=1)
        if want != got
    )
    raise DatasetConformanceError(
        dataset, got, "order", f"variable {position} is {got}; the table has {want}"
    )


def _check_type(dataset: str, column: Column, present: Sequence[Any]) -> None:
    if column.kind == "date":
        return  # dates are the format rule's: a date variable must hold dates
    if column.kind == "text":
        wrong = next((v for v in present if not isinstance(v, str)), None)
        if wrong is not None and not isinstance(wrong, date):
            raise DatasetConformanceError(
                dataset, column.name, "type",
                f"character variable holds {type(wrong).__name__} value {wrong!r}",
            )
        return
    for value in present:
        if isinstance(value, date):
            return  # the format rule names it
        number = _as_number(value)
        if number is None:
            raise DatasetConformanceError(
                dataset, column.name, "type",
                f"numeric variable holds {type(value).__name__} value {value!r}",
            )
        if column.kind == "int" and not number.is_integer():
            raise DatasetConformanceError(
                dataset, column.name, "type", f"integer variable holds {value!r}"
            )


def _as_number(value: object) -> float | None:
    """numpy scalars are numbers; text and booleans are not."""
    if isinstance(value, str | bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _check_format(dataset: str, column: Column, present: Sequence[Any]) -> None:
    if column.kind == "date":
        wrong = next(
            (v for v in present if isinstance(v, datetime) or not isinstance(v, date)),
            None,
        )
        if wrong is not None:
            raise DatasetConformanceError(
                dataset, column.name, "format",
                f"date variable (DATE9.) holds {type(wrong).__name__} value {wrong!r}",
            )
        return
    if any(isinstance(v, date) for v in present):
        raise DatasetConformanceError(
            dataset, column.name, "format",
            f"{column.kind} variable holds dates: it would be written with a date format",
        )


def _check_coded(
    dataset: str, column: Column, present: Sequence[Any], codelists: Codelists
) -> None:
    if column.codelist is None:
        return
    if column.codelist not in codelists:
        raise DatasetConformanceError(
            dataset, column.name, "codelist", f"codelist {column.codelist} is not defined"
        )
    terms = {value for value, _ in codelists[column.codelist]}
    longest = declared_length(column, codelists)
    for value in present:
        if longest is not None and isinstance(value, str):
            size = len(value.encode("utf-8"))
            if size > longest:
                raise DatasetConformanceError(
                    dataset, column.name, "length",
                    f"value {value!r} is {size} bytes; the declared length is {longest}",
                )
        term = int(value) if column.kind == "int" else value
        if term not in terms:
            raise DatasetConformanceError(
                dataset, column.name, "codelist",
                f"value {value!r} is not a term of codelist {column.codelist}",
            )
