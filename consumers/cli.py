"""Handlers behind `ledger publish`, `ledger ingest` and `ledger broker` (contract §5, §7).

Every Kafka command connects as the principal of a client properties file: `--kafka-config FILE`
(env `LEDGER_KAFKA_CONFIG`), whose address `--bootstrap` (env `LEDGER_BOOTSTRAP`) overrides; a
bare `--bootstrap` is an anonymous client, which the broker of `ledger broker start` refuses.

Each returns `(exit_code, text, json_document)`; the `ledger` command prints `text` (or the document
with `--json`). Bad input and an unreachable broker raise `KafkaCommandError` (a `ValueError`) with
a one-line reason, which the `ledger` command reports with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from consumers._kafka import (
    KAFKA_CONFIG_ENV,
    KafkaConfigError,
    KafkaSettings,
    kafka_errors,
    resolve_settings,
)
from consumers.ingest import DEFAULT_GROUP, DEFAULT_MAX_BATCH, IngestSettings, run_ingest
from consumers.outbox import UntrustedTopicError
from consumers.publisher import publish_file
from consumers.security import DEMO_SITE, ProvisioningError, add_site, provision
from consumers.topics import LEDGER_TOPIC, REJECTIONS_TOPIC, SUBMISSIONS_TOPIC
from ledger.application import LedgerService
from ledger.audit.checkpoints import Signer
from ledger.cli_plumbing import one_line, output_path

Result = tuple[int, str, dict[str, Any]]


class KafkaCommandError(ValueError):
    """A Kafka command could not run: no bootstrap, broker unreachable, broker failed to start."""


def connection(bootstrap: str | None, kafka_config: Path | str | None = None) -> KafkaSettings:
    """The settings a Kafka command connects with (`--kafka-config`, env, `--bootstrap`)."""
    try:
        return resolve_settings(bootstrap, kafka_config)
    except KafkaConfigError as error:
        raise KafkaCommandError(str(error)) from None


def cmd_publish(
    path: Path, bootstrap: str | None, topic: str | None = None,
    kafka_config: Path | str | None = None,
) -> Result:
    """Validate FILE.jsonl and publish its valid lines; exit 1 when some lines were refused.

    The topic is `topic`, else the site's own topic named in its properties file, else the
    shared `trial.submissions`."""
    settings = connection(bootstrap, kafka_config)
    with _kafka_failures("publish"):
        report = publish_file(Path(path), settings, topic)
    lines = [f"published {report.published} submissions to {report.topic}"
             f"{f', refused {len(report.invalid)} lines' if report.invalid else ''}"]
    lines += [f"  line {bad.line}: {bad.reason_code}: {bad.message}" for bad in report.invalid]
    return (0 if report.ok else 1), "\n".join(lines), report.to_json_dict()


def cmd_ingest(
    store: str, server: KafkaSettings, settings: IngestSettings, signer: Signer | None = None
) -> Result:
    """Consume, record and republish; SIGTERM or Ctrl-C stops cleanly after the current batch.

    Reads `settings.submissions_topic` and every site topic `<submissions_topic>.<SITE>`."""
    stop = threading.Event()
    with (
        _as_a_service(stop),
        _kafka_failures("ingest"),
        LedgerService(store, signer=signer) as service,
    ):
        service.check_signing_key()  # before joining the group or creating topics
        report = run_ingest(service, server, settings, stop=stop)
    text = (
        f"consumed {report.consumed} submissions from {settings.submissions_topic}[.SITE]: "
        f"{report.accepted} accepted, {report.duplicates} duplicates, {report.rejected} rejected\n"
        f"published {report.published_events} records to {settings.ledger_topic} and "
        f"{report.published_rejections} rejections to {settings.rejections_topic}\n"
        f"store: {report.store_events} records, {report.store_rejections} rejections"
    )
    return 0, text, report.to_json_dict()


def cmd_broker_start(
    data_dir: Path | None, nodes: int | None = None, tls: bool = False
) -> Result:
    """Start (or find running) a local secure broker (SASL/SCRAM, ACLs; contract §7), set up its
    principals, topics and ACLs; the text's last line is the bootstrap address."""
    from deploy import broker

    directory = Path(data_dir) if data_dir is not None else broker.default_data_dir()
    if nodes is None:  # a recorded cluster restarts as it was
        recorded = broker.load(directory)
        nodes = len(recorded.nodes) if recorded is not None else 1
    if nodes not in (1, 3):
        raise KafkaCommandError(f"--nodes must be 1 or 3, not {nodes}")
    try:
        cluster = broker.start(directory, nodes=nodes, tls=tls or None)
        files = provision(cluster.data_dir, sites=(DEMO_SITE,))
    except (broker.BrokerError, ProvisioningError, KafkaConfigError) as error:
        raise KafkaCommandError(one_line(error)) from None
    secured = (f"SASL/SCRAM-SHA-512 over TLS (CA {cluster.ca_file})" if cluster.tls
               else "SASL/SCRAM-SHA-512")
    lines = [f"Kafka {broker.kafka_version()}, {len(cluster.nodes)} node(s), {secured} "
             f"and ACLs, data in {cluster.data_dir}"]
    lines += [f"  {name}: {path}" for name, path in files.items()]
    lines.append(f"(use a file with --kafka-config FILE or {KAFKA_CONFIG_ENV}=FILE)")
    lines.append(cluster.bootstrap)
    document = {**broker.status(directory), "clients": {k: str(v) for k, v in files.items()}}
    return 0, "\n".join(lines), document


def cmd_broker_add_site(data_dir: Path | None, site: str | None) -> Result:
    """Add a site principal (SCRAM user), its topic `trial.submissions.SITE` and its ACL; the
    text's last line is its client properties file."""
    from deploy import broker

    if not site:
        raise KafkaCommandError("broker add-site needs the SITE name (its submissions' source)")
    directory = Path(data_dir) if data_dir is not None else broker.default_data_dir()
    try:
        path = add_site(directory, site)
    except (broker.BrokerError, ProvisioningError, KafkaConfigError) as error:
        raise KafkaCommandError(one_line(error)) from None
    text = (f"site {site} may write {broker.read_properties(path)['ledger.submissions.topic']} "
            f"and nothing else\n{path}")
    return 0, text, {"site": site, "kafka_config": str(path)}


def cmd_broker(args: argparse.Namespace) -> Result:
    """`ledger broker start|stop|add-site` from the options of `add_broker_arguments`."""
    if args.action == "start":
        return cmd_broker_start(args.data, args.nodes, args.tls)
    if args.action == "add-site":
        return cmd_broker_add_site(args.data, args.site)
    return cmd_broker_stop(args.data)


def cmd_broker_stop(data_dir: Path | None) -> Result:
    """Stop the broker started with that data directory (nothing to do if none runs there)."""
    from deploy import broker

    directory = Path(data_dir) if data_dir is not None else broker.default_data_dir()
    if broker.load(directory) is None:
        raise KafkaCommandError(f"no broker was started with data directory {directory}")
    try:
        broker.stop(directory)
    except broker.BrokerError as error:
        raise KafkaCommandError(one_line(error)) from None
    return 0, f"stopped the broker in {directory}", broker.status(directory)


@contextmanager
def _kafka_failures(command: str) -> Iterator[None]:
    try:
        yield
    except UntrustedTopicError as error:
        raise KafkaCommandError(f"{command}: {one_line(error)}") from None
    except kafka_errors().KafkaError as error:
        reason = one_line(error)
        if not reason.startswith(type(error).__name__):
            reason = f"{type(error).__name__}: {reason}"
        if "Unable to bootstrap" in reason:
            reason += (" (the broker is unreachable, or refused the connection: an anonymous "
                       "client or a wrong password; check --kafka-config)")
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


def add_kafka_config_argument(parser: argparse.ArgumentParser) -> None:
    """`--kafka-config FILE`, default env `LEDGER_KAFKA_CONFIG`."""
    parser.add_argument(
        # No default here: `resolve_settings` reads the environment, the one place that does.
        "--kafka-config", type=Path, default=None,
        metavar="FILE",
        help=f"Kafka client properties of the principal to connect as, e.g. "
             f"DATA/clients/ledger.properties from `ledger broker start` (env {KAFKA_CONFIG_ENV})",
    )


def add_bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    """`--kafka-config`, `--bootstrap` and `--submissions-topic` (every Kafka command)."""
    add_kafka_config_argument(parser)
    parser.add_argument("--bootstrap", default=None,
                        help="Kafka HOST:PORT[,...], overriding the --kafka-config file's "
                             "address (env LEDGER_BOOTSTRAP)")
    parser.add_argument("--submissions-topic", default=None,
                        help=f"publish: default the site's topic from its --kafka-config file, "
                             f"else {SUBMISSIONS_TOPIC}; ingest: reads it and every "
                             f"TOPIC.SITE (default {SUBMISSIONS_TOPIC})")


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ledger broker start|stop|add-site`."""
    parser.add_argument("action", choices=["start", "stop", "add-site"],
                        help="start or stop the local broker, or add a site principal")
    parser.add_argument("site", nargs="?", default=None,
                        help="add-site: the site's name, the `source` its submissions carry")
    parser.add_argument("--data", type=output_path,
                        help="broker data directory (env LEDGER_KAFKA_DATA)")
    parser.add_argument("--nodes", type=int, choices=[1, 3], default=None,
                        help="start: one node, or three (replication factor 3); default: as the "
                             "data directory's broker was started, else one")
    parser.add_argument("--tls", action="store_true",
                        help="start: clients connect with SASL_SSL, verified against a local CA "
                             "(DATA/tls/ca.crt, named in every client file); a data directory "
                             "keeps the mode it was first started with")


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ledger ingest` beyond the bootstrap and the store."""
    parser.add_argument("--until-idle", action="store_true",
                        help="stop once every assigned partition is consumed and published")
    parser.add_argument("--ledger-topic", default=LEDGER_TOPIC,
                        help=f"where recorded events are published (default {LEDGER_TOPIC})")
    parser.add_argument("--rejections-topic", default=REJECTIONS_TOPIC,
                        help=f"where rejections are published (default {REJECTIONS_TOPIC})")
    parser.add_argument("--group-id", default=DEFAULT_GROUP,
                        help=f"consumer group (default {DEFAULT_GROUP}; the ACLs allow only it)")
    parser.add_argument("--group-instance-id", default=None,
                        help="static group membership: a restarted process takes over at once")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help="most submissions recorded in one store transaction (default "
                             f"{DEFAULT_MAX_BATCH})")


def ingest_settings(args: argparse.Namespace) -> IngestSettings:
    """The settings of one `ledger ingest` run from its options (`add_ingest_arguments`)."""
    try:
        return IngestSettings(
            submissions_topic=args.submissions_topic or SUBMISSIONS_TOPIC,
            ledger_topic=args.ledger_topic,
            rejections_topic=args.rejections_topic,
            group_id=args.group_id,
            group_instance_id=args.group_instance_id,
            max_batch=args.max_batch,
            until_idle=args.until_idle,
        )
    except ValueError as error:
        raise KafkaCommandError(f"ingest: {error}") from None
