"""define.xml (CDISC Define-XML 2.1) for the exported datasets, built with ``odmlib``.

One document describes what one export wrote: each dataset (``ItemGroupDef`` with its ADaM class,
structure, keys and file), each variable (``ItemDef``: name, label, data type, length, display
format, origin, codelist), each codelist (``CodeList``: PARAMCD, AVALC, CNSR with the meaning of
each code, the flags, …) and each derivation (``MethodDef``). Everything comes from the column
tables of :mod:`ledger.projections.datasets`, so the files and their metadata cannot drift apart;
continuation variables of long text (``AETERM1``, …) that the transport files gained are listed
after their base variable.

Data types follow the file format: in SAS transport files a date is a number with ``DATE9.``
(``integer`` with that display format); in CSV it is ISO 8601 text (``date``). Lengths are the
longest value written (bytes for text, digits for integers), at least 1.

The document is deterministic: its creation time is the ``recorded_at`` of the last ledger entry
read, never the wall clock. :func:`validate_define_xml` checks a document against the Define-XML
2.1 schema that ``odmlib`` ships.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from odmlib import ns_registry
from odmlib.define_2_1 import model as odm

from ledger.entries import format_timestamp
from ledger.projections.dataset_columns import CODELISTS, NCI_CODES, Column
from ledger.projections.dataset_table import Dataset
from ledger.projections.define_values import ValueLevel, value_level_metadata

__all__ = [
    "DEFINE_NAME",
    "DefineTable",
    "StudyInfo",
    "define_xml",
    "validate_define_xml",
]

DEFINE_NAME: Final = "define.xml"
_CT_STANDARD_OID: Final = "STD.CT.SDTM"
"""The CDISC controlled terminology the NCI-coded codelists (SEX, RACE) come from."""

_ADAM_CLASSES: Final[Mapping[str, tuple[str, str | None, str]]] = {
    "adsl": ("SUBJECT LEVEL ANALYSIS DATASET", None, "One record per subject"),
    "adtte": ("BASIC DATA STRUCTURE", "TIME-TO-EVENT", "One record per subject per parameter"),
    "adrs": ("BASIC DATA STRUCTURE", None,
             "One record per subject per parameter per analysis date"),
    "adae": ("OCCURRENCE DATA STRUCTURE", "ADVERSE EVENT", "One record per adverse event"),
}
_SOURCES: Final[Mapping[str, str]] = {"Collected": "Investigator", "Assigned": "Sponsor",
                                      "Derived": "Sponsor"}


@dataclass(frozen=True, slots=True)
class DefineTable:
    """One exported dataset as written: its stem, label, variables (file order), rows, file."""

    stem: str
    label: str
    columns: tuple[Column, ...]
    table: Dataset
    file_name: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StudyInfo:
    """The study and the export the document belongs to."""

    trial_id: str
    protocol_id: str
    protocol_version: str
    created: datetime
    software_version: str
    file_format: str
    extra_codelists: Mapping[str, tuple[tuple[str | int, str], ...]]
    """Protocol-specific codelists (DOSELVL, COHORT), value → decode."""


def define_xml(tables: Sequence[DefineTable], study: StudyInfo) -> bytes:
    """The Define-XML 2.1 document describing ``tables``, as UTF-8 bytes."""
    _register_namespaces()
    codelists = {**CODELISTS, **study.extra_codelists}
    mdv = odm.MetaDataVersion(
        OID=f"MDV.{study.trial_id}.ADAM",
        Name=f"{study.trial_id} ADaM datasets ({study.file_format})",
        Description=(
            f"Analysis datasets of {study.trial_id}, protocol {study.protocol_id} "
            f"v{study.protocol_version}, as exported by trial-ledger {study.software_version}."
        ),
        DefineVersion="2.1.0",
    )
    items: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    used_codelists: list[str] = []
    values = ValueLevel()
    for table in tables:
        group, table_items, table_methods = _item_group(table, study.file_format)
        mdv.ItemGroupDef.append(group)
        items.update(table_items)
        methods.update(table_methods)
        for column in table.columns:
            if column.codelist and column.codelist not in used_codelists:
                used_codelists.append(column.codelist)
        value_level_metadata(
            table, table_items,
            lambda column, present: _data_type(column, present, study.file_format),
            _description, values,
        )
    used_codelists.extend(c for c in values.codelists if c not in used_codelists)
    standards = [odm.Standard(OID="STD.ADAMIG", Name="ADaMIG", Type="IG", Version="1.3",
                              Status="Final")]
    if any(name in NCI_CODES for name in used_codelists):
        standards.append(odm.Standard(OID=_CT_STANDARD_OID, Name="CDISC/NCI", Type="CT",
                                      PublishingSet="SDTM", Version="2023-12-15",
                                      Status="Final"))
    mdv.Standards = odm.Standards(Standard=standards)
    mdv.ValueListDef.extend(values.value_lists)
    mdv.WhereClauseDef.extend(values.where_clauses)
    for item in (*items.values(), *values.items):
        mdv.ItemDef.append(item)
    for name in used_codelists:
        mdv.CodeList.append(_codelist(name, codelists[name]))
    for method in methods.values():
        mdv.MethodDef.append(method)

    study_element = odm.Study(
        OID=f"ST.{study.trial_id}",
        GlobalVariables=odm.GlobalVariables(
            StudyName=odm.StudyName(_content=study.trial_id),
            StudyDescription=odm.StudyDescription(
                _content=f"{study.trial_id}: protocol {study.protocol_id} "
                f"v{study.protocol_version}"
            ),
            ProtocolName=odm.ProtocolName(_content=study.protocol_id),
        ),
        MetaDataVersion=mdv,
    )
    stamp = format_timestamp(study.created).replace(".000000Z", "Z")
    root = odm.ODM(
        FileType="Snapshot",
        FileOID=f"DEFINE.{study.trial_id}.ADAM.{study.file_format.upper()}",
        CreationDateTime=stamp,
        ODMVersion="1.3.2",
        Originator="trial-ledger",
        SourceSystem="trial-ledger",
        SourceSystemVersion=study.software_version,
        Context="Submission",
        Study=study_element,
    )
    element = root.to_xml()
    assert element is not None  # the root call returns the element it built
    ET.indent(element)
    ns_registry.NamespaceRegistry().set_odm_namespace_attributes(element)  # type: ignore[no-untyped-call]
    return bytes(ET.tostring(element, encoding="UTF-8", xml_declaration=True))


def validate_define_xml(document: bytes) -> list[str]:
    """Problems found validating ``document`` against the Define-XML 2.1 schema ([] = valid)."""
    schema = _schema()
    tree = ET.fromstring(document)  # our own output
    return [str(error.reason or error) for error in schema.iter_errors(tree)]


@functools.cache
def _schema() -> Any:
    """The Define-XML 2.1 XSD shipped with odmlib, compiled once."""
    import xmlschema
    from odmlib.schema_manager import get_schema_path

    return xmlschema.XMLSchema(get_schema_path("define", "2.1"))


def _register_namespaces() -> None:
    """odmlib keeps namespaces in a process-wide registry: set the Define-XML 2.1 ones."""
    register = ns_registry.NamespaceRegistry
    register(prefix="odm", uri="http://www.cdisc.org/ns/odm/v1.3", is_default=True,  # type: ignore[no-untyped-call]
             is_reset=True)
    register(prefix="def", uri="http://www.cdisc.org/ns/def/v2.1")  # type: ignore[no-untyped-call]
    register(prefix="xlink", uri="http://www.w3.org/1999/xlink")  # type: ignore[no-untyped-call]


def _description(text: str) -> Any:
    return odm.Description(TranslatedText=[odm.TranslatedText(_content=text, lang="en")])


def _item_group(table: DefineTable, file_format: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    name = table.stem.upper()
    adam_class, sub_class, structure = _ADAM_CLASSES.get(
        table.stem, ("BASIC DATA STRUCTURE", None, "One record per subject per parameter")
    )
    group = odm.ItemGroupDef(
        OID=f"IG.{name}",
        Name=name,
        SASDatasetName=name,
        Repeating="No" if table.stem == "adsl" else "Yes",
        IsReferenceData="No",
        Purpose="Analysis",
        Structure=structure,
        StandardOID="STD.ADAMIG",
        ArchiveLocationID=f"LF.{name}",
        Description=_description(table.label),
    )
    group.Class = odm.Class(
        Name=adam_class,
        SubClass=[] if sub_class is None else [odm.SubClass(Name=sub_class)],
    )
    items: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    for order, column in enumerate(table.columns, start=1):
        oid = f"IT.{name}.{column.name}"
        ref = odm.ItemRef(
            ItemOID=oid,
            OrderNumber=order,
            Mandatory="Yes" if column.name in table.keys else "No",
        )
        if column.name in table.keys:
            ref.KeySequence = table.keys.index(column.name) + 1
        if column.origin == "Derived":
            method_oid = f"MT.{name}.{column.name}"
            ref.MethodOID = method_oid
            methods[method_oid] = odm.MethodDef(
                OID=method_oid,
                Name=f"Algorithm to derive {name}.{column.name}",
                Type="Computation",
                Description=_description(column.method or f"{column.label}."),
            )
        group.ItemRef.append(ref)
        items[oid] = _item(oid, column, table.table, file_format)
    group.leaf = odm.leaf(
        ID=f"LF.{name}",
        href=table.file_name,
        title=odm.title(_content=table.file_name),
    )
    return group, items, methods


def _item(oid: str, column: Column, data: Dataset, file_format: str) -> Any:
    values = data.present(column.name) if column.name in data.names else []
    item = odm.ItemDef(
        OID=oid,
        Name=column.name,
        SASFieldName=column.name,
        Description=_description(column.label),
        **_data_type(column, values, file_format),
    )
    if column.codelist:
        item.CodeListRef = odm.CodeListRef(CodeListOID=f"CL.{column.codelist}")
    origin = odm.Origin(Type=column.origin)
    if column.origin in _SOURCES:
        origin.Source = _SOURCES[column.origin]
    if column.origin == "Predecessor":
        origin.Description = _description(column.method or column.label)
    item.Origin.append(origin)
    return item


def _data_type(column: Column, values: Sequence[Any], file_format: str) -> dict[str, Any]:
    values = list(set(values))  # lengths and digits of each distinct value once
    if column.kind == "text":
        length = max((len(str(v).encode("utf-8")) for v in values), default=1)
        return {"DataType": "text", "Length": max(length, 1)}
    if column.kind == "date":
        if file_format == "xpt":
            return {"DataType": "integer", "Length": 8, "DisplayFormat": "DATE9."}
        return {"DataType": "date"}
    if column.kind == "int":
        digits = max((len(str(abs(int(v)))) + (int(v) < 0) for v in values), default=1)
        return {"DataType": "integer", "Length": digits}
    decimals = max((_decimals(float(v)) for v in values), default=0)
    whole = max((len(str(abs(int(float(v))))) for v in values), default=1)
    return {"DataType": "float", "Length": whole + decimals, "SignificantDigits": decimals}


def _decimals(value: float) -> int:
    text = f"{value:.10g}"
    if "e" in text or "." not in text:
        return 0
    return len(text.split(".", 1)[1])


def _codelist(name: str, entries: tuple[tuple[str | int, str], ...]) -> Any:
    is_integer = all(isinstance(value, int) for value, _ in entries)
    codelist = odm.CodeList(
        OID=f"CL.{name}",
        Name=name,
        DataType="integer" if is_integer else "text",
    )
    nci_code, term_codes = NCI_CODES.get(name, ("", {}))
    if nci_code:
        codelist.StandardOID = _CT_STANDARD_OID
    for order, (value, decode) in enumerate(entries, start=1):
        item = odm.CodeListItem(
            CodedValue=str(value),
            OrderNumber=order,
            Decode=odm.Decode(TranslatedText=[odm.TranslatedText(_content=decode, lang="en")]),
        )
        if str(value) in term_codes:
            item.Alias.append(odm.Alias(Context="nci:ExtCodeID", Name=term_codes[str(value)]))
        elif nci_code:
            item.ExtendedValue = "Yes"  # a sponsor term in the extensible CDISC codelist
        codelist.CodeListItem.append(item)
    if nci_code:
        codelist.Alias.append(odm.Alias(Context="nci:ExtCodeID", Name=nci_code))
    return codelist
