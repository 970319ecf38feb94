"""What integrators run: validate submissions at the edge, then publish them to `trial.submissions`.

Each line is checked against the wire schema (contract §1–2), and on a site's own topic against
the site (§7), before anything is sent; a bad line is reported with its number and reason and never
reaches the topic. Good lines are sent unchanged
(the original bytes), keyed by `trial_id` so one trial's submissions stay in order on one partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers._kafka import Connection, as_settings, kafka, producer_settings
from consumers.topics import SUBMISSIONS_TOPIC, site_of_topic
from ledger.aggregates.rejections import SubmissionRejectedError
from ledger.recording import check_sender
from ledger.schemas.submissions import InvalidSubmissionError, parse_submission

SEND_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """A line refused before publishing, with what an integrator needs to fix it."""

    line: int
    event_id: str | None
    reason_code: str
    message: str

    def to_json_dict(self) -> dict[str, Any]:
        return {"line": self.line, "event_id": self.event_id, "reason_code": self.reason_code,
                "message": self.message}


@dataclass(slots=True)
class PublishReport:
    """How many submissions reached the topic and which lines were refused."""

    topic: str
    published: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.invalid

    def to_json_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "published": self.published,
                "invalid": [line.to_json_dict() for line in self.invalid]}


class SubmissionPublisher:
    """An idempotent, acks=all producer that only ever sends schema-valid envelopes."""

    def __init__(
        self, bootstrap: Connection, topic: str | None = None, **producer_config: Any
    ) -> None:
        # A site's properties file names the one topic it may write (contract §7), and the
        # site it authenticates as: the source its submissions must carry there, whatever the
        # deployment calls its submissions topic.
        settings = as_settings(bootstrap)
        self.topic = topic or settings.submissions_topic or SUBMISSIONS_TOPIC
        own_topic = self.topic == settings.submissions_topic
        self._site = settings.username if own_topic else site_of_topic(self.topic)
        config: dict[str, Any] = {
            **producer_settings(bootstrap, "trial-ledger-publisher"),
        }
        config.update(producer_config)
        self._producer = kafka().KafkaProducer(**config)

    def publish(self, lines: Iterable[tuple[int, bytes]]) -> PublishReport:
        """Validate and send numbered lines; returns once every sent one is acknowledged."""
        report = PublishReport(self.topic)
        futures = []
        # On a site's own topic the ledger takes only what names that site as its source
        # (contract §7): refused here too, with the line's number, rather than published to be
        # rejected.
        site = self._site
        for number, raw in lines:
            try:
                message = parse_submission(raw)
            except InvalidSubmissionError as error:
                report.invalid.append(
                    InvalidLine(number, error.event_id, error.reason_code.value, error.message)
                )
                continue
            try:
                check_sender(message.source, site)
            except SubmissionRejectedError as error:
                report.invalid.append(
                    InvalidLine(number, str(message.event_id), error.reason_code.value,
                                error.message)
                )
                continue
            futures.append(
                self._producer.send(self.topic, key=message.trial_id.encode(), value=raw)
            )
        self._producer.flush(timeout=SEND_TIMEOUT_S)
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_S)  # raises if the broker did not take it
        report.published = len(futures)
        return report

    def close(self, timeout: float = SEND_TIMEOUT_S) -> None:
        """Close the producer, waiting at most `timeout` for what it still holds: without a
        bound kafka-python waits for ever when no broker takes it (a cluster without quorum),
        and the command hung silently."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> SubmissionPublisher:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # After a failure (a send not acknowledged in time) what is left is reported unsent, not
        # waited for again.
        self.close(timeout=0 if kind is not None else SEND_TIMEOUT_S)


def read_lines(path: Path) -> list[tuple[int, bytes]]:
    """Non-blank lines of a .jsonl file with their 1-based numbers, line endings removed."""
    if not path.is_file():  # bad input (exit 2), as `ledger submit` says it
        raise ValueError(f"{path}: no such file")
    with path.open("rb") as handle:
        return [(number, line.rstrip(b"\r\n")) for number, line in enumerate(handle, start=1)
                if line.strip()]


def publish_file(path: Path, bootstrap: Connection, topic: str | None = None) -> PublishReport:
    """Validate every line of a .jsonl file and publish the valid ones to `topic` (default: the
    site's topic from its properties file, else `trial.submissions`)."""
    lines = read_lines(Path(path))
    with SubmissionPublisher(bootstrap, topic) as publisher:
        return publisher.publish(lines)
