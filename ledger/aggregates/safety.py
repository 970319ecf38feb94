"""DLT window, DLT candidates and protocol deviations, as pure functions of a subject's facts.

The Trial aggregate calls these and records what they conclude as its own events
(`dlt.candidate_flagged`, `dlt_window.closed`, `protocol.deviation`), so the conclusions are part of
the audit trail and a replay never has to re-derive them.

`assess_dlt_window` reads the subject's facts from a `FactBook` by type and by date, so its cost
follows what the window rules look at, not how long the subject has been followed: the aggregate
reassesses a window after most submissions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    ADVERSE_EVENT_UPDATED,
    DLT_ADJUDICATED,
    DOSE_MODIFIED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    SUBJECT_DIED,
    SUBJECT_WITHDRAWN,
    Fact,
    FactBook,
)
from ledger.aggregates.protocol import ProtocolDefinition

#: The fact types `adverse_events` reads; it ignores every other type.
ADVERSE_EVENT_TYPES = (ADVERSE_EVENT_REPORTED, ADVERSE_EVENT_UPDATED, DLT_ADJUDICATED)


@dataclass(frozen=True, slots=True)
class AdverseEvent:
    ae_id: str
    term: str
    onset: date
    worst_grade: int
    related: bool
    serious: bool
    adjudicated_dlt: bool | None


@dataclass(frozen=True, slots=True)
class DltWindow:
    """What the subject's facts say about the cycle-1 DLT observation window."""

    c1d1: date | None
    window_end: date | None
    doses_in_window: int
    candidates: frozenset[str]
    pending: frozenset[str]
    dlts: frozenset[str]
    closed_on: date | None
    evaluable: bool | None

    @property
    def is_closed(self) -> bool:
        return self.closed_on is not None

    @property
    def has_dlt(self) -> bool:
        return bool(self.dlts)

    def decides_as(self, other: DltWindow) -> bool:
        """Whether two readings of a window lead to the same recorded conclusion."""
        return (self.is_closed, self.evaluable, self.has_dlt, self.doses_in_window) == (
            other.is_closed,
            other.evaluable,
            other.has_dlt,
            other.doses_in_window,
        )

    def to_data(self) -> dict[str, Any]:
        """The `dlt_window.closed` / `dlt_window.revised` data (contract §3)."""
        return {
            "c1d1": self.c1d1.isoformat() if self.c1d1 else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "closed": self.is_closed,
            "closed_on": self.closed_on.isoformat() if self.closed_on else None,
            "evaluable": self.evaluable,
            "dlt": self.has_dlt,
            "dlt_ae_ids": sorted(self.dlts),
            "doses_in_window": self.doses_in_window,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> DltWindow:
        """The window as recorded; candidates are not recorded here, they are flagged apart."""

        def day(key: str) -> date | None:
            value = data.get(key)
            return date.fromisoformat(value) if value else None

        return cls(
            c1d1=day("c1d1"),
            window_end=day("window_end"),
            doses_in_window=int(data["doses_in_window"]),
            candidates=frozenset(),
            pending=frozenset(),
            dlts=frozenset(data["dlt_ae_ids"]),
            closed_on=day("closed_on"),
            evaluable=data["evaluable"],
        )


def first_haic_date(facts: Sequence[Fact]) -> date | None:
    """C1D1 is the date of the first HAIC (protocol: cycle 1 day 1)."""
    dates = [fact.occurred_on for fact in facts if fact.type == HAIC_ADMINISTERED]
    return min(dates) if dates else None


def adverse_events(facts: Sequence[Fact]) -> dict[str, AdverseEvent]:
    """Each AE with its worst grade so far and its latest adjudication."""
    reports = {f.data["ae_id"]: f for f in facts if f.type == ADVERSE_EVENT_REPORTED}
    worst = {ae_id: int(f.data["grade"]) for ae_id, f in reports.items()}
    adjudications: dict[str, bool] = {}
    for fact in facts:
        ae_id = str(fact.data.get("ae_id"))
        if ae_id not in reports:
            continue
        if fact.type == ADVERSE_EVENT_UPDATED and fact.data.get("grade") is not None:
            worst[ae_id] = max(worst[ae_id], int(fact.data["grade"]))
        elif fact.type == DLT_ADJUDICATED:
            adjudications[ae_id] = bool(fact.data["dlt"])
    return {
        ae_id: AdverseEvent(
            ae_id=ae_id,
            term=str(report.data["term"]),
            onset=report.occurred_on,
            worst_grade=worst[ae_id],
            related=bool(report.data["related"]),
            serious=bool(report.data["serious"]),
            adjudicated_dlt=adjudications.get(ae_id),
        )
        for ae_id, report in reports.items()
    }


def assess_dlt_window(
    facts: FactBook, subject_id: str, protocol: ProtocolDefinition
) -> DltWindow:
    """Apply the protocol's DLT window, candidate and evaluability rules to one subject."""
    rules = protocol.escalation
    c1d1 = first_haic_date(facts.of_subject(subject_id, (HAIC_ADMINISTERED,)))
    ended_early_on = min(
        (f.occurred_on for f in facts.of_subject(subject_id, (SUBJECT_WITHDRAWN, SUBJECT_DIED))),
        default=None,
    )
    if c1d1 is None:
        # Never treated: nothing to observe. Leaving the study makes the subject replaceable.
        return DltWindow(
            c1d1=None,
            window_end=None,
            doses_in_window=0,
            candidates=frozenset(),
            pending=frozenset(),
            dlts=frozenset(),
            closed_on=ended_early_on,
            evaluable=False if ended_early_on is not None else None,
        )
    window_end = c1d1 + timedelta(days=rules.dlt_window_days - 1)
    reported = adverse_events(facts.of_subject(subject_id, ADVERSE_EVENT_TYPES))
    in_window = [ae for ae in reported.values() if c1d1 <= ae.onset <= window_end]
    candidates = frozenset(
        ae.ae_id for ae in in_window if ae.worst_grade >= rules.dlt_min_grade and ae.related
    )
    dlts = frozenset(ae.ae_id for ae in in_window if ae.adjudicated_dlt)
    pending = frozenset(
        ae.ae_id for ae in in_window if ae.ae_id in candidates and ae.adjudicated_dlt is None
    )
    doses = _cycle_one_dose_days(facts, subject_id, c1d1, protocol)
    window = DltWindow(
        c1d1=c1d1,
        window_end=window_end,
        doses_in_window=doses,
        candidates=candidates,
        pending=pending,
        dlts=dlts,
        closed_on=None,
        evaluable=None,
    )
    if dlts:
        onsets = [ae.onset for ae in in_window if ae.ae_id in dlts]
        return _closed(window, min(onsets), evaluable=True)
    followed_past_window = facts.first_date_after(subject_id, window_end)
    if ended_early_on is not None and ended_early_on <= window_end:
        return window if pending else _closed(window, ended_early_on, evaluable=False)
    if followed_past_window is None or pending:
        return window
    return _closed(window, followed_past_window, evaluable=doses >= rules.evaluable_min_doses)


def _closed(window: DltWindow, on: date, *, evaluable: bool) -> DltWindow:
    return replace(window, closed_on=on, evaluable=evaluable)


def _cycle_one_dose_days(
    facts: FactBook, subject_id: str, c1d1: date, protocol: ProtocolDefinition
) -> int:
    """Distinct planned cycle-1 dosing days on which fruquintinib was taken."""
    first = c1d1 + timedelta(days=protocol.fruquintinib.first_day - 1)
    last = c1d1 + timedelta(days=protocol.fruquintinib.last_day - 1)
    doses = facts.of_subject_between(subject_id, (FRUQUINTINIB_DOSED,), first, last)
    return len({f.occurred_on for f in doses})


@dataclass(frozen=True, slots=True)
class Deviation:
    code: str
    message: str


def assess_deviations(
    fact: Fact, subject_facts: Sequence[Fact], assigned_dose_mg: float, protocol: ProtocolDefinition
) -> list[Deviation]:
    """Protocol deviations in one treatment fact: it happened, so it is kept, and flagged."""
    if fact.type == FRUQUINTINIB_DOSED:
        return _fruquintinib_deviations(fact, subject_facts, assigned_dose_mg, protocol)
    if fact.type == HAIC_ADMINISTERED:
        return _haic_deviations(fact.data, protocol)
    return []


def _fruquintinib_deviations(
    fact: Fact, subject_facts: Sequence[Fact], assigned_dose_mg: float, protocol: ProtocolDefinition
) -> list[Deviation]:
    deviations = []
    cycle_starts = [
        f.occurred_on
        for f in subject_facts
        if f.type == HAIC_ADMINISTERED and f.occurred_on <= fact.occurred_on
    ]
    if not cycle_starts:
        deviations.append(
            Deviation("DOSE_BEFORE_C1D1", "fruquintinib taken before the first HAIC (C1D1)")
        )
    else:
        cycle_day = (fact.occurred_on - max(cycle_starts)).days + 1
        schedule = protocol.fruquintinib
        if not schedule.first_day <= cycle_day <= schedule.last_day:
            deviations.append(
                Deviation(
                    "OFF_DAY_DOSE",
                    f"fruquintinib taken on cycle day {cycle_day}; the schedule is days "
                    f"{schedule.first_day}–{schedule.last_day}",
                )
            )
    expected = current_dose_mg(subject_facts, fact.occurred_on, assigned_dose_mg)
    dose = float(fact.data["dose_mg"])
    if dose != expected:
        deviations.append(
            Deviation(
                "WRONG_DOSE",
                f"fruquintinib {dose:g} mg taken; the subject's dose is {expected:g} mg "
                "and no dose modification was recorded",
            )
        )
    return deviations


def current_dose_mg(subject_facts: Sequence[Fact], on: date, assigned_dose_mg: float) -> float:
    """The assigned dose, as changed by the latest recorded modification on or before `on`."""
    modifications = [f for f in subject_facts if f.type == DOSE_MODIFIED and f.occurred_on <= on]
    if not modifications:
        return assigned_dose_mg
    latest = max(modifications, key=lambda f: (f.occurred_on, f.position))
    return float(latest.data["dose_mg"])


def _haic_deviations(data: dict[str, Any] | Any, protocol: ProtocolDefinition) -> list[Deviation]:
    regimen = protocol.haic
    deviations = []
    for field, planned in (
        ("oxaliplatin_mg_m2", regimen.oxaliplatin_mg_m2),
        ("fluorouracil_mg_m2", regimen.fluorouracil_mg_m2),
    ):
        given = float(data[field])
        if given != planned:
            deviations.append(
                Deviation(
                    "HAIC_DOSE_DIFFERS",
                    f"HAIC {field} {given:g} mg/m² given; the protocol dose is {planned:g} mg/m²",
                )
            )
    return deviations
