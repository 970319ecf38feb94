"""define.xml value-level metadata: what AVAL, AVALC and CNSR mean for each PARAMCD.

A parameter-structured dataset's AVAL means something else per parameter (days to progression,
a response code, a yes/no); Define-XML 2.1 says so with a ``def:ValueListDef`` per such variable,
one ``ItemRef`` per parameter present in the file, each tied to a ``def:WhereClauseDef``
(``PARAMCD EQ <code>``) and to its own ``ItemDef`` (type, length and codelist of that parameter's
values). Which variables vary by which parameter, and their codelists, is the table
:data:`VALUE_LEVEL` below; the parameters listed are those the file holds, in PARAMN order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from odmlib.define_2_1 import model as odm

from ledger.projections.dataset_columns import _ADRS_PARAMN, _ADTTE_PARAMN, Column
from ledger.projections.dataset_table import Dataset

__all__ = ["VALUE_LEVEL", "ValueLevel", "value_level_metadata"]

_RESPONSES: Final = ("OVR", "BOR", "CBOR")
_YES_NO: Final = ("RSP", "CRSP")

VALUE_LEVEL: Final[Mapping[str, Mapping[str, Mapping[str, str | None]]]] = {
    "adtte": {
        "AVAL": dict.fromkeys(_ADTTE_PARAMN),
        "CNSR": dict.fromkeys(_ADTTE_PARAMN, "CNSR"),
    },
    "adrs": {
        "AVALC": {**dict.fromkeys(_RESPONSES, "RESPONSE"), **dict.fromkeys(_YES_NO, "NY")},
        "AVAL": {**dict.fromkeys(_RESPONSES, "AVAL_RESPONSE"),
                 **dict.fromkeys(_YES_NO, "AVAL_NY")},
    },
}
"""Dataset → variable → PARAMCD → the codelist of its values there (None: not coded).
The PARAMCDs are in PARAMN order."""

_PARAMN: Final[Mapping[str, Mapping[str, int]]] = {"adtte": _ADTTE_PARAMN, "adrs": _ADRS_PARAMN}
assert all(
    list(by_param) == list(_PARAMN[stem]) for stem, variables in VALUE_LEVEL.items()
    for by_param in variables.values()
), "VALUE_LEVEL lists every parameter of its dataset, in PARAMN order"


@dataclass(slots=True)
class ValueLevel:
    """The value-level metadata of one export: elements to add to the MetaDataVersion."""

    value_lists: list[Any] = field(default_factory=list)
    where_clauses: list[Any] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    codelists: list[str] = field(default_factory=list)
    """Codelists the value-level items refer to, in first-use order."""


DataTypeOf = Callable[[Column, Sequence[Any]], dict[str, Any]]
"""define_xml's data type and length of a column's (present) values."""


class DatasetTable(Protocol):
    """One exported dataset: its stem, variables (file order) and rows (define_xml's table)."""

    @property
    def stem(self) -> str: ...
    @property
    def columns(self) -> Sequence[Column]: ...
    @property
    def table(self) -> Dataset: ...


def value_level_metadata(
    table: DatasetTable,
    parent_items: Mapping[str, Any],
    data_type: DataTypeOf,
    describe: Callable[[str], Any],
    into: ValueLevel,
) -> None:
    """Add the value lists of one dataset to ``into`` and point its parent ``ItemDef``s at them.

    ``parent_items``: the dataset's ItemDefs by OID; ``data_type``: a column's type and length
    from its values; ``describe``: text → a define ``Description``.
    """
    stem, columns, data = table.stem, table.columns, table.table
    variables = VALUE_LEVEL.get(stem)
    if not variables or "PARAMCD" not in data.names or not len(data):
        return
    name = stem.upper()
    present = {str(code) for code in data.present("PARAMCD")}
    by_name = {c.name: c for c in columns}
    for variable, by_param in variables.items():
        params = [code for code in by_param if code in present]
        if not params or variable not in by_name:
            continue
        column = by_name[variable]
        value_list = odm.ValueListDef(OID=f"VL.{name}.{variable}")
        for order, paramcd in enumerate(params, start=1):
            values = data.where("PARAMCD", paramcd).values(variable)
            present_values = [v for v in values if v is not None]
            where_oid = f"WC.{name}.PARAMCD.{paramcd}"
            if where_oid not in {w.OID for w in into.where_clauses}:
                into.where_clauses.append(_where_paramcd(name, paramcd, where_oid))
            item_oid = f"IT.{name}.{variable}.{paramcd}"
            ref = odm.ItemRef(
                ItemOID=item_oid, OrderNumber=order,
                Mandatory="Yes" if len(present_values) == len(values) else "No",
            )
            if column.origin == "Derived":
                ref.MethodOID = f"MT.{name}.{variable}"
            ref.WhereClauseRef.append(odm.WhereClauseRef(WhereClauseOID=where_oid))
            value_list.ItemRef.append(ref)
            item = odm.ItemDef(
                OID=item_oid, Name=variable, SASFieldName=variable,
                Description=describe(f"{column.label} where PARAMCD = {paramcd}"),
                **data_type(column, present_values),
            )
            codelist = by_param[paramcd]
            if codelist is not None:
                item.CodeListRef = odm.CodeListRef(CodeListOID=f"CL.{codelist}")
                if codelist not in into.codelists:
                    into.codelists.append(codelist)
            item.Origin.append(odm.Origin(Type=column.origin, Source="Sponsor"))
            into.items.append(item)
        into.value_lists.append(value_list)
        parent_items[f"IT.{name}.{variable}"].ValueListRef = odm.ValueListRef(
            ValueListOID=value_list.OID
        )


def _where_paramcd(dataset: str, paramcd: str, oid: str) -> Any:
    check = odm.RangeCheck(Comparator="EQ", SoftHard="Soft", ItemOID=f"IT.{dataset}.PARAMCD")
    check.CheckValue.append(odm.CheckValue(_content=paramcd))
    where = odm.WhereClauseDef(OID=oid)
    where.RangeCheck.append(check)
    return where
