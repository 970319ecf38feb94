"""Reading a trial back from the store: its entries, leaf hashes and checkpoints, as of a moment.

Reads go from stored rows straight to `LedgerEntry` records: each row's JSON is decoded once (the
library's transcoder is used only for a row whose data carries encoded values), no aggregate is
replayed, and rows are fetched in bounded pages, so a read holds one page of rows at a time.

`as_of` reads stop at the last position that moment knew. Recorded times never go back along a
trial's positions (`LedgerService` stamps each record no earlier than the one before), so that
position is found by bisection with one-row reads, and only the prefix up to it is read.
`LedgerService.audit_source` keeps its own row-by-row path for `ledger verify`: a row that no
longer decodes is a finding there, not an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import takewhile
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from ledger.aggregates.log_ids import AUDIT_LOG_STARTED_TOPIC, LEDGER_LOG, audit_log_id
from ledger.aggregates.trial_topics import (
    LEDGER_TYPES,
    ledger_type_of_topic,
    trial_aggregate_id,
    trial_topic,
)
from ledger.entries import LedgerEntry, parse_timestamp
from ledger.store import LedgerStore

if TYPE_CHECKING:
    from ledger.audit.provenance import SealedFrontier

PAGE = 2_000
"""Rows per read: enough to amortise a query, small enough to keep memory flat."""
FIRST_PAGE = 32
"""Rows of a read's first page, each next page twice the last up to `PAGE`: a reader that stops
early (the checkpoints recorded by an as-of moment, the seals within a prefix) fetches about
what it reads, not a whole page of large seal rows; a whole read costs five more queries."""

_SEALED = "trial-ledger:AuditLog.Sealed"
Row = tuple[int, str, bytes]
"""A stored event as read here: (originator_version, topic, state)."""

MAX_POSITION = 2**62
"""The highest position any read takes (a ledger never nears it). A row stored above it, or at a
version that is no whole number (SQLite stores what it is given), is no position of the log:
every read skips it and `verify` reports it (`positions_outside_the_log`)."""
TYPED_VALUE = b'"_type_"'
SUBJECT_OF_ROW = (
    "CASE WHEN json_valid(CAST(state AS TEXT)) "
    "THEN json_extract(CAST(state AS TEXT), '$.subject_id') END"
)
"""A stored row's subject id as SQLite computes it: the subject index's expression, written the
same way in its query so the planner uses the index. A row that is not JSON (a damaged one, for
`verify` to find) has none, so keeping the index never fails a write."""
_SUBJECT_ROWS = (
    "SELECT originator_version, topic, state FROM {table} "
    f"WHERE originator_id=? AND {SUBJECT_OF_ROW}=? AND +originator_version BETWEEN 1 AND ? "
    "AND typeof(originator_version)='integer'"
)
"""One subject's rows of an aggregate, in no order (sorted after). With an ORDER BY, or the
version range open to an index, SQLite's planner prefers the primary key's index on a store
never ANALYZEd, and reads the whole trial."""
_TYPE_ROWS = (
    "SELECT originator_version, topic, state FROM {table} "
    "WHERE originator_id=? AND topic IN ({topics}) AND +originator_version BETWEEN 1 AND ? "
    "AND typeof(originator_version)='integer'"
)
"""An aggregate's rows of some topics, in no order (sorted after), through the type index
(`ensure_indexes`); the version range kept from the primary key's index, as for `_SUBJECT_ROWS`."""
_FIRST_ROWS = (
    "WITH RECURSIVE aggregate(id) AS (SELECT min(originator_id) FROM {table} UNION ALL "
    "SELECT (SELECT min(originator_id) FROM {table} WHERE originator_id>aggregate.id) "
    "FROM aggregate WHERE aggregate.id IS NOT NULL) SELECT originator_id, topic, state "
    "FROM {table} WHERE originator_id IN aggregate AND originator_version=1 AND topic IN (?, ?)"
)
"""The aggregates' first rows of two topics, stepping along the primary key's index from
aggregate to aggregate: a seek per aggregate (a store holds a handful), however many records
they hold."""

_LAST_POSITION = (
    "SELECT max(originator_version) FROM {table} WHERE originator_id=? "
    "AND typeof(originator_version)='integer' AND originator_version BETWEEN 1 AND ?"
)
_NAMING_TOPICS = (trial_topic("Opened"), AUDIT_LOG_STARTED_TOPIC)
"""The first rows that name a trial: its `trial.opened`, and its ledger's audit log's start (so
a trial whose `trial.opened` row is gone is still found, and `verify` reports it missing)."""


@dataclass(frozen=True, slots=True)
class SealedPrefix:
    """What the trial ledger's seals say of its first `size` entries, read in one pass."""

    size: int
    leaf_hashes: list[str]
    """The leaf hashes of the first `size` entries; fewer where a store's later entries are not
    sealed yet (one written before the ledger hashed its log)."""
    checkpoints: list[dict[str, Any]]
    """The ledger log's checkpoints over batches that end within the entries, in order: those
    recorded by the moment the entries were known (a checkpoint carries its batch's last time)."""
    frontier: SealedFrontier | None
    """The Merkle frontier sealed with the last of those batches; None before the first."""

    @property
    def hashed(self) -> bool:
        """Whether every one of the entries has its leaf hash."""
        return len(self.leaf_hashes) == self.size


_scan_once: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]


def _json_object(raw: bytes | str) -> Any:
    """`json.loads` of a stored row, without its per-call detours (encoding sniffing, whitespace
    skipping): the C scanner alone, and `json.loads` itself for anything it does not take whole."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


class StoreReader:
    """The read side of one store: what `ledger cohorts/history/export` and the outbox read."""

    def __init__(self, app: LedgerStore) -> None:
        self._app = app
        mapper = app.mapper
        # Without a cipher or compressor a row's state is the transcoder's JSON as is.
        self._plain = mapper.cipher is None and mapper.compressor is None

    # --- positions ------------------------------------------------------------------------------

    def has_trial(self, trial_id: str) -> bool:
        """Whether the trial was opened in this store (one row read, nothing replayed)."""
        return bool(self._app.recorder.select_events(trial_aggregate_id(trial_id), limit=1))

    def opened_trial_ids(self) -> list[str] | None:
        """The trials a SQLite store holds (`_FIRST_ROWS` of `_NAMING_TOPICS`); None: the store
        cannot say."""
        recorder = self._app.recorder
        if not isinstance(recorder, SQLiteAggregateRecorder):
            return None
        first_rows = _FIRST_ROWS.format(table=recorder.events_table_name)
        return self._trials_named(sqlite_select(recorder, first_rows, _NAMING_TOPICS))

    def trials_opened_between(self, start: int, stop: int) -> list[str]:
        """The trials named (`_NAMING_TOPICS`) by rows with a notification id from `start` to
        `stop`, in any store (the notification log, selected by topic), read as stored."""
        recorder = self._app.recorder
        assert isinstance(recorder, ApplicationRecorder)
        notifications = recorder.select_notifications(
            start=start, limit=max(stop - start + 1, 1), stop=stop, topics=list(_NAMING_TOPICS)
        )
        return self._trials_named((n.originator_id, n.topic, n.state) for n in notifications)

    def _trials_named(self, rows: Iterable[tuple[UUID | str, str, bytes]]) -> list[str]:
        """The trials first rows (originator, topic, state) name: each only where the row is
        its trial's own (the Trial's `trial.opened`, its ledger's audit log's start, the latter
        while the trial has records), so a row stored beside them, or one that no longer decodes,
        names nothing (`verify` reports the logs it damaged)."""
        named = []
        for originator, topic, state in rows:
            try:
                decoded = self._state((1, topic, state))
                if topic == AUDIT_LOG_STARTED_TOPIC:
                    trial_id = str(decoded["trial_id"])
                    own = decoded["log"] == LEDGER_LOG and audit_log_id(LEDGER_LOG, trial_id)
                else:
                    trial_id = str(decoded["data"]["protocol"]["trial_id"])
                    own = trial_aggregate_id(trial_id)
            except (ValueError, KeyError, TypeError):
                continue
            if not own or own.hex != str(originator).replace("-", "").lower():
                continue
            # An audit log names its trial only while the trial has records to read: one alone
            # (forged, or what an erasure left) would make every read ask "which trial?".
            if topic != AUDIT_LOG_STARTED_TOPIC or self.last_version(trial_aggregate_id(trial_id)):
                named.append(trial_id)
        return named

    def last_position(self, trial_id: str, as_of: datetime | None = None) -> int:
        """The last position recorded by `as_of` (None: the last of all; 0: none yet)."""
        trial = trial_aggregate_id(trial_id)
        last = self.last_version(trial)
        if not last:
            return 0
        if as_of is None or self._recorded_at(self._one(trial, last)) <= as_of:
            return last
        known, later = 0, last  # recorded_at(known) <= as_of < recorded_at(later); 0: nothing
        while later - known > 1:
            middle = (known + later) // 2
            if self._recorded_at(self._one(trial, middle)) <= as_of:
                known = middle
            else:
                later = middle
        return known

    # --- entries --------------------------------------------------------------------------------

    def entries(
        self,
        trial_id: str,
        *,
        as_of: datetime | None = None,
        after: int = 0,
        upto: int | None = None,
        leaf_hashes: Sequence[str] | None = None,
    ) -> Iterator[LedgerEntry]:
        """The trial's entries after `after`, up to `upto` (else the last known at `as_of`), in
        ledger order, each with its leaf hash (from `leaf_hashes` when the caller holds them)."""
        last = self.last_position(trial_id, as_of) if upto is None else upto
        if leaf_hashes is None:
            leaf_hashes = self.sealed_prefix(trial_id, last).leaf_hashes
        hashed = len(leaf_hashes)
        for row in self._rows(trial_aggregate_id(trial_id), after, last):
            position = row[0]
            leaf = leaf_hashes[position - 1] if position <= hashed else None
            entry = self._entry(row, trial_id, leaf)
            if as_of is not None and entry.recorded_at > as_of:
                return  # as `known_as_of`: what the ledger knew at `as_of` ends here
            yield entry

    def stored_entries(
        self, trial_id: str, *, after: int = 0, upto: int | None = None
    ) -> Iterator[LedgerEntry]:
        """The trial's entries after `after` up to `upto` (None: the last), without hashes."""
        for row in self._rows(trial_aggregate_id(trial_id), after, upto):
            yield self._entry(row, trial_id)

    def subject_entries(
        self,
        trial_id: str,
        subject_id: str,
        *,
        upto: int,
        leaf_hashes: Sequence[str] | None = None,
    ) -> Iterator[LedgerEntry]:
        """The subject's entries up to position `upto`, in ledger order, with their leaf hashes.

        A SQLite store is asked for the subject's rows alone (through the subject index when the
        store has it, `ensure_indexes`), so a subject's history costs its own records, not
        the trial's; any other store is read whole and filtered here.
        """
        if leaf_hashes is None:
            leaf_hashes = self.sealed_prefix(trial_id, upto).leaf_hashes
        hashed = len(leaf_hashes)
        trial = trial_aggregate_id(trial_id)
        selected = self._subject_rows(trial, subject_id, upto)
        rows = self._rows(trial, 0, upto) if selected is None else selected
        for row in rows:
            position = row[0]
            leaf = leaf_hashes[position - 1] if position <= hashed else None
            entry = self._entry(row, trial_id, leaf)
            if entry.subject_id == subject_id:
                yield entry

    def ensure_indexes(self) -> None:
        """Index a SQLite store's rows by aggregate and subject (see `subject_entries`) and by
        aggregate and type (see `entries_of_types`).

        Made by whoever opens the store for writing (a read-only open creates nothing, and its
        reads still select in SQL, only without the indexes). SQLite keeps an index in each
        write's own transaction, so it always says what the rows say. A store with encoded rows
        (a cipher, a compressor) holds no JSON to index by subject and gets only the type index.
        """
        recorder = self._app.recorder
        if not isinstance(recorder, SQLiteAggregateRecorder):
            return
        table = recorder.events_table_name
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_type ON {table} (originator_id, topic)"
            )
            if self._indexable_sqlite() is not None:
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}_subject "
                    f"ON {table} (originator_id, {SUBJECT_OF_ROW})"
                )

    def _subject_rows(self, originator: UUID, subject_id: str, upto: int) -> list[Row] | None:
        """The originator's rows of `subject_id` up to `upto`; None where the store cannot say."""
        recorder = self._indexable_sqlite()
        if recorder is None:
            return None
        rows = _sqlite_rows(recorder, _SUBJECT_ROWS.format(table=recorder.events_table_name),
                            (originator.hex, subject_id, upto))
        rows.sort()
        return rows

    def _indexable_sqlite(self) -> SQLiteAggregateRecorder | None:
        """The SQLite recorder when its rows are plain JSON SQLite can read; else None."""
        recorder = self._app.recorder
        if self._plain and isinstance(recorder, SQLiteAggregateRecorder):
            return recorder
        return None

    def entries_of_types(
        self, trial_id: str, types: Collection[str], *, upto: int
    ) -> Iterator[LedgerEntry]:
        """The trial's entries of `types` up to position `upto`, in ledger order.

        The store selects them by topic, so the rows of every other type are never fetched nor
        decoded (the cohort table reads a few thousand of a trial's hundred thousand records):
        on SQLite through the type index (`ensure_indexes`), elsewhere by scanning the
        notification log's topics.
        """
        trial = trial_aggregate_id(trial_id)
        topics = [trial_topic(name) for name, kind in LEDGER_TYPES.items() if kind in types]
        recorder = self._app.recorder
        if isinstance(recorder, SQLiteAggregateRecorder):
            statement = _TYPE_ROWS.format(table=recorder.events_table_name,
                                          topics=", ".join("?" * len(topics)))
            rows = _sqlite_rows(recorder, statement, (trial.hex, *topics, upto))
            rows.sort()
            for row in rows:
                yield self._entry(row, trial_id)
            return
        assert isinstance(recorder, ApplicationRecorder)
        stop = recorder.max_notification_id() or 0
        start = 1
        while start <= stop:
            page = recorder.select_notifications(start, PAGE, stop, topics)
            for notification in page:
                if notification.originator_id != trial or notification.originator_version < 1:
                    continue  # another aggregate's, or a row beside the log (`verify` finds it)
                if notification.originator_version > upto:
                    return
                row = (notification.originator_version, notification.topic, notification.state)
                yield self._entry(row, trial_id)
            if len(page) < PAGE:
                return
            start = page[-1].id + 1

    # --- the audit log, read as stored ------------------------------------------------------------

    def sealed_prefix(self, trial_id: str, size: int) -> SealedPrefix:
        """The trial ledger's seals over its first `size` entries (`SealedPrefix`): their leaf
        hashes, checkpoints and last sealed frontier, from one read of the seals that far."""
        hashes: list[str] = []
        checkpoints: list[dict[str, Any]] = []
        frontier: SealedFrontier | None = None
        seals = self._seals(audit_log_id(LEDGER_LOG, trial_id)) if size > 0 else iter(())
        for state in seals:
            batch = state["leaf_hashes"]
            hashes.extend(batch)
            end = int(state["first_position"]) + len(batch) - 1
            if end <= size:
                checkpoints.append(state["checkpoint"])
                frontier = (end, list(state["frontier"]), str(state["checkpoint"]["root"]))
            if len(hashes) >= size:
                break  # the seal holding the last entry: no further row is fetched
        return SealedPrefix(size, hashes[:size], checkpoints, frontier)

    def checkpoints(
        self, log: str, trial_id: str | None, as_of: datetime | None = None
    ) -> list[dict[str, Any]]:
        """One audit log's checkpoints recorded by `as_of` (None: all), in order: read no further,
        as their times never go back (each is its batch's last record's)."""
        checkpoints = (state["checkpoint"] for state in self._seals(audit_log_id(log, trial_id)))
        recorded = takewhile(lambda c: as_of is None or parse_timestamp(c["recorded_at"]) <= as_of,
                             checkpoints)
        return list(recorded)

    def _seals(self, log_id: UUID) -> Iterator[dict[str, Any]]:
        for row in self._rows(log_id, 0, None):
            if row[1] == _SEALED:
                yield self._state(row)

    # --- rows ----------------------------------------------------------------------------------

    def last_version(self, originator: UUID) -> int:
        """An aggregate's last position (0: no rows), of the positions reads take."""
        recorder = self._app.recorder
        if isinstance(recorder, SQLiteAggregateRecorder):
            found = sqlite_select(recorder, _LAST_POSITION.format(
                table=recorder.events_table_name), (originator.hex, MAX_POSITION))
            return int(found[0][0] or 0)
        latest = recorder.select_events(originator, desc=True, limit=1, lte=MAX_POSITION)
        return latest[0].originator_version if latest else 0

    def _rows(self, originator: UUID, after: int, upto: int | None) -> Iterator[Row]:
        """The originator's rows after `after` up to `upto`, a page at a time (`FIRST_PAGE`)."""
        limit = FIRST_PAGE
        while upto is None or after < upto:
            page = self._page(originator, after, upto, limit)
            yield from page
            if len(page) < limit:
                return
            after = page[-1][0]
            limit = min(2 * limit, PAGE)

    def _page(
        self, originator: UUID, after: int, upto: int | None, limit: int = PAGE
    ) -> Sequence[Row]:
        recorder = self._app.recorder
        if isinstance(recorder, SQLiteAggregateRecorder):
            # The library's own query, without building a UUID and a StoredEvent per row.
            statement = (
                f"SELECT originator_version, topic, state FROM {recorder.events_table_name} "
                "WHERE originator_id=? AND originator_version>? AND originator_version<=? "
                "AND typeof(originator_version)='integer' ORDER BY originator_version LIMIT ?"
            )
            parameters = (originator.hex, after, upto or MAX_POSITION, limit)
            return _sqlite_rows(recorder, statement, parameters)
        return [
            (row.originator_version, row.topic, row.state)
            for row in recorder.select_events(originator, gt=after, lte=upto, limit=limit)
        ]

    def _entry(self, row: Row, trial_id: str, leaf_hash: str | None = None) -> LedgerEntry:
        position, topic, _ = row
        ledger_type = ledger_type_of_topic(topic)
        if ledger_type is None:
            raise ValueError(f"position {position}: unknown topic {topic}")
        state = self._state(row)
        # Positional: this runs once per record of every read.
        return LedgerEntry(
            position, ledger_type, trial_id, state["timestamp"], state["data"],
            state["subject_id"], state["occurred_on"], state["event_id"], state["source"],
            state["entered_by"], state["reason"], leaf_hash,
        )

    def _state(self, row: Row) -> dict[str, Any]:
        """The row's state as the library's mapper decodes it, JSON parsed once when it can."""
        raw = row[2]
        if self._plain:
            state: dict[str, Any] = _json_object(raw)
            stamp, on = state.get("timestamp"), state.get("occurred_on")
            expected = (stamp is not None) + (on is not None)
            if raw.count(TYPED_VALUE) == expected:
                if stamp is not None:
                    state["timestamp"] = recorded_time(stamp["_data_"])
                if on is not None:
                    state["occurred_on"] = date.fromisoformat(on["_data_"])
                return state
        mapper = self._app.mapper
        if mapper.cipher is not None:
            raw = mapper.cipher.decrypt(raw)
        if mapper.compressor is not None:
            raw = mapper.compressor.decompress(raw)
        decoded: dict[str, Any] = mapper.transcoder.decode(raw)
        moment = decoded.get("timestamp")
        if isinstance(moment, datetime):
            decoded["timestamp"] = _in_utc(moment)
        return decoded

    def _one(self, originator: UUID, position: int) -> Row:
        return self._page(originator, position - 1, position, 1)[0]

    def _recorded_at(self, row: Row) -> datetime:
        moment = self._state(row)["timestamp"]
        assert isinstance(moment, datetime)
        return moment


def recorded_time(text: str) -> datetime:
    """A stored recorded time, as `_in_utc` takes it."""
    return _in_utc(datetime.fromisoformat(text))


def _in_utc(moment: datetime) -> datetime:
    """A recorded time in UTC. The ledger writes each with its UTC offset; one without would be
    read in the reader's own time zone, so it is refused (a finding for `verify`)."""
    if moment.tzinfo is UTC:  # how the ledger writes every one
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"recorded time {moment.isoformat()} has no UTC offset")
    return moment.astimezone(UTC)  # the same instant, shown as every other time is


def _sqlite_rows(
    recorder: SQLiteAggregateRecorder, statement: str, parameters: tuple[object, ...]
) -> list[Row]:
    """(originator_version, topic, state) rows of a statement on the recorder's own connection."""
    rows: list[Row] = sqlite_select(recorder, statement, parameters)
    return rows


def sqlite_select(
    recorder: SQLiteAggregateRecorder, statement: str, parameters: tuple[object, ...]
) -> list[Any]:
    """A statement's rows on the recorder's own connection, as plain tuples: no `sqlite3.Row`
    per row."""
    with recorder.datastore.transaction(commit=False) as cursor:
        plain = cursor.sqlite_cursor
        plain.row_factory = None
        plain.execute(statement, parameters)
        rows: list[Any] = plain.fetchall()
    return rows
