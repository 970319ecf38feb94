"""What an auditor reads from the broker: the ledger's own topics, whole, and whether they can be
trusted to still hold the whole history (issue 13 item 6).

`read_ledger_topics` reads `trial.ledger`, `trial.rejections` and `trial.checkpoints` from their
first offset to their end (committed records only) and reports, in `problems`, every topic whose
settings would lose history (time or size retention, compaction) or whose log no longer starts at
offset 0 (records were deleted). `ledger verify --bootstrap` and `ledger replay --bootstrap` fold
over what it returns; it needs only the `auditor` principal's rights.
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from consumers._kafka import Connection, client_settings, kafka, kafka_errors
from consumers.topics import (
    HISTORY_CONFIGS,
    LEDGER_TOPIC,
    REJECTIONS_TOPIC,
    checkpoints_topic_for,
    history_problems,
)

READ_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class TopicSnapshot:
    """The committed records of the ledger's topics (JSON objects as published, in offset order)
    for one trial (or all), and what would make them an incomplete history."""

    ledger: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True if no topic setting or log start puts the history in doubt."""
        return not self.problems


def read_ledger_topics(
    settings: Connection,
    trial_id: str | None,
    *,
    ledger_topic: str = LEDGER_TOPIC,
    rejections_topic: str = REJECTIONS_TOPIC,
    checkpoints_topic: str | None = None,
) -> TopicSnapshot:
    """Every committed record of the ledger's topics for `trial_id` (None: every trial).

    A ledger or checkpoint record belongs to a trial by its `trial_id`; a rejection by its key
    (the ledger keys it by the submission's trial) or, failing that, the submission's `trial_id`.
    A record that is not a JSON object is a problem, not a crash.
    """
    checkpoints_topic = checkpoints_topic or checkpoints_topic_for(ledger_topic)
    topics = (ledger_topic, rejections_topic, checkpoints_topic)
    problems = _settings_problems(settings, topics)
    snapshot = TopicSnapshot(problems=problems)
    consumer = kafka().KafkaConsumer(
        **client_settings(settings, "trial-ledger-auditor"),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    with closing(consumer):
        for topic, into in ((ledger_topic, snapshot.ledger),
                            (rejections_topic, snapshot.rejections),
                            (checkpoints_topic, snapshot.checkpoints)):
            for record in _read_whole(consumer, topic, problems):
                document = _document(record.value)
                where = f"{topic}[{record.partition}]@{record.offset}"
                if document is None:
                    problems.append(f"{where}: not a JSON object")
                elif trial_id is None or _trial_of(record.key, document) == trial_id:
                    into.append(document)
    return snapshot


def _settings_problems(settings: Connection, topics: tuple[str, ...]) -> list[str]:
    from kafka.admin import ConfigResource, ConfigResourceType

    problems: list[str] = []
    admin = kafka().KafkaAdminClient(**client_settings(settings, "trial-ledger-auditor"))
    with closing(admin):
        existing = set(admin.list_topics())
        present = [t for t in topics if t in existing]
        problems += [f"{t}: no such topic (or no right to describe it)"
                     for t in topics if t not in existing]
        if not present:
            return problems
        keys = list(HISTORY_CONFIGS)
        try:
            described = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t, keys) for t in present],
                config_filter="all",
            ).get("topic", {})
        except kafka_errors().KafkaError as error:
            return [*problems, f"cannot read the topics' settings: {type(error).__name__}"]
    for topic in present:
        configs = described.get(topic) or {}
        missing = [k for k in keys if k not in configs]
        if missing:
            problems.append(f"{topic}: cannot read {', '.join(missing)} (no DESCRIBE_CONFIGS "
                            f"right?), so it may lose history")
        problems += history_problems(
            topic, {k: (v.get("value") if isinstance(v, dict) else None)
                    for k, v in configs.items()})
    return problems


def _read_whole(consumer: Any, topic: str, problems: list[str]) -> list[Any]:
    k = kafka()
    partitions = sorted(consumer.partitions_for_topic(topic) or ())
    if not partitions:
        return []
    tps = [k.TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    for tp in tps:
        if begin[tp] != 0:
            problems.append(f"{topic}[{tp.partition}]: the log starts at offset {begin[tp]}, "
                            f"not 0: earlier records were deleted")
    consumer.seek_to_beginning(*tps)
    records: list[Any] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while any(consumer.position(tp) < end[tp] for tp in tps):
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {topic} to its end within {READ_TIMEOUT_S:.0f} s")
        for tp, batch in consumer.poll(timeout_ms=200).items():
            records.extend(r for r in batch if r.offset < end[tp])
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def _document(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _trial_of(key: bytes | None, document: dict[str, Any]) -> str | None:
    trial = document.get("trial_id")
    if isinstance(trial, str):
        return trial
    if key:
        return key.decode("utf-8", "replace")
    submission = document.get("submission")
    if isinstance(submission, str):
        inner = _document(submission.encode("utf-8", "surrogatepass"))
        if inner is not None and isinstance(inner.get("trial_id"), str):
            return str(inner["trial_id"])
    return None
