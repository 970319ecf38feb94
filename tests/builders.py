"""Builders for submissions and a ledger on a fixed clock, shared by the tests."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.application import LedgerService

TRIAL_ID = "NCT05406206"
DOSES = {"A": 3.0, "B": 4.0, "C": 5.0}


class FixedClock:
    """A ledger clock that advances one second per reading, from a chosen instant."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Script:
    """Writes envelopes the way an EDC integrator would, with readable defaults."""

    trial_id: str = TRIAL_ID
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def envelope(
        self, kind: str, subject_id: str | None, on: date, data: dict[str, Any], **overrides: Any
    ) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=next(self.counter), version=4)),
            "type": kind,
            "schema_version": 1,
            "trial_id": self.trial_id,
            "subject_id": subject_id,
            "occurred_on": on.isoformat(),
            "source": "edc-site-01",
            "entered_by": "crc.01",
            "reason": None,
            "data": data,
        }
        envelope.update(overrides)
        return envelope

    def enroll(self, subject_id: str, cohort: str, on: date) -> dict[str, Any]:
        return self.envelope("subject.enrolled", subject_id, on, {"cohort": cohort})

    def cycle_one(
        self,
        subject_id: str,
        cohort: str,
        c1d1: date,
        *,
        doses: int = 21,
        dlt: bool | None = None,
        follow_up: bool = True,
    ) -> list[dict[str, Any]]:
        """HAIC on day 1, `doses` daily doses, an optional grade-3 related AE, a day-29 visit."""
        dose = DOSES.get(cohort, 4.0)
        items = [
            self.envelope(
                "haic.administered",
                subject_id,
                c1d1,
                {"cycle": 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000},
            )
        ]
        items += [
            self.envelope(
                "fruquintinib.dosed", subject_id, c1d1 + timedelta(days=d), {"dose_mg": dose}
            )
            for d in range(doses)
        ]
        if dlt is not None:
            items.append(
                self.envelope(
                    "adverse_event.reported",
                    subject_id,
                    c1d1 + timedelta(days=9),
                    {
                        "ae_id": "AE-1",
                        "term": "hypertension",
                        "grade": 3,
                        "serious": False,
                        "related": True,
                    },
                )
            )
            items.append(
                self.envelope(
                    "dlt.adjudicated",
                    subject_id,
                    c1d1 + timedelta(days=12),
                    {"ae_id": "AE-1", "dlt": dlt},
                )
            )
        if follow_up:
            items.append(self.envelope("subject.alive", subject_id, c1d1 + timedelta(days=28), {}))
        return items

    def subject(
        self, subject_id: str, cohort: str, c1d1: date, **kwargs: Any
    ) -> list[dict[str, Any]]:
        return [
            self.enroll(subject_id, cohort, c1d1),
            *self.cycle_one(subject_id, cohort, c1d1, **kwargs),
        ]


def lines(envelopes: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(e) for e in envelopes]


def open_ledger(
    path: Path, clock: FixedClock | None = None, variant: str | None = None
) -> LedgerService:
    from ledger.aggregates.escalation import Variant

    service = LedgerService(str(path / "ledger.db"), clock=clock or FixedClock())
    service.ensure_trial(Variant(variant) if variant else None)
    return service


def store_snapshot(service: LedgerService) -> list[str]:
    """Every recorded event of the trial, as JSON: compare before/after to prove nothing changed."""
    return [entry.to_json() for entry in service.entries(TRIAL_ID)]
