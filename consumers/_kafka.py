"""The one place `kafka` is imported: lazily, inside functions, so importing `consumers` is free.

kafka-python 3.0.x calls the deprecated `importlib.resources.read_text` while importing; that
warning is silenced here (and only here) so warnings-as-errors test runs can import it.

Every client is built from `client_settings`, which carries the settings failover needs and the
principal's credentials from its client properties file (`load_client_properties`, contract §7).
"""

from __future__ import annotations

import os
import warnings
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: The client properties file every Kafka command reads when `--kafka-config` is not given.
KAFKA_CONFIG_ENV = "LEDGER_KAFKA_CONFIG"
BOOTSTRAP_ENV = "LEDGER_BOOTSTRAP"
#: The extra key of a site's properties file naming the topic it writes its submissions to.
SUBMISSIONS_TOPIC_KEY = "ledger.submissions.topic"
_SECURITY_PROTOCOLS = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
_SASL_MECHANISMS = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}


class KafkaConfigError(ValueError):
    """A client properties file is missing, unreadable or incomplete (one-line reason)."""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where a Kafka client connects and as whom: one principal's client properties."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    submissions_topic: str | None = None
    """`ledger.submissions.topic` of a site's file: the topic that site may write."""
    source: str | None = None
    """The file these settings came from, for messages."""

    def with_bootstrap(self, bootstrap: str | None) -> KafkaSettings:
        """The same principal at another address (`--bootstrap` overrides the file's)."""
        return self if not bootstrap else replace(self, bootstrap=bootstrap)

    def describe(self) -> str:
        who = self.username or "anonymous"
        return f"{self.bootstrap} as {who} ({self.security_protocol})"


#: What a Kafka function accepts: a principal's settings, or a bare bootstrap (anonymous).
Connection = KafkaSettings | str


def as_settings(connection: Connection) -> KafkaSettings:
    return connection if isinstance(connection, KafkaSettings) else KafkaSettings(connection)


def load_client_properties(path: Path | str) -> KafkaSettings:
    """A principal's settings from a Kafka client `.properties` file (contract §7).

    Reads `bootstrap.servers`, `security.protocol`, `sasl.mechanism`, `sasl.username`,
    `sasl.password`, `ssl.ca.location` and `ledger.submissions.topic`; other keys are ignored.
    """
    from deploy.broker import read_properties

    file = Path(path).expanduser()
    try:
        values = read_properties(file)
    except OSError as error:
        raise KafkaConfigError(f"Kafka config {file}: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise KafkaConfigError(f"Kafka config {file}: {error}") from None
    bootstrap = values.get("bootstrap.servers", "")
    protocol = values.get("security.protocol", "PLAINTEXT").upper()
    mechanism = values.get("sasl.mechanism", "").upper() or None
    if protocol not in _SECURITY_PROTOCOLS:
        raise KafkaConfigError(f"Kafka config {file}: unknown security.protocol {protocol!r}")
    sasl = protocol.startswith("SASL_")
    if sasl and mechanism not in _SASL_MECHANISMS:
        raise KafkaConfigError(f"Kafka config {file}: sasl.mechanism must be one of "
                               f"{', '.join(sorted(_SASL_MECHANISMS))}")
    ca_file = values.get("ssl.ca.location") or None
    if ca_file is not None and not Path(ca_file).expanduser().is_file():
        # Else the client waits out its timeout and reports a failed login.
        raise KafkaConfigError(f"Kafka config {file}: ssl.ca.location {ca_file} is not a file")
    username, password = values.get("sasl.username"), values.get("sasl.password")
    if sasl and not (username and password):
        raise KafkaConfigError(f"Kafka config {file}: sasl.username and sasl.password are needed "
                               f"for {protocol}")
    return KafkaSettings(
        bootstrap=bootstrap,
        security_protocol=protocol,
        sasl_mechanism=mechanism if sasl else None,
        username=username if sasl else None,
        password=password if sasl else None,
        ssl_cafile=ca_file,
        submissions_topic=values.get(SUBMISSIONS_TOPIC_KEY) or None,
        source=str(file),
    )


def resolve_settings(bootstrap: str | None, kafka_config: Path | str | None) -> KafkaSettings:
    """What a Kafka command connects with: `--kafka-config` (or env `LEDGER_KAFKA_CONFIG`), its
    address overridden by `--bootstrap`; a bare `--bootstrap` alone is an anonymous client."""
    # The environment is read here and nowhere else in consumers/: the options default to None.
    config = kafka_config or os.environ.get(KAFKA_CONFIG_ENV) or None
    bootstrap = bootstrap or os.environ.get(BOOTSTRAP_ENV) or None
    if config:
        settings = load_client_properties(config).with_bootstrap(bootstrap)
    elif bootstrap:
        settings = KafkaSettings(bootstrap)
    else:
        raise KafkaConfigError(
            "no Kafka connection: give --kafka-config FILE (env LEDGER_KAFKA_CONFIG) or "
            f"--bootstrap HOST:PORT (env {BOOTSTRAP_ENV})"
        )
    if not settings.bootstrap:
        raise KafkaConfigError(f"Kafka config {settings.source}: no bootstrap.servers "
                               f"(give --bootstrap HOST:PORT)")
    return settings


def kafka() -> Any:
    """The `kafka` package, imported on first use."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"(read|open)_text is deprecated", category=DeprecationWarning
        )
        import kafka as module
    return module


#: kafka-python 3.0.x does not refresh metadata when a partition leader's connection drops (the
#: Java client does): a producer kept sending to a killed broker until the 5-minute metadata max age
#: ran out, and a transaction waited on it. Refreshing every few seconds bounds that to seconds.
METADATA_MAX_AGE_MS = 3000


def client_settings(connection: Connection, client_id: str) -> dict[str, Any]:
    """The settings every producer, consumer and admin client of the ledger starts from."""
    settings = as_settings(connection)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": client_id,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism is not None:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.username
        config["sasl_plain_password"] = settings.password
    if settings.ssl_cafile is not None:
        config["ssl_cafile"] = settings.ssl_cafile
    return config


def producer_settings(connection: Connection, client_id: str) -> dict[str, Any]:
    """The settings every producer of the ledger starts from: idempotent, `acks=all`, and the
    partitioner that hashes each key once (`key_hashing_partitioner`)."""
    return {
        **client_settings(connection, client_id),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "partitioner": key_hashing_partitioner(),
    }


def key_hashing_partitioner() -> Any:
    """kafka-python's default partitioner (the Java client's murmur2 of the key, modulo the
    partition count; a keyless record to a random available partition), remembering each key's
    hash: every record of a trial goes out under its trial id, and kafka-python's pure-Python
    murmur2 of that same key on every send was ~4 % of ingest (issue 8)."""
    from kafka.partitioner.default import DefaultPartitioner, murmur2

    hashes: dict[bytes, int] = {}

    class KeyHashingPartitioner(DefaultPartitioner):  # type: ignore[misc]
        def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
                      serialized_value: Any, cluster: Any) -> int:
            partitions = cluster.partitions_for_topic(topic)
            if serialized_key is None or not partitions:  # the default's own cases and errors
                return int(super().partition(topic, key, serialized_key, value,
                                             serialized_value, cluster))
            hashed = hashes.get(serialized_key)
            if hashed is None:
                if len(hashes) >= _MAX_REMEMBERED_KEYS:
                    hashes.clear()
                hashed = hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
            return int(sorted(partitions)[hashed % len(partitions)])

    kafka()  # the package's own import, with its warnings filtered
    return KeyHashingPartitioner()


#: Keys are trial ids: a handful per store. The bound only keeps a stray key stream from growing
#: the memory.
_MAX_REMEMBERED_KEYS = 10_000


def kafka_errors() -> Any:
    """`kafka.errors` (exception classes), imported on first use."""
    kafka()
    from kafka import errors

    return errors


def final_error(error: BaseException) -> BaseException | None:
    """The error a restart must not retry, if `error` is or wraps one: fenced means a newer
    publisher took over (retrying would fence it in turn), and a refused authorization will be
    refused again.

    kafka-python 3.0.12 may report the fencing of an earlier request as a generic KafkaError
    ("Cannot perform send because at least one previous transactional or idempotent request has
    failed", ProducerFencedError()) when the send comes after it: its arguments are looked into.
    """
    errors = kafka_errors()
    # A send fenced mid-transaction fails with the broker's InvalidProducerEpochError instead.
    final = (errors.ProducerFencedError | errors.InvalidProducerEpochError
             | errors.AuthorizationError)
    causes = [error, error.__cause__, *(a for a in error.args if isinstance(a, BaseException))]
    return next((cause for cause in causes if isinstance(cause, final)), None)


def commit_transaction(producer: Any, timeout_s: float) -> None:
    """`producer.commit_transaction()`, bounded: KafkaTimeoutError after `timeout_s` seconds.

    kafka-python 3.0.12 waits for the commit without a bound (the Java client bounds it by
    max.block.ms), and when the transaction coordinator dies mid-commit its sender drops the
    EndTxn request, so that wait never ends. This is the same call on the same internals, with a
    bound. After a timeout the outcome is unknown: the next producer with the same transactional id
    completes or aborts it, and the topic's tail says which.
    """
    manager = producer._transaction_manager
    result = manager.begin_commit()
    producer._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):
        raise kafka_errors().KafkaTimeoutError(f"commit not acknowledged within {timeout_s} s")


def discard_producer(producer: Any, timeout_s: float = 5.0) -> None:
    """Close `producer` now, dropping what it has not sent (the broker aborts its transaction).

    kafka-python 3.0.12's `close(timeout=0)` flushes first and raises when that flush times out,
    before it stops the sender: the network thread lived on, holding the transactional id.
    """
    sender = producer._sender
    if sender is not None:
        sender.force_close()
        sender.join(timeout_s)
    with suppress(kafka_errors().KafkaError):
        producer.close(timeout=0)
