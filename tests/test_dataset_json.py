"""CDISC Dataset-JSON 1.1: schema-valid, tied to define.xml, the datasets' values, same bytes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ledger.demo import run_demo
from ledger.entries import format_timestamp
from ledger.ledger_reader import LedgerReader
from ledger.projections.dataset_columns import (
    DATASET_COLUMNS,
    DATASET_KEYS,
    DATASET_LABELS,
    Column,
)
from ledger.projections.dataset_json import (
    DatasetJsonHeader,
    dataset_json_bytes,
    metadata_version_oid,
    study_oid,
)
from ledger.projections.dataset_table import Dataset
from ledger.projections.datasets import AnalysisDatasets, build_datasets
from ledger.projections.define_xml import DEFINE_NAME, DefineTable, StudyInfo, define_xml
from tests.builders import TRIAL_ID

SCHEMA = json.loads(
    (Path(__file__).parent / "fixtures" / "dataset_json" / "dataset.schema.json").read_text()
)
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
STEMS = ("adsl", "adtte", "adrs", "adae")
# The JSON type each data type is exchanged as (the specification's combinations table).
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "float": float, "date": str,
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> AnalysisDatasets:
    """The seed-12 demo's datasets (envelope v2: demographics and MedDRA coding filled)."""
    run = run_demo(tmp_path_factory.mktemp("demo"), seed=12)
    with LedgerReader(run.store) as service:
        return build_datasets(service.entries(TRIAL_ID), as_of=None, cutoff=date(2026, 6, 30))


def write(datasets: AnalysisDatasets, stem: str) -> bytes:
    """One dataset as the export would write it (`--format json`)."""
    trial = datasets.provenance.trial_id
    return dataset_json_bytes(
        datasets.tables[stem],
        DATASET_COLUMNS[stem],
        DatasetJsonHeader(
            study_oid=study_oid(trial),
            metadata_version_oid=metadata_version_oid(trial),
            define_path=DEFINE_NAME,
            created=datasets.provenance.last_recorded_at,
            software_version="0.1.0",
        ),
        name=stem.upper(),
        label=DATASET_LABELS[stem],
        keys=DATASET_KEYS[stem],
    )


def define_document(datasets: AnalysisDatasets) -> ET.Element:
    """define.xml of the same datasets, for the json format."""
    provenance = datasets.provenance
    levels = tuple((name, f"Fruquintinib {mg:g} mg") for name, mg in datasets.dose_levels.items())
    tables = [
        DefineTable(stem, DATASET_LABELS[stem], DATASET_COLUMNS[stem], table,
                    f"{stem}.json", DATASET_KEYS[stem])
        for stem, table in datasets.tables.items()
    ]
    study = StudyInfo(
        trial_id=provenance.trial_id, protocol_id=provenance.protocol_id,
        protocol_version=provenance.protocol_version, created=provenance.last_recorded_at,
        software_version="0.1.0", file_format="json",
        extra_codelists={"DOSELVL": levels, "COHORT": (*levels, ("EXPANSION", "Expansion"))},
    )
    return ET.fromstring(define_xml(tables, study))


@pytest.mark.parametrize("stem", STEMS)
def test_each_dataset_is_valid_against_the_dataset_json_schema(
    datasets: AnalysisDatasets, stem: str
) -> None:
    """The file validates against the CDISC Dataset-JSON 1.1 JSON Schema, rows and all."""
    document = json.loads(write(datasets, stem))
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    assert list(validator.iter_errors(document)) == []
    assert document["datasetJSONVersion"] == "1.1.0"
    assert document["records"] == len(document["rows"]) == len(datasets.tables[stem]) > 0


@pytest.mark.parametrize("stem", STEMS)
def test_same_datasets_give_the_same_bytes(datasets: AnalysisDatasets, stem: str) -> None:
    """Two writes are byte-identical; the creation time is the ledger's last recorded time."""
    first, second = write(datasets, stem), write(datasets, stem)
    assert first == second
    stamp = format_timestamp(datasets.provenance.last_recorded_at)
    document = json.loads(first)
    assert document["datasetJSONCreationDateTime"] == document["dbLastModifiedDateTime"] == stamp


@pytest.mark.parametrize("stem", STEMS)
def test_oids_names_and_lengths_are_define_xml_s(datasets: AnalysisDatasets, stem: str) -> None:
    """Study, metadata version, item group and every item OID exist in define.xml, with the
    same name, and each text length equals its ItemDef Length."""
    root = define_document(datasets)
    document = json.loads(write(datasets, stem))
    study = root.find("odm:Study", NS)
    assert study is not None
    mdv = study.find("odm:MetaDataVersion", NS)
    assert mdv is not None
    assert (document["studyOID"], document["metaDataVersionOID"]) == (
        study.get("OID"), mdv.get("OID")
    )
    assert document["metaDataRef"] == DEFINE_NAME
    groups = {g.get("OID"): g for g in mdv.findall("odm:ItemGroupDef", NS)}
    assert groups[document["itemGroupOID"]].get("Name") == document["name"] == stem.upper()
    items = {i.get("OID"): i for i in mdv.findall("odm:ItemDef", NS)}
    for column in document["columns"]:
        item = items[column["itemOID"]]
        assert item.get("Name") == column["name"]
        if column["dataType"] == "string":
            assert int(item.get("Length", "0")) == column["length"], column["name"]
    refs = groups[document["itemGroupOID"]].findall("odm:ItemRef", NS)
    assert [r.get("ItemOID") for r in refs] == [c["itemOID"] for c in document["columns"]]
    keyed = {r.get("ItemOID"): int(r.get("KeySequence", "0")) for r in refs if r.get("KeySequence")}
    assert keyed == {c["itemOID"]: c["keySequence"] for c in document["columns"]
                     if "keySequence" in c}


@pytest.mark.parametrize("stem", STEMS)
def test_rows_hold_the_datasets_values(datasets: AnalysisDatasets, stem: str) -> None:
    """Each cell is the dataset's value in its column's JSON type; missing values are null."""
    table = datasets.tables[stem]
    document = json.loads(write(datasets, stem))
    columns = document["columns"]
    assert [c["name"] for c in columns] == [c.name for c in DATASET_COLUMNS[stem]]
    assert [c["label"] for c in columns] == [c.label for c in DATASET_COLUMNS[stem]]
    assert table.names == tuple(c["name"] for c in columns)
    for row, expected in zip(document["rows"], table.rows, strict=True):
        assert len(row) == len(columns)
        for value, column, want in zip(row, columns, expected, strict=True):
            if want is None:
                assert value is None, column["name"]
                continue
            assert isinstance(value, JSON_TYPES[column["dataType"]]), column["name"]
            if column["dataType"] == "date":
                assert date.fromisoformat(value) == want
            elif column["dataType"] == "float":
                assert value == pytest.approx(float(want), rel=1e-9)
            else:
                assert value == want, column["name"]


def test_v2_demographics_and_meddra_coding_reach_the_files(datasets: AnalysisDatasets) -> None:
    """ADSL carries AGE/SEX/RACE and ADAE AEDECOD/AEBODSYS from the demo's v2 envelopes."""
    for stem, names in (("adsl", ("AGE", "SEX", "RACE")), ("adae", ("AEDECOD", "AEBODSYS"))):
        document = json.loads(write(datasets, stem))
        positions = [[c["name"] for c in document["columns"]].index(n) for n in names]
        assert all(row[p] is not None for row in document["rows"] for p in positions)


# Column kind → the column metadata Dataset-JSON 1.1 gives it, row by row.
KINDS = [
    pytest.param("text", {"dataType": "string", "length": 3}, id="text: string with length"),
    pytest.param("int", {"dataType": "integer"}, id="int: integer"),
    pytest.param("float", {"dataType": "float"}, id="float: float"),
    pytest.param(
        "date",
        {"dataType": "date", "targetDataType": "integer", "displayFormat": "DATE9."},
        id="date: ADaM date (ISO text, integer target)",
    ),
]
VALUES = {"text": ["abc", None], "int": [3, None], "float": [2.5, None],
          "date": [date(2025, 1, 2), None]}
CREATED = datetime(2026, 5, 29, 18, 0, tzinfo=UTC)
SMALL_HEADER = DatasetJsonHeader(
    study_oid="ST.T",
    metadata_version_oid="MDV.T",
    define_path="define.xml",
    created=CREATED,
    software_version="0",
)


def small(column: Column, values: list[Any], keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A one-column dataset XX written to Dataset-JSON and read back."""
    table = Dataset((column,), tuple((value,) for value in values))
    return dict(json.loads(dataset_json_bytes(
        table, (column,), SMALL_HEADER, name="xx", label="Test", keys=keys,
    )))


@pytest.mark.parametrize(("kind", "metadata"), KINDS)
def test_column_metadata_follows_the_kind(kind: Any, metadata: dict[str, Any]) -> None:
    """Each column kind gets its Dataset-JSON data type (and target type and format for dates)."""
    document = small(Column("VAR", "Variable", kind), VALUES[kind], keys=("VAR",))
    (column,) = document["columns"]
    assert column == {"itemOID": "IT.XX.VAR", "name": "VAR", "label": "Variable",
                      **metadata, "keySequence": 1}
    assert document["rows"][1] == [None]


def test_empty_text_stays_empty_and_lengths_count_utf8_bytes() -> None:
    """"" is kept (not null); a text length is the longest value in UTF-8 bytes."""
    document = small(Column("TERM", "Term", "text"), ["", "Größe", None])
    assert document["rows"] == [[""], ["Größe"], [None]]
    assert document["columns"][0]["length"] == len("Größe".encode())


# A value that does not fit its column, and the error that names it, row by row.
BAD_VALUES = [
    pytest.param("text", 3, "XX.VAR: text variable holds 3", id="number in text"),
    pytest.param("int", 2.5, "XX.VAR: integer variable holds 2.5", id="fraction in integer"),
    pytest.param("int", "2", "XX.VAR: numeric variable holds '2'", id="string in integer"),
    pytest.param("float", True, "XX.VAR: numeric variable holds True", id="boolean in float"),
    pytest.param("float", float("inf"), "XX.VAR: numeric variable holds inf", id="infinity"),
    pytest.param("date", "2025-13-01", "XX.VAR: date variable holds '2025-13-01'",
                 id="impossible date"),
]


@pytest.mark.parametrize(("kind", "value", "message"), BAD_VALUES)
def test_a_value_that_does_not_fit_is_refused_naming_the_variable(
    kind: Any, value: object, message: str
) -> None:
    """The writer refuses with a one-line error naming dataset and variable."""
    with pytest.raises(ValueError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        small(Column("VAR", "Variable", kind), [value])


def test_a_column_missing_from_the_data_is_refused() -> None:
    """A variable of the column table absent from the dataset is named, nothing written."""
    data = Dataset((Column("VAR", "Variable", "int"),), ((1,),))
    with pytest.raises(ValueError, match=r"^XX\.OTHER: variable not in the data$"):
        dataset_json_bytes(
            data, (Column("OTHER", "Other", "int"),), SMALL_HEADER,
            name="xx", label="Test",
        )
