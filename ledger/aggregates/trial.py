"""The Trial aggregate: one trial's whole history, and the escalation rules it enforces.

One aggregate per trial, on purpose: enrollment limits, DLT evaluability and the 3+3 decisions all
span cohorts and subjects, so they need one consistency boundary. The aggregate's version is the
contract's gapless ledger `position`.

The aggregate is the shell around three plain parts, each readable and testable without a store:

* `trial_state.TrialState`: what the trial knows, and the fold (`evolve`) every event goes through;
* `intake_rules`: which submissions are refused, checked before anything is recorded, so a
  rejection leaves the aggregate exactly as it was;
* `follow_up`: the decisions a recorded submission leads to (deviations, DLT windows, 3+3).

`record` checks, records the submission, then records each decision the policy returns. The events
below only carry data; their one `apply` hands them to the fold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from ledger.aggregates import facts, follow_up, intake_rules
from ledger.aggregates import trial_state as recorded
from ledger.aggregates.escalation import LevelCount
from ledger.aggregates.facts import Submission, cycle_collection_paused
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.trial_state import CohortState, Outcome, Stage, TrialState
from ledger.aggregates.trial_topics import LEDGER_TYPES, trial_aggregate_id

__all__ = [
    "EXPANSION",
    "CohortState",
    "Stage",
    "Trial",
    "project_trial",
]


class Trial(Aggregate):
    TOPIC = "trial-ledger:Trial"

    class Event(Aggregate.Event):
        """Every recorded event carries the contract's §3 fields."""

        TOPIC = "trial-ledger:Trial.Event"
        ledger_type: ClassVar[str] = ""
        """The contract type this class records (`trial_topics.LEDGER_TYPES`); "" for a base."""
        subject_id: str | None
        occurred_on: date | None
        data: dict[str, Any]
        event_id: str | None
        source: str | None
        entered_by: str | None
        reason: str | None

        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            # One table (trial_topics) says which type each class records: readers of the store
            # map a stored topic to its type there, without these classes.
            cls.ledger_type = LEDGER_TYPES.get(cls.__name__, "")

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Trial)
            aggregate.state.evolve(self)

        @property
        def type(self) -> str:
            """The contract's event type (`facts.Recorded`), e.g. `cohort.closed`."""
            return self.ledger_type

        @property
        def position(self) -> int:
            return self.originator_version

    class Opened(Event, Aggregate.Created):
        TOPIC = "trial-ledger:Trial.Opened"

    # --- submissions (contract §2) -----------------------------------------------------------

    class FactRecorded(Event):
        TOPIC = "trial-ledger:Trial.FactRecorded"

    class SubjectEnrolled(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectEnrolled"

    class HaicAdministered(FactRecorded):
        TOPIC = "trial-ledger:Trial.HaicAdministered"

    class FruquintinibDosed(FactRecorded):
        TOPIC = "trial-ledger:Trial.FruquintinibDosed"

    class DoseModified(FactRecorded):
        TOPIC = "trial-ledger:Trial.DoseModified"

    class AdverseEventReported(FactRecorded):
        TOPIC = "trial-ledger:Trial.AdverseEventReported"

    class AdverseEventUpdated(FactRecorded):
        TOPIC = "trial-ledger:Trial.AdverseEventUpdated"

    class DltAdjudicated(FactRecorded):
        TOPIC = "trial-ledger:Trial.DltAdjudicated"

    class TumorAssessed(FactRecorded):
        TOPIC = "trial-ledger:Trial.TumorAssessed"

    class AnticancerTherapyStarted(FactRecorded):
        TOPIC = "trial-ledger:Trial.AnticancerTherapyStarted"

    class TreatmentDiscontinued(FactRecorded):
        TOPIC = "trial-ledger:Trial.TreatmentDiscontinued"

    class SubjectKnownAlive(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectKnownAlive"

    class SubjectDied(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectDied"

    class SubjectWithdrawn(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectWithdrawn"

    class RecordCorrected(Event):
        TOPIC = "trial-ledger:Trial.RecordCorrected"

    class RecordVoided(Event):
        TOPIC = "trial-ledger:Trial.RecordVoided"

    # --- the ledger's own decisions (contract §3) ----------------------------------------------

    class CohortOpened(Event):
        TOPIC = "trial-ledger:Trial.CohortOpened"

    class CohortExpanded(Event):
        TOPIC = "trial-ledger:Trial.CohortExpanded"

    class CohortClosed(Event):
        TOPIC = "trial-ledger:Trial.CohortClosed"

    class DoseEscalated(Event):
        TOPIC = "trial-ledger:Trial.DoseEscalated"

    class DoseDeescalated(Event):
        TOPIC = "trial-ledger:Trial.DoseDeescalated"

    class MtdDeclared(Event):
        TOPIC = "trial-ledger:Trial.MtdDeclared"

    class ExpansionOpened(Event):
        TOPIC = "trial-ledger:Trial.ExpansionOpened"

    class TrialStopped(Event):
        TOPIC = "trial-ledger:Trial.TrialStopped"

    class DltCandidateFlagged(Event):
        TOPIC = "trial-ledger:Trial.DltCandidateFlagged"

    class DltWindowClosed(Event):
        TOPIC = "trial-ledger:Trial.DltWindowClosed"

    class DltWindowRevised(Event):
        TOPIC = "trial-ledger:Trial.DltWindowRevised"

    class ProtocolDeviationFlagged(Event):
        TOPIC = "trial-ledger:Trial.ProtocolDeviationFlagged"

    class CohortReevaluated(Event):
        TOPIC = "trial-ledger:Trial.CohortReevaluated"

    # --- construction ---------------------------------------------------------------------------

    def __init__(self, data: dict[str, Any]) -> None:
        """Run by `Opened`: the protocol it records is the state's starting point."""
        self.state = TrialState(ProtocolDefinition.from_mapping(data["protocol"]))

    @classmethod
    def open(
        cls,
        protocol: ProtocolDefinition,
        *,
        source: str,
        entered_by: str,
        recorded_at: datetime,
        reason: str | None = None,
    ) -> Trial:
        """Open the trial under a protocol; the first cohort opens with it."""
        trial = cls._create(
            cls.Opened,
            id=trial_aggregate_id(protocol.trial_id),
            timestamp=recorded_at,
            subject_id=None,
            occurred_on=None,
            data={"protocol": protocol.to_mapping()},
            event_id=None,
            source=source,
            entered_by=entered_by,
            reason=reason,
        )
        trial._record_decision(follow_up.first_cohort(protocol), recorded_at, None)
        return trial

    # --- the one command integrators drive ----------------------------------------------------

    def record(self, submission: Submission, recorded_at: datetime) -> Outcome:
        """Record a submission and every decision it leads to, or refuse it with a reason."""
        if intake_rules.already_recorded(self.state, submission):
            return Outcome.DUPLICATE
        intake_rules.check_submission(self.state, submission, today=recorded_at.date())
        self.trigger_event(
            _SUBMITTED[submission.type],
            timestamp=recorded_at,
            subject_id=submission.subject_id,
            occurred_on=submission.occurred_on,
            data=dict(submission.data),
            event_id=submission.event_id,
            source=submission.source,
            entered_by=submission.entered_by,
            reason=submission.reason,
        )
        for batch in follow_up.consequences(self.state, submission):
            for decided in batch:
                self._record_decision(decided, recorded_at, submission.occurred_on)
        return Outcome.RECORDED

    def _record_decision(
        self, decided: follow_up.Decided, recorded_at: datetime, on: date | None
    ) -> None:
        self.trigger_event(
            _DECIDED[decided.type],
            timestamp=recorded_at,
            subject_id=decided.subject_id,
            occurred_on=on,
            data=decided.data,
            event_id=None,
            source="trial-ledger",
            entered_by="trial-ledger",
            reason=decided.reason,
        )

    # --- reading --------------------------------------------------------------------------------

    @property
    def protocol(self) -> ProtocolDefinition:
        return self.state.protocol

    @property
    def trial_id(self) -> str:
        return self.state.trial_id

    @property
    def stage(self) -> Stage:
        return self.state.stage

    @property
    def current_level(self) -> int:
        return self.state.current_level

    @property
    def mtd_level(self) -> int | None:
        return self.state.mtd_level

    def open_cohort(self) -> str | None:
        """The cohort a new subject could enter right now, or None while enrollment waits."""
        return self.state.open_cohort()

    def dose_of_cohort(self, cohort: str) -> float:
        """The fruquintinib dose a subject enrolled into `cohort` now would be assigned."""
        return self.state.dose_of_cohort(cohort)

    def level_counts(self) -> dict[str, LevelCount]:
        """DLT-evaluable subjects and DLTs per dose level, as the aggregate counts them."""
        return {level.name: self.state.level_count(level) for level in self.state.levels}

    def cohort_slots(self, cohort: str) -> int:
        level = self.state.level_of(cohort)
        return 0 if level is None else level.slots

    def target_type(self, event_id: str) -> str | None:
        """The type of a recorded submission, for validating a correction of it at the edge."""
        return self.state.submitted_type(event_id)

    def target_source(self, event_id: str) -> str | None:
        """The system that submitted a recorded event: only it may correct or void the record."""
        return self.state.submitted_source(event_id)


def project_trial(trial: Trial | None, events: Iterable[Trial.Event]) -> Trial | None:
    """A Trial from its stored events: the `projector_func` to read it with (the repository's
    `get`). eventsourcing's default, `project_aggregate`, first checks each event against a
    runtime Protocol, about 0.3 of a whole replay on Python 3.11 (bench/bench_record.py); a
    Trial's events are its own classes, and their `mutate` checks the id and the version.
    Decoding the events and folding them make no reference cycles: the cycle collector waits."""
    with cycle_collection_paused():
        for event in events:
            trial = event.mutate(trial)
    return trial


_BY_TYPE: dict[str, type[Trial.Event]] = {
    event_class.ledger_type: event_class
    for event_class in vars(Trial).values()
    if isinstance(event_class, type)
    and issubclass(event_class, Trial.Event)
    and event_class.ledger_type
}
_SUBMITTED = {kind: _BY_TYPE[kind] for kind in facts.SUBMISSION_TYPES}
_DECIDED = {
    kind: event_class
    for kind, event_class in _BY_TYPE.items()
    if kind not in _SUBMITTED and kind != recorded.TRIAL_OPENED
}
