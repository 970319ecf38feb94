"""Submissions as the domain sees them, and the book of facts as currently known.

A correction or a void never changes what was recorded; it changes what is *currently believed*.
`FactBook` is the one place that turns recorded submissions, corrections and voids into that
current belief. The Trial aggregate folds into one, and so do the dataset projections, so both read
corrections the same way: `FactBook.fold` takes any `Recorded` (a `Trial.Event` or a `LedgerEntry`).
"""

from __future__ import annotations

import gc
import hashlib
import json
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Protocol

# Submission types integrators publish (contract §2), plus this product's `dose.modified`.
SUBJECT_ENROLLED = "subject.enrolled"
HAIC_ADMINISTERED = "haic.administered"
FRUQUINTINIB_DOSED = "fruquintinib.dosed"
DOSE_MODIFIED = "dose.modified"
ADVERSE_EVENT_REPORTED = "adverse_event.reported"
ADVERSE_EVENT_UPDATED = "adverse_event.updated"
DLT_ADJUDICATED = "dlt.adjudicated"
TUMOR_ASSESSED = "tumor.assessed"
ANTICANCER_THERAPY_STARTED = "anticancer_therapy.started"
TREATMENT_DISCONTINUED = "treatment.discontinued"
SUBJECT_ALIVE = "subject.alive"
SUBJECT_DIED = "subject.died"
SUBJECT_WITHDRAWN = "subject.withdrawn"
RECORD_CORRECTED = "record.corrected"
RECORD_VOIDED = "record.voided"

CLINICAL_FACT_TYPES = (
    SUBJECT_ENROLLED,
    HAIC_ADMINISTERED,
    FRUQUINTINIB_DOSED,
    DOSE_MODIFIED,
    ADVERSE_EVENT_REPORTED,
    ADVERSE_EVENT_UPDATED,
    DLT_ADJUDICATED,
    TUMOR_ASSESSED,
    ANTICANCER_THERAPY_STARTED,
    TREATMENT_DISCONTINUED,
    SUBJECT_ALIVE,
    SUBJECT_DIED,
    SUBJECT_WITHDRAWN,
)
AMENDMENT_TYPES = (RECORD_CORRECTED, RECORD_VOIDED)
SUBMISSION_TYPES = CLINICAL_FACT_TYPES + AMENDMENT_TYPES
_CLINICAL_FACT_TYPES = frozenset(CLINICAL_FACT_TYPES)  # a set, for the fold's test per record


class Recorded(Protocol):
    """A recorded event as every fold reads it: `Trial.Event` and `LedgerEntry` both fit."""

    @property
    def type(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def subject_id(self) -> str | None: ...
    @property
    def occurred_on(self) -> date | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...
    @property
    def entered_by(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Submission:
    """One integrator submission, already checked against its wire schema."""

    event_id: str
    type: str
    trial_id: str
    subject_id: str | None
    occurred_on: date
    source: str
    entered_by: str
    reason: str | None
    data: Mapping[str, Any]

    @property
    def fingerprint(self) -> str:
        """Content identity for idempotency: the same event_id must always carry this."""
        canonical = json.dumps(
            {
                "type": self.type,
                "trial_id": self.trial_id,
                "subject_id": self.subject_id,
                "occurred_on": self.occurred_on.isoformat(),
                "source": self.source,
                "entered_by": self.entered_by,
                "reason": self.reason,
                "data": self.data,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Fact:
    """A clinical fact as currently believed: the original submission with corrections applied."""

    event_id: str
    type: str
    subject_id: str | None
    occurred_on: date
    data: Mapping[str, Any]
    position: int
    corrections: int = 0


@dataclass(slots=True)
class _SubjectFacts:
    """One subject's current facts in ledger order, all and by type, and their dates in order."""

    facts: list[Fact] = field(default_factory=list)
    by_type: dict[str, list[Fact]] = field(default_factory=dict)
    timeline: list[tuple[date, int, str]] = field(default_factory=list)
    """(occurred_on, position, event_id) in ascending order."""


_NO_FACTS = _SubjectFacts()
"""What a subject without facts reads as (never written to)."""


class FactBook:
    """Current belief about every clinical fact; corrections replace, voids remove.

    Each subject's facts are indexed by type and by clinical date, so the aggregate's per-submission
    questions cost what the answer needs, not the length of the subject's whole history.
    """

    def __init__(self) -> None:
        self._facts: dict[str, Fact] = {}
        self._voided: dict[str, Fact] = {}
        self._subjects: dict[str, _SubjectFacts] = {}

    @classmethod
    def of(cls, facts: Iterable[Fact]) -> FactBook:
        """A book holding exactly `facts` (given in ledger order), e.g. those known by a cutoff."""
        book = cls()
        for fact in facts:
            book.add(fact)
        return book

    def fold(self, record: Recorded) -> None:
        """Read one recorded event: a clinical fact is added, a correction or a void applied.

        Any other type (the ledger's own decisions, `trial.opened`) leaves the book unchanged.
        """
        # Runs once per record of every replay and export: attributes are read once, and the
        # fact is built positionally.
        kind = record.type
        if kind in _CLINICAL_FACT_TYPES:
            event_id, occurred_on = record.event_id, record.occurred_on
            if event_id is None or occurred_on is None:
                raise ValueError(f"{kind} at position {record.position} lacks event_id/date")
            self.add(
                Fact(event_id, kind, record.subject_id, occurred_on, record.data, record.position)
            )
        elif kind == RECORD_CORRECTED:
            data = record.data
            corrected_on = data.get("occurred_on")
            self.correct(
                str(data["target_event_id"]),
                data["data"],
                date.fromisoformat(corrected_on) if corrected_on else None,
            )
        elif kind == RECORD_VOIDED:
            self.void(str(record.data["target_event_id"]))

    def add(self, fact: Fact) -> None:
        event_id = fact.event_id
        self._facts[event_id] = fact
        if fact.subject_id is None:
            return
        subject = self._subjects.get(fact.subject_id)
        if subject is None:
            subject = self._subjects[fact.subject_id] = _SubjectFacts()
        subject.facts.append(fact)
        of_type = subject.by_type.get(fact.type)
        if of_type is None:
            subject.by_type[fact.type] = [fact]
        else:
            of_type.append(fact)
        timeline, key = subject.timeline, _dated(fact)
        # Facts mostly arrive in date order: then the key goes last, with no search.
        if not timeline or timeline[-1] < key:
            timeline.append(key)
        else:
            insort(timeline, key)

    def correct(
        self, target_event_id: str, data: Mapping[str, Any], occurred_on: date | None
    ) -> Fact:
        current = self._facts[target_event_id]
        corrected = replace(
            current,
            data=data,
            occurred_on=occurred_on or current.occurred_on,
            corrections=current.corrections + 1,
        )
        self._facts[target_event_id] = corrected
        if current.subject_id is not None:
            subject = self._subjects[current.subject_id]
            for facts in (subject.facts, subject.by_type[current.type]):
                facts[_index_of(facts, current)] = corrected
            if corrected.occurred_on != current.occurred_on:
                _remove(subject.timeline, _dated(current))
                insort(subject.timeline, _dated(corrected))
        return corrected

    def void(self, target_event_id: str) -> Fact:
        fact = self._facts.pop(target_event_id)
        self._voided[target_event_id] = fact
        if fact.subject_id is not None:
            subject = self._subjects[fact.subject_id]
            for facts in (subject.facts, subject.by_type[fact.type]):
                del facts[_index_of(facts, fact)]
            _remove(subject.timeline, _dated(fact))
        return fact

    def get(self, event_id: str) -> Fact | None:
        return self._facts.get(event_id)

    def is_voided(self, event_id: str) -> bool:
        return event_id in self._voided

    def of_subject(self, subject_id: str, types: tuple[str, ...] | None = None) -> list[Fact]:
        """The subject's current facts in ledger order, optionally only some types."""
        subject = self._subjects.get(subject_id, _NO_FACTS)
        if types is None:
            return list(subject.facts)
        of_types = [facts for type_ in types if (facts := subject.by_type.get(type_))]
        if len(of_types) == 1:  # each type's index is in ledger order already: no sort
            return list(of_types[0])
        return sorted(
            (fact for facts in of_types for fact in facts), key=lambda fact: fact.position
        )

    def of_subject_by_type(self, subject_id: str) -> Mapping[str, Sequence[Fact]]:
        """The subject's current facts by type, each type's in ledger order (the book's own
        index: read it, never change it)."""
        return self._subjects.get(subject_id, _NO_FACTS).by_type

    def of_subject_between(
        self, subject_id: str, types: tuple[str, ...], first: date, last: date
    ) -> list[Fact]:
        """The subject's current facts of `types` dated `first` to `last`, in ledger order."""
        timeline = self._subjects.get(subject_id, _NO_FACTS).timeline
        start = bisect_left(timeline, (first,))
        stop = bisect_left(timeline, (last + _ONE_DAY,))
        facts = (self._facts[event_id] for _on, _position, event_id in timeline[start:stop])
        return sorted((f for f in facts if f.type in types), key=lambda fact: fact.position)

    def first_date_after(self, subject_id: str, day: date) -> date | None:
        """The earliest clinical date of any current fact of the subject later than `day`."""
        timeline = self._subjects.get(subject_id, _NO_FACTS).timeline
        index = bisect_left(timeline, (day + _ONE_DAY,))
        return timeline[index][0] if index < len(timeline) else None

    def subjects(self) -> list[str]:
        return list(self._subjects)

    def __iter__(self) -> Iterator[Fact]:
        return iter(sorted(self._facts.values(), key=lambda fact: fact.position))


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Python's cycle collector paused for the block, then as it was before: for folds.

    A fold keeps what it reads (a hundred thousand facts and their data at 1,000 subjects) and
    makes no reference cycles, so the collector's full passes over that growing heap free
    nothing: a third of a Trial's replay. Reference counting still frees everything dropped; a
    cycle made meanwhile waits for the next pass."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_ONE_DAY = timedelta(days=1)


def _dated(fact: Fact) -> tuple[date, int, str]:
    return (fact.occurred_on, fact.position, fact.event_id)


def _index_of(facts: list[Fact], fact: Fact) -> int:
    """Where `fact` itself is in an index; a missing one is a broken index, never skipped."""
    for index, held in enumerate(facts):
        if held is fact:
            return index
    raise AssertionError(f"fact index out of step: {fact.event_id} not indexed")


def _remove(timeline: list[tuple[date, int, str]], key: tuple[date, int, str]) -> None:
    """Take `key` out of the sorted index; a missing key is a broken index, never skipped."""
    index = bisect_left(timeline, key)
    if index == len(timeline) or timeline[index] != key:
        raise AssertionError(f"fact index out of step: {key} not indexed")
    del timeline[index]
