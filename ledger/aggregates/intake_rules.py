"""Which submissions the Trial accepts: pure checks over its state, raising a rejection or not.

Each check reads a `TrialState` and the submission and either returns or raises
`SubmissionRejectedError` with the reason code and a sentence a site understands. None of them
changes anything, so a refused submission leaves the trial exactly as it was.
"""

from __future__ import annotations

from datetime import date

from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    ADVERSE_EVENT_UPDATED,
    AMENDMENT_TYPES,
    DLT_ADJUDICATED,
    SUBJECT_ENROLLED,
    Submission,
)
from ledger.aggregates.protocol import EXPANSION
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial_state import CohortState, Stage, TrialState


def already_recorded(state: TrialState, submission: Submission) -> bool:
    """True for a redelivery of a recorded submission; refuses another trial or a reused id."""
    if submission.trial_id != state.trial_id:
        raise SubmissionRejectedError(
            ReasonCode.UNKNOWN_TRIAL,
            f"this ledger holds trial {state.trial_id}, not {submission.trial_id}",
        )
    known = state.submitted.get(submission.event_id)
    if known is None:
        return False
    if known.fingerprint == submission.fingerprint:
        return True
    raise SubmissionRejectedError(
        ReasonCode.EVENT_ID_CONFLICT,
        f"event {submission.event_id} was already recorded with different content; "
        "send a record.corrected to change it",
    )


def check_submission(state: TrialState, submission: Submission, today: date) -> None:
    """Refuse a new submission the trial cannot take now; return if it may be recorded."""
    if submission.occurred_on > today:
        raise SubmissionRejectedError(
            ReasonCode.OCCURRED_IN_FUTURE,
            f"occurred_on {submission.occurred_on} is after today ({today})",
        )
    if submission.type == SUBJECT_ENROLLED:
        check_enrollment(state, submission)
    elif submission.type in AMENDMENT_TYPES:
        check_amendment(state, submission)
    else:
        check_subject_fact(state, submission)


def check_enrollment(state: TrialState, submission: Submission) -> None:
    """A subject enters once, into the cohort that is open, while places are left."""
    subject_id = submission.subject_id
    cohort = str(submission.data["cohort"])
    if subject_id in state.subjects:
        raise SubmissionRejectedError(
            ReasonCode.SUBJECT_ALREADY_ENROLLED,
            f"subject {subject_id} is already enrolled in cohort "
            f"{state.subjects[subject_id].cohort}",
        )
    if state.stage is Stage.STOPPED:
        raise SubmissionRejectedError(
            ReasonCode.TRIAL_STOPPED,
            f"{state.trial_id} stopped for toxicity: no tolerable dose; enrollment is closed",
        )
    if len(state.subjects) >= state.protocol.max_subjects:
        raise SubmissionRejectedError(
            ReasonCode.ENROLLMENT_COMPLETE,
            f"{state.trial_id} has enrolled its {state.protocol.max_subjects} subjects",
        )
    if cohort == EXPANSION:
        if state.stage is not Stage.EXPANSION:
            raise SubmissionRejectedError(
                ReasonCode.COHORT_NOT_OPEN,
                f"the expansion cohort opens once the MTD is declared; {open_hint(state)}",
            )
        return
    _check_level_has_room(state, cohort)


def _check_level_has_room(state: TrialState, cohort: str) -> None:
    level = state.level_of(cohort)
    if level is None:
        raise SubmissionRejectedError(
            ReasonCode.COHORT_NOT_OPEN, f"there is no cohort {cohort}; {open_hint(state)}"
        )
    if level.state is not CohortState.OPEN or state.stage is not Stage.ESCALATION:
        raise SubmissionRejectedError(
            ReasonCode.COHORT_NOT_OPEN, f"cohort {cohort} is not open; {open_hint(state)}"
        )
    if state.occupied(level) >= level.slots:
        raise SubmissionRejectedError(
            ReasonCode.COHORT_FULL,
            f"cohort {cohort} has all {level.slots} places taken; more open only after "
            "its subjects are DLT-evaluable and the 3+3 rules allow it",
        )


def check_amendment(state: TrialState, submission: Submission) -> None:
    """A correction or void names a live clinical fact of the same subject."""
    target = str(submission.data["target_event_id"])
    if state.facts.is_voided(target):
        raise SubmissionRejectedError(
            ReasonCode.TARGET_ALREADY_VOIDED, f"event {target} was already voided"
        )
    target_type = state.submitted_type(target)
    fact = state.facts.get(target)
    if target_type is None or (fact is None and target_type not in AMENDMENT_TYPES):
        raise SubmissionRejectedError(
            ReasonCode.TARGET_NOT_FOUND, f"no recorded event {target} in {state.trial_id}"
        )
    if target_type in AMENDMENT_TYPES or target_type == SUBJECT_ENROLLED:
        raise SubmissionRejectedError(
            ReasonCode.TARGET_NOT_CORRECTABLE,
            f"event {target} is a {target_type}: it cannot be corrected or voided"
            + ("; withdraw the subject instead" if target_type == SUBJECT_ENROLLED else ""),
        )
    assert fact is not None
    if submission.subject_id is not None and submission.subject_id != fact.subject_id:
        raise SubmissionRejectedError(
            ReasonCode.TARGET_NOT_FOUND,
            f"event {target} belongs to subject {fact.subject_id}, not {submission.subject_id}",
        )


def check_subject_fact(state: TrialState, submission: Submission) -> None:
    """Any other fact is about an enrolled subject; AE follow-ups name a reported AE."""
    subject_id = submission.subject_id
    if subject_id is None or subject_id not in state.subjects:
        raise SubmissionRejectedError(
            ReasonCode.SUBJECT_NOT_ENROLLED,
            f"subject {subject_id} is not enrolled in {state.trial_id}; "
            "send subject.enrolled first",
        )
    ae_id = submission.data.get("ae_id")
    if submission.type == ADVERSE_EVENT_REPORTED and ae_id in state.reported_ae_ids(subject_id):
        raise SubmissionRejectedError(
            ReasonCode.ADVERSE_EVENT_DUPLICATE,
            f"adverse event {ae_id} of subject {subject_id} was already reported; "
            "send adverse_event.updated instead",
        )
    if submission.type in (
        ADVERSE_EVENT_UPDATED,
        DLT_ADJUDICATED,
    ) and ae_id not in state.reported_ae_ids(subject_id):
        raise SubmissionRejectedError(
            ReasonCode.ADVERSE_EVENT_UNKNOWN,
            f"subject {subject_id} has no adverse event {ae_id}",
        )


def open_hint(state: TrialState) -> str:
    """Where a refused enrollment could go instead, for the rejection message."""
    if state.stage is Stage.EXPANSION:
        return f"enroll into {EXPANSION}"
    open_levels = [lv.name for lv in state.levels if lv.state is CohortState.OPEN]
    if state.stage is Stage.ESCALATION and open_levels:
        return f"cohort {open_levels[0]} is open"
    return f"the trial is in stage {state.stage.value}"
