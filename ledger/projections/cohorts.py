"""The cohort table, folded from the ledger's own recorded decisions.

It reads what the ledger recorded (enrollments, DLT windows, cohort decisions) rather than
re-running the rules, so the table as of T shows exactly what the ledger had decided by T.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.entries import LedgerEntry

EXPANSION = "EXPANSION"


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
    state: str = "not_open"
    decision: str | None = None
    subjects: list[str] = field(default_factory=list)


def cohort_table(entries: Iterable[LedgerEntry]) -> CohortTable:
    """Fold recorded entries (already cut at the as-of moment) into the cohort table."""
    trial_id = ""
    stage = "not_open"
    variant = ""
    mtd: str | None = None
    position = 0
    cohorts: dict[str, _Cohort] = {}
    windows: dict[str, tuple[bool, bool]] = {}
    for entry in entries:
        position = entry.position
        data = entry.data
        match entry.type:
            case "trial.opened":
                trial_id = entry.trial_id
                stage = "escalation"
                protocol = data["protocol"]
                variant = protocol["escalation"]["variant"]
                for level in protocol["dose_levels"]:
                    cohorts[level["name"]] = _Cohort(dose_mg=float(level["dose_mg"]))
            case "subject.enrolled":
                assert entry.subject_id is not None
                cohorts[str(data["cohort"])].subjects.append(entry.subject_id)
            case "dlt_window.closed" | "dlt_window.revised":
                assert entry.subject_id is not None
                windows[entry.subject_id] = (
                    bool(data["closed"]) and bool(data["evaluable"]),
                    bool(data["dlt"]),
                )
            case "cohort.opened":
                cohorts[str(data["cohort"])].state = "open"
            case "cohort.expanded":
                cohort = cohorts[str(data["cohort"])]
                cohort.state = "open"
                cohort.decision = "expand to 6"
            case "cohort.closed":
                cohort = cohorts[str(data["cohort"])]
                cohort.state = "closed"
                cohort.decision = str(data["decision"])
                if data["cohort"] == EXPANSION:
                    stage = "enrollment_complete"
            case "mtd.declared":
                mtd = str(data["cohort"])
                stage = "enrollment_complete"
            case "expansion.opened":
                stage = "expansion"
                cohorts[EXPANSION] = _Cohort(dose_mg=float(data["dose_mg"]), state="open")
            case "trial.stopped":
                stage = "stopped"
            case _:
                pass
    rows = []
    for name, cohort in cohorts.items():
        evaluable = [windows[s] for s in cohort.subjects if s in windows and windows[s][0]]
        rows.append(
            CohortRow(
                cohort=name,
                dose_mg=cohort.dose_mg,
                enrolled=len(cohort.subjects),
                evaluable=len(evaluable),
                dlts=sum(1 for _, dlt in evaluable if dlt),
                state=cohort.state,
                decision=cohort.decision,
            )
        )
    return CohortTable(
        trial_id=trial_id,
        stage=stage,
        mtd=mtd,
        variant=variant,
        position=position,
        cohorts=tuple(rows),
    )
