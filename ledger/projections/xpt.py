"""SAS transport (XPORT) version 5 files for regulatory submission, byte-for-byte reproducible.

``write_xpt`` checks the version 5 limits first and names what breaks them: dataset and variable
names of at most 8 characters ``[A-Z][A-Z0-9_]*``, labels of at most 40 printable ASCII characters,
character values of at most 200 bytes (UTF-8), numbers that IBM floating point can hold.

The file itself is written by ``pyreadstat.write_xport(file_format_version=5)`` (ReadStat), which
reads back with both ``pyreadstat.read_xport`` and ``pandas.read_sas(format="xport")``. ReadStat
stamps the library and member headers with the wall clock; those four 16-byte fields are rewritten
with the caller's ``created`` time, so the same input always gives the same bytes.

Column types, following ADaM conventions:

* numbers (int, float, nullable) -> numeric; missing -> SAS missing ``.``
* text -> character; missing -> blank (SAS has no other character missing value)
* dates (``datetime.date`` values, or ``datetime64`` values that are all midnight) -> numeric SAS
  dates, days since 1960-01-01, with format ``DATE9.``: the ADaM form of ``*DT`` variables, which
  keeps date arithmetic (``AVAL = ADT − STARTDT + 1``) working in SAS
* date-times in a column whose name ends in ``DTM`` -> numeric SAS date-times, seconds since
  1960-01-01T00:00, with format ``DATETIME20.`` (``*DTM`` variables); a date-time with a time of
  day in any other column is refused rather than silently cut to its date
* booleans and anything else are refused: ADaM flags are character ``"Y"``/blank.

Two pandas reader quirks, not file defects (``pyreadstat.read_xport`` reads both correctly):
pandas reads an IBM zero as 5.397605e-79 (pandas-dev/pandas#50670) where the file holds a true
zero; and with records shorter than 80 bytes it counts every 8-byte run of blanks in the last
80-byte card as padding, so a blank character value there can make it drop the last row.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ledger.projections.files import write_atomically
from ledger.projections.sas_limits import (
    MAX_CHARACTER_BYTES,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    SAS_NAME,
)

__all__ = [
    "DATETIME_FORMAT",
    "DATE_FORMAT",
    "SAS_EPOCH",
    "split_long_text",
    "split_utf8",
    "write_xpt",
]

SAS_EPOCH: Final = dt.date(1960, 1, 1)
DATE_FORMAT: Final = "DATE9."
DATETIME_FORMAT: Final = "DATETIME20."

_PRINTABLE_ASCII: Final = re.compile(r"[ -~]*")
_IBM_MAX: Final = 16.0**63  # IBM hex floats: 16**-65 ≤ |x| < 16**63
_IBM_MIN: Final = 16.0**-65
_SAS_EPOCH_TS: Final = pd.Timestamp("1960-01-01")
_MONTHS: Final = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
_STAMP: Final = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
# Byte offsets of the 16-byte created/modified stamps in the library and member header records.
_STAMP_OFFSETS: Final = (144, 160, 464, 480)
_RECORD_PREFIXES: Final = (
    (0, b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"),
    (240, b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!"),
    (320, b"HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!"),
)


def write_xpt(
    frame: pd.DataFrame,
    path: str | Path,
    dataset_name: str,
    dataset_label: str,
    column_labels: Mapping[str, str],
    created: dt.datetime,
) -> Path:
    """Write ``frame`` as a SAS transport v5 file at ``path`` and return the path.

    ``column_labels`` must label every column and nothing else. ``created`` fills the header's
    created and modified stamps (to the second; an aware time is converted to UTC first, a naive
    one is taken as it is). Raises ValueError naming the first column or value that v5 cannot hold.
    """
    if not isinstance(created, dt.datetime):
        raise TypeError(f"created must be a datetime, got {type(created).__name__}")
    _check_name(dataset_name, "dataset name")
    _check_label(dataset_label, f"dataset {dataset_name} label")
    columns = _check_columns(frame, column_labels)

    converted: dict[str, pd.Series[Any]] = {}
    formats: dict[str, str] = {}
    for name in columns:
        values, sas_format = _to_sas(name, frame[name])
        converted[name] = values
        if sas_format is not None:
            formats[name] = sas_format
    out_frame = pd.DataFrame(converted, columns=columns)
    out_frame.index = pd.RangeIndex(len(out_frame))

    with tempfile.TemporaryDirectory(prefix="xpt-") as scratch:
        raw = Path(scratch) / "out.xpt"
        import pyreadstat  # only when writing transport files

        pyreadstat.write_xport(
            out_frame,
            str(raw),
            file_label=dataset_label,
            column_labels=[column_labels[c] for c in columns],
            table_name=dataset_name,
            file_format_version=5,
            variable_format=formats,
        )
        data = _stamp_headers(raw.read_bytes(), created)

    out = Path(path)
    write_atomically(out, data)
    return out


def split_utf8(text: str, limit: int = MAX_CHARACTER_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, never splitting a character.

    A piece does not end in whitespace where that can be helped (SAS drops trailing blanks, so
    a space at the end of a piece would be lost on reading): the break moves before the blanks,
    which then start the next piece. Joining the pieces gives ``text`` back.
    """
    if limit < 4:
        raise ValueError(f"limit must be at least 4 bytes (one UTF-8 character), got {limit}")
    pieces: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > limit:
        size = 0
        cut = 0
        for char in rest:
            width = len(char.encode("utf-8"))
            if size + width > limit:
                break
            size += width
            cut += 1
        trimmed = len(rest[:cut].rstrip())
        if 0 < trimmed < cut:
            cut = trimmed
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return pieces


def split_long_text(
    frame: pd.DataFrame, column_labels: Mapping[str, str], limit: int = MAX_CHARACTER_BYTES
) -> tuple[pd.DataFrame, dict[str, str], dict[str, tuple[str, ...]]]:
    """Character values longer than ``limit`` bytes split the ADaM way into continuation variables.

    A column with a value over ``limit`` UTF-8 bytes keeps the first piece and gains ``NAME1``,
    ``NAME2``, … right after it (the base name shortened when the number would make it longer
    than 8 characters: ``CNSDTDSC`` → ``CNSDTDS1``), labelled as the base with `` (1)``, …
    appended. Returns the new frame, labels for every column, and base name → its continuation
    names (empty when nothing needed splitting). Raises ValueError when a continuation name is
    already a column.
    """
    out: dict[str, pd.Series[Any]] = {}
    labels: dict[str, str] = {}
    added: dict[str, tuple[str, ...]] = {}
    for name in frame.columns:
        column = frame[name]
        labels[name] = column_labels.get(name, "")
        values = list(column)
        texts = [v if isinstance(v, str) else None for v in values]
        if not any(t is not None and len(t.encode("utf-8")) > limit for t in texts):
            out[name] = column
            continue
        pieces = [split_utf8(t, limit) if t is not None else [] for t in texts]
        count = max(len(p) for p in pieces)
        out[name] = pd.Series(
            [p[0] if p else v for p, v in zip(pieces, values, strict=True)],
            dtype=object, index=column.index,
        )
        names = []
        for k in range(1, count):
            suffix = str(k)
            extra = f"{str(name)[: MAX_NAME_LENGTH - len(suffix)]}{suffix}"
            if extra in frame.columns or extra in out:
                raise ValueError(
                    f"column {name}: continuation variable {extra} would clash with a column"
                )
            out[extra] = pd.Series(
                [p[k] if len(p) > k else None for p in pieces], dtype=object, index=column.index
            )
            base_label = labels[name][: MAX_LABEL_LENGTH - len(suffix) - 3]
            labels[extra] = f"{base_label} ({suffix})"
            names.append(extra)
        added[str(name)] = tuple(names)
    return pd.DataFrame(out, index=frame.index), labels, added


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not SAS_NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a SAS v5 name: 1–{MAX_NAME_LENGTH} characters, "
            "upper-case letters, digits or _, starting with a letter"
        )


def _check_label(label: object, what: str) -> None:
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{what} must be a non-empty string, got {label!r}")
    if len(label) > MAX_LABEL_LENGTH:
        raise ValueError(
            f"{what} {label!r} has {len(label)} characters; SAS v5 allows {MAX_LABEL_LENGTH}"
        )
    if not _PRINTABLE_ASCII.fullmatch(label):
        raise ValueError(f"{what} {label!r} must be printable ASCII")


def _check_columns(frame: pd.DataFrame, column_labels: Mapping[str, str]) -> list[str]:
    columns = list(frame.columns)
    if not columns:
        raise ValueError("frame has no columns")
    for name in columns:
        _check_name(name, "column name")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ValueError(f"duplicate column name(s): {', '.join(duplicated)}")
    unlabelled = [c for c in columns if c not in column_labels]
    if unlabelled:
        raise ValueError(f"column(s) without a label: {', '.join(unlabelled)}")
    unknown = sorted(set(column_labels) - set(columns))
    if unknown:
        raise ValueError(f"label(s) given for column(s) not in the frame: {', '.join(unknown)}")
    for name in columns:
        _check_label(column_labels[name], f"column {name} label")
    return [str(c) for c in columns]


def _to_sas(name: str, column: pd.Series[Any]) -> tuple[pd.Series[Any], str | None]:
    """One column as float64 (numeric) or str (character) values, plus its SAS format if any."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    if pd.api.types.is_bool_dtype(column.dtype):
        raise ValueError(f"column {name}: booleans are not SAS values; use 'Y'/'' or 1/0")
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return _datetimes(name, column)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return _numbers(name, column.to_numpy(dtype=float, na_value=np.nan)), None
    if pd.api.types.is_string_dtype(column.dtype) or column.dtype == object:
        present = [v for v in column if not _is_missing(v)]
        kinds = {_kind(v) for v in present}
        if len(kinds) > 1:
            raise ValueError(f"column {name} mixes {' and '.join(sorted(kinds))} values")
        kind = kinds.pop() if kinds else "text"
        if kind == "text":
            return _texts(name, column), None
        if kind == "number":
            values = np.array([math.nan if _is_missing(v) else float(v) for v in column])
            return _numbers(name, values), None
        if kind == "date":
            days = [math.nan if _is_missing(v) else float((v - SAS_EPOCH).days) for v in column]
            return pd.Series(days, dtype=float), DATE_FORMAT
        if kind == "datetime":
            return _datetimes(name, pd.Series(pd.to_datetime(list(column))))
        bad = next(v for v in present if _kind(v) == kind)
        raise ValueError(f"column {name}: cannot write {type(bad).__name__} value {bad!r}")
    raise ValueError(f"column {name}: unsupported dtype {column.dtype}")


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return type(value).__name__


def _numbers(name: str, values: npt.NDArray[np.float64]) -> pd.Series[float]:
    for row, value in enumerate(values):
        magnitude = abs(float(value))
        if math.isnan(magnitude):
            continue
        if math.isinf(magnitude) or magnitude >= _IBM_MAX or 0.0 < magnitude < _IBM_MIN:
            raise ValueError(
                f"column {name}, row {row}: {float(value)!r} cannot be stored as an IBM float "
                "(finite, 16**-65 ≤ |x| < 16**63, or 0)"
            )
    return pd.Series(values, dtype=float)


def _texts(name: str, column: pd.Series[Any]) -> pd.Series[str]:
    texts = ["" if _is_missing(v) else str(v) for v in column]
    for row, text in enumerate(texts):
        size = len(text.encode("utf-8"))
        if size > MAX_CHARACTER_BYTES:
            raise ValueError(
                f"column {name}, row {row}: value {text[:30]!r}… is {size} bytes; "
                f"SAS v5 allows {MAX_CHARACTER_BYTES}"
            )
    return pd.Series(texts, dtype=object)


def _datetimes(name: str, column: pd.Series[Any]) -> tuple[pd.Series[Any], str]:
    if getattr(column.dtype, "tz", None) is not None:
        raise ValueError(f"column {name}: time-zone-aware date-times are ambiguous in SAS")
    stamps = pd.Series(pd.to_datetime(column), dtype="datetime64[ns]").reset_index(drop=True)
    elapsed = stamps - _SAS_EPOCH_TS
    if name.endswith("DTM"):
        return pd.Series(elapsed / pd.Timedelta(seconds=1), dtype=float), DATETIME_FORMAT
    present = stamps.dropna()
    with_time = present[present != present.dt.normalize()]
    if not with_time.empty:
        raise ValueError(
            f"column {name}: {with_time.iloc[0]} has a time of day; name the column *DTM "
            "to write date-times, or pass dates"
        )
    return pd.Series(elapsed / pd.Timedelta(days=1), dtype=float), DATE_FORMAT


def _sas_stamp(created: dt.datetime) -> bytes:
    if created.tzinfo is not None:
        created = created.astimezone(dt.UTC)
    text = (
        f"{created.day:02d}{_MONTHS[created.month - 1]}{created.year % 100:02d}:"
        f"{created.hour:02d}:{created.minute:02d}:{created.second:02d}"
    )
    return text.encode("ascii")


def _stamp_headers(data: bytearray | bytes, created: dt.datetime) -> bytes:
    """Replace ReadStat's wall-clock header stamps with ``created``, checking the layout first."""
    patched = bytearray(data)
    for offset, prefix in _RECORD_PREFIXES:
        if not patched.startswith(prefix, offset):
            raise RuntimeError(f"unexpected XPORT layout from pyreadstat at byte {offset}")
    stamp = _sas_stamp(created)
    for offset in _STAMP_OFFSETS:
        if not _STAMP.fullmatch(bytes(patched[offset : offset + 16])):
            raise RuntimeError(f"no header time stamp where expected at byte {offset}")
        patched[offset : offset + 16] = stamp
    return bytes(patched)


def _is_missing(value: object) -> bool:
    """A frame's cell is missing when it holds None, pandas' NA or NaT, or a float NaN (how
    pandas fills a numeric column's gaps); everything else is a value."""
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and math.isnan(value)
    )
