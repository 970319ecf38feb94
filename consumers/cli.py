"""Handlers behind `ledger publish`, `ledger ingest` and `ledger broker` (contract §5).

Each returns `(exit_code, text, json_document)`; the `ledger` command prints `text` (or the document
with `--json`). Bad input and an unreachable broker raise `KafkaCommandError` (a `ValueError`) with
a one-line reason, which the `ledger` command reports with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from consumers._kafka import kafka_errors
from consumers.ingest import DEFAULT_GROUP, run_ingest
from consumers.publisher import publish_file
from consumers.topics import LEDGER_TOPIC, REJECTIONS_TOPIC, SUBMISSIONS_TOPIC
from ledger.application import LedgerService

Result = tuple[int, str, dict[str, Any]]


class KafkaCommandError(ValueError):
    """A Kafka command could not run: no bootstrap, broker unreachable, broker failed to start."""


def cmd_publish(path: Path, bootstrap: str | None, topic: str = SUBMISSIONS_TOPIC) -> Result:
    """Validate FILE.jsonl and publish its valid lines; exit 1 when some lines were refused."""
    with _kafka_failures("publish"):
        report = publish_file(Path(path), _required(bootstrap), topic)
    lines = [f"published {report.published} submissions to {topic}"
             f"{f', refused {len(report.invalid)} lines' if report.invalid else ''}"]
    lines += [f"  line {bad.line}: {bad.reason_code}: {bad.message}" for bad in report.invalid]
    return (0 if report.ok else 1), "\n".join(lines), report.to_json_dict()


def cmd_ingest(
    store: str,
    bootstrap: str | None,
    until_idle: bool,
    *,
    submissions_topic: str = SUBMISSIONS_TOPIC,
    ledger_topic: str = LEDGER_TOPIC,
    rejections_topic: str = REJECTIONS_TOPIC,
    group_id: str = DEFAULT_GROUP,
    group_instance_id: str | None = None,
    max_batch: int = 500,
) -> Result:
    """Consume, record and republish; SIGTERM or Ctrl-C stops cleanly after the current batch."""
    server = _required(bootstrap)
    stop = threading.Event()
    with _as_a_service(stop), _kafka_failures("ingest"), LedgerService(store) as service:
        report = run_ingest(
            service, server, until_idle=until_idle, submissions_topic=submissions_topic,
            ledger_topic=ledger_topic, rejections_topic=rejections_topic, group_id=group_id,
            group_instance_id=group_instance_id, max_batch=max_batch, stop=stop,
        )
    text = (
        f"consumed {report.consumed} submissions from {submissions_topic}: "
        f"{report.accepted} accepted, {report.duplicates} duplicates, {report.rejected} rejected\n"
        f"published {report.published_events} records to {ledger_topic} and "
        f"{report.published_rejections} rejections to {rejections_topic}\n"
        f"store: {report.store_events} records, {report.store_rejections} rejections"
    )
    return 0, text, report.to_json_dict()


def cmd_broker_start(data_dir: Path | None, nodes: int = 1) -> Result:
    """Start (or find running) a local broker; the text's last line is the bootstrap address."""
    from deploy import broker

    if nodes not in (1, 3):
        raise KafkaCommandError(f"--nodes must be 1 or 3, not {nodes}")
    directory = Path(data_dir) if data_dir is not None else broker.default_data_dir()
    try:
        cluster = broker.start(directory, nodes=nodes)
    except broker.BrokerError as error:
        raise KafkaCommandError(_one_line(error)) from None
    text = (f"Kafka {broker.kafka_version()}, {len(cluster.nodes)} node(s), data in "
            f"{cluster.data_dir}\n{cluster.bootstrap}")
    return 0, text, broker.status(directory)


def cmd_broker_stop(data_dir: Path | None) -> Result:
    """Stop the broker started with that data directory (nothing to do if none runs there)."""
    from deploy import broker

    directory = Path(data_dir) if data_dir is not None else broker.default_data_dir()
    if broker.load(directory) is None:
        raise KafkaCommandError(f"no broker was started with data directory {directory}")
    try:
        broker.stop(directory)
    except broker.BrokerError as error:
        raise KafkaCommandError(_one_line(error)) from None
    return 0, f"stopped the broker in {directory}", broker.status(directory)


def _required(bootstrap: str | None) -> str:
    if not bootstrap:
        raise KafkaCommandError(
            "no Kafka bootstrap: give --bootstrap HOST:PORT or set LEDGER_BOOTSTRAP"
        )
    return bootstrap


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def _kafka_failures(command: str) -> Iterator[None]:
    try:
        yield
    except kafka_errors().KafkaError as error:
        reason = _one_line(error)
        if not reason.startswith(type(error).__name__):
            reason = f"{type(error).__name__}: {reason}"
        raise KafkaCommandError(f"{command}: Kafka: {reason}") from None


@contextmanager
def _as_a_service(stop: threading.Event) -> Iterator[None]:
    """SIGTERM / Ctrl-C set `stop`; progress is logged to stderr; SIGUSR1 dumps every thread's
    stack (`kill -USR1 PID` tells an operator where a stuck ingest waits)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _set(signum: int, _frame: object) -> None:
        logging.getLogger("trial_ledger.ingest").info("signal %d: stopping after the batch", signum)
        stop.set()

    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    previous = {sig: signal.signal(sig, _set) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        faulthandler.unregister(signal.SIGUSR1)


def add_bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BOOTSTRAP"),
                        help="Kafka HOST:PORT[,...] (env LEDGER_BOOTSTRAP)")
    parser.add_argument("--submissions-topic", default=SUBMISSIONS_TOPIC)


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ledger ingest` beyond the bootstrap and the store."""
    parser.add_argument("--until-idle", action="store_true",
                        help="stop once every assigned partition is consumed and published")
    parser.add_argument("--ledger-topic", default=LEDGER_TOPIC)
    parser.add_argument("--rejections-topic", default=REJECTIONS_TOPIC)
    parser.add_argument("--group-id", default=DEFAULT_GROUP)
    parser.add_argument("--group-instance-id", default=None,
                        help="static group membership: a restarted process takes over at once")
    parser.add_argument("--max-batch", type=int, default=500)
