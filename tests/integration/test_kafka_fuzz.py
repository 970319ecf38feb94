"""Any bytes on a submissions topic, a record or a rejection out: the fuzz corpus published raw
and ingested never stops ingest, and every message is accounted for exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.ingest import run_ingest
from ledger.application import LedgerService
from ledger.audit.inspection import verify_source
from tests.builders import TRIAL_ID
from tests.fuzz.corpus import read_corpus
from tests.integration.test_kafka_ingest import _create, _topics, read_topic, send_raw
from tests.kafka_fixtures import client

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.kafka


def test_the_fuzz_corpus_through_kafka_ingest(kafka_broker: Any, tmp_path: Path) -> None:
    """Every corpus message consumed once: accepted + duplicates + rejected = messages, each
    rejection on the rejections topic, ingest past every bad message, the ledger intact."""
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics)
    corpus = read_corpus()
    send_raw(bootstrap, topics.submissions, [(b"NCT05406206", line) for line in corpus])
    with LedgerService(str(tmp_path / "fuzz.db")) as service:
        report = run_ingest(service, bootstrap, topics.settings())
        rejections = list(service.rejections())
        intact = verify_source(service.audit_source(TRIAL_ID)).intact
    assert report.consumed == len(corpus)
    assert report.accepted + report.duplicates + report.rejected == len(corpus)
    assert report.rejected == len(rejections) > 0
    assert sorted(r["offset"] for r in rejections) == sorted({r["offset"] for r in rejections})
    assert len(read_topic(bootstrap, topics.rejections)) == report.rejected
    assert intact
