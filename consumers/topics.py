"""Topic names (contract §4) and idempotent topic creation."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextlib import closing
from typing import Any

from consumers._kafka import client_settings, kafka, kafka_errors

SUBMISSIONS_TOPIC = "trial.submissions"
LEDGER_TOPIC = "trial.ledger"
REJECTIONS_TOPIC = "trial.rejections"
DEFAULT_TOPICS = (SUBMISSIONS_TOPIC, LEDGER_TOPIC, REJECTIONS_TOPIC)


def ensure_topics(
    bootstrap: str,
    names: Iterable[str] = DEFAULT_TOPICS,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created (others are kept)."""
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
