"""define.xml beside every export: schema-valid Define-XML 2.1 that matches the files written."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest

from ledger.demo import run_demo
from ledger.ledger_reader import LedgerReader
from ledger.projections.dataset_columns import DATASET_COLUMNS
from ledger.projections.datasets import build_datasets
from ledger.projections.define_xml import DEFINE_NAME, validate_define_xml
from ledger.projections.export import MANIFEST_NAME, write_datasets
from tests.builders import TRIAL_ID
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


def test_schema_validation_is_real_and_catches_a_broken_document(exported: Path) -> None:
    """The XSD is odmlib's packaged Define-XML 2.1 schema (never skipped: a missing file is an
    error), and a document that breaks it is reported: an ItemDef without its DataType, an
    unknown def: attribute, a CodeListItem without CodedValue."""
    from odmlib.schema_manager import get_schema_path

    assert Path(get_schema_path("define", "2.1")).is_file()
    good = (exported / DEFINE_NAME).read_bytes()
    for broken in (
        re.sub(rb'(<ItemDef [^>]*?) DataType="[a-z]+"', rb"\1", good, count=1),
        good.replace(b'def:DefineVersion="2.1.0"', b'def:DefineVersion="2.1.0" def:Bogus="1"', 1),
        re.sub(rb'CodedValue="[^"]*"', b"", good, count=1),
    ):
        assert broken != good
        assert validate_define_xml(broken) != []


# --- define.xml against the files written, every ItemDef --------------------------------------


@dataclass(frozen=True)
class WrittenDataset:
    """One file read back: its variables in order, their labels (None in CSV), their values
    (None for missing) and, in XPT, each variable's SAS format."""

    columns: list[str]
    labels: dict[str, str] | None
    values: dict[str, list[Any]]
    formats: dict[str, str]


def _read_back(path: Path, fmt: str) -> WrittenDataset:
    if fmt == "csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return WrittenDataset(
            list(frame.columns), None,
            {c: [v if v != "" else None for v in frame[c]] for c in frame.columns}, {},
        )
    if fmt == "json":
        document = json.loads(path.read_text(encoding="utf-8"))
        names = [c["name"] for c in document["columns"]]
        return WrittenDataset(
            names, {c["name"]: c["label"] for c in document["columns"]},
            {n: [row[i] for row in document["rows"]] for i, n in enumerate(names)}, {},
        )
    frame, meta = pyreadstat.read_xport(str(path), encoding="utf-8",
                                        disable_datetime_conversion=True)
    values = {
        str(c): [None if v == "" or (isinstance(v, float) and math.isnan(v)) else v
                 for v in frame[c]]
        for c in frame.columns
    }
    return WrittenDataset(
        list(values), dict(meta.column_names_to_labels), values,
        dict(meta.original_variable_types),
    )


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The seed-12 demo (envelope v2: SEX, RACE, MedDRA terms filled) cut off mid-study."""
    run = run_demo(tmp_path_factory.mktemp("demo"), seed=12)
    with LedgerReader(run.store) as service:
        return build_datasets(service.entries(TRIAL_ID), as_of=None, cutoff=date(2026, 6, 30))


@pytest.mark.parametrize("fmt", ["csv", "xpt", "json"])
def test_every_item_def_matches_the_written_datasets(
    demo_datasets: Any, tmp_path: Path, fmt: str
) -> None:
    """For each dataset file: the ItemRefs are its variables in order; each ItemDef has the
    file's label, a data type its values have, a length no value exceeds, DATE9. on XPT dates;
    each coded value (value level too: per PARAMCD) is a term of its codelist."""
    write_datasets(demo_datasets, fmt=fmt, out=tmp_path, software_version="test")
    root = ET.parse(tmp_path / DEFINE_NAME).getroot()
    assert validate_define_xml((tmp_path / DEFINE_NAME).read_bytes()) == []
    items = {i.get("OID"): i for i in root.iter(f"{{{NS['odm']}}}ItemDef")}
    terms = {
        c.get("OID"): {i.get("CodedValue") for i in c.findall("odm:CodeListItem", NS)}
        for c in root.iter(f"{{{NS['odm']}}}CodeList")
    }
    value_lists = {v.get("OID"): v for v in root.iter(f"{{{NS['def']}}}ValueListDef")}
    where_paramcd = {
        w.get("OID"): w.findtext("odm:RangeCheck/odm:CheckValue", None, NS)
        for w in root.iter(f"{{{NS['def']}}}WhereClauseDef")
    }
    groups = root.findall(".//odm:ItemGroupDef", NS)
    assert [g.get("Name") for g in groups] == ["ADSL", "ADTTE", "ADRS", "ADAE"]
    checked = 0
    for group in groups:
        leaf = group.find("def:leaf", NS)
        assert leaf is not None
        written = _read_back(tmp_path / str(leaf.get(XLINK_HREF)), fmt)
        refs = [items[str(r.get("ItemOID"))] for r in group.findall("odm:ItemRef", NS)]
        assert [i.get("Name") for i in refs] == written.columns
        paramcd = written.values.get("PARAMCD")
        for item in refs:
            name = str(item.get("Name"))
            values = written.values[name]
            if written.labels is not None:
                assert item.findtext("odm:Description/odm:TranslatedText", None, NS) == (
                    written.labels[name]
                )
            _assert_type(item, values, fmt, written.formats.get(name))
            codelist = item.find("odm:CodeListRef", NS)
            if codelist is not None:
                _assert_coded(name, values, terms[codelist.get("CodeListOID")])
            value_list_ref = item.find("def:ValueListRef", NS)
            if value_list_ref is None:
                continue
            assert paramcd is not None
            for ref in value_lists[value_list_ref.get("ValueListOID")].findall("odm:ItemRef", NS):
                where = ref.find("def:WhereClauseRef", NS)
                assert where is not None
                code = where_paramcd[where.get("WhereClauseOID")]
                subset = [v for v, p in zip(values, paramcd, strict=True) if p == code]
                assert subset, f"{name} where PARAMCD = {code}: no such rows"
                vl_item = items[str(ref.get("ItemOID"))]
                _assert_type(vl_item, subset, fmt, written.formats.get(name))
                vl_codelist = vl_item.find("odm:CodeListRef", NS)
                if vl_codelist is not None:
                    _assert_coded(f"{name}.{code}", subset,
                                  terms[vl_codelist.get("CodeListOID")])
            checked += 1
    assert checked >= 4  # ADTTE AVAL, CNSR; ADRS AVALC, AVAL


XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def _assert_type(item: ET.Element, values: list[Any], fmt: str, sas_format: str | None) -> None:
    """The ItemDef's DataType/Length/DisplayFormat hold for every present value."""
    name, data_type = item.get("Name"), item.get("DataType")
    present = [v for v in values if v is not None]
    if data_type == "text":
        longest = max((len(str(v).encode("utf-8")) for v in present), default=0)
        assert longest <= int(str(item.get("Length"))), name
        assert all(isinstance(v, str) for v in present), name
    elif item.get(f"{{{NS['def']}}}DisplayFormat") == "DATE9.":
        assert fmt == "xpt" and sas_format is not None and sas_format.startswith("DATE9"), name
        assert all(float(v).is_integer() for v in present), name
    elif data_type == "date":
        assert all(date.fromisoformat(str(v)) for v in present), name
    elif data_type == "integer":
        assert all(float(v).is_integer() for v in present), name
        digits = max((len(str(abs(int(float(v)))))  for v in present), default=0)
        assert digits <= int(str(item.get("Length"))), name
    else:
        assert data_type == "float", name
        assert all(not math.isnan(float(v)) for v in present), name


def _assert_coded(name: str, values: list[Any], codes: set[str | None]) -> None:
    """Text is compared as written; numbers (XPT doubles, CSV text) as whole numbers."""
    for value in values:
        if value is None:
            continue
        text = value if isinstance(value, str) and value in codes else str(int(float(value)))
        assert text in codes, f"{name}: {value!r} is not a term of its codelist"


def test_sex_and_race_codelists_carry_their_nci_codes(demo_datasets: Any, tmp_path: Path) -> None:
    """NY (C66742), AGEU (C66781), SEX (C66731) and RACE (C74457) refer to CDISC CT by NCI code,
    each term with its own code; the demo's values are among them."""
    write_datasets(demo_datasets, fmt="xpt", out=tmp_path, software_version="test")
    root = ET.parse(tmp_path / DEFINE_NAME).getroot()
    standard = root.find(".//def:Standard[@Type='CT']", NS)
    assert standard is not None and standard.get("Name") == "CDISC/NCI"
    expected = {
        "NY": ("C66742", {"N": "C49487", "Y": "C49488"}),
        "AGEU": ("C66781", {"YEARS": "C29848"}),
        "SEX": ("C66731", {"F": "C16576", "M": "C20197"}),
        "RACE": ("C74457", {"ASIAN": "C41260", "WHITE": "C41261",
                            "BLACK OR AFRICAN AMERICAN": "C16352"}),
    }
    for name, (code, term_codes) in expected.items():
        codelist = root.find(f".//odm:CodeList[@OID='CL.{name}']", NS)
        assert codelist is not None
        assert codelist.get(f"{{{NS['def']}}}StandardOID") == standard.get("OID")
        alias = codelist.find("odm:Alias", NS)
        assert alias is not None and (alias.get("Context"), alias.get("Name")) == (
            "nci:ExtCodeID", code
        )
        items = {i.get("CodedValue"): i for i in codelist.findall("odm:CodeListItem", NS)}
        for term, term_code in term_codes.items():
            term_alias = items[term].find("odm:Alias", NS)
            assert term_alias is not None and term_alias.get("Name") == term_code
        if name in ("SEX", "RACE"):
            used = set(demo_datasets.adsl[name].dropna())
            assert used and used <= set(items), name


def test_paramcd_avalc_evntdesc_and_cnsdtdsc_codelists_say_what_codes_mean(
    exported: Path,
) -> None:
    """PARAMCD decodes to the parameter, ADRS AVALC to the response, each EVNTDESC and CNSDTDSC
    term is decoded, and every derived variable points at a MethodDef that exists."""
    root = ET.parse(exported / DEFINE_NAME).getroot()

    def decodes(oid: str) -> dict[str | None, str | None]:
        codelist = root.find(f".//odm:CodeList[@OID='{oid}']", NS)
        assert codelist is not None, oid
        return {
            i.get("CodedValue"): i.findtext("odm:Decode/odm:TranslatedText", None, NS)
            for i in codelist.findall("odm:CodeListItem", NS)
        }

    assert decodes("CL.PARAMCD_ADTTE")["PFS"] == "Progression-Free Survival (days)"
    assert decodes("CL.PARAMCD_ADRS")["CBOR"] == "Best Overall Response (confirmed)"
    assert decodes("CL.AVALC_ADRS")["PR"] == "Partial response"
    assert decodes("CL.EVNTDESC")["Disease progression"] == "Event: disease progression"
    assert all(decodes("CL.CNSDTDSC").values())
    methods = {m.get("OID") for m in root.iter(f"{{{NS['odm']}}}MethodDef")}
    refs = [r.get("MethodOID") for r in root.iter(f"{{{NS['odm']}}}ItemRef") if r.get("MethodOID")]
    assert refs and set(refs) <= methods
