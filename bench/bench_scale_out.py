"""Scale-out throughput: `ledger ingest` with 1 and with 2 processes in one consumer group, on one
PostgreSQL store, on the same workload.

    python bench/bench_scale_out.py [--trials 4] [--per-trial 5000] [--max-batch 2000]
                                    [--kafka-config FILE] [--bootstrap HOST:PORT]
                                    [--postgres-dir DIR]

Publishes TRIALS x PER_TRIAL valid submissions (bench_ingest's stream, one trial per partition of
a TRIALS-partition submissions topic, keyed by trial id as `ledger publish` does) once. Then, for
1 and for 2 processes: a fresh PostgreSQL database with the trials opened, a fresh consumer group
and fresh ledger topics, and that many `ledger ingest --until-idle` processes started together,
timed from their start until the last one exits (whole processes: start-up, group joins and
rebalances, recording and publishing every record). Each run is checked (every submission
accepted once, every record published once); it prints submissions/s for each, the ratio of the
two, the CPU time the ingest processes used and how busy the whole machine was (with the broker
and the server on the same few cores, the ratio is bounded by the cores left to ingest).

Without --kafka-config/--bootstrap it starts (and stops) its own secure broker (deploy.broker,
connecting as `admin`); without --postgres-dir, its own PostgreSQL server (deploy.postgres,
durable) in a temporary directory. With --postgres-dir DIR the server of DIR (`python3 -m
deploy.postgres start DIR`'s) is started or reused, and gets a new database per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench_ingest import PER_CYCLE, open_trials, submissions

from consumers._kafka import load_client_properties, resolve_settings
from consumers.ingest import DEFAULT_MAX_BATCH
from consumers.ownership import partition_of
from consumers.publisher import SubmissionPublisher
from consumers.topics import ensure_topics
from deploy import postgres
from ledger.application import LedgerService

REPO = Path(__file__).resolve().parents[1]


def trial_ids(partitions: int) -> list[str]:
    """One trial id on each partition of a topic of `partitions`, the bundled trial's first."""
    chosen: dict[int, str] = {}
    number = 5406206
    while len(chosen) < partitions:
        trial_id = f"NCT{number:08d}"
        chosen.setdefault(partition_of(trial_id, partitions), trial_id)
        number += 1
    return sorted(chosen.values())


def workload(trials: list[str], per_trial: int) -> list[bytes]:
    """Every trial's stream, its last dose before today (the ledger refuses future dates),
    interleaved trial by trial as sites would send them."""
    cycles = math.ceil(per_trial / PER_CYCLE)
    start = date.today() - timedelta(days=28 * cycles + 30)
    streams = [list(submissions(per_trial, trial_id, start)) for trial_id in trials]
    return [line for group in zip(*streams, strict=True) for line in group]


@contextmanager
def postgres_server(directory: Path | None) -> Iterator[Path]:
    """The data directory of a running server: DIR's, or a throwaway one stopped afterwards."""
    if directory is not None:
        yield directory
        return
    # Not under a root-only temporary directory: as root the server runs as `postgres`.
    data_dir = Path(tempfile.mkdtemp(prefix="bench-scale-out-postgres-"))
    try:
        yield data_dir
    finally:
        if postgres.load(data_dir) is not None:
            postgres.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass(frozen=True)
class Setup:
    """What every run shares: the published workload, the servers, the ingest options."""

    trials: list[str]
    lines: list[bytes]
    submissions_topic: str
    client_env: dict[str, str]  # how `ledger ingest` connects to Kafka
    postgres_dir: Path
    max_batch: int
    work: Path


def run(setup: Setup, processes: int) -> dict[str, Any]:
    """Ingest the whole topic with `processes` processes into a fresh database; the figures."""
    trials, lines, work = setup.trials, setup.lines, setup.work
    tag = uuid.uuid4().hex[:8]
    store_url = postgres.start(setup.postgres_dir, database=f"bench_scale_out_{tag}")
    with LedgerService(store_url) as service:
        open_trials(service, trials, "bench")
    command = [sys.executable, "-m", "ledger.cli", "ingest", "--until-idle", "--json",
               "--submissions-topic", setup.submissions_topic,
               "--ledger-topic", f"bench-led-{tag}", "--rejections-topic", f"bench-rej-{tag}",
               "--group-id", f"bench-{tag}", "--max-batch", str(setup.max_batch)]
    env = {**os.environ, **setup.client_env, "LEDGER_STORE": store_url}
    outputs = [work / f"ingest-{tag}-{n}.json" for n in range(processes)]
    logs = [work / f"ingest-{tag}-{n}.log" for n in range(processes)]
    cpu_before, machine_before = _children_cpu_s(), _machine_cpu()
    started = time.perf_counter()
    running = []
    for output, log in zip(outputs, logs, strict=True):
        with output.open("wb") as out, log.open("wb") as err:
            running.append(subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, env=env))
    codes = [process.wait(timeout=3600) for process in running]
    elapsed = time.perf_counter() - started
    cpu = _children_cpu_s() - cpu_before
    busy, total = (after - before for after, before in zip(_machine_cpu(), machine_before,
                                                             strict=True))
    for code, log in zip(codes, logs, strict=True):
        if code != 0:
            raise SystemExit(f"ingest failed ({code}):\n{log.read_text()[-3000:]}")
    reports = [json.loads(output.read_text()) for output in outputs]
    consumed = sum(r["consumed"] for r in reports)
    accepted = sum(r["accepted"] for r in reports)
    published = sum(r["published_events"] for r in reports)
    with LedgerService(store_url) as service:
        stored = sum(service.size(trial_id) for trial_id in trials)
    # Every submission recorded once (one record each, after each trial's opening records),
    # and every record of the store published once.
    assert consumed == accepted == len(lines), (consumed, accepted, len(lines))
    opening = stored - len(lines)
    assert opening >= len(trials), (stored, len(lines))
    assert published == stored, (published, stored)
    return {"processes": processes, "seconds": elapsed, "per_s": len(lines) / elapsed,
            "ingest_cpu_s": cpu, "machine_busy": busy / total if total else math.nan,
            "consumed_by_process": [r["consumed"] for r in reports]}


def _machine_cpu() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine so far (Linux /proc/stat; zeros elsewhere):
    everything else running here (the broker, the server) competes with ingest."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials = submission partitions")
    parser.add_argument("--per-trial", type=int, default=5000)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--kafka-config", default=None, help="client properties (admin rights)")
    parser.add_argument("--postgres-dir", type=Path, default=None,
                        help="data directory of a local server (deploy.postgres) to use")
    args = parser.parse_args(argv)
    trials = trial_ids(args.trials)
    lines = workload(trials, args.per_trial)
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
        work = Path(tmp)
        cluster = None
        if args.bootstrap or args.kafka_config:
            settings = resolve_settings(args.bootstrap, args.kafka_config)
            client_env = {name: value for name, value in (
                ("LEDGER_BOOTSTRAP", args.bootstrap), ("LEDGER_KAFKA_CONFIG", args.kafka_config))
                if value}
        else:
            from deploy import broker

            cluster = broker.start(work / "kafka", nodes=1)
            settings = load_client_properties(cluster.client_config("admin"))
            client_env = {"LEDGER_KAFKA_CONFIG": str(cluster.client_config("admin"))}
        try:
            with postgres_server(args.postgres_dir) as postgres_dir:
                topic = f"bench-sub-{uuid.uuid4().hex[:8]}"
                ensure_topics(settings, [topic], partitions=args.trials)
                with SubmissionPublisher(settings, topic) as publisher:
                    report = publisher.publish(enumerate(lines, start=1))
                assert report.ok and report.published == len(lines), report.invalid[:3]
                setup = Setup(trials, lines, topic, client_env, postgres_dir, args.max_batch, work)
                figures = [run(setup, processes) for processes in (1, 2)]
        finally:
            if cluster is not None:
                cluster.stop()
    one, two = figures
    print(f"submissions:            {len(lines):>10d} ({len(trials)} trials on "
          f"{len(trials)} partitions, PostgreSQL store; {os.cpu_count()} CPUs shared with the "
          f"broker and the server)")
    for figure in figures:
        print(f"ingest x{figure['processes']}:              {figure['per_s']:>10.0f} msg/s "
              f"({figure['seconds']:.2f} s whole processes; {figure['ingest_cpu_s']:.2f} s "
              f"of ingest CPU; machine {figure['machine_busy']:.0%} busy; consumed per "
              f"process {figure['consumed_by_process']})")
    print(f"2 processes / 1:        {two['per_s'] / one['per_s']:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
