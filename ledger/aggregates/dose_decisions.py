"""The 3+3 decision at the current level, written out as the events that record it.

`decide` (in `escalation`) is the rule table; this module asks it only when the current level is
decidable and no DLT candidate there awaits adjudication, and turns its answer into the ledger's
records: `cohort.closed` with the decision, then the dose moving, a level opening or expanding,
the MTD, the expansion cohort, or the stop.
"""

from __future__ import annotations

from ledger.aggregates.escalation import (
    Decision,
    DeclareMtd,
    DeEscalate,
    Escalate,
    Expand,
    LevelCount,
    StopForToxicity,
    cohort_is_decidable,
    decide,
)
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.trial_state import (
    COHORT_CLOSED,
    COHORT_EXPANDED,
    COHORT_OPENED,
    DOSE_DEESCALATED,
    DOSE_ESCALATED,
    EXPANSION_OPENED,
    MTD_DECLARED,
    TRIAL_STOPPED,
    CohortState,
    Decided,
    Level,
    Stage,
    TrialState,
)


def escalation_step(state: TrialState) -> list[Decided]:
    """The decisions at the current level if the 3+3 rule can act now; empty while it waits."""
    if state.stage is not Stage.ESCALATION:
        return []
    level = state.levels[state.current_level]
    if level.state is not CohortState.OPEN:
        return []
    count = state.level_count(level)
    if not cohort_is_decidable(count, level.slots) or has_pending_candidates(state, level):
        return []
    counts = [state.level_count(lv) for lv in state.levels]
    decision = decide(state.protocol.escalation.variant, counts, state.current_level)
    return _Step(state, level, count).decisions(decision)


def has_pending_candidates(state: TrialState, level: Level) -> bool:
    """A flagged candidate awaiting adjudication holds the level's decision back."""
    for subject_id in level.subjects:
        subject = state.subjects[subject_id]
        if subject.window is not None and subject.window.is_closed and subject.window.has_dlt:
            continue
        if not subject.flagged:
            continue
        aes = state.adverse_events(subject_id)
        if any(aes[ae].adjudicated_dlt is None for ae in subject.flagged if ae in aes):
            return True
    return False


class _Step:
    """One 3+3 decision at the current level, written out as the events that record it."""

    def __init__(self, state: TrialState, level: Level, count: LevelCount) -> None:
        self.state = state
        self.protocol = state.protocol
        self.level = level
        self.index = state.current_level
        self.seen = f"{count.dlts}/{count.evaluable} DLTs at {level.name}"
        self.variant = state.protocol.escalation.variant.value
        self.counts = {
            "cohort": level.name,
            "level": self.index,
            "enrolled": len(level.subjects),
            "evaluable": count.evaluable,
            "dlts": count.dlts,
        }

    def decisions(self, decision: Decision) -> list[Decided]:
        if isinstance(decision, Expand):
            return [self._expanded()]
        label = decision_label(decision, self.protocol)
        closed = Decided(
            COHORT_CLOSED,
            {**self.counts, "decision": label},
            reason=f"{self.seen}: {label} ({self.variant})",
        )
        match decision:
            case Escalate(to_level=to_level):
                return [closed, *self._escalated(to_level)]
            case DeEscalate(to_level=to_level):
                return [closed, *self._deescalated(to_level)]
            case DeclareMtd(level=mtd_level):
                return [closed, *self._mtd_declared(mtd_level)]
            case StopForToxicity():
                return [closed, self._stopped()]

    def _expanded(self) -> Decided:
        return Decided(
            COHORT_EXPANDED,
            {
                **self.counts,
                "slots": 2 * self.protocol.escalation.cohort_size,
                "decision": "expand",
            },
            reason=f"{self.seen}: treat 3 more at {self.level.name} ({self.variant})",
        )

    def _escalated(self, to_level: int) -> list[Decided]:
        target = self.state.levels[to_level]
        return [
            self._dose_moved(DOSE_ESCALATED, to_level),
            Decided(
                COHORT_OPENED,
                {
                    "cohort": target.name,
                    "level": to_level,
                    "dose_mg": target.dose_mg,
                    "slots": self.protocol.escalation.cohort_size,
                },
                reason=f"escalated from {self.level.name}",
            ),
        ]

    def _deescalated(self, to_level: int) -> list[Decided]:
        target = self.state.levels[to_level]
        return [
            self._dose_moved(DOSE_DEESCALATED, to_level),
            Decided(
                COHORT_EXPANDED,
                {
                    "cohort": target.name,
                    "level": to_level,
                    "enrolled": len(target.subjects),
                    **count_data(self.state.level_count(target)),
                    "slots": 2 * self.protocol.escalation.cohort_size,
                    "decision": "expand",
                },
                reason=f"{self.level.name} too toxic; treat 3 more at {target.name}",
            ),
        ]

    def _dose_moved(self, kind: str, to_level: int) -> Decided:
        target = self.state.levels[to_level]
        return Decided(
            kind,
            {
                "from_cohort": self.level.name,
                "from_level": self.index,
                "to_cohort": target.name,
                "to_level": to_level,
                "dose_mg": target.dose_mg,
            },
            reason=self.seen,
        )

    def _mtd_declared(self, mtd_level: int) -> list[Decided]:
        mtd = self.state.levels[mtd_level]
        declared = Decided(
            MTD_DECLARED,
            {
                "cohort": mtd.name,
                "level": mtd_level,
                "dose_mg": mtd.dose_mg,
                **count_data(self.state.level_count(mtd)),
            },
            reason=f"{self.seen} ({self.variant})",
        )
        places = self.protocol.max_subjects - len(self.state.subjects)
        if places <= 0:
            return [declared]
        expansion = Decided(
            EXPANSION_OPENED,
            {"cohort": EXPANSION, "at_cohort": mtd.name, "dose_mg": mtd.dose_mg, "places": places},
            reason=f"stage 2 expands at the MTD ({mtd.name})",
        )
        return [declared, expansion]

    def _stopped(self) -> Decided:
        return Decided(
            TRIAL_STOPPED,
            {"cohort": self.level.name, "level": self.index, "reason": "no tolerable dose"},
            reason=f"{self.seen} at the lowest dose level",
        )


def decision_label(decision: Decision, protocol: ProtocolDefinition) -> str:
    """The `decision` text recorded on `cohort.closed` and shown in the cohort table."""
    names = [level.name for level in protocol.dose_levels]
    match decision:
        case Escalate(to_level=to_level):
            return f"escalate to {names[to_level]}"
        case DeEscalate(to_level=to_level):
            return f"de-escalate to {names[to_level]}"
        case DeclareMtd(level=level):
            return f"MTD is {names[level]}" if level >= 0 else "no MTD"
        case StopForToxicity():
            return "stop: no tolerable dose"
        case _:
            return "expand"


def count_data(count: LevelCount) -> dict[str, int]:
    return {"evaluable": count.evaluable, "dlts": count.dlts}
