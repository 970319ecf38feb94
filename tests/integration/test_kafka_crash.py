"""Ingest survives SIGKILL at random moments and a killed broker: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from consumers._kafka import Connection, client_settings, kafka, kafka_errors
from consumers.ownership import partition_of, partition_transactional_id
from ledger.application import LedgerService
from ledger.audit.inspection import verify_source
from tests.builders import TRIAL_ID
from tests.integration.test_kafka_ingest import (
    SubmissionStream,
    Topics,
    _create,
    _topics,
    compared,
    demo_lines,
    direct_store,
    read_topic,
)
from tests.kafka_fixtures import client, client_file

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _ingest_process(store: Path, config: Path, topics: Topics, log: Path,
                    *, until_idle: bool = False) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ledger.cli", "ingest", "--json", "--store", str(store),
               "--submissions-topic", topics.submissions,
               "--ledger-topic", topics.ledger, "--rejections-topic", topics.rejections,
               "--group-id", topics.group, "--group-instance-id", f"{topics.group}-1",
               "--max-batch", "50"]
    if until_idle:
        command.append("--until-idle")
    # The client file goes in through the environment, as an operator's service unit would.
    env = {**os.environ, "LEDGER_KAFKA_CONFIG": str(config)}
    env.pop("LEDGER_BOOTSTRAP", None)
    with log.open("ab") as handle:
        return subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                env=env)


def _stream(bootstrap: Connection, topics: Topics, good: list[bytes], bad: list[bytes],
            pause: float) -> SubmissionStream:
    """The good submissions in rounds of 50, a malformed one after each while they last."""
    rounds = [[good[start:start + 50]] for start in range(0, len(good), 50)]
    stream = SubmissionStream(bootstrap, topics.submissions, rounds, bad, pause)
    stream.start()
    return stream


def _check(bootstrap: Connection, topics: Topics, store: Path, tmp_path: Path, good: list[bytes],
           bad: list[bytes]) -> None:
    with LedgerService(str(store)) as service:
        events = list(service.entries(TRIAL_ID))
        rejections = list(service.rejections())
        # Zero false alarms: a store left by killed writers verifies intact, every entry sealed.
        verification = verify_source(service.audit_source(TRIAL_ID))
    report = verification.to_json_dict()
    assert verification.intact, report["problems"][:5]
    assert report["size"] == len(events) and report["hashed_from"] == 1
    assert report["logs"]["rejections"]["size"] == len(rejections)
    with direct_store(tmp_path / "direct.db", good) as direct:
        expected = list(direct.entries(TRIAL_ID))
    assert compared(events) == compared(expected)
    assert [r.value.decode() for r in read_topic(bootstrap, topics.ledger)] == [
        e.to_json() for e in events]
    on_topic = [json.loads(r.value) for r in read_topic(bootstrap, topics.rejections)]
    assert sorted(m["sequence"] for m in on_topic) == list(range(1, len(bad) + 1))
    assert sorted(on_topic, key=lambda m: m["sequence"]) == rejections
    assert sorted(m["submission"] for m in on_topic) == sorted(b.decode() for b in bad)


def _finish(store: Path, config: Path, topics: Topics, log: Path) -> None:
    final = _ingest_process(store, config, topics, log, until_idle=True)
    try:
        assert final.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        _kill(final)


def _wait_until_recorded(process: subprocess.Popen[bytes], store: Path, bootstrap: Connection,
                         topic: str, log: Path, timeout: float = 180.0) -> None:
    """Until the running ingest has recorded every offset of `topic` (it must not die first)."""
    consumer = kafka().KafkaConsumer(**client_settings(bootstrap, "test-ends"), group_id=None)
    with closing(consumer):
        partitions = [kafka().TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "ingest died:\n" + log.read_text()[-3000:]
        with LedgerService(str(store)) as service:
            recorded = {tp: service.upstream_position(tp.topic, tp.partition) for tp in ends}
        # A partition nothing was sent to (the unkeyed garbage can all land on the other one)
        # has no tracked offset: done when its end is 0.
        if all((-1 if recorded[tp] is None else recorded[tp]) == ends[tp] - 1 for tp in ends):
            return
        assert time.monotonic() < deadline, f"ingest stuck at {recorded} of {ends}"
        time.sleep(1)


def _node_in_role(
    bootstrap: Connection, topics: Topics, role: str, partitions: int, timeout: float = 60
) -> int:
    """The broker in `role` for the trial's publisher: the leader of `trial.ledger`, or the
    coordinator of the transactional id of the outbox publishing the trial (the one of the
    submissions partition its key maps to), once that publisher has registered it."""
    admin = kafka().KafkaAdminClient(**client_settings(bootstrap, "test-admin"))
    with closing(admin):
        if role != "transaction coordinator":
            (described,) = admin.describe_topics([topics.ledger])
            return int(described["partitions"][0]["leader_id"])
        publisher = partition_transactional_id(
            topics.ledger, topics.rejections, partition_of(TRIAL_ID, partitions))
        deadline = time.monotonic() + timeout
        while True:
            try:
                return int(admin.describe_transactions([publisher])[publisher].coordinator_id)
            except kafka_errors().TransactionalIdNotFoundError:
                assert time.monotonic() < deadline, f"{publisher} never started publishing"
                time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM; if it has not exited within two minutes, dump its stacks to the log and fail."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(2)
        _kill(process)
        pytest.fail("ingest did not stop within 120 s of SIGTERM:\n" + log.read_text()[-8000:])


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_ingest_survives_repeated_sigkill(kafka_broker: Any, tmp_path: Path) -> None:
    """Twelve SIGKILLs mid-stream leave store, ledger and rejections exact: no gap, no double."""
    bootstrap, config, topics = client(kafka_broker), client_file(kafka_broker), _topics()
    _create(bootstrap, topics, partitions=2)
    good = demo_lines(tmp_path)[:1500]
    bad = [f'{{"not": "an envelope", "n": {i}}}'.encode() if i % 2 else f"garbage {i}".encode()
           for i in range(12)]
    store, log = tmp_path / "crash.db", tmp_path / "ingest.log"
    rng = random.Random(2026)
    stream = _stream(bootstrap, topics, good, bad, pause=0.15)
    kills = 0
    try:
        while kills < 12:
            process = _ingest_process(store, config, topics, log)
            try:
                time.sleep(rng.uniform(0.3, 3.5))
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
            kills += 1
    finally:
        stream.finish()
    _finish(store, config, topics, log)
    _check(bootstrap, topics, store, tmp_path, good, bad)


@pytest.mark.parametrize("role", ["ledger partition leader", "transaction coordinator"])
def test_ingest_keeps_going_when_a_broker_dies(
    kafka_cluster3: Any, tmp_path: Path, role: str
) -> None:
    """With RF=3 and min ISR 2, killing the broker the outbox depends on loses and doubles nothing.

    kafka-python 3.0.12 kept a stale leader and waited on it (see consumers._kafka); this kills
    the node that hurts most rather than a random one.
    """
    bootstrap, config, topics = client(kafka_cluster3), client_file(kafka_cluster3), _topics()
    _create(bootstrap, topics, partitions=2, rf=3, configs={"min.insync.replicas": "2"})
    good = demo_lines(tmp_path)[:1200]
    bad = [f"garbage {i}".encode() for i in range(6)]
    store, log = tmp_path / "cluster.db", tmp_path / "ingest.log"
    process = _ingest_process(store, config, topics, log)
    stream = _stream(bootstrap, topics, good, bad, pause=0.2)
    try:
        time.sleep(2.5)
        kafka_cluster3.kill_node(_node_in_role(bootstrap, topics, role, partitions=2))
        stream.finish()
        _wait_until_recorded(process, store, bootstrap, topics.submissions, log)
    finally:
        _stop(process, log)
    # The process that lived through the failover recorded everything; this one finds no work.
    _finish(store, config, topics, log)
    _check(bootstrap, topics, store, tmp_path, good, bad)
