"""Wire models for what integrators publish (contract §1–2), schema version 1.

These exist only at the edges: `parse_submission` turns bytes into a checked message and
`to_domain` into the aggregate's `Submission`. Unknown fields are errors, never ignored.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from ledger.aggregates.facts import Submission
from ledger.aggregates.rejections import ReasonCode

SCHEMA_VERSION = 1

Text = Annotated[str, Field(min_length=1, max_length=200)]
Dose = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnrollmentData(_Strict):
    cohort: Text = Field(description='"A", "B", "C" (dose levels of the protocol) or "EXPANSION"')


class HaicData(_Strict):
    cycle: int = Field(ge=1)
    oxaliplatin_mg_m2: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    fluorouracil_mg_m2: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class FruquintinibData(_Strict):
    dose_mg: Dose


class DoseModificationData(_Strict):
    dose_mg: Dose = Field(description="the subject's fruquintinib dose from occurred_on on")


class AdverseEventData(_Strict):
    ae_id: Text
    term: Text
    grade: int = Field(ge=1, le=5, description="CTCAE v5 grade")
    serious: StrictBool
    related: StrictBool


class AdverseEventUpdateData(_Strict):
    ae_id: Text
    grade: int | None = Field(default=None, ge=1, le=5)
    resolved: StrictBool | None = None


class DltAdjudicationData(_Strict):
    ae_id: Text
    dlt: StrictBool


class TargetLesionData(_Strict):
    lesion_id: Text
    diameter_mm: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
    nodal: StrictBool


class TumorAssessmentData(_Strict):
    baseline: StrictBool
    target_lesions: list[TargetLesionData] = Field(max_length=5)
    non_target: Literal["NONE", "CR", "NON_CR_NON_PD", "PD", "NE"]
    new_lesions: StrictBool
    investigator_response: Literal["CR", "PR", "SD", "PD", "NE"] | None = None

    @model_validator(mode="after")
    def _lesions_unique(self) -> TumorAssessmentData:
        ids = [lesion.lesion_id for lesion in self.target_lesions]
        if len(set(ids)) != len(ids):
            raise ValueError("target lesion ids must be unique within an assessment")
        return self


class TherapyData(_Strict):
    therapy: Text


class DiscontinuationData(_Strict):
    reason: Literal["progression", "toxicity", "withdrawal", "investigator_decision", "other"]


class AliveData(_Strict):
    pass


class DeathData(_Strict):
    cause: Text | None = None


class WithdrawalData(_Strict):
    reason: Literal["consent_withdrawn", "lost_to_follow_up"]


class CorrectionData(_Strict):
    target_event_id: UUID
    data: dict[str, Any] = Field(description="the full corrected data of the target event")
    occurred_on: date | None = Field(
        default=None, description="the corrected clinical date, when the date was wrong"
    )


class VoidData(_Strict):
    target_event_id: UUID


DATA_MODELS: dict[str, type[_Strict]] = {
    "subject.enrolled": EnrollmentData,
    "haic.administered": HaicData,
    "fruquintinib.dosed": FruquintinibData,
    "dose.modified": DoseModificationData,
    "adverse_event.reported": AdverseEventData,
    "adverse_event.updated": AdverseEventUpdateData,
    "dlt.adjudicated": DltAdjudicationData,
    "tumor.assessed": TumorAssessmentData,
    "anticancer_therapy.started": TherapyData,
    "treatment.discontinued": DiscontinuationData,
    "subject.alive": AliveData,
    "subject.died": DeathData,
    "subject.withdrawn": WithdrawalData,
    "record.corrected": CorrectionData,
    "record.voided": VoidData,
}
_AMENDMENTS = ("record.corrected", "record.voided")


class SubmissionMessage(_Strict):
    """The envelope of contract §1; `data` is checked against the model of `type`."""

    event_id: UUID
    type: Literal[
        "subject.enrolled",
        "haic.administered",
        "fruquintinib.dosed",
        "dose.modified",
        "adverse_event.reported",
        "adverse_event.updated",
        "dlt.adjudicated",
        "tumor.assessed",
        "anticancer_therapy.started",
        "treatment.discontinued",
        "subject.alive",
        "subject.died",
        "subject.withdrawn",
        "record.corrected",
        "record.voided",
    ]
    schema_version: Literal[1]
    trial_id: Text
    subject_id: Text | None = None
    occurred_on: date
    source: Text
    entered_by: Text
    reason: Annotated[str, Field(max_length=1000)] | None = None
    data: dict[str, Any]

    @model_validator(mode="after")
    def _envelope_rules(self) -> SubmissionMessage:
        if self.type in _AMENDMENTS:
            if not (self.reason and self.reason.strip()):
                raise ValueError(f"{self.type} needs a reason: why the record changes")
        elif self.subject_id is None:
            raise ValueError(f"{self.type} is a subject event: subject_id is required")
        return self


class InvalidSubmissionError(Exception):
    """A message that is not a valid submission; `event_id` is set when it could be read."""

    def __init__(self, reason_code: ReasonCode, message: str, event_id: str | None) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message
        self.event_id = event_id


def parse_submission(raw: bytes | str) -> SubmissionMessage:
    """Bytes or text of one envelope to a checked message, or a reason a coordinator can act on."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidSubmissionError(
            ReasonCode.INVALID_JSON, f"not valid JSON: {error}", None
        ) from None
    return validate_submission(document)


def validate_submission(document: object) -> SubmissionMessage:
    event_id = _readable_event_id(document)
    if isinstance(document, dict):
        version = document.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version != SCHEMA_VERSION:
            raise InvalidSubmissionError(
                ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
                f"schema_version {version} is not supported; this ledger reads version "
                f"{SCHEMA_VERSION}",
                event_id,
            )
    try:
        message = SubmissionMessage.model_validate(document)
        data = DATA_MODELS[message.type].model_validate(message.data)
    except ValidationError as error:
        prefix = "" if error.title == SubmissionMessage.__name__ else "data."
        raise InvalidSubmissionError(
            ReasonCode.SCHEMA_INVALID, _describe(error, prefix), event_id
        ) from None
    return message.model_copy(update={"data": data.model_dump(mode="json")})


def validate_corrected_data(target_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A correction carries the target's full data: it must pass the target type's schema."""
    try:
        checked = DATA_MODELS[target_type].model_validate(data)
    except ValidationError as error:
        raise InvalidSubmissionError(
            ReasonCode.SCHEMA_INVALID,
            f"corrected data is not valid {target_type} data: {_describe(error, 'data.data.')}",
            None,
        ) from None
    return checked.model_dump(mode="json")


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


def to_wire(submission: Submission) -> dict[str, Any]:
    """The envelope JSON of a domain submission (used when writing `.jsonl` files)."""
    return {
        "event_id": submission.event_id,
        "type": submission.type,
        "schema_version": SCHEMA_VERSION,
        "trial_id": submission.trial_id,
        "subject_id": submission.subject_id,
        "occurred_on": submission.occurred_on.isoformat(),
        "source": submission.source,
        "entered_by": submission.entered_by,
        "reason": submission.reason,
        "data": dict(submission.data),
    }


def json_schemas() -> dict[str, Any]:
    """JSON Schemas for integrators: the envelope and the `data` of every type."""
    return {
        "schema_version": SCHEMA_VERSION,
        "envelope": TypeAdapter(SubmissionMessage).json_schema(),
        "data": {name: model.model_json_schema() for name, model in DATA_MODELS.items()},
    }


def _readable_event_id(document: object) -> str | None:
    if isinstance(document, dict):
        value = document.get("event_id")
        if isinstance(value, str):
            return value
    return None


def _describe(error: ValidationError, prefix: str = "") -> str:
    problems = []
    for item in error.errors()[:3]:
        where = prefix + ".".join(str(part) for part in item["loc"]) or "envelope"
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    more = len(error.errors()) - 3
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
