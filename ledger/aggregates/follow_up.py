"""What a recorded submission leads to: the ledger's own decisions, as pure functions of the state.

Each rule reads a `TrialState` and returns the decisions to record (`Decided`: the contract type,
its data, the reason given), never changing the state itself; the Trial records them, and its
fold applies them. `consequences` puts the rules in their order:

1. protocol deviations in the treatment fact just recorded (`protocol.deviation`);
2. the subject's DLT window: new candidates, then the window closed or revised;
3. the 3+3 decision at the current level (`dose_decisions`), asked again after each decision
   until the level then current has to wait;
4. closed levels whose counts late data changed (`cohort.reevaluated`);
5. the expansion cohort closing once the trial has all its subjects.
"""

from __future__ import annotations

from collections.abc import Iterator

from ledger.aggregates.dose_decisions import count_data, escalation_step
from ledger.aggregates.facts import (
    ADVERSE_EVENT_UPDATED,
    DLT_ADJUDICATED,
    DOSE_MODIFIED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    RECORD_CORRECTED,
    RECORD_VOIDED,
    Fact,
    Submission,
)
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.safety import DltWindow, assess_deviations, assess_dlt_window
from ledger.aggregates.trial_state import (
    COHORT_CLOSED,
    COHORT_OPENED,
    COHORT_REEVALUATED,
    DLT_CANDIDATE_FLAGGED,
    DLT_WINDOW_CLOSED,
    DLT_WINDOW_REVISED,
    PROTOCOL_DEVIATION,
    CohortState,
    Decided,
    Stage,
    SubjectState,
    TrialState,
)

__all__ = ["Decided", "consequences", "first_cohort"]


def first_cohort(protocol: ProtocolDefinition) -> Decided:
    """The lowest dose level opens with the trial."""
    first = protocol.dose_levels[0]
    return Decided(
        COHORT_OPENED,
        {
            "cohort": first.name,
            "level": 0,
            "dose_mg": first.dose_mg,
            "slots": protocol.escalation.cohort_size,
        },
        reason="first dose level opens with the trial",
    )


def consequences(state: TrialState, submission: Submission) -> Iterator[list[Decided]]:
    """The decisions a just-recorded submission leads to, batch by batch.

    Lazy on purpose: each batch is worked out from the state as it is after the batches before it
    were recorded, the way a person would read the trial again after each decision.
    """
    fact = _current_fact_for(state, submission)
    subject_id = submission.subject_id
    if subject_id is None and fact is not None:
        subject_id = fact.subject_id
    if subject_id is None or subject_id not in state.subjects:
        return
    if fact is not None:
        yield deviations(state, fact)
    if window_may_change(state.subjects[subject_id], submission):
        yield window_decisions(state, subject_id)
    while batch := escalation_step(state):
        yield batch
    yield reevaluations(state)
    yield expansion_closing(state)


def _current_fact_for(state: TrialState, submission: Submission) -> Fact | None:
    """The fact as now believed: the submission's own, or a corrected target; none after a void."""
    if submission.type == RECORD_VOIDED:
        return None
    if submission.type == RECORD_CORRECTED:
        return state.facts.get(str(submission.data["target_event_id"]))
    return state.facts.get(submission.event_id)


# --- 1. protocol deviations ----------------------------------------------------------------------


def deviations(state: TrialState, fact: Fact) -> list[Decided]:
    """A treatment fact that departs from the protocol is kept, and flagged."""
    if fact.type not in (FRUQUINTINIB_DOSED, HAIC_ADMINISTERED):
        return []
    assert fact.subject_id is not None
    subject = state.subjects[fact.subject_id]
    treatment = state.facts.of_subject(fact.subject_id, (HAIC_ADMINISTERED, DOSE_MODIFIED))
    return [
        Decided(
            PROTOCOL_DEVIATION,
            {
                "code": deviation.code,
                "message": deviation.message,
                "target_event_id": fact.event_id,
            },
            reason=deviation.message,
            subject_id=fact.subject_id,
        )
        for deviation in assess_deviations(fact, treatment, subject.dose_mg, state.protocol)
    ]


# --- 2. the DLT window ---------------------------------------------------------------------------

_WINDOW_SENSITIVE_TYPES = (ADVERSE_EVENT_UPDATED, DLT_ADJUDICATED, RECORD_CORRECTED, RECORD_VOIDED)


def window_may_change(subject: SubjectState, submission: Submission) -> bool:
    """After the window closed, only facts dated inside it or amendments can change it."""
    window = subject.window
    if window is None or not window.is_closed or window.window_end is None:
        return True
    return submission.type in _WINDOW_SENSITIVE_TYPES or submission.occurred_on <= window.window_end


def window_decisions(state: TrialState, subject_id: str) -> list[Decided]:
    """New DLT candidates, then the window closed (first time) or revised (late data)."""
    subject = state.subjects[subject_id]
    window = assess_dlt_window(state.facts, subject_id, state.protocol)
    aes = state.adverse_events(subject_id)
    decided = [
        Decided(
            DLT_CANDIDATE_FLAGGED,
            {
                "ae_id": ae_id,
                "term": aes[ae_id].term,
                "grade": aes[ae_id].worst_grade,
                "onset": aes[ae_id].onset.isoformat(),
            },
            reason=f"grade {aes[ae_id].worst_grade} related adverse event in the DLT window",
            subject_id=subject_id,
        )
        for ae_id in sorted(window.candidates - subject.flagged)
    ]
    recorded = subject.window
    if not window.is_closed and (recorded is None or not recorded.is_closed):
        return decided
    if (
        recorded is not None
        and recorded.is_closed
        and (recorded.decides_as(window) or (window.pending and not window.is_closed))
    ):
        # A closed window stays as decided until a late candidate is adjudicated.
        return decided
    first_close = recorded is None or not recorded.is_closed
    decided.append(
        Decided(
            DLT_WINDOW_CLOSED if first_close else DLT_WINDOW_REVISED,
            window.to_data(),
            reason=window_reason(window) if first_close else "late or corrected data",
            subject_id=subject_id,
        )
    )
    return decided


def window_reason(window: DltWindow) -> str:
    if window.has_dlt:
        return "dose-limiting toxicity adjudicated"
    if window.evaluable:
        return f"completed the DLT window with {window.doses_in_window} planned doses taken"
    if window.c1d1 is None:
        return "left the study before treatment: to be replaced"
    return f"not DLT-evaluable ({window.doses_in_window} planned doses taken): to be replaced"


# --- 4. and 5. late data on closed levels, and the end of enrollment -----------------------------


def reevaluations(state: TrialState) -> list[Decided]:
    """Closed levels whose count late or corrected data changed; earlier decisions stand."""
    decided = []
    for index, level in enumerate(state.levels):
        if level.state is not CohortState.CLOSED or level.counts_at_decision is None:
            continue
        now = state.level_count(level)
        if now == level.counts_at_decision:
            continue
        decided.append(
            Decided(
                COHORT_REEVALUATED,
                {
                    "cohort": level.name,
                    "level": index,
                    "before": count_data(level.counts_at_decision),
                    "after": count_data(now),
                },
                reason="late or corrected data changed a closed cohort's count; "
                "earlier decisions stand and are flagged for review",
            )
        )
    return decided


def expansion_closing(state: TrialState) -> list[Decided]:
    """The expansion cohort closes when the trial has enrolled all its subjects."""
    if state.stage is not Stage.EXPANSION or len(state.subjects) < state.protocol.max_subjects:
        return []
    return [
        Decided(
            COHORT_CLOSED,
            {
                "cohort": EXPANSION,
                "enrolled": len(state.expansion_subjects),
                "decision": "enrollment complete",
            },
            reason=f"{state.protocol.max_subjects} subjects enrolled",
        )
    ]
