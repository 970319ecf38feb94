"""`ledger publish` when no broker takes what it sends (a 3-node cluster with two nodes down):
it hung for ever with no output, in kafka-python's `close()` after its bounded flush had timed
out. It fails with the flush's error, closing without waiting again (an operator's probe)."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import consumers.publisher
from consumers._kafka import kafka_errors
from consumers.publisher import SEND_TIMEOUT_S, publish_file
from tests.builders import Script


class NoQuorumProducer:
    """kafka-python's producer as it behaves with no broker to take the sends: `flush` times
    out, and `close` without a timeout waits until the cluster comes back (here: never)."""

    def __init__(self, **_config: Any) -> None:
        self.closed_with: list[float | None] = []
        self.never = threading.Event()

    def send(self, *_args: Any, **_kwargs: Any) -> Any:
        return SimpleNamespace(get=lambda timeout: None)

    def flush(self, timeout: float | None = None) -> None:
        raise kafka_errors().KafkaTimeoutError(f"Timeout after waiting for {timeout} secs")

    def close(self, timeout: float | None = None) -> None:
        self.closed_with.append(timeout)
        if timeout is None:
            self.never.wait()


def test_publish_without_a_quorum_fails_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[NoQuorumProducer] = []

    def producer(**config: Any) -> NoQuorumProducer:
        made.append(NoQuorumProducer(**config))
        return made[-1]

    monkeypatch.setattr(consumers.publisher, "kafka",
                        lambda: SimpleNamespace(KafkaProducer=producer))
    script = Script()
    submissions = tmp_path / "s.jsonl"
    submissions.write_text(json.dumps(script.enroll("01-001", "A", date(2025, 1, 6))) + "\n")
    outcome: list[BaseException] = []

    def publish() -> None:
        try:
            publish_file(submissions, "127.0.0.1:1")
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=publish, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "publish hung in close()"
    assert [type(error).__name__ for error in outcome] == ["KafkaTimeoutError"]
    assert made[0].closed_with == [0]


def test_a_publisher_closed_after_its_sends_waits_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closed normally, the producer still gets a bound (kafka-python's default is none)."""
    made: list[NoQuorumProducer] = []
    monkeypatch.setattr(consumers.publisher, "kafka", lambda: SimpleNamespace(
        KafkaProducer=lambda **c: made.append(NoQuorumProducer(**c)) or made[-1]))
    with consumers.publisher.SubmissionPublisher("127.0.0.1:1"):
        pass
    assert made[0].closed_with == [SEND_TIMEOUT_S]
