"""Scale-out: `ledger ingest` processes in one consumer group share one PostgreSQL store, each
recording and publishing the trials of the `trial.submissions` partitions it owns; when one dies
the other takes its partitions over from the store's tracked offsets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from consumers._kafka import Connection, client_settings, kafka
from consumers.ownership import partition_of
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.application import LedgerService
from ledger.protocol_files import bundled_protocol
from tests.builders import TRIAL_ID
from tests.integration.test_kafka_crash import _kill, _stop
from tests.integration.test_kafka_ingest import (
    SubmissionStream,
    Topics,
    _create,
    _topics,
    compared,
    demo_lines,
    fixed_clock,
    read_topic,
)
from tests.kafka_fixtures import client, client_file

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 4
#: One trial on each partition of a 4-partition `trial.submissions` (`partition_of`).
TRIALS = [TRIAL_ID, "NCT05406207", "NCT05406211", "NCT05406214"]
PER_TRIAL = 600
CHUNK = 30
_OWNED = re.compile(r"publishing the trials of partitions \[([\d, ]*)\] of (\d+)")


def protocol_of(trial_id: str) -> ProtocolDefinition:
    """The bundled protocol, for another trial id."""
    return ProtocolDefinition.from_mapping({**bundled_protocol().to_mapping(),
                                            "trial_id": trial_id})


def open_trials(service: LedgerService) -> None:
    for trial_id in TRIALS:
        service.open_trial(protocol_of(trial_id), opened_by="test-scale-out")


def trial_lines(lines: list[bytes], trial_id: str) -> list[bytes]:
    """The demo's submissions as submissions to `trial_id` (event ids are unique per trial)."""
    if trial_id == TRIAL_ID:
        return lines
    return [json.dumps({**json.loads(raw), "trial_id": trial_id}).encode() for raw in lines]


def ingest_process(store_url: str, config: Path, topics: Topics, log: Path
                   ) -> subprocess.Popen[bytes]:
    """`ledger ingest` as an operator runs it, the store's URL (it has a password) and the client
    file in its environment; no static membership, so a dead member leaves the group."""
    command = [sys.executable, "-m", "ledger.cli", "ingest", "--json",
               "--submissions-topic", topics.submissions,
               "--ledger-topic", topics.ledger, "--rejections-topic", topics.rejections,
               "--group-id", topics.group, "--max-batch", "50"]
    env = {**os.environ, "LEDGER_KAFKA_CONFIG": str(config), "LEDGER_STORE": store_url}
    env.pop("LEDGER_BOOTSTRAP", None)
    with log.open("ab") as handle:
        return subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                env=env)


def owned(log: Path) -> tuple[list[int], str]:
    """The partitions the process logging to `log` publishes now, and what it logged since it
    took them."""
    text = log.read_text(errors="replace") if log.exists() else ""
    matches = list(_OWNED.finditer(text))
    if not matches:
        return [], text
    last = matches[-1]
    partitions = [int(p) for p in last.group(1).split(",") if p.strip()]
    return partitions, text[last.end():]


def wait_for(condition: Callable[[], bool], what: str, processes: Iterable[
        tuple[subprocess.Popen[bytes], Path]], timeout: float = 120.0) -> None:
    """Until `condition` holds; every process listed must stay alive meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process, log in processes:
            assert process.poll() is None, f"ingest died:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def recorded_offsets(store_url: str, topics: Topics, partitions: list[int]) -> list[int | None]:
    """The store's last offset of each of `partitions` of the submissions topic."""
    with LedgerService(store_url) as service:
        return [service.upstream_position(topics.submissions, p) for p in partitions]


def recorded_everything(store_url: str, bootstrap: Connection, topic: str) -> bool:
    """Whether the store's tracked offsets reach the end of every partition of `topic`."""
    k = kafka()
    consumer = k.KafkaConsumer(**client_settings(bootstrap, "test-ends"), group_id=None)
    with closing(consumer):
        partitions = [k.TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
    with LedgerService(store_url) as service:
        return all(service.upstream_position(tp.topic, tp.partition) == end - 1
                   for tp, end in ends.items())


def test_the_survivor_takes_over_a_killed_ingest_and_nothing_is_lost_or_doubled(
    kafka_broker: Any, postgres_url: str, tmp_path: Path
) -> None:
    """4 trials on 4 partitions, 2 ingest processes on one PostgreSQL store, one SIGKILLed
    mid-stream: the other takes its partitions over; every submission is recorded once, each
    trial's positions are gapless, `trial.ledger` holds each trial's records once and in order,
    the rejections likewise, and `ledger verify` finds the store intact."""
    assert sorted(partition_of(t, PARTITIONS) for t in TRIALS) == list(range(PARTITIONS))
    bootstrap, config, topics = client(kafka_broker), client_file(kafka_broker), _topics()
    _create(bootstrap, topics, partitions=PARTITIONS)
    demo = demo_lines(tmp_path)[:PER_TRIAL]
    per_trial = {trial_id: trial_lines(demo, trial_id) for trial_id in TRIALS}
    bad = [f"garbage {i}".encode() for i in range(8)]
    with LedgerService(postgres_url) as service:
        open_trials(service)

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = ingest_process(postgres_url, config, topics, first_log)
    second = ingest_process(postgres_url, config, topics, second_log)
    both = [(first, first_log), (second, second_log)]
    # Every trial's submissions in interleaved chunks, a round per chunk.
    rounds = [[lines[start:start + CHUNK] for lines in per_trial.values()]
              for start in range(0, PER_TRIAL, CHUNK)]
    stream = SubmissionStream(bootstrap, topics.submissions, rounds, bad, pause=0.5, held_after=5)
    stream.start()
    try:
        # The group settles (however long a loaded machine takes): each process owns two
        # partitions, and the one to be killed has recorded from both.
        wait_for(lambda: len(owned(first_log)[0]) == len(owned(second_log)[0]) == 2
                 and None not in recorded_offsets(postgres_url, topics, owned(first_log)[0]),
                 "the two processes share the partitions", both)
        killed_owned = owned(first_log)[0]
        settled = recorded_offsets(postgres_url, topics, killed_owned)
        stream.go_on.set()
        # Killed while recording the live stream.
        wait_for(lambda: all(now is not None and then is not None and now > then for now, then
                             in zip(recorded_offsets(postgres_url, topics, killed_owned),
                                    settled, strict=True)),
                 "the first process records the rest of the stream", both)
        assert stream.is_alive(), "the stream ended before the kill: not mid-stream"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        stream.finish()
        # The group notices the death after the session timeout (45 s), then rebalances.
        wait_for(lambda: owned(second_log)[0] == list(range(PARTITIONS)),
                 "the survivor owns every partition", [(second, second_log)], timeout=150)
        wait_for(lambda: recorded_everything(postgres_url, bootstrap, topics.submissions),
                 "the survivor recorded every offset", [(second, second_log)], timeout=150)
    finally:
        _kill(first)
        if second.poll() is None:
            _stop(second, second_log)
        stream.go_on.set()
        stream.join(timeout=300)
    assert second.returncode == 0, second_log.read_text()[-3000:]
    assert len(killed_owned) == 2
    check_store_and_topics(postgres_url, bootstrap, topics, tmp_path, per_trial, bad)


def check_store_and_topics(store_url: str, bootstrap: Connection, topics: Topics, tmp_path: Path,
                           per_trial: dict[str, list[bytes]], bad: list[bytes]) -> None:
    """Each trial's records are what `submit_many` of its submissions records, gapless and
    once each, and so are its records on `trial.ledger`; each rejection is stored and published
    once; `ledger verify` finds the store intact."""
    with LedgerService(store_url) as service:
        stored = {trial_id: list(service.entries(trial_id)) for trial_id in TRIALS}
        rejections = list(service.rejections())
    with LedgerService(str(tmp_path / "direct.db"), clock=fixed_clock()) as direct:
        open_trials(direct)
        for lines in per_trial.values():
            direct.submit_many(lines)
        expected = {trial_id: list(direct.entries(trial_id)) for trial_id in TRIALS}
    for trial_id in TRIALS:
        entries = stored[trial_id]
        assert [e.position for e in entries] == list(range(1, len(entries) + 1)), trial_id
        recorded = [e.event_id for e in entries if e.event_id]
        assert len(recorded) == len(set(recorded)), f"{trial_id}: a submission recorded twice"
        assert compared(entries) == compared(expected[trial_id]), trial_id
    assert sorted(r["sequence"] for r in rejections) == list(range(1, len(bad) + 1))
    assert sorted(r["submission"] for r in rejections) == sorted(b.decode() for b in bad)

    on_ledger: dict[str, list[str]] = defaultdict(list)
    for record in read_topic(bootstrap, topics.ledger):  # read_committed, in offset order
        on_ledger[record.key.decode()].append(record.value.decode())
    assert sorted(on_ledger) == sorted(TRIALS)
    for trial_id in TRIALS:
        assert on_ledger[trial_id] == [e.to_json() for e in stored[trial_id]], trial_id
    published = [json.loads(r.value) for r in read_topic(bootstrap, topics.rejections)]
    assert sorted(published, key=lambda m: m["sequence"]) == rejections

    for trial_id in TRIALS:
        verify = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "verify", "--trial", trial_id, "--json"],
            cwd=REPO, capture_output=True, env={**os.environ, "LEDGER_STORE": store_url},
            timeout=300, check=False)
        assert verify.returncode == 0, (
            verify.stdout.decode()[-3000:] + verify.stderr.decode()[-3000:])
