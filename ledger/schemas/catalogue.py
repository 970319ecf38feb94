"""The rules of the submission envelope (contract §1, §2, §9), as the one table both the parser
and the published JSON Schema are made from.

Field by field (the checks are in `values`, the shapes below):

- `event_id`, `target_event_id`: a UUID, canonical lowercase hyphenated (`UUID_PATTERN`).
- `type`: one of the catalogue; `schema_version`: the integer 1 or 2 (`SCHEMA_VERSIONS`), any
  other integer is UNSUPPORTED_SCHEMA_VERSION.
- identifiers (`trial_id`, `subject_id`, `source`, `entered_by`, `ae_id`, `lesion_id`,
  `cohort`): `ID_PATTERN`, ASCII letters and digits then also `.`, `_`, `-`; 1–64 characters.
- clinical dates (`occurred_on`, a correction's `occurred_on`): `YYYY-MM-DD`, a real day from
  2000-01-01 to 2099-12-31, no time part; not after the day the ledger records it
  (OCCURRED_IN_FUTURE). `birth_date` (v2): a real day from 1900-01-01 to 2099-12-31.
- free text (`reason`, `term`, `therapy`, `cause`, `meddra_pt`, `meddra_soc`): 1–200
  characters; no C0/C1 control, zero-width, bidi, private-use, surrogate or tag characters; no
  leading or trailing space; stored NFC-normalised.
- `subject_id` is required (not null) for every type but `record.corrected`/`record.voided`;
  `reason` is required (not null) for those two.
- `cycle` integer 1–100; `oxaliplatin_mg_m2` 0–200 and `fluorouracil_mg_m2` 0–5000 mg/m²
  (protocol: 85 and 2000); `dose_mg` in (0, 50] mg (protocol: 3, 4, 5); `grade` integer 1–5
  (CTCAE v5); `diameter_mm` in [0, 1000) mm or null (not measured); at most 5 target lesions,
  their ids unique within an assessment.
- v2 baseline: exactly one of `birth_date` and `age` (integer 0–120); `sex` CDISC SEX
  (`SEXES`); `race` CDISC RACE (`RACES`); `ecog` integer 0–4; `weight_kg` 10–400;
  `height_cm` 50–250.
- booleans are `true`/`false` only; numbers are JSON numbers only (never strings); 3.0 is
  the integer 3, as JSON Schema reads it; every object has exactly its fields.

Version 2 adds baseline characteristics to `subject.enrolled` (required there) and optional MedDRA
coding to `adverse_event.reported`; every other type reads the same in both versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    ADVERSE_EVENT_UPDATED,
    AMENDMENT_TYPES,
    ANTICANCER_THERAPY_STARTED,
    CLINICAL_FACT_TYPES,
    DLT_ADJUDICATED,
    DOSE_MODIFIED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    RECORD_CORRECTED,
    RECORD_VOIDED,
    SUBJECT_ALIVE,
    SUBJECT_DIED,
    SUBJECT_ENROLLED,
    SUBJECT_WITHDRAWN,
    SUBMISSION_TYPES,
    TREATMENT_DISCONTINUED,
    TUMOR_ASSESSED,
)
from ledger.aggregates.rejections import ReasonCode
from ledger.schemas.values import (
    BIRTH_DATE_PATTERN,
    RuleViolationError,
    Shape,
    Slot,
    Value,
    any_of,
    array,
    boolean,
    day,
    identifier,
    integer,
    nullable,
    number,
    one_of,
    show,
    text,
    uuid,
)

SCHEMA_VERSIONS = (1, 2)

SEXES = ("F", "M", "U", "UNDIFFERENTIATED")
RACES = (
    "AMERICAN INDIAN OR ALASKA NATIVE",
    "ASIAN",
    "BLACK OR AFRICAN AMERICAN",
    "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
    "WHITE",
    "MULTIPLE",
    "OTHER",
    "NOT REPORTED",
    "UNKNOWN",
)

# Rules the parser enforces that JSON Schema cannot express: the only places the published
# schema and the ledger may disagree (tests/test_schema_agreement.py holds them to it).
NOT_IN_JSON_SCHEMA = {
    "DUPLICATE_KEY": "a JSON object with the same key twice (JSON parsers keep the last)",
    "TOO_LARGE": "more than MAX_SUBMISSION_BYTES bytes (e.g. a valid document padded with spaces)",
    "NUMBER_TOO_LONG": "a number literal longer than MAX_NUMBER_CHARS characters",
    "OCCURRED_IN_FUTURE": "occurred_on after the day the ledger records it",
    "LESION_ID_REPEATED": "two target lesions with the same lesion_id in one assessment",
}


def _dose() -> Value:
    return number(above=0, maximum=50, unit="mg")


def _lesions_unique(data: dict[str, Any], where: str) -> None:
    ids = [lesion["lesion_id"] for lesion in data["target_lesions"]]
    if len(set(ids)) != len(ids):
        raise RuleViolationError(
            f"{where}.target_lesions: lesion ids must be unique in an assessment"
        )


_LESION = Shape(
    {
        "lesion_id": Slot(identifier()),
        "diameter_mm": Slot(nullable(number(minimum=0, below=1000, unit="mm"))),
        "nodal": Slot(boolean()),
    }
)
_ADVERSE_EVENT = {
    "ae_id": Slot(identifier()),
    "term": Slot(text()),
    "grade": Slot(integer(1, 5)),
    "serious": Slot(boolean()),
    "related": Slot(boolean()),
}
_BASELINE = {
    "birth_date": Slot(day(BIRTH_DATE_PATTERN, "1900-01-01 to 2099-12-31"), False, fill=False),
    "age": Slot(integer(0, 120), False, fill=False),
    "sex": Slot(one_of(*SEXES)),
    "race": Slot(one_of(*RACES)),
    "ecog": Slot(integer(0, 4)),
    "weight_kg": Slot(number(minimum=10, maximum=400, unit="kg")),
    "height_cm": Slot(number(minimum=50, maximum=250, unit="cm")),
}

# The `data` of every clinical type, version 1.
_CLINICAL_V1: dict[str, Shape] = {
    SUBJECT_ENROLLED: Shape({"cohort": Slot(identifier())}),
    HAIC_ADMINISTERED: Shape(
        {
            "cycle": Slot(integer(1, 100)),
            "oxaliplatin_mg_m2": Slot(number(minimum=0, maximum=200, unit="mg/m2")),
            "fluorouracil_mg_m2": Slot(number(minimum=0, maximum=5000, unit="mg/m2")),
        }
    ),
    FRUQUINTINIB_DOSED: Shape({"dose_mg": Slot(_dose())}),
    DOSE_MODIFIED: Shape({"dose_mg": Slot(_dose())}),
    ADVERSE_EVENT_REPORTED: Shape(_ADVERSE_EVENT),
    ADVERSE_EVENT_UPDATED: Shape(
        {
            "ae_id": Slot(identifier()),
            "grade": Slot(nullable(integer(1, 5)), required=False),
            "resolved": Slot(nullable(boolean()), required=False),
        }
    ),
    DLT_ADJUDICATED: Shape({"ae_id": Slot(identifier()), "dlt": Slot(boolean())}),
    TUMOR_ASSESSED: Shape(
        {
            "baseline": Slot(boolean()),
            "target_lesions": Slot(array(_LESION.as_value(), max_items=5)),
            "non_target": Slot(one_of("NONE", "CR", "NON_CR_NON_PD", "PD", "NE")),
            "new_lesions": Slot(boolean()),
            "investigator_response": Slot(
                nullable(one_of("CR", "PR", "SD", "PD", "NE")), required=False
            ),
        },
        after=_lesions_unique,
    ),
    ANTICANCER_THERAPY_STARTED: Shape({"therapy": Slot(text())}),
    TREATMENT_DISCONTINUED: Shape(
        {
            "reason": Slot(
                one_of("progression", "toxicity", "withdrawal", "investigator_decision", "other")
            )
        }
    ),
    SUBJECT_ALIVE: Shape({}),
    SUBJECT_DIED: Shape({"cause": Slot(nullable(text()), required=False)}),
    SUBJECT_WITHDRAWN: Shape({"reason": Slot(one_of("consent_withdrawn", "lost_to_follow_up"))}),
}
# Version 2: what §9 adds; every other type as in version 1.
_CLINICAL_V2: dict[str, Shape] = {
    **_CLINICAL_V1,
    SUBJECT_ENROLLED: Shape(
        {"cohort": Slot(identifier()), **_BASELINE}, exactly_one=("birth_date", "age")
    ),
    ADVERSE_EVENT_REPORTED: Shape(
        {
            **_ADVERSE_EVENT,
            "meddra_pt": Slot(text(), required=False, fill=False),
            "meddra_soc": Slot(text(), required=False, fill=False),
        }
    ),
}


def _clinical(version: int) -> dict[str, Shape]:
    return _CLINICAL_V1 if version == 1 else _CLINICAL_V2


# Every distinct clinical data shape, by `$defs` name: what a correction's `data` may be.
CLINICAL_DEFS: dict[str, Shape] = {}
for _version in SCHEMA_VERSIONS:
    for _type, _shape in _clinical(_version).items():
        if all(_shape is not known for known in CLINICAL_DEFS.values()):
            CLINICAL_DEFS[f"{_type}.v{_version}"] = _shape


def def_name(event_type: str, version: int) -> str:
    """The `$defs` key of a type's data in a version (named for the version it appeared in)."""
    shape = shape_of(event_type, version)
    return next(
        (name for name, known in CLINICAL_DEFS.items() if known is shape), f"{event_type}.v1"
    )


_AMENDMENT_SHAPES: dict[str, Shape] = {
    RECORD_CORRECTED: Shape(
        {
            "target_event_id": Slot(uuid()),
            "data": Slot(
                any_of(
                    {f"#/$defs/{name}": shape.as_value() for name, shape in CLINICAL_DEFS.items()},
                    "the data of any event type",
                )
            ),
            "occurred_on": Slot(nullable(day()), required=False),
        }
    ),
    RECORD_VOIDED: Shape({"target_event_id": Slot(uuid())}),
}


def shape_of(event_type: str, version: int) -> Shape:
    """The shape of `data` for a type in a supported version."""
    return _clinical(version).get(event_type) or _AMENDMENT_SHAPES[event_type]


def corrected_shapes(event_type: str) -> list[Shape]:
    """The shapes a correction of a `event_type` record may carry: any version's."""
    shapes: list[Shape] = []
    for version in SCHEMA_VERSIONS:
        shape = _clinical(version)[event_type]
        if all(shape is not known for known in shapes):
            shapes.append(shape)
    return shapes


def _schema_version() -> Value:
    whole = integer(-(2**63), 2**63)

    def check(value: Any, where: str) -> int:
        number_value: int = whole.check(value, where)
        if number_value not in SCHEMA_VERSIONS:
            raise RuleViolationError(
                f"{where}: {show(number_value)} is not supported; this ledger reads "
                f"{' and '.join(str(v) for v in SCHEMA_VERSIONS)}",
                ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
            )
        return number_value

    return Value({"type": "integer", "enum": list(SCHEMA_VERSIONS)}, check)


ENVELOPE = Shape(
    {
        "event_id": Slot(uuid()),
        "type": Slot(one_of(*SUBMISSION_TYPES)),
        "schema_version": Slot(_schema_version()),
        "trial_id": Slot(identifier()),
        "subject_id": Slot(nullable(identifier()), required=False),
        "occurred_on": Slot(day()),
        "source": Slot(identifier()),
        "entered_by": Slot(identifier()),
        "reason": Slot(nullable(text()), required=False),
        "data": Slot(Value({"type": "object"}, lambda value, where: value)),
    }
)
SUBJECT_TYPES = CLINICAL_FACT_TYPES
AMENDMENTS = AMENDMENT_TYPES
VERSIONED: Mapping[tuple[str, int], Shape] = {
    (event_type, version): shape_of(event_type, version)
    for event_type in SUBMISSION_TYPES
    for version in SCHEMA_VERSIONS
}
