"""The one place `kafka` is imported: lazily, inside functions, so importing `consumers` is free.

kafka-python 3.0.x calls the deprecated `importlib.resources.read_text` while importing; that
warning is silenced here (and only here) so warnings-as-errors test runs can import it.

Every client is built from `client_settings`, which carries the settings failover needs.
"""

from __future__ import annotations

import warnings
from contextlib import suppress
from typing import Any


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


def client_settings(bootstrap: str, client_id: str) -> dict[str, Any]:
    """The settings every producer, consumer and admin client of the ledger starts from."""
    return {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
    }


def kafka_errors() -> Any:
    """`kafka.errors` (exception classes), imported on first use."""
    kafka()
    from kafka import errors

    return errors


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
