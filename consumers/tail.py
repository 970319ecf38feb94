"""What the ledger's topics already hold, read back from their ends and checked against the store.

The outbox resumes only from tail records the store vouches for: each `trial.ledger` record must
be the store's entry at its position (and leaf hash), each rejection the store's with its
sequence, each checkpoint one the store recorded; anything else is reported and publishing stops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from consumers._kafka import Connection, client_settings, kafka
from consumers.topics import wait_for_partitions
from ledger.aggregates.log_ids import LEDGER_LOG, REJECTIONS_LOG
from ledger.application import LedgerService

#: Records read back from the end of each partition first; doubled while a trial is not found.
TAIL_WINDOW = 64
TAIL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class TailRecord:
    """One committed record read back from the end of a topic."""

    topic: str
    partition: int
    offset: int
    value: bytes | None

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class PublishedTail:
    """What the topics already hold: last position per trial, last rejection sequence, and the
    tail records those were read from (checked against the store by `verify_tail`)."""

    positions: dict[str, int]
    rejection_sequence: int
    ledger_records: tuple[TailRecord, ...] = ()
    rejection_records: tuple[TailRecord, ...] = ()


@contextmanager
def tail_reader(bootstrap: Connection) -> Iterator[Any]:
    """One consumer of committed records, outside any group, for reading the topics' tails (each
    read assigns it the partitions it reads)."""
    consumer = kafka().KafkaConsumer(
        **client_settings(bootstrap, "trial-ledger-tail"),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    with closing(consumer):
        yield consumer


def read_published_tail(
    reader: Any, ledger_topic: str, rejections_topic: str, trial_ids: Iterable[str],
    *, rejections: bool = True,
) -> PublishedTail:
    """The last committed `position` per trial on `ledger_topic`, last `sequence` on rejections
    (when `rejections`), with the tail records they were read from (by `reader`, a
    `tail_reader`).

    Reads backwards from each partition's end (last stable offset) in growing windows until every
    store trial has been seen or the partition's beginning is reached.
    """
    wanted = set(trial_ids)
    rejected = (_tail_records(reader, rejections_topic, lambda _seen: True)
                if rejections else [])

    def found_all(seen: list[TailRecord]) -> bool:
        trials = {d.get("trial_id") for d in map(_document, (r.value for r in seen)) if d}
        return wanted <= trials

    ledger = _tail_records(reader, ledger_topic, found_all)
    positions: dict[str, int] = {}
    for record in ledger:
        document = _document(record.value)
        if document is not None and isinstance(document.get("trial_id"), str):
            trial = document["trial_id"]
            positions[trial] = max(positions.get(trial, 0), _field(record.value, "position"))
    sequence = max((_field(r.value, "sequence") for r in rejected), default=0)
    return PublishedTail(positions, sequence, tuple(ledger), tuple(rejected))


def read_checkpoint_tail(
    service: LedgerService, reader: Any, topic: str, trial_ids: Iterable[str],
    *, owns: Callable[[str], bool] | None = None, rejections: bool = True,
) -> tuple[dict[tuple[str | None, str], int], list[str]]:
    """The size covered by the last published checkpoint of each (trial, log), and what in the
    topic's tail is not a checkpoint the store holds (a forged or foreign record), read by
    `reader` (a `tail_reader`).

    With `owns`, only the ledger logs of the trials it owns are checked (and the rejection log's
    only with `rejections`): other publishers check theirs."""
    stored: set[str] = set()
    wanted: set[tuple[str | None, str]] = set()
    sources: list[tuple[str, str | None]] = [(LEDGER_LOG, t) for t in trial_ids]
    if rejections:
        sources.append((REJECTIONS_LOG, None))
    for log, owner in sources:
        for checkpoint in service.log_checkpoints(log, owner):
            stored.add(json.dumps(checkpoint, sort_keys=True))
            wanted.add((checkpoint.get("trial_id"), log))

    def found_all(seen: list[TailRecord]) -> bool:
        keys = {(d.get("trial_id"), d.get("log")) for d in map(_document, (r.value for r in seen))
                if d}
        return wanted <= keys

    records = _tail_records(reader, topic, found_all)
    sizes: dict[tuple[str | None, str], int] = {}
    problems: list[str] = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        document = _document(record.value)
        if document is not None and not _checked_here(document, owns, rejections):
            continue
        if document is None or json.dumps(document, sort_keys=True) not in stored:
            problems.append(f"{record.where()}: not a checkpoint this store recorded")
            continue
        key = (document.get("trial_id"), str(document.get("log")))
        sizes[key] = max(sizes.get(key, 0), _field(record.value, "size"))
    return sizes, problems


def verify_tail(
    service: LedgerService, tail: PublishedTail, owns: Callable[[str], bool] | None = None
) -> list[str]:
    """What in `tail` the store does not vouch for (empty: every record checked out).

    Each `trial.ledger` record must be the store's entry at its position (the whole JSON object,
    and the leaf hash when the record carries one), each trial's positions must follow each other
    one by one in offset order, and each rejection must be the store's one with its sequence.
    With `owns`, records of trials of the store it does not own are left to their publishers.
    """
    problems: list[str] = []
    known = set(service.trial_ids())
    by_trial: dict[str, list[tuple[TailRecord, dict[str, Any]]]] = {}
    for record in sorted(tail.ledger_records, key=lambda r: (r.partition, r.offset)):
        document = _document(record.value)
        trial = document.get("trial_id") if document is not None else None
        position = document.get("position") if document is not None else None
        if owns is not None and isinstance(trial, str) and trial in known and not owns(trial):
            continue
        if document is None or not isinstance(trial, str) or not _is_int(position):
            problems.append(f"{record.where()}: not a ledger record")
        elif trial not in known:
            problems.append(f"{record.where()}: trial {trial!r} is not in the store")
        else:
            by_trial.setdefault(trial, []).append((record, document))
    for trial, records in by_trial.items():
        problems += _check_trial_tail(service, trial, records)
    problems += _check_rejection_tail(service, tail.rejection_records)
    return problems


def _check_trial_tail(
    service: LedgerService, trial: str, records: list[tuple[TailRecord, dict[str, Any]]]
) -> list[str]:
    problems: list[str] = []
    first = min(int(d["position"]) for _, d in records)
    last = max(int(d["position"]) for _, d in records)
    store: dict[int, dict[str, Any]] = {}
    for entry in service.entries(trial, after=max(0, first - 1)):
        if entry.position > last:
            break
        store[entry.position] = json.loads(entry.to_json())
    previous: int | None = None
    for record, document in records:
        position = int(document["position"])
        if previous is not None and position != previous + 1:
            kind = "a duplicate" if position <= previous else "a gap"
            problems.append(f"{record.where()}: {trial} position {position} follows position "
                            f"{previous} ({kind})")
        previous = position
        expected = store.get(position)
        if expected is None:
            problems.append(f"{record.where()}: {trial} position {position} is beyond the "
                            f"store's {max(store, default=first - 1)}")
        elif not _same_entry(document, expected):
            problems.append(f"{record.where()}: {trial} position {position} differs from the "
                            f"store's entry")
    return problems


def _same_entry(published: dict[str, Any], stored: dict[str, Any]) -> bool:
    """The whole record equals the store's entry; a published leaf hash must be the store's."""
    hash_on_topic = published.get("leaf_hash")
    rest = {k: v for k, v in published.items() if k != "leaf_hash"}
    if rest != {k: v for k, v in stored.items() if k != "leaf_hash"}:
        return False
    return hash_on_topic is None or hash_on_topic == stored.get("leaf_hash")


def _check_rejection_tail(service: LedgerService, records: Iterable[TailRecord]) -> list[str]:
    problems: list[str] = []
    checked: list[tuple[TailRecord, int, dict[str, Any]]] = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        document = _document(record.value)
        sequence = document.get("sequence") if document is not None else None
        if document is None or not isinstance(sequence, int) or _is_bool(sequence) \
                or sequence < 1:
            problems.append(f"{record.where()}: not a rejection record")
        else:
            checked.append((record, sequence, document))
    if not checked:
        return problems
    first = min(sequence for _, sequence, _ in checked)
    last = max(sequence for _, sequence, _ in checked)
    store: dict[int, dict[str, Any]] = {}
    for message in service.rejections(after=first - 1):
        if message["sequence"] > last:
            break
        store[message["sequence"]] = json.loads(json.dumps(message))
    seen: set[int] = set()
    previous: dict[int, int] = {}
    for record, sequence, document in checked:
        if sequence in seen or sequence <= previous.get(record.partition, 0):
            problems.append(f"{record.where()}: rejection {sequence} is a duplicate or out of "
                            f"order")
        seen.add(sequence)
        previous[record.partition] = sequence
        expected = store.get(sequence)
        if expected is None:
            problems.append(f"{record.where()}: rejection {sequence} is beyond the store's "
                            f"{max(store, default=first - 1)}")
        elif document != expected:
            problems.append(f"{record.where()}: rejection {sequence} differs from the store's")
    return problems


def _checked_here(
    checkpoint: dict[str, Any], owns: Callable[[str], bool] | None, rejections: bool
) -> bool:
    """Whether a checkpoint on the topic is this publisher's to check."""
    if checkpoint.get("log") == REJECTIONS_LOG:
        return rejections
    trial = checkpoint.get("trial_id")
    return owns is None or not isinstance(trial, str) or owns(trial)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tail_records(consumer: Any, topic: str, enough: Any) -> list[TailRecord]:
    """The last records of every partition of `topic`, widening the window until
    `enough(records)` or every partition's beginning is reached."""
    structs = kafka()
    partitions = wait_for_partitions(consumer, topic, TAIL_TIMEOUT_S)
    tps = [structs.TopicPartition(topic, p) for p in partitions]
    if not tps:
        return []
    consumer.assign(tps)
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    window = TAIL_WINDOW
    while True:
        starts = {tp: max(begin[tp], end[tp] - window) for tp in tps}
        records = _read_range(consumer, starts, end)
        if enough(records) or all(starts[tp] == begin[tp] for tp in tps):
            return records
        window *= 4


def _read_range(
    consumer: Any, starts: dict[Any, int], ends: dict[Any, int]
) -> list[TailRecord]:
    values: list[TailRecord] = []
    todo = {tp for tp in starts if starts[tp] < ends[tp]}
    for tp in todo:
        consumer.seek(tp, starts[tp])
    deadline = time.monotonic() + TAIL_TIMEOUT_S
    while todo:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read the tail of {sorted(str(tp) for tp in todo)}")
        for tp, records in consumer.poll(timeout_ms=200).items():
            values.extend(TailRecord(r.topic, r.partition, r.offset, r.value)
                          for r in records if r.offset < ends[tp])
        todo = {tp for tp in todo if consumer.position(tp) < ends[tp]}
    return values


def _document(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):  # a hostile nesting depth is data too
        return None
    return document if isinstance(document, dict) else None


def _field(value: bytes | None, name: str) -> int:
    document = _document(value)
    raw = document.get(name) if document is not None else None
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
