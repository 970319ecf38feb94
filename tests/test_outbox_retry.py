"""The outbox's retry policy without a broker: which failures restart the producer and try the
round again, which end it at once, and what stopping does (stamina runs the retries)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina

from consumers._kafka import kafka_errors
from consumers.outbox import PUBLISH_ATTEMPTS, LedgerOutbox
from ledger.application import LedgerService


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[LedgerOutbox]:
    stamina.set_testing(True, attempts=PUBLISH_ATTEMPTS)  # no waits, the real attempt count
    try:
        with LedgerService(str(tmp_path / "ledger.db")) as service:
            service.ensure_trial()
            yield LedgerOutbox(service, "127.0.0.1:1")  # never dialled: start is replaced
    finally:
        stamina.set_testing(False)


class Script:
    """Stands in for `start`: raises the scripted errors in turn, then succeeds."""

    def __init__(self, outbox: LedgerOutbox, errors: list[BaseException]) -> None:
        self.errors = errors
        self.starts = 0
        self.discarded = 0
        outbox.start = self.start  # type: ignore[method-assign]
        outbox._send_all = lambda: None  # type: ignore[method-assign]
        real_discard = outbox._discard_producer

        def discard() -> None:
            self.discarded += 1
            real_discard()

        outbox._discard_producer = discard  # type: ignore[method-assign]

    def start(self) -> None:
        self.starts += 1
        if self.errors:
            raise self.errors.pop(0)


def test_a_passing_failure_restarts_the_producer_and_tries_again(outbox: LedgerOutbox) -> None:
    errors = kafka_errors()
    script = Script(outbox, [errors.KafkaConnectionError("gone"), TimeoutError("slow")])
    assert outbox.publish_pending() == 0
    assert (script.starts, script.discarded) == (3, 2)


def test_a_failure_that_lasts_is_raised_after_the_last_attempt(outbox: LedgerOutbox) -> None:
    errors = kafka_errors()
    script = Script(outbox, [errors.KafkaConnectionError(f"gone {n}")
                             for n in range(PUBLISH_ATTEMPTS + 1)])
    with pytest.raises(errors.KafkaConnectionError, match=f"gone {PUBLISH_ATTEMPTS - 1}"):
        outbox.publish_pending()
    assert script.starts == PUBLISH_ATTEMPTS


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        pytest.param("ProducerFencedError", "ProducerFencedError", id="fenced"),
        pytest.param("InvalidProducerEpochError", "InvalidProducerEpochError",
                     id="fenced mid-transaction"),
        pytest.param("TopicAuthorizationFailedError", "TopicAuthorizationFailedError",
                     id="not authorized"),
        pytest.param("wrapped fence", "ProducerFencedError", id="fence wrapped by kafka-python"),
    ],
)
def test_a_final_failure_is_not_retried(outbox: LedgerOutbox, raised: str, expected: str) -> None:
    """Fenced means a newer publisher owns the topics (retrying would fence it back); a refused
    authorization is refused again. The real cause is raised, not kafka-python's wrapper."""
    errors = kafka_errors()
    if raised == "wrapped fence":
        error: BaseException = errors.KafkaError("previous request failed",
                                                 errors.ProducerFencedError())
    else:
        error = getattr(errors, raised)()
    script = Script(outbox, [error])
    with pytest.raises(getattr(errors, expected)):
        outbox.publish_pending()
    assert script.starts == 1


def test_a_failure_while_stopping_ends_the_round_quietly(tmp_path: Path) -> None:
    """Asked to stop, a failed round is not retried nor raised: the next start resumes."""
    import threading

    stop = threading.Event()
    stop.set()
    with LedgerService(str(tmp_path / "ledger.db")) as service:
        service.ensure_trial()
        outbox = LedgerOutbox(service, "127.0.0.1:1", stop=stop)
        script = Script(outbox, [kafka_errors().KafkaConnectionError("gone")])
        assert outbox.publish_pending() == 0
    assert script.starts == 1


@pytest.mark.parametrize("fence", ["ProducerFencedError", "InvalidProducerEpochError"])
def test_a_fenced_partition_is_closed_and_the_others_go_on(
    outbox: LedgerOutbox, fence: str
) -> None:
    """Scale-out: the outbox of a partition another process now owns is fenced; it is closed
    and the process's other partitions go on publishing. (The handler named the two errors as
    an `X | Y` union, which `except` refuses: every publishing error, fenced or not, became a
    TypeError that stopped ingest.)"""
    from consumers.ownership import PartitionOutboxes

    service = outbox._service
    healthy = LedgerOutbox(service, "127.0.0.1:1")
    fenced_script = Script(outbox, [getattr(kafka_errors(), fence)()])
    healthy_script = Script(healthy, [])
    outboxes = PartitionOutboxes(service, "127.0.0.1:1", ledger_topic="trial.ledger",
                                 rejections_topic="trial.rejections")
    outboxes._outboxes = {0: outbox, 1: healthy}
    assert outboxes.publish_pending() == 0
    assert outboxes.owned == [1]
    assert (fenced_script.starts, healthy_script.starts) == (1, 1)
    assert outboxes.publish_pending() == 0
    assert fenced_script.starts == 1  # not started again: it would fence the rightful owner
    assert healthy_script.starts == 2


def test_an_unfenced_failure_of_a_partition_is_raised_as_itself(outbox: LedgerOutbox) -> None:
    """Any other final failure (here a refused authorization) stops the round as itself, with
    its own one-line reason, not as a TypeError."""
    from consumers.ownership import PartitionOutboxes

    errors = kafka_errors()
    Script(outbox, [errors.TopicAuthorizationFailedError()])
    outboxes = PartitionOutboxes(outbox._service, "127.0.0.1:1", ledger_topic="trial.ledger",
                                 rejections_topic="trial.rejections")
    outboxes._outboxes = {0: outbox}
    with pytest.raises(errors.TopicAuthorizationFailedError):
        outboxes.publish_pending()
