"""Why a submission was refused, in codes integrators can switch on and words a site understands.

The codes are part of the outside contract: never rename one, only add.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    INVALID_JSON = "INVALID_JSON"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    UNSUPPORTED_SCHEMA_VERSION = "UNSUPPORTED_SCHEMA_VERSION"
    UNKNOWN_TRIAL = "UNKNOWN_TRIAL"
    EVENT_ID_CONFLICT = "EVENT_ID_CONFLICT"
    SUBJECT_NOT_ENROLLED = "SUBJECT_NOT_ENROLLED"
    SUBJECT_ALREADY_ENROLLED = "SUBJECT_ALREADY_ENROLLED"
    COHORT_NOT_OPEN = "COHORT_NOT_OPEN"
    COHORT_FULL = "COHORT_FULL"
    TRIAL_STOPPED = "TRIAL_STOPPED"
    ENROLLMENT_COMPLETE = "ENROLLMENT_COMPLETE"
    TARGET_NOT_FOUND = "TARGET_NOT_FOUND"
    TARGET_ALREADY_VOIDED = "TARGET_ALREADY_VOIDED"
    TARGET_NOT_CORRECTABLE = "TARGET_NOT_CORRECTABLE"
    ADVERSE_EVENT_UNKNOWN = "ADVERSE_EVENT_UNKNOWN"
    ADVERSE_EVENT_DUPLICATE = "ADVERSE_EVENT_DUPLICATE"
    OCCURRED_IN_FUTURE = "OCCURRED_IN_FUTURE"
    SOURCE_NOT_AUTHENTICATED = "SOURCE_NOT_AUTHENTICATED"
    FOREIGN_RECORD = "FOREIGN_RECORD"
    # Reading the bytes of a submission (ledger/schemas/jsontext.py): explicit limits.
    TOO_LARGE = "TOO_LARGE"
    TOO_DEEP = "TOO_DEEP"
    NUMBER_TOO_LONG = "NUMBER_TOO_LONG"
    DUPLICATE_KEY = "DUPLICATE_KEY"
    INVALID_TEXT = "INVALID_TEXT"


class SubmissionRejectedError(Exception):
    """A submission the ledger will not record; the trial's history is unchanged."""

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message
