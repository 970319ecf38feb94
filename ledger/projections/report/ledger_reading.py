"""What the report reads from the ledger itself rather than from the analysis datasets.

The ADaM datasets hold subjects, not the ledger's own decisions, dose modifications or protocol
deviations; those are read here from the same entries, with the same two clocks: entries recorded
after ``as_of`` are not read, and events dated after ``cutoff`` are left out. Dose modifications
are clinical facts, so they are kept in a :class:`~ledger.aggregates.facts.FactBook` and read
after corrections and voids, as the datasets read every other fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from ledger.aggregates.facts import (
    CLINICAL_FACT_TYPES,
    DOSE_MODIFIED,
    RECORD_CORRECTED,
    RECORD_VOIDED,
    Fact,
    FactBook,
)
from ledger.aggregates.protocol import EXPANSION, ProtocolDefinition
from ledger.aggregates.safety import current_dose_mg
from ledger.entries import LedgerEntry, known_as_of

__all__ = [
    "DECISION_TYPES",
    "DeviationRecord",
    "DoseModification",
    "LedgerDecision",
    "LedgerReading",
    "read_ledger",
]

DECISION_TYPES: Final = (
    "cohort.expanded",
    "dose.escalated",
    "dose.deescalated",
    "mtd.declared",
    "expansion.opened",
    "trial.stopped",
    "cohort.reevaluated",
)
"""The ledger's own decisions the escalation timeline marks (contract §3)."""

_DECISION_LABELS: Final = {
    "cohort.expanded": "cohort expanded",
    "dose.escalated": "dose escalated",
    "dose.deescalated": "dose de-escalated",
    "mtd.declared": "MTD declared",
    "expansion.opened": "expansion opened",
    "trial.stopped": "trial stopped",
    "cohort.reevaluated": "closed cohort re-evaluated (flagged for review)",
}


@dataclass(frozen=True, slots=True)
class LedgerDecision:
    """One decision the ledger recorded, numbered in ledger order as the timeline labels it."""

    number: int
    position: int
    on: date | None
    recorded_at: datetime
    type: str
    cohort: str | None
    reason: str

    @property
    def label(self) -> str:
        return _DECISION_LABELS.get(self.type, self.type)


@dataclass(frozen=True, slots=True)
class DoseModification:
    """A recorded ``dose.modified``: the subject's fruquintinib dose from ``previous_mg`` on."""

    position: int
    subject_id: str
    on: date
    previous_mg: float | None
    dose_mg: float
    entered_by: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class DeviationRecord:
    """A ``protocol.deviation`` the ledger recorded beside an accepted fact."""

    position: int
    subject_id: str | None
    on: date | None
    code: str
    message: str
    target_voided: bool


@dataclass(frozen=True, slots=True)
class LedgerReading:
    protocol: ProtocolDefinition
    decisions: tuple[LedgerDecision, ...]
    modifications: tuple[DoseModification, ...]
    deviations: tuple[DeviationRecord, ...]
    expansion_level: str | None
    """The dose level ``expansion.opened`` named (the MTD), once recorded."""


def read_ledger(
    entries: Iterable[LedgerEntry], *, as_of: datetime | None, cutoff: date | None
) -> LedgerReading:
    """Decisions, dose modifications and deviations known at ``as_of``, dated up to ``cutoff``."""
    protocol: Mapping[str, Any] | None = None
    book = FactBook()
    decisions: list[LedgerEntry] = []
    deviations: list[LedgerEntry] = []
    who: dict[str, tuple[str | None, str | None]] = {}
    expansion_level: str | None = None
    for entry in known_as_of(entries, as_of):
        if entry.type == "trial.opened":
            protocol = entry.data["protocol"]
        elif entry.type == "expansion.opened":
            expansion_level = str(entry.data["at_cohort"])
            decisions.append(entry)
        elif entry.type in DECISION_TYPES:
            decisions.append(entry)
        elif entry.type == "protocol.deviation":
            deviations.append(entry)
        elif entry.type in CLINICAL_FACT_TYPES and entry.event_id and entry.occurred_on:
            who[entry.event_id] = (entry.entered_by, entry.reason)
            book.add(
                Fact(entry.event_id, entry.type, entry.subject_id, entry.occurred_on,
                     entry.data, entry.position)
            )
        elif entry.type == RECORD_CORRECTED:
            corrected_on = entry.data.get("occurred_on")
            book.correct(
                str(entry.data["target_event_id"]),
                entry.data["data"],
                date.fromisoformat(corrected_on) if corrected_on else None,
            )
        elif entry.type == RECORD_VOIDED:
            book.void(str(entry.data["target_event_id"]))
    if protocol is None:
        raise ValueError("no trial.opened entry was read: nothing to report")
    definition = ProtocolDefinition.from_mapping(protocol)
    return LedgerReading(
        protocol=definition,
        decisions=_decisions(decisions, cutoff),
        modifications=_modifications(book, definition, expansion_level, who, cutoff),
        deviations=tuple(
            DeviationRecord(
                position=e.position,
                subject_id=e.subject_id,
                on=e.occurred_on,
                code=str(e.data.get("code", "")),
                message=str(e.data.get("message", e.reason or "")),
                target_voided=book.is_voided(str(e.data.get("target_event_id", ""))),
            )
            for e in deviations
            if _within(e.occurred_on, cutoff)
        ),
        expansion_level=expansion_level,
    )


def _within(on: date | None, cutoff: date | None) -> bool:
    return cutoff is None or on is None or on <= cutoff


def _decisions(entries: list[LedgerEntry], cutoff: date | None) -> tuple[LedgerDecision, ...]:
    kept = [e for e in entries if _within(e.occurred_on, cutoff)]
    return tuple(
        LedgerDecision(
            number=number,
            position=e.position,
            on=e.occurred_on,
            recorded_at=e.recorded_at,
            type=e.type,
            cohort=_decision_cohort(e),
            reason=e.reason or "",
        )
        for number, e in enumerate(kept, start=1)
    )


def _decision_cohort(entry: LedgerEntry) -> str | None:
    data = entry.data
    for key in ("cohort", "from_cohort", "at_cohort"):
        if data.get(key) is not None:
            return str(data[key])
    return None


def _modifications(
    book: FactBook,
    protocol: ProtocolDefinition,
    expansion_level: str | None,
    who: Mapping[str, tuple[str | None, str | None]],
    cutoff: date | None,
) -> tuple[DoseModification, ...]:
    """Each current ``dose.modified`` with the dose in force before it (assigned or modified)."""
    levels = {level.name: level.dose_mg for level in protocol.dose_levels}
    if expansion_level is not None and expansion_level in levels:
        levels[EXPANSION] = levels[expansion_level]
    rows = []
    for subject_id in sorted(book.subjects()):
        facts = book.of_subject(subject_id)
        enrolled = next((f for f in facts if f.type == "subject.enrolled"), None)
        assigned = levels.get(str(enrolled.data["cohort"])) if enrolled is not None else None
        for fact in facts:
            if fact.type != DOSE_MODIFIED or not _within(fact.occurred_on, cutoff):
                continue
            earlier = [f for f in facts if f.event_id != fact.event_id
                       and (f.occurred_on, f.position) < (fact.occurred_on, fact.position)]
            previous = (
                None if assigned is None else current_dose_mg(earlier, fact.occurred_on, assigned)
            )
            entered_by, reason = who.get(fact.event_id, (None, None))
            rows.append(
                DoseModification(
                    position=fact.position,
                    subject_id=subject_id,
                    on=fact.occurred_on,
                    previous_mg=previous,
                    dose_mg=float(fact.data["dose_mg"]),
                    entered_by=entered_by,
                    reason=reason,
                )
            )
    return tuple(sorted(rows, key=lambda r: (r.on, r.subject_id, r.position)))
