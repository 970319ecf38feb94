"""The envelope's rules (ledger/schemas/catalogue.py), one row per rule, each trying a bad value.

Every refused row is refused by the parser with its reason code and by the published JSON Schema
too, unless its rule is one JSON Schema cannot express (`NOT_IN_JSON_SCHEMA`). Accepted rows pin
what the ledger stores (numbers, NFC text). Reading rows pin the byte-level limits.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ledger.aggregates.rejections import ReasonCode
from ledger.schemas.catalogue import ENVELOPE, NOT_IN_JSON_SCHEMA, VERSIONED
from ledger.schemas.jsontext import MAX_DEPTH, MAX_NUMBER_CHARS, MAX_SUBMISSION_BYTES
from ledger.schemas.submissions import (
    InvalidSubmissionError,
    parse_submission,
    submission_json_schema,
    to_domain,
    validate_corrected_data,
    wire_version,
)
from tests.fuzz.corpus import UUID, envelope

DELETE = object()
S = ReasonCode.SCHEMA_INVALID
LESION = ("data", "target_lesions", 0)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(submission_json_schema())


def _with(kind: str, version: int, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = envelope(kind, version)
    node: Any = document
    for step in path[:-1]:
        node = node[step]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = copy.deepcopy(value)
    return document


def row(
    kind: str,
    path: tuple[Any, ...],
    value: Any,
    code: ReasonCode = S,
    *,
    version: int = 1,
    rule: str,
) -> Any:
    return pytest.param(kind, version, path, value, code, id=rule)


ALIVE, AE, DOSE, TUMOR = (
    "subject.alive",
    "adverse_event.reported",
    "fruquintinib.dosed",
    "tumor.assessed",
)
ENROLLED, HAIC, CORRECTED, VOIDED = (
    "subject.enrolled",
    "haic.administered",
    "record.corrected",
    "record.voided",
)
BAD_TEXT = [
    ("a\x00b", "NUL"),
    ("a\tb", "tab (C0 control)"),
    ("a\x85b", "C1 control"),
    ("a\u202eb", "right-to-left override"),
    ("a\u2066b", "bidi isolate"),
    ("a\u200bb", "zero-width space"),
    ("a\u200db", "zero-width joiner"),
    ("\ufeffab", "byte order mark"),
    ("a\ue000b", "private use"),
    ("a\U000e0041b", "tag character"),
    ("a\udfffb", "lone surrogate"),
    (" ab", "leading space"),
    ("ab\u3000", "trailing ideographic space"),
    ("", "empty"),
    ("x" * 201, "201 characters"),
    (7, "a number"),
]

REFUSED = [
    # envelope: event_id
    row(ALIVE, ("event_id",), "evt-1", rule="event_id: not a UUID"),
    row(ALIVE, ("event_id",), UUID.upper(), rule="event_id: uppercase UUID"),
    row(ALIVE, ("event_id",), "{" + UUID + "}", rule="event_id: braced UUID"),
    row(ALIVE, ("event_id",), UUID.replace("-", ""), rule="event_id: UUID without hyphens"),
    row(ALIVE, ("event_id",), DELETE, rule="event_id: missing"),
    # type and schema_version
    row(ALIVE, ("type",), "subject.unknown", rule="type: not in the catalogue"),
    row(ALIVE, ("type",), DELETE, rule="type: missing"),
    row(ALIVE, ("schema_version",), True, rule="schema_version: boolean"),
    row(ALIVE, ("schema_version",), "1", rule="schema_version: string"),
    row(ALIVE, ("schema_version",), 1.5, rule="schema_version: fraction"),
    row(ALIVE, ("schema_version",), None, rule="schema_version: null"),
    row(
        ALIVE,
        ("schema_version",),
        3,
        ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
        rule="schema_version: 3 unsupported",
    ),
    row(
        ALIVE,
        ("schema_version",),
        0,
        ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
        rule="schema_version: 0 unsupported",
    ),
    # identifiers
    row(ALIVE, ("trial_id",), "NCT 05406206", rule="trial_id: space"),
    row(ALIVE, ("trial_id",), "N" * 65, rule="trial_id: 65 characters"),
    row(ALIVE, ("subject_id",), "01\u200b003", rule="subject_id: zero-width character"),
    row(ALIVE, ("subject_id",), "０１-００３", rule="subject_id: full-width digits"),
    row(ALIVE, ("subject_id",), "01-003\n", rule="subject_id: trailing newline"),
    row(ALIVE, ("subject_id",), "-01", rule="subject_id: starts with punctuation"),
    row(ALIVE, ("subject_id",), "abc\udfff", rule="subject_id: lone surrogate"),
    row(ALIVE, ("subject_id",), 3, rule="subject_id: number"),
    row(ALIVE, ("subject_id",), None, rule="subject_id: null for a subject event"),
    row(ALIVE, ("subject_id",), DELETE, rule="subject_id: missing for a subject event"),
    row(ALIVE, ("source",), "edc site", rule="source: space"),
    row(ALIVE, ("source",), "édc", rule="source: non-ASCII"),
    row(ALIVE, ("entered_by",), "", rule="entered_by: empty"),
    row(ALIVE, ("entered_by",), "inv\x00li", rule="entered_by: NUL"),
    # dates
    row(ALIVE, ("occurred_on",), "0001-01-01", rule="occurred_on: year 1"),
    row(ALIVE, ("occurred_on",), "1999-12-31", rule="occurred_on: before 2000"),
    row(ALIVE, ("occurred_on",), "2100-01-01", rule="occurred_on: 2100"),
    row(ALIVE, ("occurred_on",), "2025-03-04T10:00:00", rule="occurred_on: time part"),
    row(ALIVE, ("occurred_on",), "2025-02-30", rule="occurred_on: no such day"),
    row(ALIVE, ("occurred_on",), "2025-02-29", rule="occurred_on: not a leap year"),
    row(ALIVE, ("occurred_on",), "2025-3-4", rule="occurred_on: unpadded"),
    row(ALIVE, ("occurred_on",), "20250304", rule="occurred_on: basic format"),
    row(ALIVE, ("occurred_on",), 20250304, rule="occurred_on: number"),
    # free text (envelope reason; the same rule for term, therapy, cause, meddra_*)
    *[row(ALIVE, ("reason",), bad, rule=f"reason: {why}") for bad, why in BAD_TEXT],
    row(VOIDED, ("reason",), None, rule="reason: null on a void"),
    row(CORRECTED, ("reason",), DELETE, rule="reason: missing on a correction"),
    # objects
    row(ALIVE, ("extra",), 1, rule="envelope: unknown field"),
    row(ALIVE, ("data",), "x", rule="data: not an object"),
    row(ALIVE, ("data",), DELETE, rule="data: missing"),
    row(ALIVE, ("data", "x"), 1, rule="subject.alive: unknown data field"),
    # subject.enrolled
    row(ENROLLED, ("data", "cohort"), "a b", rule="cohort: not an identifier"),
    row(ENROLLED, ("data", "cohort"), DELETE, rule="cohort: missing"),
    row(ENROLLED, ("data", "sex"), "F", rule="v1 enrolled: baseline is a v2 field"),
    # haic.administered
    row(HAIC, ("data", "cycle"), 0, rule="cycle: 0"),
    row(HAIC, ("data", "cycle"), 101, rule="cycle: 101"),
    row(HAIC, ("data", "cycle"), 1.5, rule="cycle: fraction"),
    row(HAIC, ("data", "cycle"), "1", rule="cycle: string"),
    row(HAIC, ("data", "cycle"), True, rule="cycle: boolean"),
    row(HAIC, ("data", "oxaliplatin_mg_m2"), -1, rule="oxaliplatin: negative"),
    row(HAIC, ("data", "oxaliplatin_mg_m2"), 201, rule="oxaliplatin: over 200 mg/m2"),
    row(HAIC, ("data", "oxaliplatin_mg_m2"), "85", rule="oxaliplatin: string"),
    row(HAIC, ("data", "fluorouracil_mg_m2"), 5001, rule="fluorouracil: over 5000 mg/m2"),
    row(HAIC, ("data", "fluorouracil_mg_m2"), None, rule="fluorouracil: null"),
    # fruquintinib.dosed, dose.modified
    row(DOSE, ("data", "dose_mg"), 0, rule="dose_mg: 0"),
    row(DOSE, ("data", "dose_mg"), -1, rule="dose_mg: negative"),
    row(DOSE, ("data", "dose_mg"), 50.01, rule="dose_mg: over 50"),
    row(DOSE, ("data", "dose_mg"), 1e300, rule="dose_mg: 1e300"),
    row(DOSE, ("data", "dose_mg"), "4", rule="dose_mg: string"),
    row(DOSE, ("data", "dose_mg"), True, rule="dose_mg: true"),
    row(DOSE, ("data", "dose_mg"), DELETE, rule="dose_mg: missing"),
    row("dose.modified", ("data", "dose_mg"), 51, rule="dose.modified dose_mg: over 50"),
    # adverse_event.reported / updated, dlt.adjudicated
    row(AE, ("data", "ae_id"), "AE 1", rule="ae_id: space"),
    row(AE, ("data", "term"), "a\u202eb", rule="term: bidi override"),
    row(AE, ("data", "term"), "x" * 201, rule="term: 201 characters"),
    row(AE, ("data", "grade"), 0, rule="grade: 0"),
    row(AE, ("data", "grade"), 6, rule="grade: 6"),
    row(AE, ("data", "grade"), 3.5, rule="grade: fraction"),
    row(AE, ("data", "grade"), "3", rule="grade: string"),
    row(AE, ("data", "grade"), True, rule="grade: boolean"),
    row(AE, ("data", "serious"), 0, rule="serious: 0"),
    row(AE, ("data", "serious"), "false", rule="serious: string"),
    row(AE, ("data", "related"), None, rule="related: null"),
    row(AE, ("data", "meddra_pt"), "Hypertension", rule="v1 AE: meddra_pt is a v2 field"),
    row("adverse_event.updated", ("data", "ae_id"), "", rule="updated ae_id: empty"),
    row("adverse_event.updated", ("data", "grade"), 6, rule="updated grade: 6"),
    row("adverse_event.updated", ("data", "resolved"), "yes", rule="updated resolved: string"),
    row("dlt.adjudicated", ("data", "ae_id"), "AE\u200b1", rule="dlt ae_id: zero-width"),
    row("dlt.adjudicated", ("data", "dlt"), 1, rule="dlt: 1"),
    # tumor.assessed
    row(TUMOR, ("data", "baseline"), "no", rule="baseline: string"),
    row(
        TUMOR,
        ("data", "target_lesions"),
        [{"lesion_id": f"T{n}", "diameter_mm": 10, "nodal": False} for n in range(6)],
        rule="target_lesions: six",
    ),
    row(TUMOR, ("data", "target_lesions"), {}, rule="target_lesions: not a list"),
    row(TUMOR, (*LESION, "lesion_id"), "T 1", rule="lesion_id: space"),
    row(TUMOR, (*LESION, "lesion_id"), "T2", rule="lesion_id: repeated in an assessment"),
    row(TUMOR, (*LESION, "diameter_mm"), -1, rule="diameter_mm: negative"),
    row(TUMOR, (*LESION, "diameter_mm"), 1000, rule="diameter_mm: 1000"),
    row(TUMOR, (*LESION, "diameter_mm"), "31", rule="diameter_mm: string"),
    row(TUMOR, (*LESION, "nodal"), 0, rule="nodal: 0"),
    row(TUMOR, (*LESION, "size"), 1, rule="lesion: unknown field"),
    row(TUMOR, ("data", "non_target"), "XX", rule="non_target: not a category"),
    row(TUMOR, ("data", "new_lesions"), None, rule="new_lesions: null"),
    row(TUMOR, ("data", "investigator_response"), "cr", rule="investigator_response: lowercase"),
    # other clinical types
    row("anticancer_therapy.started", ("data", "therapy"), "a\x00", rule="therapy: NUL"),
    row("treatment.discontinued", ("data", "reason"), "bored", rule="discontinued: reason"),
    row("subject.died", ("data", "cause"), "\u202e", rule="cause: bidi override"),
    row("subject.withdrawn", ("data", "reason"), "moved", rule="withdrawn: reason"),
    # amendments
    row(CORRECTED, ("data", "target_event_id"), "abc", rule="target_event_id: not a UUID"),
    row(VOIDED, ("data", "target_event_id"), UUID.upper(), rule="void target: uppercase"),
    row(CORRECTED, ("data", "data"), {"dose_mg": "3"}, rule="corrected data: no type's data"),
    row(CORRECTED, ("data", "data"), [], rule="corrected data: not an object"),
    row(CORRECTED, ("data", "occurred_on"), "2025-13-01", rule="corrected occurred_on: month 13"),
    # version 2: subject.enrolled baseline
    row(ENROLLED, ("data", "sex"), DELETE, version=2, rule="v2 sex: missing"),
    row(ENROLLED, ("data", "sex"), "male", version=2, rule="v2 sex: not a CDISC SEX code"),
    row(ENROLLED, ("data", "race"), "Asian", version=2, rule="v2 race: not CDISC RACE"),
    row(ENROLLED, ("data", "ecog"), 5, version=2, rule="v2 ecog: 5"),
    row(ENROLLED, ("data", "ecog"), 1.5, version=2, rule="v2 ecog: fraction"),
    row(ENROLLED, ("data", "weight_kg"), 5, version=2, rule="v2 weight_kg: under 10"),
    row(ENROLLED, ("data", "weight_kg"), "58", version=2, rule="v2 weight_kg: string"),
    row(ENROLLED, ("data", "height_cm"), 251, version=2, rule="v2 height_cm: over 250"),
    row(ENROLLED, ("data", "age"), 121, version=2, rule="v2 age: over 120"),
    row(ENROLLED, ("data", "age"), DELETE, version=2, rule="v2: neither birth_date nor age"),
    row(
        ENROLLED,
        ("data", "birth_date"),
        "1964-05-01",
        version=2,
        rule="v2: both birth_date and age",
    ),
    row(ENROLLED, ("data", "cohort"), 1, version=2, rule="v2 cohort: number"),
    row(AE, ("data", "meddra_pt"), "x" * 201, version=2, rule="v2 meddra_pt: 201 characters"),
    row(AE, ("data", "meddra_soc"), "a\u200eb", version=2, rule="v2 meddra_soc: LRM mark"),
    row(AE, ("data", "grade"), "3", version=2, rule="v2 AE grade: string"),
]
SCHEMA_CANNOT_SAY = {"lesion_id: repeated in an assessment"}


@pytest.mark.parametrize(("kind", "version", "path", "value", "code"), REFUSED)
def test_each_rule_refuses_its_bad_value(
    request: pytest.FixtureRequest,
    kind: str,
    version: int,
    path: tuple[Any, ...],
    value: Any,
    code: ReasonCode,
) -> None:
    """The parser refuses the bad value with its code and one line; the schema refuses it too."""
    document = _with(kind, version, path, value)
    raw = json.dumps(document)
    with pytest.raises(InvalidSubmissionError) as refused:
        parse_submission(raw)
    assert refused.value.reason_code is code
    assert refused.value.message and "\n" not in refused.value.message
    assert refused.value.message.isascii()
    if path != ("event_id",):
        assert refused.value.event_id == UUID
    expected_valid = request.node.callspec.id in SCHEMA_CANNOT_SAY
    assert _validator().is_valid(document) is expected_valid


def birth_date_instead_of_age() -> dict[str, Any]:
    document = envelope(ENROLLED, 2)
    del document["data"]["age"]
    document["data"]["birth_date"] = "1964-02-29"
    return document


ACCEPTED = [
    pytest.param(_with(AE, 1, ("data", "grade"), 3.0), ("grade",), 3, id="grade 3.0 is 3"),
    pytest.param(_with(DOSE, 1, ("data", "dose_mg"), 4), ("dose_mg",), 4.0, id="dose 4 is 4.0"),
    pytest.param(
        _with(AE, 1, ("data", "term"), "Ple\u0300vre"),
        ("term",),
        "Plèvre",
        id="term NFC-normalised",
    ),
    pytest.param(
        _with(AE, 1, ("data", "term"), "x" * 200), ("term",), "x" * 200, id="term of 200 characters"
    ),
    pytest.param(_with(ALIVE, 1, ("schema_version",), 1.0), (), {}, id="schema_version 1.0"),
    pytest.param(_with(ALIVE, 1, ("occurred_on",), "2024-02-29"), (), {}, id="leap day"),
    pytest.param(_with(ALIVE, 1, ("occurred_on",), "2000-01-01"), (), {}, id="2000-01-01"),
    pytest.param(
        _with(VOIDED, 1, ("subject_id",), DELETE),
        (),
        {"target_event_id": envelope(VOIDED)["data"]["target_event_id"]},
        id="void without subject_id",
    ),
    pytest.param(
        _with(TUMOR, 1, (*LESION, "diameter_mm"), 0),
        ("target_lesions", 0, "diameter_mm"),
        0.0,
        id="diameter 0",
    ),
    pytest.param(
        _with("adverse_event.updated", 1, ("data", "grade"), DELETE),
        ("grade",),
        None,
        id="optional v1 field reads as null",
    ),
    pytest.param(
        _with(AE, 2, ("data", "meddra_pt"), DELETE),
        ("meddra_pt",),
        KeyError,
        id="v2 optional MedDRA stays absent",
    ),
    pytest.param(
        birth_date_instead_of_age(),
        ("birth_date",),
        "1964-02-29",
        id="v2 birth_date instead of age",
    ),
]


@pytest.mark.parametrize(("document", "path", "stored"), ACCEPTED)
def test_accepted_values_are_stored_as_the_ledger_reads_them(
    document: dict[str, Any], path: tuple[Any, ...], stored: Any
) -> None:
    """Accepted by parser and schema alike; the stored value is the normalised one."""
    message = parse_submission(json.dumps(document))
    assert _validator().is_valid(document)
    node: Any = message.data
    if stored is KeyError:
        assert path[0] not in node
        return
    for step in path:
        node = node[step]
    assert node == stored
    assert type(node) is type(stored)


RAW = [
    pytest.param(b"", ReasonCode.INVALID_JSON, id="empty line"),
    pytest.param(b" \t\r ", ReasonCode.INVALID_JSON, id="whitespace-only line"),
    pytest.param(b"{not json", ReasonCode.INVALID_JSON, id="not JSON"),
    pytest.param(b"[]", S, id="not an object"),
    pytest.param(b'{"a": NaN}', ReasonCode.INVALID_JSON, id="NaN literal"),
    pytest.param(b'{"a": -Infinity}', ReasonCode.INVALID_JSON, id="Infinity literal"),
    pytest.param(b'{"a": 1e400}', S, id="number overflowing to infinity"),
    pytest.param(b'{"a": ' + b"9" * 4301 + b"}", ReasonCode.NUMBER_TOO_LONG, id="4301 digits"),
    pytest.param(
        b'{"a": 1.' + b"0" * MAX_NUMBER_CHARS + b"}",
        ReasonCode.NUMBER_TOO_LONG,
        id="long float literal",
    ),
    pytest.param(b"[" * 1000 + b"]" * 1000, ReasonCode.TOO_DEEP, id="1000 deep"),
    pytest.param(
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        ReasonCode.TOO_DEEP,
        id="one level too deep",
    ),
    pytest.param(
        b'{"a": "' + b"x" * MAX_SUBMISSION_BYTES + b'"}',
        ReasonCode.TOO_LARGE,
        id="over the size limit",
    ),
    pytest.param(b'{"a": 1, "a": 2}', ReasonCode.DUPLICATE_KEY, id="duplicate key"),
    pytest.param(b"\xef\xbb\xbf{}", ReasonCode.INVALID_TEXT, id="byte order mark"),
    pytest.param(b'{"a": "\xff"}', ReasonCode.INVALID_TEXT, id="invalid UTF-8"),
    pytest.param(b'{"a": "\xed\xbf\xbf"}', ReasonCode.INVALID_TEXT, id="UTF-8 encoded surrogate"),
    pytest.param('{"a": "abc\udfff"}', ReasonCode.INVALID_TEXT, id="str with a lone surrogate"),
    pytest.param(b'{"a": "a\x00b"}', ReasonCode.INVALID_JSON, id="raw NUL in a string"),
    pytest.param(b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[["}', S, id="brackets inside a string"),
]


@pytest.mark.parametrize(("raw", "code"), RAW)
def test_reading_limits_refuse_with_their_code(raw: bytes | str, code: ReasonCode) -> None:
    """Bytes that are not one JSON document within the limits: one code, one line, no crash."""
    with pytest.raises(InvalidSubmissionError) as refused:
        parse_submission(raw)
    assert refused.value.reason_code is code
    assert refused.value.message and "\n" not in refused.value.message


def test_event_id_is_recovered_from_an_unreadable_line() -> None:
    """A duplicate-key line still names its event_id in the rejection."""
    raw = json.dumps(envelope(ALIVE)).replace('"data": {}', '"data": {}, "data": {}')
    with pytest.raises(InvalidSubmissionError) as refused:
        parse_submission(raw)
    assert (refused.value.reason_code, refused.value.event_id) == (ReasonCode.DUPLICATE_KEY, UUID)


FUTURE = [
    pytest.param(_with(ALIVE, 1, ("occurred_on",), "2025-03-05"), id="occurred_on after"),
    pytest.param(
        _with(CORRECTED, 1, ("data", "occurred_on"), "2025-03-05"), id="corrected occurred_on after"
    ),
]


@pytest.mark.parametrize("document", FUTURE)
def test_dates_after_the_recorded_day_are_refused(document: dict[str, Any]) -> None:
    """With recorded_on, a clinical date after it is OCCURRED_IN_FUTURE; the same day is fine."""
    raw = json.dumps(document)
    with pytest.raises(InvalidSubmissionError) as refused:
        parse_submission(raw, recorded_on=date(2025, 3, 4))
    assert refused.value.reason_code is ReasonCode.OCCURRED_IN_FUTURE
    assert parse_submission(raw, recorded_on=date(2025, 3, 5)).event_id


def test_version_2_fields_pass_through_to_the_domain() -> None:
    """A v2 enrollment's baseline reaches Submission.data; a v1 one simply lacks it."""
    v2 = to_domain(parse_submission(json.dumps(envelope(ENROLLED, 2))))
    v1 = to_domain(parse_submission(json.dumps(envelope(ENROLLED, 1))))
    assert dict(v2.data) == {
        "cohort": "A",
        "age": 61,
        "sex": "F",
        "race": "ASIAN",
        "ecog": 1,
        "weight_kg": 58.5,
        "height_cm": 161.0,
    }
    assert dict(v1.data) == {"cohort": "A"}
    assert wire_version(v2.type, dict(v2.data)) == 2
    assert wire_version(v1.type, dict(v1.data)) == 1


def test_every_type_reads_the_same_in_both_versions_where_nothing_is_added() -> None:
    """v1 and v2 of a type without additions give the same domain submission."""
    for kind in {kind for kind, _ in VERSIONED} - {ENROLLED}:
        one = to_domain(
            parse_submission(json.dumps(envelope(kind, 1, data=envelope(kind)["data"])))
        )
        two = to_domain(
            parse_submission(json.dumps(envelope(kind, 2, data=envelope(kind)["data"])))
        )
        assert one == two, kind


CORRECTIONS = [
    pytest.param(DOSE, {"dose_mg": 3}, {"dose_mg": 3.0}, id="dose corrected"),
    pytest.param(ENROLLED, {"cohort": "B"}, {"cohort": "B"}, id="v1 enrollment data"),
    pytest.param(
        ENROLLED,
        envelope(ENROLLED, 2)["data"],
        envelope(ENROLLED, 2)["data"] | {"weight_kg": 58.5, "height_cm": 161.0},
        id="v2 enrollment data",
    ),
    pytest.param(DOSE, {"dose_mg": "3"}, None, id="dose as string refused"),
    pytest.param(AE, {**envelope(AE)["data"], "term": "a\u202eb"}, None, id="bidi term refused"),
    pytest.param(VOIDED, {}, None, id="a void has no data to correct"),
]


@pytest.mark.parametrize(("target_type", "data", "stored"), CORRECTIONS)
def test_corrected_data_follows_the_target_types_rules(
    target_type: str, data: dict[str, Any], stored: dict[str, Any] | None
) -> None:
    """validate_corrected_data applies the target type's rules (any version) or refuses."""
    if stored is None:
        with pytest.raises(InvalidSubmissionError) as refused:
            validate_corrected_data(target_type, data)
        assert refused.value.reason_code is S
    else:
        assert validate_corrected_data(target_type, data) == stored


def test_every_field_of_every_shape_has_a_refusing_row() -> None:
    """Each envelope field and each data field of every type and version is tried by a row."""
    tried = {
        (p.values[0], p.values[2][1] if len(p.values[2]) > 1 else p.values[2][0]) for p in REFUSED
    }
    tried |= {
        (kind, field)
        for kind, _ in VERSIONED
        for field in ENVELOPE.fields
        if any(t[1] == field for t in tried)
    }
    missing = sorted(
        (kind, field)
        for (kind, _version), shape in VERSIONED.items()
        for field in shape.fields
        if (kind, field) not in tried
    )
    assert missing == []


def test_listed_disagreements_are_the_only_rules_outside_the_schema() -> None:
    """The rows the schema cannot refuse are exactly those of the listed classes."""
    assert {"lesion_id: repeated in an assessment"} == SCHEMA_CANNOT_SAY
    assert "LESION_ID_REPEATED" in NOT_IN_JSON_SCHEMA
