"""The one published JSON Schema (2020-12) of the submission envelope, every type and version.

Made from the same table the parser runs (`catalogue`), so what it says is what the ledger
does; the only differences are the rules JSON Schema cannot express
(`catalogue.NOT_IN_JSON_SCHEMA`). Standard validators (Python `jsonschema`, JavaScript `ajv`
with its default Unicode regular expressions) use it as it is.
"""

from __future__ import annotations

from typing import Any

from ledger.aggregates.facts import AMENDMENT_TYPES, SUBMISSION_TYPES
from ledger.schemas.catalogue import (
    CLINICAL_DEFS,
    ENVELOPE,
    NOT_IN_JSON_SCHEMA,
    SCHEMA_VERSIONS,
    def_name,
    shape_of,
)
from ledger.schemas.values import identifier, text

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:trial-ledger:schema:submission"


def submission_json_schema(event_type: str | None = None) -> dict[str, Any]:
    """The envelope of every type and version, or of `event_type` alone, as one document."""
    if event_type is not None and event_type not in SUBMISSION_TYPES:
        raise ValueError(f"no event type {event_type!r}; types: {', '.join(SUBMISSION_TYPES)}")
    envelope = ENVELOPE.schema()
    defs: dict[str, Any] = {name: shape.schema() for name, shape in CLINICAL_DEFS.items()}
    for amendment in AMENDMENT_TYPES:
        defs[def_name(amendment, 1)] = shape_of(amendment, 1).schema()
    by_type_and_version = [
        {
            "if": {
                "properties": {
                    "type": {"const": kind},
                    "schema_version": {"const": version},
                },
                "required": ["type", "schema_version"],
            },
            "then": {"properties": {"data": {"$ref": f"#/$defs/{def_name(kind, version)}"}}},
        }
        for kind in SUBMISSION_TYPES
        for version in SCHEMA_VERSIONS
    ]
    who_and_why = {
        "if": {"properties": {"type": {"enum": list(AMENDMENT_TYPES)}}, "required": ["type"]},
        "then": {"required": ["reason"], "properties": {"reason": dict(text().schema)}},
        "else": {
            "required": ["subject_id"],
            "properties": {"subject_id": dict(identifier().schema)},
        },
    }
    document: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID if event_type is None else f"{SCHEMA_ID}:{event_type}",
        "title": "trial-ledger submission" + (f": {event_type}" if event_type else ""),
        "description": (
            "One submission envelope (contract §1, §2, §9), schema_version 1 or 2. The ledger "
            "also refuses what JSON Schema cannot say: "
            + "; ".join(NOT_IN_JSON_SCHEMA.values())
            + "."
        ),
        **envelope,
        "allOf": [*by_type_and_version, who_and_why],
        "$defs": defs,
    }
    if event_type is not None:
        document["allOf"].insert(0, {"properties": {"type": {"const": event_type}}})
    return document
