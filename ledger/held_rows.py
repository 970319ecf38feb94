"""The store as `verify` reads it: every row as held, each also held to what SQLite's subject
and type indexes say of it, and the rows stored beside the logs (versions that are no position).

`HeldRows` is a `StoreReader` (the same rows, pages and decoding) with what only an audit reads:
read commands never build one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteAggregateRecorder

from ledger.aggregates.trial_topics import (
    LEDGER_TYPES,
    ledger_type_of_topic,
    trial_aggregate_id,
    trial_topic,
)
from ledger.entries import format_timestamp
from ledger.reading import (
    MAX_POSITION,
    SUBJECT_OF_ROW,
    TYPED_VALUE,
    Row,
    StoreReader,
    recorded_time,
    sqlite_select,
)

_OUTSIDE_THE_LOG = (
    "SELECT originator_version FROM {table} WHERE originator_id=? AND "
    "(typeof(originator_version)<>'integer' OR originator_version NOT BETWEEN 1 AND ?)"
)

_TRIAL_TOPICS = tuple(trial_topic(name) for name in LEDGER_TYPES)
"""The stored topics of the Trial's events (what the type index files rows under)."""

_ENTRY_TIME = re.compile(r"[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")
"""A stored recorded time whose spelling, with "Z" for "+00:00", is `format_timestamp`'s."""


def _without_leaf_hash(entry: dict[str, Any]) -> dict[str, Any]:
    del entry["leaf_hash"]
    return entry


def _object_with_unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for index, name in enumerate(names) if name in names[:index])
        raise ValueError(f"the stored JSON names {twice!r} twice")
    return value


#: What `verify` decodes a stored row with. A name given twice is read as its last value here
#: but as its first by SQLite's `json_extract` (the subject index), and RFC 8785 canonicalises
#: only I-JSON, whose names are unique: such a row is a finding, never silently one reading.
_decode_strictly = json.JSONDecoder(object_pairs_hook=_object_with_unique_names).decode


class HeldRows(StoreReader):
    """What `verify` reads of a store (`ledger.audit_reading`)."""

    def held_entry_objects(
        self, trial_id: str, *, after: int = 0, upto: int | None = None
    ) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        """The trial's stored rows after `after` up to `upto` (None: all) as held, for `verify`:
        (position, its §3 object without a leaf hash, None), or (position, None, why) for a row
        that no longer decodes (a tampered row is a finding, never the end of the read).

        The object is `entry.to_json_dict()` of the row's entry, built straight from the row: the
        recorded time in its stored spelling when that already is the §3 one (it is for every
        row the ledger wrote), so no `LedgerEntry` is made and formatted back per row. On SQLite
        each row is also held to what the subject and type indexes say of it (the reads that
        select through them), and the rows read end where the first index read ended: a row a
        writer added in between is left for a later read, not reported as missing from it.
        """
        trial = trial_aggregate_id(trial_id)
        indexed = self._indexed_subjects(trial)
        filed = self._indexed_topics(trial)
        snapshot = indexed if indexed is not None else filed  # the first of the index reads
        if snapshot is not None:
            bound = upto or MAX_POSITION
            upto = max((p for p in snapshot if isinstance(p, int) and after < p <= bound),
                       default=after)
        for row in self._rows(trial, after, upto):
            try:
                entry = self._entry_object(row, trial_id)
            except Exception as error:
                yield row[0], None, f"{type(error).__name__}: {error}"
                continue
            if filed is not None and filed.get(row[0]) != row[1]:
                # `ledger cohorts` selects rows by type through this index: a row it files under
                # another type, or not at all, would be missing from, or added to, those reads.
                yield row[0], None, (
                    f"SQLite's type index files the row under {filed.get(row[0])!r}, the row "
                    f"says {row[1]!r}"
                )
                continue
            if indexed is not None and indexed.get(row[0]) != entry["subject_id"]:
                # `ledger history` finds a subject's rows by SQLite's reading of the row: one it
                # reads differently (an escaped name, a value JSON does not allow) would be
                # missing from, or shown in, another subject's history.
                yield row[0], None, (
                    f"SQLite reads the row's subject as {indexed.get(row[0])!r}, the ledger as "
                    f"{entry['subject_id']!r}"
                )
                continue
            yield row[0], entry, None

    def _indexed_subjects(self, originator: UUID) -> dict[int, str | None] | None:
        """Each row's subject as the SQLite subject index holds it (None: not SQLite). Nothing
        else in the statement: a version range makes SQLite's planner read the rows through the
        primary key and compute the subject afresh, so an index rewritten to read a row
        differently would go unseen."""
        recorder = self._app.recorder
        if not isinstance(recorder, SQLiteAggregateRecorder):
            return None
        statement = (
            f"SELECT originator_version, {SUBJECT_OF_ROW} FROM {recorder.events_table_name} "
            "WHERE originator_id=?"
        )
        return dict(sqlite_select(recorder, statement, (originator.hex,)))

    def _indexed_topics(self, originator: UUID) -> dict[int, str] | None:
        """Each row of the Trial's event topics as SQLite's type index files it: the rows the
        index finds under each topic, as the type reads (`entries_of_types`) find them. None:
        not SQLite, or a store without the index (its reads scan the rows themselves)."""
        recorder = self._app.recorder
        if not isinstance(recorder, SQLiteAggregateRecorder):
            return None
        table = recorder.events_table_name
        present = sqlite_select(
            recorder, "SELECT 1 FROM sqlite_master WHERE type='index' AND name=?",
            (f"{table}_type",))
        if not present:
            return None
        statement = (f"SELECT originator_version FROM {table} INDEXED BY {table}_type "
                     "WHERE originator_id=? AND topic=?")
        filed: dict[int, str] = {}
        try:
            for topic in _TRIAL_TOPICS:
                for (version,) in sqlite_select(recorder, statement, (originator.hex, topic)):
                    filed[version] = topic
        except OperationalError:  # eventsourcing's, of SQLite's
            return None  # an index of that name SQLite cannot select by type: reads scan rows
        return filed

    def positions_outside_the_log(self, originator: UUID) -> list[object]:
        """The versions an aggregate's rows are stored at that are no position of its log: below
        1 (positions start at 1), above MAX_POSITION, or (SQLite) not a whole number. None the
        ledger wrote: each is a row inserted beside the log, which every read skips and `verify`
        reports."""
        recorder = self._app.recorder
        if isinstance(recorder, SQLiteAggregateRecorder):
            rows = sqlite_select(recorder, _OUTSIDE_THE_LOG.format(
                table=recorder.events_table_name), (originator.hex, MAX_POSITION))
            return [version for (version,) in rows]
        below = recorder.select_events(originator, lte=0)
        above = recorder.select_events(originator, gt=MAX_POSITION)
        return [row.originator_version for row in (*below, *above)]

    def _entry_object(self, row: Row, trial_id: str) -> dict[str, Any]:
        position, topic, raw = row
        ledger_type = ledger_type_of_topic(topic)
        if not self._plain or ledger_type is None:
            return _without_leaf_hash(self._entry(row, trial_id).to_json_dict())
        state = _decode_strictly(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        stamp, on = state.get("timestamp"), state.get("occurred_on")
        if stamp is None or raw.count(TYPED_VALUE) != 1 + (on is not None):
            return _without_leaf_hash(self._entry(row, trial_id).to_json_dict())
        stored = stamp["_data_"]
        moment = recorded_time(stored)  # what `_state` checks: a bad time is a finding
        return {
            "position": position,
            "type": ledger_type,
            "trial_id": trial_id,
            "recorded_at": (
                stored[:-6] + "Z" if _ENTRY_TIME.fullmatch(stored) else format_timestamp(moment)
            ),
            "subject_id": state["subject_id"],
            "occurred_on": None if on is None else date.fromisoformat(on["_data_"]).isoformat(),
            "event_id": state["event_id"],
            "source": state["source"],
            "entered_by": state["entered_by"],
            "reason": state["reason"],
            "data": state["data"],
        }
