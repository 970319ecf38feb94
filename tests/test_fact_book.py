"""FactBook's per-subject date index, and the DLT window rules that read through it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    SUBJECT_ALIVE,
    Fact,
    FactBook,
)
from ledger.entries import LedgerEntry
from tests.builders import TRIAL_ID, Script, lines, open_ledger

DAY0 = date(2025, 1, 6)


def fact(event_id: str, type_: str, day: int, position: int, subject_id: str = "01-001") -> Fact:
    return Fact(
        event_id=event_id,
        type=type_,
        subject_id=subject_id,
        occurred_on=DAY0 + timedelta(days=day),
        data={},
        position=position,
    )


def ids(facts: list[Fact]) -> list[str]:
    return [f.event_id for f in facts]


def sample_book() -> FactBook:
    return FactBook.of(
        [
            fact("haic", HAIC_ADMINISTERED, 0, 1),
            fact("dose-5", FRUQUINTINIB_DOSED, 5, 2),
            fact("dose-1", FRUQUINTINIB_DOSED, 1, 3),  # recorded late, dated earlier
            fact("ae", ADVERSE_EVENT_REPORTED, 3, 4),
            fact("dose-9", FRUQUINTINIB_DOSED, 9, 5),
            fact("other-subject", FRUQUINTINIB_DOSED, 5, 6, subject_id="01-002"),
            fact("alive", SUBJECT_ALIVE, 30, 7),
        ]
    )


def test_between_reads_only_the_types_and_inclusive_dates_in_ledger_order() -> None:
    """Facts of the asked types dated first..last (both included), in position order."""
    book = sample_book()
    between = book.of_subject_between(
        "01-001", (FRUQUINTINIB_DOSED,), DAY0 + timedelta(days=1), DAY0 + timedelta(days=9)
    )
    assert ids(between) == ["dose-5", "dose-1", "dose-9"]
    narrow = book.of_subject_between(
        "01-001", (FRUQUINTINIB_DOSED,), DAY0 + timedelta(days=2), DAY0 + timedelta(days=8)
    )
    assert ids(narrow) == ["dose-5"]
    assert book.of_subject_between("01-003", (FRUQUINTINIB_DOSED,), DAY0, DAY0) == []


def test_first_date_after_is_strictly_later_and_any_type() -> None:
    """The earliest date later than the day asked, of any fact type; None past the last."""
    book = sample_book()
    assert book.first_date_after("01-001", DAY0) == DAY0 + timedelta(days=1)
    assert book.first_date_after("01-001", DAY0 + timedelta(days=9)) == DAY0 + timedelta(days=30)
    assert book.first_date_after("01-001", DAY0 + timedelta(days=30)) is None
    assert book.first_date_after("01-003", DAY0) is None


def test_a_corrected_date_moves_the_fact_and_a_void_removes_it() -> None:
    """Corrections that change the date re-index the fact; voided facts are no longer found."""
    book = sample_book()
    book.correct("dose-9", {"dose_mg": 3.0}, DAY0 + timedelta(days=40))
    cycle = (FRUQUINTINIB_DOSED,), DAY0, DAY0 + timedelta(days=20)
    assert ids(book.of_subject_between("01-001", *cycle)) == ["dose-5", "dose-1"]
    assert book.first_date_after("01-001", DAY0 + timedelta(days=30)) == DAY0 + timedelta(days=40)
    book.correct("dose-5", {"dose_mg": 3.0}, None)  # data only: stays where it was
    assert ids(book.of_subject_between("01-001", *cycle)) == ["dose-5", "dose-1"]
    book.void("dose-1")
    assert ids(book.of_subject_between("01-001", *cycle)) == ["dose-5"]
    assert book.first_date_after("01-001", DAY0) == DAY0 + timedelta(days=3)


def test_of_subject_holds_the_corrected_fact_in_its_ledger_place_and_drops_a_voided_one() -> None:
    """of_subject, all or some types: a correction replaces the fact in place, a void drops it."""
    book = sample_book()
    book.correct("dose-5", {"dose_mg": 3.0}, DAY0 + timedelta(days=50))
    book.void("ae")
    everything = book.of_subject("01-001")
    assert ids(everything) == ["haic", "dose-5", "dose-1", "dose-9", "alive"]
    assert everything[1].data == {"dose_mg": 3.0} and everything[1].corrections == 1
    doses = book.of_subject("01-001", (SUBJECT_ALIVE, FRUQUINTINIB_DOSED))
    assert ids(doses) == ["dose-5", "dose-1", "dose-9", "alive"]
    assert doses[0] is everything[1] is book.get("dose-5")
    assert book.of_subject("01-001", (ADVERSE_EVENT_REPORTED,)) == []
    assert book.of_subject("01-003") == [] and book.subjects() == ["01-001", "01-002"]


def test_window_closes_on_the_earliest_visit_after_it_whatever_the_arrival_order(
    tmp_path: Path,
) -> None:
    """A candidate pending, later visits arrive out of order: adjudication closes on the first."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = [
        script.enroll("01-001", "A", DAY0),
        *script.cycle_one("01-001", "A", DAY0, follow_up=False),
        script.envelope(
            "adverse_event.reported",
            "01-001",
            DAY0 + timedelta(days=4),
            {"ae_id": "AE-1", "term": "rash", "grade": 3, "serious": False, "related": True},
        ),
        script.envelope("subject.alive", "01-001", DAY0 + timedelta(days=45), {}),
        script.envelope("subject.alive", "01-001", DAY0 + timedelta(days=33), {}),
        script.envelope("subject.alive", "01-001", DAY0 + timedelta(days=60), {}),
        script.envelope(
            "dlt.adjudicated", "01-001", DAY0 + timedelta(days=61), {"ae_id": "AE-1", "dlt": False}
        ),
    ]
    report = service.submit_many(lines(envelopes))
    assert not report.rejected
    closed = [e for e in service.entries(TRIAL_ID) if e.type == "dlt_window.closed"]
    assert [e.data["closed_on"] for e in closed] == [(DAY0 + timedelta(days=33)).isoformat()]
    assert closed[0].data["evaluable"] is True


def test_moving_a_dose_out_of_the_dosing_days_revises_evaluability(tmp_path: Path) -> None:
    """A corrected dose date that leaves days 1–21 drops the count from 16 to 15: not evaluable."""
    service = open_ledger(tmp_path)
    script = Script()
    envelopes = script.subject("01-001", "A", DAY0, doses=16)
    assert not service.submit_many(lines(envelopes)).rejected
    last_dose = next(
        e for e in envelopes
        if e["type"] == "fruquintinib.dosed" and e["occurred_on"] == str(DAY0 + timedelta(days=15))
    )
    correction = script.envelope(
        "record.corrected",
        "01-001",
        DAY0 + timedelta(days=30),
        {
            "target_event_id": last_dose["event_id"],
            "data": {"dose_mg": 3.0},
            "occurred_on": str(DAY0 + timedelta(days=24)),
        },
        reason="dose date transcribed wrongly",
    )
    assert service.submit(json.dumps(correction)).reason_code is None
    windows = [
        (e.type, e.data["doses_in_window"], e.data["evaluable"])
        for e in service.entries(TRIAL_ID)
        if e.type.startswith("dlt_window.")
    ]
    assert windows == [("dlt_window.closed", 16, True), ("dlt_window.revised", 15, False)]


def entry(
    type_: str, position: int, data: dict[str, object], *, subject: str | None = "01-001"
) -> LedgerEntry:
    """A ledger entry as the read side delivers it; a subject's facts carry `e<position>` ids."""
    return LedgerEntry(
        position=position,
        type=type_,
        trial_id=TRIAL_ID,
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
        data=data,
        subject_id=subject,
        occurred_on=DAY0,
        event_id=f"e{position}" if subject else None,
        source="edc-site-01",
    )


def test_fold_reads_facts_corrections_and_voids_and_skips_decisions() -> None:
    """fold: a fact is added, a correction replaces it, a void removes it, a decision is no fact."""
    book = FactBook()
    book.fold(entry(FRUQUINTINIB_DOSED, 1, {"dose_mg": 4.0}))
    book.fold(entry(FRUQUINTINIB_DOSED, 2, {"dose_mg": 4.0}))
    book.fold(entry("cohort.opened", 3, {"cohort": "A"}, subject=None))
    book.fold(entry("record.corrected", 4, {"target_event_id": "e1", "data": {"dose_mg": 3.0}}))
    book.fold(entry("record.voided", 5, {"target_event_id": "e2"}))
    assert [(f.event_id, f.data, f.corrections) for f in book] == [("e1", {"dose_mg": 3.0}, 1)]
    assert book.is_voided("e2")


def test_fold_refuses_a_fact_without_its_identity() -> None:
    """A clinical fact with no event_id is a one-line ValueError naming its position."""
    with pytest.raises(ValueError, match=r"^haic\.administered at position 7 lacks event_id/date$"):
        FactBook().fold(entry(HAIC_ADMINISTERED, 7, {}, subject=None))
