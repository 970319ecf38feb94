"""What the Trial knows, and the one fold that builds it from recorded events.

`TrialState.evolve` is the only code that changes the state, and it only assigns: the rules that
decide what to record live in `intake_rules` (refusals) and `follow_up` (the ledger's decisions),
and read this state without changing it. The fold reads any `Recorded`, so the aggregate's own
events and the `LedgerEntry` records of the read side go through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ledger.aggregates.escalation import LevelCount
from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    SUBJECT_ENROLLED,
    SUBMISSION_TYPES,
    FactBook,
    Recorded,
    Submission,
)
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.safety import ADVERSE_EVENT_TYPES, AdverseEvent, DltWindow, adverse_events


class Outcome(StrEnum):
    """What recording a submission did: recorded it, or recognised a redelivery."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"


# The ledger's own recorded types (contract §3), beside the submission types in `facts`.
TRIAL_OPENED = "trial.opened"
COHORT_OPENED = "cohort.opened"
COHORT_EXPANDED = "cohort.expanded"
COHORT_CLOSED = "cohort.closed"
COHORT_REEVALUATED = "cohort.reevaluated"
DOSE_ESCALATED = "dose.escalated"
DOSE_DEESCALATED = "dose.deescalated"
MTD_DECLARED = "mtd.declared"
EXPANSION_OPENED = "expansion.opened"
TRIAL_STOPPED = "trial.stopped"
DLT_CANDIDATE_FLAGGED = "dlt.candidate_flagged"
DLT_WINDOW_CLOSED = "dlt_window.closed"
DLT_WINDOW_REVISED = "dlt_window.revised"
PROTOCOL_DEVIATION = "protocol.deviation"

__all__ = ["EXPANSION", "CohortState", "Decided", "Level", "Stage", "SubjectState", "TrialState"]


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision for the ledger to record: one of the types above, its data, its stated reason.

    The rules (`follow_up`, `dose_decisions`) return these; the Trial records each as its event.
    """

    type: str
    data: dict[str, Any]
    reason: str
    subject_id: str | None = None


class Stage(StrEnum):
    NOT_OPEN = "not_open"
    ESCALATION = "escalation"
    EXPANSION = "expansion"
    ENROLLMENT_COMPLETE = "enrollment_complete"
    STOPPED = "stopped"


class CohortState(StrEnum):
    NOT_OPEN = "not_open"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class Level:
    """One dose level as the escalation rules see it."""

    name: str
    dose_mg: float
    state: CohortState = CohortState.NOT_OPEN
    slots: int = 0
    subjects: list[str] = field(default_factory=list)
    count: LevelCount = field(default_factory=LevelCount)
    """DLT-evaluable subjects (closed windows) and DLTs among them, as the windows now read:
    the fold counts again only when one of the level's windows is recorded."""
    counts_at_decision: LevelCount | None = None


@dataclass(slots=True)
class SubjectState:
    cohort: str
    dose_mg: float
    flagged: set[str] = field(default_factory=set)
    window: DltWindow | None = None

    @property
    def window_closed(self) -> bool:
        return self.window is not None and self.window.is_closed

    @property
    def replaced(self) -> bool:
        """Closed without being DLT-evaluable: does not count toward 3 or 6."""
        return self.window_closed and self.window is not None and not self.window.evaluable


class TrialState:
    """One trial's state: its levels and subjects, the book of facts, what was submitted."""

    def __init__(self, protocol: ProtocolDefinition) -> None:
        self.protocol = protocol
        self.trial_id = protocol.trial_id
        self.stage = Stage.ESCALATION
        self.current_level = 0
        self.mtd_level: int | None = None
        self.levels = [Level(name=lv.name, dose_mg=lv.dose_mg) for lv in protocol.dose_levels]
        self.expansion_subjects: list[str] = []
        self.subjects: dict[str, SubjectState] = {}
        self.facts = FactBook()
        # Per submitted event_id, the submission as recorded: its type and source (amendments)
        # and its content; its fingerprint is worked out only when the event_id comes again.
        self.submitted: dict[str, Submission] = {}

    # --- the fold -------------------------------------------------------------------------------

    def evolve(self, record: Recorded) -> None:
        """Take one recorded event into the state; `trial.opened` was read by the constructor."""
        kind = record.type
        if kind in _SUBMISSION_TYPES:
            self._remember(record)
            self.facts.fold(record)
        step = _STEPS.get(kind)
        if step is not None:
            step(self, record)

    def _remember(self, record: Recorded) -> None:
        """Keep the submission for idempotency and for validating amendments."""
        event_id, occurred_on = record.event_id, record.occurred_on
        assert event_id is not None and occurred_on is not None
        # Built positionally: this runs once per submission of every replay.
        self.submitted[event_id] = Submission(
            event_id,
            record.type,
            self.trial_id,
            record.subject_id,
            occurred_on,
            record.source or "",
            record.entered_by or "",
            record.reason,
            record.data,
        )

    def _enrolled(self, record: Recorded) -> None:
        assert record.subject_id is not None
        cohort = str(record.data["cohort"])
        self.subjects[record.subject_id] = SubjectState(
            cohort=cohort, dose_mg=self.dose_of_cohort(cohort)
        )
        self.cohort_subjects(cohort).append(record.subject_id)

    def _level_opened(self, record: Recorded) -> None:
        """`cohort.opened` and `cohort.expanded`: the level takes subjects up to its slots."""
        level = self.levels[int(record.data["level"])]
        level.state = CohortState.OPEN
        level.slots = int(record.data["slots"])

    def _cohort_closed(self, record: Recorded) -> None:
        if record.data["cohort"] == EXPANSION:
            self.stage = Stage.ENROLLMENT_COMPLETE
            return
        level = self.levels[int(record.data["level"])]
        level.state = CohortState.CLOSED
        level.counts_at_decision = LevelCount(
            evaluable=int(record.data["evaluable"]), dlts=int(record.data["dlts"])
        )

    def _dose_moved(self, record: Recorded) -> None:
        """`dose.escalated` and `dose.deescalated`."""
        self.current_level = int(record.data["to_level"])

    def _mtd_declared(self, record: Recorded) -> None:
        self.mtd_level = int(record.data["level"])
        self.stage = Stage.ENROLLMENT_COMPLETE

    def _expansion_opened(self, _record: Recorded) -> None:
        self.stage = Stage.EXPANSION

    def _stopped(self, _record: Recorded) -> None:
        self.stage = Stage.STOPPED

    def _candidate_flagged(self, record: Recorded) -> None:
        assert record.subject_id is not None
        self.subjects[record.subject_id].flagged.add(str(record.data["ae_id"]))

    def _window_recorded(self, record: Recorded) -> None:
        """`dlt_window.closed` and `dlt_window.revised`: the window as the ledger now reads it,
        and the count of the subject's dose level (none for an expansion subject) with it."""
        assert record.subject_id is not None
        subject = self.subjects[record.subject_id]
        subject.window = DltWindow.from_data(record.data)
        level = self.level_of(subject.cohort)
        if level is not None:
            level.count = self._counted(level)

    def _reevaluated(self, record: Recorded) -> None:
        after = record.data["after"]
        self.levels[int(record.data["level"])].counts_at_decision = LevelCount(
            evaluable=int(after["evaluable"]), dlts=int(after["dlts"])
        )

    # --- reading ----------------------------------------------------------------------------

    def level_of(self, cohort: str) -> Level | None:
        index = self.protocol.level_index(cohort)
        return None if index is None else self.levels[index]

    def dose_of_cohort(self, cohort: str) -> float:
        level = self.protocol.cohort_level(cohort, expansion_at=self.mtd_level)
        assert level is not None, f"no dose for cohort {cohort}"
        return level.dose_mg

    def cohort_subjects(self, cohort: str) -> list[str]:
        if cohort == EXPANSION:
            return self.expansion_subjects
        level = self.level_of(cohort)
        assert level is not None, f"no cohort {cohort}"
        return level.subjects

    def level_count(self, level: Level) -> LevelCount:
        """DLT-evaluable subjects (closed windows) and DLTs among them, as the fold keeps it:
        the rules ask after every submission, the count changes only with a recorded window."""
        return level.count

    def _counted(self, level: Level) -> LevelCount:
        """The level's count worked out from its subjects' recorded windows."""
        windows = [self.subjects[s].window for s in level.subjects]
        closed = [w for w in windows if w is not None and w.is_closed and w.evaluable]
        return LevelCount(evaluable=len(closed), dlts=sum(1 for w in closed if w.has_dlt))

    def occupied(self, level: Level) -> int:
        """Places taken: replaced subjects free theirs."""
        return sum(1 for s in level.subjects if not self.subjects[s].replaced)

    def open_cohort(self) -> str | None:
        """The cohort a new subject could enter right now, or None while enrollment waits."""
        if len(self.subjects) >= self.protocol.max_subjects:
            return None
        if self.stage is Stage.EXPANSION:
            return EXPANSION
        if self.stage is Stage.ESCALATION:
            level = self.levels[self.current_level]
            if level.state is CohortState.OPEN and self.occupied(level) < level.slots:
                return level.name
        return None

    def adverse_events(self, subject_id: str) -> dict[str, AdverseEvent]:
        return adverse_events(self.facts.of_subject(subject_id, ADVERSE_EVENT_TYPES))

    def submitted_type(self, event_id: str) -> str | None:
        """The type of a recorded submission, None for an event_id never recorded."""
        submitted = self.submitted.get(event_id)
        return None if submitted is None else submitted.type

    def submitted_source(self, event_id: str) -> str | None:
        """The system that submitted a recorded event, None for an event_id never recorded."""
        submitted = self.submitted.get(event_id)
        return None if submitted is None else submitted.source

    def reported_ae_ids(self, subject_id: str) -> set[str]:
        return {
            str(f.data["ae_id"])
            for f in self.facts.of_subject(subject_id, (ADVERSE_EVENT_REPORTED,))
        }


_SUBMISSION_TYPES = frozenset(SUBMISSION_TYPES)  # a set, for the fold's test per record

_STEPS: dict[str, Callable[[TrialState, Recorded], None]] = {
    SUBJECT_ENROLLED: TrialState._enrolled,
    COHORT_OPENED: TrialState._level_opened,
    COHORT_EXPANDED: TrialState._level_opened,
    COHORT_CLOSED: TrialState._cohort_closed,
    COHORT_REEVALUATED: TrialState._reevaluated,
    DOSE_ESCALATED: TrialState._dose_moved,
    DOSE_DEESCALATED: TrialState._dose_moved,
    MTD_DECLARED: TrialState._mtd_declared,
    EXPANSION_OPENED: TrialState._expansion_opened,
    TRIAL_STOPPED: TrialState._stopped,
    DLT_CANDIDATE_FLAGGED: TrialState._candidate_flagged,
    DLT_WINDOW_CLOSED: TrialState._window_recorded,
    DLT_WINDOW_REVISED: TrialState._window_recorded,
}
"""What each recorded type does to the state; types not listed (deviations) change nothing."""
