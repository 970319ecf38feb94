"""The recorded event as the outside world sees it (contract §3).

One shape for the store's read side, `trial.ledger`, `ledger history` and every projection, so a
dataset rebuilt from the topic and one rebuilt from the store fold over the same records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

ENTRY_FIELDS = (
    "position", "type", "trial_id", "recorded_at", "subject_id", "occurred_on", "event_id",
    "source", "entered_by", "reason", "data",
)
"""The fields of a §3 entry but its leaf hash: what the hash covers."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    position: int
    type: str
    trial_id: str
    recorded_at: datetime
    data: Mapping[str, Any]
    subject_id: str | None = None
    occurred_on: date | None = None
    event_id: str | None = None
    source: str | None = None
    entered_by: str | None = None
    reason: str | None = None
    leaf_hash: str | None = None
    """RFC 6962 leaf hash of the other fields (contract §6), recorded with the entry."""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "type": self.type,
            "trial_id": self.trial_id,
            "recorded_at": format_timestamp(self.recorded_at),
            "subject_id": self.subject_id,
            "occurred_on": self.occurred_on.isoformat() if self.occurred_on else None,
            "event_id": self.event_id,
            "source": self.source,
            "entered_by": self.entered_by,
            "reason": self.reason,
            "data": dict(self.data),
            "leaf_hash": self.leaf_hash,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json_dict(cls, raw: Mapping[str, Any]) -> LedgerEntry:
        occurred_on = raw.get("occurred_on")
        return cls(
            position=int(raw["position"]),
            type=str(raw["type"]),
            trial_id=str(raw["trial_id"]),
            recorded_at=parse_timestamp(str(raw["recorded_at"])),
            data=raw["data"],
            subject_id=raw.get("subject_id"),
            occurred_on=date.fromisoformat(occurred_on) if occurred_on else None,
            event_id=raw.get("event_id"),
            source=raw.get("source"),
            entered_by=raw.get("entered_by"),
            reason=raw.get("reason"),
            leaf_hash=raw.get("leaf_hash"),
        )


def known_as_of(entries: Iterable[LedgerEntry], as_of: datetime | None) -> Iterator[LedgerEntry]:
    """What the ledger knew at `as_of` (transaction time); None means everything recorded."""
    for entry in entries:
        if as_of is not None and entry.recorded_at > as_of:
            return
        yield entry


def format_timestamp(moment: datetime) -> str:
    """UTC, microseconds, 'Z': one spelling so files are byte-identical across runs."""
    if moment.tzinfo is None:  # astimezone would read it in the machine's own time zone
        raise ValueError(f"time {moment.isoformat()} has no UTC offset")
    utc = moment.astimezone(UTC)
    if utc.year >= 1000:
        # isoformat writes the same digits as the strftime below at a third of its cost (it runs
        # for every entry hashed, published or verified); it ends in "+00:00" for UTC.
        return utc.isoformat(timespec="microseconds")[:-6] + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # strftime pads no zeros before year 1000


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 instant; a time without an offset is read as UTC, as the contract says."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 timestamp (e.g. 2025-06-30T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError(
            f"{text!r} is out of range: in UTC it falls before year 1 or after year 9999"
        ) from None
