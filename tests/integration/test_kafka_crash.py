"""Ingest survives SIGKILL at random moments and a killed broker: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumers.publisher import SubmissionPublisher
from ledger.application import LedgerService
from tests.integration.test_kafka_ingest import (
    Topics,
    _create,
    _topics,
    compared,
    demo_lines,
    direct_store,
    read_topic,
    send_raw,
)

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TRIAL = "NCT05406206"
REPO = Path(__file__).resolve().parents[2]


def _ingest_process(store: Path, bootstrap: str, topics: Topics, log: Path,
                    *, until_idle: bool = False) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "consumers.ingest", "--store", str(store),
               "--bootstrap", bootstrap, "--submissions-topic", topics.submissions,
               "--ledger-topic", topics.ledger, "--rejections-topic", topics.rejections,
               "--group-id", topics.group, "--group-instance-id", f"{topics.group}-1",
               "--max-batch", "50"]
    if until_idle:
        command.append("--until-idle")
    with log.open("ab") as handle:
        return subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)


def _stream(bootstrap: str, topics: Topics, good: list[bytes], bad: list[bytes],
            pause: float) -> threading.Thread:
    """Publish good submissions in chunks, a malformed one after each, in the background."""
    def run() -> None:
        with SubmissionPublisher(bootstrap, topics.submissions) as publisher:
            for index, start in enumerate(range(0, len(good), 50)):
                publisher.publish(enumerate(good[start:start + 50]))
                if index < len(bad):
                    send_raw(bootstrap, topics.submissions, [(None, bad[index])])
                time.sleep(pause)

    thread = threading.Thread(target=run, name="stream")
    thread.start()
    return thread


def _check(bootstrap: str, topics: Topics, store: Path, tmp_path: Path, good: list[bytes],
           bad: list[bytes]) -> None:
    with LedgerService(str(store)) as service:
        events = list(service.entries(TRIAL))
        rejections = list(service.rejections())
    with direct_store(tmp_path / "direct.db", good) as direct:
        expected = list(direct.entries(TRIAL))
    assert compared(events) == compared(expected)
    assert [r.value.decode() for r in read_topic(bootstrap, topics.ledger)] == [
        e.to_json() for e in events]
    on_topic = [json.loads(r.value) for r in read_topic(bootstrap, topics.rejections)]
    assert sorted(m["sequence"] for m in on_topic) == list(range(1, len(bad) + 1))
    assert sorted(on_topic, key=lambda m: m["sequence"]) == rejections
    assert sorted(m["submission"] for m in on_topic) == sorted(b.decode() for b in bad)


def _finish(store: Path, bootstrap: str, topics: Topics, log: Path) -> None:
    final = _ingest_process(store, bootstrap, topics, log, until_idle=True)
    try:
        assert final.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        _kill(final)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_ingest_survives_repeated_sigkill(kafka_broker: Any, tmp_path: Path) -> None:
    """Twelve SIGKILLs mid-stream leave store, ledger and rejections exact: no gap, no double."""
    bootstrap, topics = kafka_broker.bootstrap, _topics()
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
            process = _ingest_process(store, bootstrap, topics, log)
            try:
                time.sleep(rng.uniform(0.3, 3.5))
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
            kills += 1
    finally:
        stream.join(timeout=300)
    assert not stream.is_alive()
    _finish(store, bootstrap, topics, log)
    _check(bootstrap, topics, store, tmp_path, good, bad)


@pytest.mark.skipif(
    not os.environ.get("LEDGER_TEST_FAILOVER"),
    reason="3-node failover stalled once in development (issue 3 note); opt in with "
    "LEDGER_TEST_FAILOVER=1",
)
def test_ingest_keeps_going_when_a_broker_dies(kafka_cluster3: Any, tmp_path: Path) -> None:
    """With RF=3 and min ISR 2, killing a broker mid-stream loses and doubles nothing."""
    bootstrap, topics = kafka_cluster3.bootstrap, _topics()
    _create(bootstrap, topics, partitions=2, rf=3, configs={"min.insync.replicas": "2"})
    good = demo_lines(tmp_path)[:1200]
    bad = [f"garbage {i}".encode() for i in range(6)]
    store, log = tmp_path / "cluster.db", tmp_path / "ingest.log"
    process = _ingest_process(store, bootstrap, topics, log)
    stream = _stream(bootstrap, topics, good, bad, pause=0.2)
    try:
        time.sleep(2.5)
        victim = 1 + uuid.uuid4().int % 3
        kafka_cluster3.kill_node(victim)
        stream.join(timeout=300)
        assert not stream.is_alive()
        assert process.poll() is None, "ingest died with the broker"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        finally:
            _kill(process)
    _finish(store, bootstrap, topics, log)
    _check(bootstrap, topics, store, tmp_path, good, bad)
    assert os.path.getsize(log) > 0
