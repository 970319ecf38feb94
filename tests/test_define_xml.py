"""define.xml beside every export: schema-valid Define-XML 2.1 that matches the files written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pyreadstat
import pytest

from ledger.projections.datasets import DATASET_COLUMNS, build_datasets
from ledger.projections.define_xml import DEFINE_NAME, validate_define_xml
from ledger.projections.export import MANIFEST_NAME, write_datasets
from tests.test_datasets import censoring_trial

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}
KIND_TYPES = {
    "csv": {"text": "text", "date": "date", "int": "integer", "float": "float"},
    "xpt": {"text": "text", "date": "integer", "int": "integer", "float": "float"},
}


@pytest.fixture(scope="module", params=["csv", "xpt"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The censoring-table trial written in one format, define.xml included."""
    out = tmp_path_factory.mktemp(request.param)
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    write_datasets(datasets, fmt=request.param, out=out, software_version="test")
    return out


def _fmt(folder: Path) -> str:
    return str(json.loads((folder / MANIFEST_NAME).read_text())["format"])


def test_define_is_valid_against_the_define_xml_21_schema(exported: Path) -> None:
    """The document validates against the Define-XML 2.1 XSD shipped with odmlib."""
    assert validate_define_xml((exported / DEFINE_NAME).read_bytes()) == []


def test_define_names_every_variable_with_its_label_and_type(exported: Path) -> None:
    """Each dataset's ItemRefs list its variables in file order; each ItemDef has the label and
    the data type of its kind in that format."""
    root = ET.parse(exported / DEFINE_NAME).getroot()
    fmt = _fmt(exported)
    items = {i.get("OID"): i for i in root.iter(f"{{{NS['odm']}}}ItemDef")}
    for stem, columns in DATASET_COLUMNS.items():
        group = root.find(f".//odm:ItemGroupDef[@Name='{stem.upper()}']", NS)
        assert group is not None
        oids = [ref.get("ItemOID") for ref in group.findall("odm:ItemRef", NS)]
        assert oids == [f"IT.{stem.upper()}.{c.name}" for c in columns]
        leaf = group.find("def:leaf", NS)
        assert leaf is not None
        assert leaf.get("{http://www.w3.org/1999/xlink}href") == f"{stem}.{fmt}"
        for column in columns:
            item = items[f"IT.{stem.upper()}.{column.name}"]
            label = item.find("odm:Description/odm:TranslatedText", NS)
            assert label is not None and label.text == column.label
            assert item.get("DataType") == KIND_TYPES[fmt][column.kind]


def test_define_matches_the_transport_files(tmp_path: Path) -> None:
    """Every variable of every XPT file is described, with the label the file carries."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    write_datasets(datasets, fmt="xpt", out=tmp_path, software_version="test")
    root = ET.parse(tmp_path / DEFINE_NAME).getroot()
    for stem in DATASET_COLUMNS:
        _, meta = pyreadstat.read_xport(str(tmp_path / f"{stem}.xpt"), metadataonly=True)
        for name, label in meta.column_names_to_labels.items():
            item = root.find(f".//odm:ItemDef[@OID='IT.{stem.upper()}.{name}']", NS)
            assert item is not None, f"{stem}.{name} not in define.xml"
            text = item.find("odm:Description/odm:TranslatedText", NS)
            assert text is not None and text.text == label


def test_codelists_give_cnsr_codes_their_meaning(exported: Path) -> None:
    """CNSR's codelist decodes 0 as the event and each censoring code as its reason."""
    root = ET.parse(exported / DEFINE_NAME).getroot()
    codelist = root.find(".//odm:CodeList[@OID='CL.CNSR']", NS)
    assert codelist is not None
    decoded = {
        item.get("CodedValue"): item.findtext("odm:Decode/odm:TranslatedText", None, NS)
        for item in codelist.findall("odm:CodeListItem", NS)
    }
    assert decoded["0"] == "Event (disease progression or death)"
    assert decoded["1"] == "No baseline tumor assessment"


def test_define_is_listed_in_the_manifest_and_reproducible(tmp_path: Path) -> None:
    """define.xml is in manifest.json with its hash, and two exports give the same bytes."""
    datasets = build_datasets(censoring_trial().entries, as_of=None, cutoff=None)
    first = write_datasets(datasets, fmt="xpt", out=tmp_path / "a", software_version="test")
    write_datasets(datasets, fmt="xpt", out=tmp_path / "b", software_version="test")
    assert DEFINE_NAME in [f.name for f in first.files]
    first_bytes = (tmp_path / "a" / DEFINE_NAME).read_bytes()
    assert first_bytes == (tmp_path / "b" / DEFINE_NAME).read_bytes()
