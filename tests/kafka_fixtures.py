"""pytest plugin: real Apache Kafka brokers for ``@pytest.mark.kafka`` tests.

Enable with ``pytest_plugins = ["tests.kafka_fixtures"]`` in ``tests/conftest.py`` (or
``-p tests.kafka_fixtures``).

* ``kafka_broker`` (session): a 1-node KRaft broker started by ``deploy.broker`` in a temporary
  directory and stopped at the end of the session, secured as ``ledger broker start`` secures it
  (SASL/SCRAM, ACLs, principals admin / ledger / auditor / edc-site-01: ``consumers.security``).
  ``client(broker, principal)`` gives a principal's settings, ``client_file`` its properties file.
  With ``LEDGER_TEST_BOOTSTRAP=host:port`` set, that external broker is used instead (an
  ``ExternalBroker``); ``LEDGER_TEST_KAFKA_CLIENTS=DIR`` names its ``PRINCIPAL.properties`` files
  (without it, clients connect anonymously).
* ``kafka_cluster3`` (function, backed by one module-scoped 3-node cluster): replication factor 3
  and min ISR 2 by default; every test gets all three nodes running, so a test may kill nodes
  (``kill_node``) without restoring them. Skipped when ``LEDGER_TEST_BOOTSTRAP`` is set.

When a test using either fixture fails, its report gets a section with the broker log paths and
their last lines.
"""

from __future__ import annotations

import gc
import logging
import os
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumers._kafka import KafkaSettings, kafka, load_client_properties
from consumers.security import provision
from deploy import broker

# kafka-python's import-time DeprecationWarning would be an error under filterwarnings=error in
# any test module importing kafka directly; import it first, the one way (consumers._kafka).
kafka()


class _RenderEagerly(logging.Filter):
    """Format a kafka-python log record at once, so it holds no exception or traceback.

    pytest keeps a test's log records until its teardown ends; kafka-python logs connection
    failures with the exception as an argument, whose traceback pins the socket it leaked (see
    ``kafka_cluster3``), so the ResourceWarning would surface in a later test or at exit.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args or record.exc_info:
            record.msg, record.args = record.getMessage(), None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
        return True


_render_eagerly = _RenderEagerly()
for _name in ["kafka", *logging.Logger.manager.loggerDict]:
    if _name == "kafka" or _name.startswith("kafka."):
        logging.getLogger(_name).addFilter(_render_eagerly)

BOOTSTRAP_ENV = "LEDGER_TEST_BOOTSTRAP"
CLIENTS_ENV = "LEDGER_TEST_KAFKA_CLIENTS"


@dataclass(frozen=True)
class ExternalBroker:
    """A broker not managed by the tests (``LEDGER_TEST_BOOTSTRAP``)."""

    bootstrap: str
    clients: Path | None = None


def client_file(cluster: broker.BrokerCluster | ExternalBroker, principal: str = "admin") -> Path:
    """The client properties file of ``principal`` on ``cluster``."""
    if isinstance(cluster, ExternalBroker):
        if cluster.clients is None:
            pytest.skip(f"{CLIENTS_ENV} is not set: no client files for the external broker")
        return cluster.clients / f"{principal}.properties"
    return cluster.client_config(principal)


def client(
    cluster: broker.BrokerCluster | ExternalBroker, principal: str = "admin"
) -> KafkaSettings:
    """``principal``'s settings on ``cluster`` (anonymous on an external broker without files)."""
    if isinstance(cluster, ExternalBroker) and cluster.clients is None:
        return KafkaSettings(cluster.bootstrap)
    return load_client_properties(client_file(cluster, principal)).with_bootstrap(
        cluster.bootstrap)


def _start_or_fail(data_dir: Path, nodes: int) -> broker.BrokerCluster:
    try:
        cluster = broker.start(data_dir, nodes=nodes)
        provision(cluster.data_dir)
    except broker.BrokerError as exc:
        logs = ", ".join(str(p) for p in sorted(data_dir.glob("node-*.log")))
        pytest.fail(f"could not start a {nodes}-node Kafka broker (logs: {logs}):\n{exc}")
    return cluster


def _stop(cluster: broker.BrokerCluster) -> None:
    try:
        cluster.stop()
    except broker.BrokerError as exc:  # pragma: no cover - teardown must not mask results
        warnings.warn(f"stopping Kafka in {cluster.data_dir}: {exc}", stacklevel=1)


@pytest.fixture(scope="session")
def kafka_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[broker.BrokerCluster | ExternalBroker]:
    """A running single-node Kafka broker for the whole session (or ``LEDGER_TEST_BOOTSTRAP``)."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        clients = os.environ.get(CLIENTS_ENV)
        yield ExternalBroker(external, Path(clients) if clients else None)
        return
    cluster = _start_or_fail(tmp_path_factory.mktemp("kafka1"), 1)
    try:
        yield cluster
    finally:
        _stop(cluster)


@pytest.fixture(scope="module")
def _kafka_cluster3_module(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[broker.BrokerCluster]:
    """One 3-node cluster per test module."""
    if os.environ.get(BOOTSTRAP_ENV):
        pytest.skip(f"{BOOTSTRAP_ENV} is set: no local 3-node cluster to kill nodes of")
    cluster = _start_or_fail(tmp_path_factory.mktemp("kafka3"), 3)
    try:
        yield cluster
    finally:
        _stop(cluster)


@pytest.fixture
def kafka_cluster3(
    _kafka_cluster3_module: broker.BrokerCluster,
) -> Iterator[broker.BrokerCluster]:
    """The module's 3-node cluster with every node running (nodes killed earlier restarted).

    kafka-python 3.0.12 does not close a socket whose connect() fails (kafka/net/inet.py
    ``sock_connect``), which happens to every client while a node is down; with
    filterwarnings=error its ResourceWarning would fail whichever test the garbage collector
    happens to run in. For the tests using this fixture (they kill nodes) that one warning is
    ignored, and the leaked sockets are collected before the test ends.
    """
    warnings.filterwarnings("ignore", message="unclosed <socket", category=ResourceWarning)
    yield _start_or_fail(_kafka_cluster3_module.data_dir, 3)
    gc.collect()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the broker log paths and tails to the report of a failed Kafka test."""
    report: pytest.TestReport = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in ("kafka_broker", "kafka_cluster3", "_kafka_cluster3_module"):
            cluster = funcargs.get(name)
            if isinstance(cluster, broker.BrokerCluster):
                for node in cluster.nodes:
                    report.sections.append(
                        (
                            f"Kafka node {node.node_id} log {node.log_path}",
                            broker.log_tail(node.log_path, 30),
                        )
                    )
                break
    return report
