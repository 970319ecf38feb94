"""CDISC Dataset-JSON 1.1 for the analysis datasets, tied to the export's define.xml.

One file per dataset (the standard allows no more), written from the same column tables as the CSV
and XPT files and define.xml (:mod:`ledger.projections.dataset_columns`): the columns in file
order, each with the define.xml ``ItemDef`` OID (``IT.<DATASET>.<VARIABLE>``), name, label, data
type, length (text: the longest value in UTF-8 bytes, at least 1, as define.xml states it) and key
sequence; the dataset names its ``ItemGroupDef`` (``IG.<DATASET>``), the study and metadata version
OIDs of define.xml, and the define.xml file it belongs to (``metaDataRef``).

Types follow the specification's "supported column data type combinations": text is ``string``;
integers ``integer`` (JSON integers); floats ``float`` (JSON numbers, ten significant digits, as in
the CSV files); dates ``date`` with ``targetDataType`` ``integer`` (the ADaM use case: ISO 8601
text in the file, a SAS date once read) shown as ``DATE9.`` as in the XPT files. A missing value is
``null``. Attributes come in the order the specification recommends.

The bytes depend on the data and the arguments alone: ``datasetJSONCreationDateTime`` and
``dbLastModifiedDateTime`` are the ``recorded_at`` of the last ledger entry read (passed in),
never the wall clock; the JSON is compact, its attribute order fixed.
A value that does not fit its column raises ``ValueError`` naming the dataset and variable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from numbers import Integral, Real
from typing import Any, Final

from ledger.entries import format_timestamp
from ledger.projections.dataset_columns import Column
from ledger.projections.dataset_table import Dataset

__all__ = [
    "DATASET_JSON_VERSION",
    "DatasetJsonHeader",
    "dataset_json_bytes",
    "metadata_version_oid",
    "study_oid",
]

DATASET_JSON_VERSION: Final = "1.1.0"
_SIGNIFICANT_DIGITS: Final = 10  # as the CSV files' float format ("%.10g")
_DATE_FORMAT: Final = "DATE9."  # the transport files' date format


def study_oid(trial_id: str) -> str:
    """``Study/@OID`` of the export's define.xml."""
    return f"ST.{trial_id}"


def metadata_version_oid(trial_id: str) -> str:
    """``MetaDataVersion/@OID`` of the export's define.xml."""
    return f"MDV.{trial_id}.ADAM"


@dataclass(frozen=True, slots=True)
class DatasetJsonHeader:
    """What every Dataset-JSON file of one export states alike: define.xml's study and metadata
    version OIDs and its path relative to the file, the last recorded time of the ledger read
    (creation and last-modified time) and the software that wrote it."""

    study_oid: str
    metadata_version_oid: str
    define_path: str
    created: datetime
    software_version: str
    originator: str = "trial-ledger"


def dataset_json_bytes(
    table: Dataset,
    columns: Sequence[Column],
    header: DatasetJsonHeader,
    *,
    name: str,
    label: str,
    keys: Sequence[str] = (),
) -> bytes:
    """The Dataset-JSON 1.1 document of ``table`` (its ``columns``, in that order), UTF-8.

    ``header``: what every file of the export states alike; ``name``: the dataset (``ADSL``);
    ``label``: its label; ``keys``: the natural key variables, in key order.
    """
    dataset = name.upper()
    names = table.names
    missing = [column.name for column in columns if column.name not in names]
    if missing:
        raise ValueError(f"{dataset}.{missing[0]}: variable not in the data")
    unknown_keys = [key for key in keys if key not in {column.name for column in columns}]
    if unknown_keys:
        raise ValueError(f"{dataset}.{unknown_keys[0]}: key variable not among the columns")
    rows = [
        [_value(dataset, column, value) for column, value in zip(columns, row, strict=True)]
        for row in table.select(columns).rows
    ]
    stamp = format_timestamp(header.created)
    document: dict[str, Any] = {
        "datasetJSONCreationDateTime": stamp,
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{header.metadata_version_oid}.{dataset}",
        "dbLastModifiedDateTime": stamp,
        "originator": header.originator,
        "sourceSystem": {"name": "trial-ledger", "version": header.software_version},
        "studyOID": header.study_oid,
        "metaDataVersionOID": header.metadata_version_oid,
        "metaDataRef": header.define_path,
        "itemGroupOID": f"IG.{dataset}",
        "records": len(rows),
        "name": dataset,
        "label": label,
        "columns": [
            _column(dataset, column, [row[index] for row in rows], keys)
            for index, column in enumerate(columns)
        ],
        "rows": rows,
    }
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _column(
    dataset: str, column: Column, values: list[Any], keys: Sequence[str]
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "itemOID": f"IT.{dataset}.{column.name}",
        "name": column.name,
        "label": column.label,
    }
    if column.kind == "text":
        described["dataType"] = "string"
        lengths = (len(value.encode("utf-8")) for value in values if value is not None)
        described["length"] = max(lengths, default=1) or 1
    elif column.kind == "int":
        described["dataType"] = "integer"
    elif column.kind == "float":
        described["dataType"] = "float"
    else:
        described["dataType"] = "date"
        described["targetDataType"] = "integer"
        described["displayFormat"] = _DATE_FORMAT
    if column.name in keys:
        described["keySequence"] = list(keys).index(column.name) + 1
    return described


def _value(dataset: str, column: Column, value: object) -> str | int | float | None:
    """One cell as its column's JSON type, or a ValueError naming the variable."""
    if value is None:
        return None
    where = f"{dataset}.{column.name}"
    if column.kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"{where}: text variable holds {value!r}")
        return value
    if column.kind == "date":
        return _iso_date(where, value)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{where}: numeric variable holds {value!r}")
    if column.kind == "int":
        if isinstance(value, Integral):
            return int(value)
        whole = float(value)
        if not whole.is_integer():
            raise ValueError(f"{where}: integer variable holds {value!r}")
        return int(whole)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where}: numeric variable holds {value!r}")
    return float(f"{number:.{_SIGNIFICANT_DIGITS}g}")


def _iso_date(where: str, value: object) -> str:
    if isinstance(value, datetime):  # pandas Timestamp too
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{where}: date variable holds {value!r}")
