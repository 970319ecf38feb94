"""Topic names (contract §4, §6, §7) and idempotent topic creation.

The ledger's own topics keep history forever (issue 13 item 6): they are created with
`HISTORY_CONFIGS` (no time or size retention, never compacted), and the broker creates no topic
on its own (`auto.create.topics.enable=false`, deploy/broker.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextlib import closing
from typing import Any

from consumers._kafka import Connection, client_settings, kafka, kafka_errors

SUBMISSIONS_TOPIC = "trial.submissions"
LEDGER_TOPIC = "trial.ledger"
REJECTIONS_TOPIC = "trial.rejections"
CHECKPOINTS_TOPIC = "trial.checkpoints"
DEFAULT_TOPICS = (SUBMISSIONS_TOPIC, LEDGER_TOPIC, REJECTIONS_TOPIC)
#: The ledger's own topics: written by the ledger only, read by auditors, kept forever.
LEDGER_TOPICS = (LEDGER_TOPIC, REJECTIONS_TOPIC, CHECKPOINTS_TOPIC)


def checkpoints_topic_for(ledger_topic: str) -> str:
    """Checkpoints go beside the ledger topic they certify: `trial.checkpoints` for the default
    `trial.ledger`, `<ledger topic>-checkpoints` for any other (so two ledgers publishing to
    different topics never mix their tree heads)."""
    return CHECKPOINTS_TOPIC if ledger_topic == LEDGER_TOPIC else f"{ledger_topic}-checkpoints"
#: Topic settings that never lose a record: no retention by time or size, deletion policy only.
HISTORY_CONFIGS = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def site_topic(site: str, submissions_topic: str = SUBMISSIONS_TOPIC) -> str:
    """The topic a site writes its submissions to (`trial.submissions.<SITE>`, contract §7)."""
    return f"{submissions_topic}.{site}"


def site_of_topic(topic: str, submissions_topic: str = SUBMISSIONS_TOPIC) -> str | None:
    """The site whose own topic `topic` is, or None (the shared, unauthenticated topic)."""
    prefix = f"{submissions_topic}."
    return (topic[len(prefix):] or None) if topic.startswith(prefix) else None


def history_problems(topic: str, configs: Mapping[str, str | None]) -> list[str]:
    """Why a topic with these settings could lose history (empty if it cannot)."""
    problems = []
    for key in ("retention.ms", "retention.bytes"):
        value = configs.get(key)
        if value is not None and value != "-1":
            problems.append(f"{topic}: {key}={value} deletes old records (must be -1)")
    policy = configs.get("cleanup.policy")
    if policy is not None and "compact" in policy:
        problems.append(f"{topic}: cleanup.policy={policy} compacts away records (must be delete)")
    return problems


def ensure_topics(
    bootstrap: Connection,
    names: Iterable[str] = DEFAULT_TOPICS,
    partitions: int = 1,
    replication_factor: int = -1,
    configs: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created (others are kept).

    `replication_factor=-1` takes the broker's `default.replication.factor` (3 on a local
    three-node cluster).
    """
    wanted = list(dict.fromkeys(names))
    errors = kafka_errors()
    admin = kafka().KafkaAdminClient(**client_settings(bootstrap, "trial-ledger-admin"))
    with closing(admin):
        missing = [name for name in wanted if name not in set(admin.list_topics())]
        created: list[str] = []
        for name in missing:
            spec: dict[str, Any] = {
                "num_partitions": partitions, "replication_factor": replication_factor
            }
            if configs:
                spec["configs"] = dict(configs)
            try:
                admin.create_topics({name: spec}, wait_for_metadata=True)
            except errors.TopicAlreadyExistsError:
                continue  # created concurrently by someone else: fine
            created.append(name)
        return created


def wait_for_partitions(consumer: Any, topic: str, timeout_s: float = 60.0) -> list[int]:
    """`topic`'s partition numbers once `consumer` has metadata for them (TimeoutError if not)."""
    deadline = time.monotonic() + timeout_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions (does it exist?)")
        time.sleep(0.1)
