"""Which contract event type each stored Trial event is, and the Trial's aggregate id: what
reading the store needs, without the aggregate class.

The stored topic of a Trial event is ``trial-ledger:Trial.<class name>``; :data:`LEDGER_TYPES`
gives each event class its contract type (``cohort.closed``…), and the event classes of
:class:`ledger.aggregates.trial.Trial` take theirs from it. Readers of the store
(:mod:`ledger.reading`) map a row's topic to its type here, so a read command never builds the
aggregate's fifty event classes it does not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.aggregates import facts
from ledger.aggregates import trial_state as recorded

__all__ = [
    "LEDGER_TYPES",
    "TRIAL_TOPIC",
    "ledger_type_of_topic",
    "trial_aggregate_id",
    "trial_topic",
]

TRIAL_TOPIC: Final = "trial-ledger:Trial"

LEDGER_TYPES: Final[Mapping[str, str]] = {
    "Opened": recorded.TRIAL_OPENED,
    "SubjectEnrolled": facts.SUBJECT_ENROLLED,
    "HaicAdministered": facts.HAIC_ADMINISTERED,
    "FruquintinibDosed": facts.FRUQUINTINIB_DOSED,
    "DoseModified": facts.DOSE_MODIFIED,
    "AdverseEventReported": facts.ADVERSE_EVENT_REPORTED,
    "AdverseEventUpdated": facts.ADVERSE_EVENT_UPDATED,
    "DltAdjudicated": facts.DLT_ADJUDICATED,
    "TumorAssessed": facts.TUMOR_ASSESSED,
    "AnticancerTherapyStarted": facts.ANTICANCER_THERAPY_STARTED,
    "TreatmentDiscontinued": facts.TREATMENT_DISCONTINUED,
    "SubjectKnownAlive": facts.SUBJECT_ALIVE,
    "SubjectDied": facts.SUBJECT_DIED,
    "SubjectWithdrawn": facts.SUBJECT_WITHDRAWN,
    "RecordCorrected": facts.RECORD_CORRECTED,
    "RecordVoided": facts.RECORD_VOIDED,
    "CohortOpened": recorded.COHORT_OPENED,
    "CohortExpanded": recorded.COHORT_EXPANDED,
    "CohortClosed": recorded.COHORT_CLOSED,
    "DoseEscalated": recorded.DOSE_ESCALATED,
    "DoseDeescalated": recorded.DOSE_DEESCALATED,
    "MtdDeclared": recorded.MTD_DECLARED,
    "ExpansionOpened": recorded.EXPANSION_OPENED,
    "TrialStopped": recorded.TRIAL_STOPPED,
    "DltCandidateFlagged": recorded.DLT_CANDIDATE_FLAGGED,
    "DltWindowClosed": recorded.DLT_WINDOW_CLOSED,
    "DltWindowRevised": recorded.DLT_WINDOW_REVISED,
    "ProtocolDeviationFlagged": recorded.PROTOCOL_DEVIATION,
    "CohortReevaluated": recorded.COHORT_REEVALUATED,
}
"""Trial event class name → its contract event type; an event class not listed (the bases)
records no contract event."""


def trial_topic(event_name: str) -> str:
    """The stored topic of the Trial event class ``event_name`` (``Opened`` → …``Trial.Opened``)."""
    return f"{TRIAL_TOPIC}.{event_name}"


_TYPE_OF_TOPIC: Final = {trial_topic(name): type_ for name, type_ in LEDGER_TYPES.items()}


def ledger_type_of_topic(topic: str) -> str | None:
    """The contract type of a stored Trial event's topic; None for a topic of no Trial event."""
    return _TYPE_OF_TOPIC.get(topic)


def trial_aggregate_id(trial_id: str) -> UUID:
    """Derived from the registry id, so a redelivered `trial.opened` cannot open a second trial."""
    return uuid5(NAMESPACE_URL, f"trial-ledger:trial:{trial_id}")
