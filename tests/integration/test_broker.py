"""The local Apache Kafka broker from deploy/broker.py, exercised over real sockets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from consumers._kafka import KafkaSettings, client_settings
from deploy import broker
from tests.kafka_fixtures import ExternalBroker, client

pytestmark = pytest.mark.kafka

Records = list[tuple[int, bytes, bytes]]  # (partition, key, value)


def _admin(bootstrap: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(**client_settings(bootstrap, "test-admin"))


def _producer(bootstrap: KafkaSettings) -> KafkaProducer:
    return KafkaProducer(
        **client_settings(bootstrap, "test-producer"),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=10_000,
        delivery_timeout_ms=60_000,
    )


def _produce(producer: KafkaProducer, topic: str, keys: Iterator[int]) -> None:
    futures = [producer.send(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode()) for i in keys]
    producer.flush(timeout=60)
    for future in futures:
        future.get(timeout=60)


def _consume_all(
    bootstrap: KafkaSettings, topic: str, expected: int, timeout: float = 60.0
) -> Records:
    records: Records = []
    with closing(
        KafkaConsumer(
            topic,
            **client_settings(bootstrap, "test-consumer"),
            group_id=f"test-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
    ) as consumer:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((r.partition, r.key, r.value) for r in batch)
    return records


def _topic_partitions(bootstrap: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    with closing(_admin(bootstrap)) as admin:
        (info,) = admin.describe_topics([topic])
    return list(info["partitions"])


def test_produce_consume_roundtrip(kafka_broker: broker.BrokerCluster | ExternalBroker) -> None:
    """An idempotent acks=all producer's records come back intact and in order per key."""
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    admin = client(kafka_broker)
    with closing(_admin(admin)) as admin_client:
        admin_client.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
        )
    with closing(_producer(admin)) as producer:
        _produce(producer, topic, iter(range(100)))

    records = _consume_all(admin, topic, 100)

    assert sorted(v for _, _, v in records) == sorted(f"v{i}".encode() for i in range(100))
    for key in {k for _, k, _ in records}:
        values = [int(v[1:]) for _, k, v in records if k == key]
        assert values == sorted(values)
        assert len({p for p, k, _ in records if k == key}) == 1


def test_start_is_idempotent(kafka_broker: broker.BrokerCluster | ExternalBroker) -> None:
    """Starting again in a running broker's data dir returns that broker, not a second one."""
    if isinstance(kafka_broker, ExternalBroker):
        pytest.skip("external broker")
    again = broker.start(kafka_broker.data_dir)
    assert [n.pid for n in again.nodes] == [n.pid for n in kafka_broker.nodes]
    assert again.bootstrap == kafka_broker.bootstrap
    info = broker.status(kafka_broker.data_dir)
    assert info["running"] is True
    assert info["bootstrap"] == kafka_broker.bootstrap
    cluster_id, ids = broker.metadata_brokers(kafka_broker.nodes[0].port,
                                              credentials=kafka_broker.admin)
    assert cluster_id == kafka_broker.cluster_id
    assert ids == {1}


@pytest.mark.slow
def test_three_nodes_survive_a_killed_leader(kafka_cluster3: broker.BrokerCluster) -> None:
    """With RF=3/min ISR 2, killing a partition leader loses no acknowledged record."""
    bootstrap = client(kafka_cluster3)
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    with closing(_admin(bootstrap)) as admin:
        admin.create_topics(
            {
                topic: {
                    "num_partitions": 3,
                    "replication_factor": 3,
                    "configs": {"min.insync.replicas": "2"},
                }
            },
            wait_for_metadata=True,
        )
    partitions = _topic_partitions(bootstrap, topic)
    assert all(len(p["replica_nodes"]) == 3 for p in partitions)
    victim = next(int(p["leader_id"]) for p in partitions if p["partition_index"] == 0)

    with closing(_producer(bootstrap)) as producer:
        _produce(producer, topic, iter(range(300)))
        kafka_cluster3.kill_node(victim)
        assert not kafka_cluster3.node(victim).is_alive()
        _produce(producer, topic, iter(range(300, 600)))

    records = _consume_all(bootstrap, topic, 600)
    values = [v for _, _, v in records]
    assert len(values) == len(set(values)) == 600
    assert set(values) == {f"v{i}".encode() for i in range(600)}
    leaders = {int(p["leader_id"]) for p in _topic_partitions(bootstrap, topic)}
    assert victim not in leaders

    kafka_cluster3.restart_node(victim)
    assert len(kafka_cluster3.alive_nodes()) == 3
    _cid, ids = broker.metadata_brokers(kafka_cluster3.node(victim).port,
                                        credentials=kafka_cluster3.admin)
    assert ids == {1, 2, 3}


def test_a_broker_whose_state_file_is_gone_is_never_formatted_away(tmp_path: Any) -> None:
    """An operator's probe: with `broker.json` deleted, `ledger broker start` formatted the
    node's storage afresh (a new cluster id), losing every topic and the submissions the broker
    had acknowledged; with the old JVM still up it started a second one on the same log dirs.
    It refuses, and the stopped broker's files are as they were. A folder holding another
    tool's files is refused the same way."""
    data = tmp_path / "kafka"
    cluster = broker.start(data)
    broker.stop(data)
    (data / broker.STATE_FILE).unlink()
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}
    with pytest.raises(broker.BrokerError, match=r"no broker\.json: a broker whose state file"):
        broker.start(data)
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")
            if p.is_file() and p.name != broker.LOCK_FILE} == {
        p: m for p, m in before.items() if p.name != broker.LOCK_FILE}
    assert cluster.nodes[0].pid is not None and not cluster.nodes[0].is_alive()
    other = tmp_path / "postgres"
    other.mkdir()
    (other / "postgres.json").write_text("{}")
    with pytest.raises(broker.BrokerError, match=r"holds postgres\.json but no broker\.json"):
        broker.start(other)
    assert sorted(p.name for p in other.iterdir()) == [broker.LOCK_FILE, "postgres.json"]


def test_a_node_that_cannot_start_says_why_in_its_first_line(tmp_path: Any) -> None:
    """Its port taken by another program: the error's first line (the one `ledger broker start`
    prints) ended "log .../node-1.log:", the cause left in the log's tail. It names it."""
    import json
    import socket

    data = tmp_path / "kafka"
    broker.start(data)
    broker.stop(data)
    port = json.loads((data / broker.STATE_FILE).read_text())["nodes"][0]["port"]
    with closing(socket.socket()) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(broker.BrokerError) as failed:
            broker.start(data, timeout=60)
    first = str(failed.value).splitlines()[0]
    assert "exited during startup" in first and "already in use" in first
    assert broker.status(data)["running"] is False
