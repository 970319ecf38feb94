"""The cohort table, folded from the ledger's own recorded decisions.

It reads what the ledger recorded (enrollments, DLT windows, cohort decisions) rather than
re-running the rules, so the table as of T shows exactly what the ledger had decided by T.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.aggregates import facts
from ledger.aggregates import trial_state as recorded
from ledger.aggregates.protocol import EXPANSION
from ledger.aggregates.trial_state import CohortState, Stage
from ledger.entries import LedgerEntry


@dataclass(frozen=True, slots=True)
class CohortRow:
    cohort: str
    dose_mg: float | None
    enrolled: int
    evaluable: int
    dlts: int
    state: str
    decision: str | None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "dose_mg": self.dose_mg,
            "enrolled": self.enrolled,
            "evaluable": self.evaluable,
            "dlts": self.dlts,
            "state": self.state,
            "decision": self.decision,
        }


@dataclass(frozen=True, slots=True)
class CohortTable:
    trial_id: str
    stage: str
    mtd: str | None
    variant: str
    position: int
    cohorts: tuple[CohortRow, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "stage": self.stage,
            "mtd": self.mtd,
            "variant": self.variant,
            "position": self.position,
            "cohorts": [row.to_json_dict() for row in self.cohorts],
        }

    def render(self) -> str:
        """A fixed-width table for the terminal."""
        header = ("cohort", "dose_mg", "enrolled", "evaluable", "DLTs", "state", "decision")
        rows = [header] + [
            (
                row.cohort,
                "" if row.dose_mg is None else f"{row.dose_mg:g}",
                str(row.enrolled),
                str(row.evaluable),
                str(row.dlts),
                row.state,
                row.decision or "",
            )
            for row in self.cohorts
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
        summary = (
            f"trial {self.trial_id} ({self.variant}) — stage: {self.stage}; "
            f"MTD: {self.mtd or 'not declared'}; ledger position {self.position}"
        )
        return "\n".join([summary, *lines])


@dataclass(slots=True)
class _Cohort:
    dose_mg: float | None
    state: CohortState = CohortState.NOT_OPEN
    decision: str | None = None
    subjects: list[str] = field(default_factory=list)


def cohort_table(entries: Iterable[LedgerEntry], *, position: int | None = None) -> CohortTable:
    """Fold recorded entries (already cut at the as-of moment) into the cohort table.

    Only the types in `COHORT_TYPES` change the table; every other type only moves its position.
    So the entries of those types alone, with the `position` of the last entry known, give the
    same table as the whole ledger (what `LedgerService.cohort_table` reads).
    """
    fold = _CohortFold()
    for entry in entries:
        fold.evolve(entry)
    if position is not None:
        fold.position = position
    return fold.table()


@dataclass(slots=True)
class _CohortFold:
    """What the table keeps while reading: per cohort, and each subject's recorded window."""

    trial_id: str = ""
    stage: Stage = Stage.NOT_OPEN
    variant: str = ""
    mtd: str | None = None
    position: int = 0
    cohorts: dict[str, _Cohort] = field(default_factory=dict)
    windows: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    """Per subject: (closed and DLT-evaluable, had a DLT), as last recorded."""

    def evolve(self, entry: LedgerEntry) -> None:
        self.position = entry.position
        step = _STEPS.get(entry.type)
        if step is not None:
            step(self, entry)

    def _opened(self, entry: LedgerEntry) -> None:
        self.trial_id = entry.trial_id
        self.stage = Stage.ESCALATION
        protocol = entry.data["protocol"]
        self.variant = protocol["escalation"]["variant"]
        for level in protocol["dose_levels"]:
            self.cohorts[level["name"]] = _Cohort(dose_mg=float(level["dose_mg"]))

    def _enrolled(self, entry: LedgerEntry) -> None:
        assert entry.subject_id is not None
        self.cohorts[str(entry.data["cohort"])].subjects.append(entry.subject_id)

    def _window(self, entry: LedgerEntry) -> None:
        assert entry.subject_id is not None
        data = entry.data
        self.windows[entry.subject_id] = (
            bool(data["closed"]) and bool(data["evaluable"]),
            bool(data["dlt"]),
        )

    def _cohort_opened(self, entry: LedgerEntry) -> None:
        self.cohorts[str(entry.data["cohort"])].state = CohortState.OPEN

    def _cohort_expanded(self, entry: LedgerEntry) -> None:
        cohort = self.cohorts[str(entry.data["cohort"])]
        cohort.state = CohortState.OPEN
        cohort.decision = "expand to 6"

    def _cohort_closed(self, entry: LedgerEntry) -> None:
        cohort = self.cohorts[str(entry.data["cohort"])]
        cohort.state = CohortState.CLOSED
        cohort.decision = str(entry.data["decision"])
        if entry.data["cohort"] == EXPANSION:
            self.stage = Stage.ENROLLMENT_COMPLETE

    def _mtd_declared(self, entry: LedgerEntry) -> None:
        self.mtd = str(entry.data["cohort"])
        self.stage = Stage.ENROLLMENT_COMPLETE

    def _expansion_opened(self, entry: LedgerEntry) -> None:
        self.stage = Stage.EXPANSION
        self.cohorts[EXPANSION] = _Cohort(
            dose_mg=float(entry.data["dose_mg"]), state=CohortState.OPEN
        )

    def _stopped(self, _entry: LedgerEntry) -> None:
        self.stage = Stage.STOPPED

    def table(self) -> CohortTable:
        rows = []
        for name, cohort in self.cohorts.items():
            windows = self.windows
            evaluable = [windows[s] for s in cohort.subjects if s in windows and windows[s][0]]
            rows.append(
                CohortRow(
                    cohort=name,
                    dose_mg=cohort.dose_mg,
                    enrolled=len(cohort.subjects),
                    evaluable=len(evaluable),
                    dlts=sum(1 for _, dlt in evaluable if dlt),
                    state=cohort.state.value,
                    decision=cohort.decision,
                )
            )
        return CohortTable(
            trial_id=self.trial_id,
            stage=self.stage.value,
            mtd=self.mtd,
            variant=self.variant,
            position=self.position,
            cohorts=tuple(rows),
        )


_STEPS: dict[str, Callable[[_CohortFold, LedgerEntry], None]] = {
    recorded.TRIAL_OPENED: _CohortFold._opened,
    facts.SUBJECT_ENROLLED: _CohortFold._enrolled,
    recorded.DLT_WINDOW_CLOSED: _CohortFold._window,
    recorded.DLT_WINDOW_REVISED: _CohortFold._window,
    recorded.COHORT_OPENED: _CohortFold._cohort_opened,
    recorded.COHORT_EXPANDED: _CohortFold._cohort_expanded,
    recorded.COHORT_CLOSED: _CohortFold._cohort_closed,
    recorded.MTD_DECLARED: _CohortFold._mtd_declared,
    recorded.EXPANSION_OPENED: _CohortFold._expansion_opened,
    recorded.TRIAL_STOPPED: _CohortFold._stopped,
}
"""What each recorded type changes in the table; every other type only moves the position."""

COHORT_TYPES: frozenset[str] = frozenset(_STEPS)
"""The recorded types the cohort table reads."""
