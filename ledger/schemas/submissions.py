"""What integrators publish (contract §1, §2, §9), read at the edge: any bytes in, a checked
`SubmissionMessage` or an `InvalidSubmissionError` out, nothing else.

Reading has explicit limits (`jsontext`: size, depth, number length, UTF-8, duplicate keys); the
envelope's rules are one table (`catalogue`) that both this parser and the published JSON Schema
(`published.submission_json_schema`) are made from. `to_domain` turns a message into the
aggregate's `Submission`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from ledger.aggregates.facts import AMENDMENT_TYPES, SUBMISSION_TYPES, Submission
from ledger.aggregates.rejections import ReasonCode
from ledger.schemas.catalogue import (
    ENVELOPE,
    SCHEMA_VERSIONS,
    corrected_shapes,
    shape_of,
)
from ledger.schemas.jsontext import UnreadableSubmissionError, read_json
from ledger.schemas.published import submission_json_schema
from ledger.schemas.values import UUID_PATTERN, RuleViolationError, show

_UUID = re.compile(UUID_PATTERN)

# The version the ledger writes when nothing needs more; it reads every one of SCHEMA_VERSIONS.
SCHEMA_VERSION = 1
LATEST_SCHEMA_VERSION = SCHEMA_VERSIONS[-1]

__all__ = [
    "LATEST_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "InvalidSubmissionError",
    "SubmissionMessage",
    "json_schemas",
    "parse_submission",
    "submission_json_schema",
    "to_domain",
    "validate_corrected_data",
    "validate_submission",
    "wire_version",
]


@dataclass(frozen=True, slots=True)
class SubmissionMessage:
    """The envelope of contract §1, checked; `data` is the checked data of `type`."""

    event_id: UUID
    type: str
    schema_version: int
    trial_id: str
    subject_id: str | None
    occurred_on: date
    source: str
    entered_by: str
    reason: str | None
    data: dict[str, Any]


class InvalidSubmissionError(Exception):
    """A message that is not a valid submission; `event_id` is set when it could be read."""

    def __init__(self, reason_code: ReasonCode, message: str, event_id: str | None) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message
        self.event_id = event_id


def parse_submission(raw: bytes | str, *, recorded_on: date | None = None) -> SubmissionMessage:
    """Bytes or text of one envelope to a checked message, or a reason a coordinator can act on.

    `recorded_on`, when given, is the day the ledger records it: a clinical date after it is
    OCCURRED_IN_FUTURE. Never raises anything but `InvalidSubmissionError`.
    """
    try:
        document = read_json(raw)
    except UnreadableSubmissionError as unreadable:
        raise InvalidSubmissionError(
            unreadable.reason_code, unreadable.message, unreadable.event_id
        ) from None
    return validate_submission(document, recorded_on=recorded_on)


def validate_submission(document: object, *, recorded_on: date | None = None) -> SubmissionMessage:
    """A parsed JSON document checked against the envelope rules of its type and version."""
    try:
        return _checked(document, recorded_on)
    except RuleViolationError as violation:
        raise InvalidSubmissionError(
            violation.reason_code, violation.message, _readable_event_id(document)
        ) from None
    except (ValueError, TypeError, RecursionError) as error:  # a defect here, never a crash
        raise InvalidSubmissionError(
            ReasonCode.SCHEMA_INVALID,
            f"could not be checked: {show(str(error), 80)}",
            _readable_event_id(document),
        ) from None


def _checked(document: object, recorded_on: date | None) -> SubmissionMessage:
    if isinstance(document, dict) and "schema_version" in document:
        ENVELOPE.fields["schema_version"].value.check(document["schema_version"], "schema_version")
    envelope = ENVELOPE.check(document, "")
    kind, version = envelope["type"], envelope["schema_version"]
    data = shape_of(kind, version).check(envelope["data"], "data")
    if kind in AMENDMENT_TYPES:
        if envelope["reason"] is None:
            raise RuleViolationError(f"reason: {kind} needs a reason: why the record changes")
    elif envelope["subject_id"] is None:
        raise RuleViolationError(f"subject_id: {kind} is a subject event: subject_id is required")
    occurred_on = date.fromisoformat(envelope["occurred_on"])
    if recorded_on is not None:
        days = {"occurred_on": envelope["occurred_on"]}
        if kind in AMENDMENT_TYPES and data.get("occurred_on") is not None:
            days["data.occurred_on"] = data["occurred_on"]
        for where, day in days.items():
            if date.fromisoformat(day) > recorded_on:
                raise RuleViolationError(
                    f"{where}: {day} is after the day it is recorded ({recorded_on})",
                    ReasonCode.OCCURRED_IN_FUTURE,
                )
    return SubmissionMessage(
        event_id=UUID(envelope["event_id"]),
        type=kind,
        schema_version=version,
        trial_id=envelope["trial_id"],
        subject_id=envelope["subject_id"],
        occurred_on=occurred_on,
        source=envelope["source"],
        entered_by=envelope["entered_by"],
        reason=envelope["reason"],
        data=data,
    )


def validate_corrected_data(target_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A correction carries the target's full data: it must be valid data of the target's type
    (in any version the ledger reads); returned as the ledger stores it."""
    if target_type in AMENDMENT_TYPES or target_type not in SUBMISSION_TYPES:
        raise InvalidSubmissionError(
            ReasonCode.SCHEMA_INVALID, f"{show(target_type)} records have no data to correct", None
        )
    problems = []
    for shape in corrected_shapes(target_type):
        try:
            return shape.check(data, "data.data")
        except RuleViolationError as violation:
            problems.append(violation.message)
    raise InvalidSubmissionError(
        ReasonCode.SCHEMA_INVALID,
        f"corrected data is not valid {target_type} data: {min(problems, key=len)}",
        None,
    )


def to_domain(message: SubmissionMessage) -> Submission:
    return Submission(
        event_id=str(message.event_id),
        type=message.type,
        trial_id=message.trial_id,
        subject_id=message.subject_id,
        occurred_on=message.occurred_on,
        source=message.source,
        entered_by=message.entered_by,
        reason=message.reason,
        data=message.data,
    )


def json_schemas() -> dict[str, Any]:
    """The published schema (`envelope`: one JSON Schema 2020-12 document for every type and
    version) and, under `data`, the same document narrowed to each type."""
    return {
        "schema_version": LATEST_SCHEMA_VERSION,
        "envelope": submission_json_schema(),
        "data": {kind: submission_json_schema(kind) for kind in SUBMISSION_TYPES},
    }


def wire_version(kind: str, data: dict[str, Any]) -> int:
    """The lowest envelope version whose `kind` data `data` is: what a sender writes, so that
    receivers that only know version 1 keep reading what needs nothing newer."""
    for version in SCHEMA_VERSIONS:
        try:
            shape_of(kind, version).check(data, "data")
        except RuleViolationError:
            continue
        return version
    raise ValueError(f"{kind} data fits no envelope version: {sorted(data)}")


def _readable_event_id(document: object) -> str | None:
    if isinstance(document, dict):
        value = document.get("event_id")
        if isinstance(value, str) and len(value) == 36 and _UUID.search(value):
            return value
    return None
