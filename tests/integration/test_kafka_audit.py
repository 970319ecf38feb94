"""The audit over Kafka (contract §6): checkpoints published on their topic, `ledger verify` and
`ledger replay` from the topics alone, and records nobody recorded refused or reported."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from consumers.ingest import run_ingest
from consumers.outbox import LedgerOutbox, UntrustedTopicError
from consumers.publisher import publish_file
from consumers.topics import HISTORY_CONFIGS, checkpoints_topic_for
from ledger.application import LedgerService
from ledger.audit.checkpoints import generate_signing_key
from ledger.cli import main
from ledger.demo import run_demo
from tests.integration.test_kafka_ingest import _create, _topics, read_topic, send_raw
from tests.kafka_fixtures import client, client_file

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.kafka


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dataset_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.suffix in (".csv", ".xpt")}


@pytest.fixture(scope="module")
def ingested(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The seed-7 demo published, ingested with a signing key, and republished."""
    folder = tmp_path_factory.mktemp("kafka-audit")
    bootstrap, topics = client(kafka_broker), _topics()
    _create(bootstrap, topics, configs=HISTORY_CONFIGS)  # as the ledger's topics must be
    demo = run_demo(folder / "demo", seed=7)
    assert publish_file(demo.submissions_file, bootstrap, topics.submissions).ok
    signer = generate_signing_key(folder / "key.pem")
    (folder / "public.pem").write_text(signer.public_key_pem)
    store = str(folder / "kafka.db")
    with LedgerService(store, signer=signer) as service:
        report = run_ingest(service, bootstrap, topics.settings())
        checkpoints = service.checkpoints(service.default_trial_id())
    return {"store": store, "topics": topics, "bootstrap": bootstrap, "report": report,
            "checkpoints": checkpoints, "folder": folder, "signer": signer,
            "admin": str(client_file(kafka_broker, "admin")),
            "public_key": str(folder / "public.pem")}


def topic_args(ingested: dict[str, Any]) -> list[str]:
    topics = ingested["topics"]
    return ["--bootstrap", ingested["bootstrap"].bootstrap, "--kafka-config", ingested["admin"],
            "--ledger-topic", topics.ledger, "--rejections-topic", topics.rejections,
            "--public-key", ingested["public_key"]]


def test_every_checkpoint_is_published_once_in_order(ingested: dict[str, Any]) -> None:
    """The checkpoints topic holds exactly the store's checkpoints, each once, sizes growing."""
    records = read_topic(ingested["bootstrap"], checkpoints_topic_for(ingested["topics"].ledger))
    published = [json.loads(r.value) for r in records]
    assert sorted(published, key=json.dumps) == sorted(ingested["checkpoints"], key=json.dumps)
    assert ingested["report"].published_checkpoints == len(ingested["checkpoints"])
    ledger_sizes = [c["size"] for c in published if c["log"] == "ledger"]
    assert ledger_sizes == sorted(set(ledger_sizes))


def test_verify_and_replay_from_the_topics_alone(
    ingested: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify --bootstrap` finds the topics intact; `replay --bootstrap` equals `export`."""
    code, out, err = run(capsys, "verify", *topic_args(ingested), "--json")
    report = json.loads(out)
    assert code == 0, (report["problems"][:3], err)
    with LedgerService(ingested["store"]) as service:
        size = len(list(service.entries(service.default_trial_id())))
    assert report["size"] == size and report["logs"]["ledger"]["checkpoints"] > 0
    folder: Path = ingested["folder"]
    for fmt in ("csv", "xpt"):
        code, _, err = run(capsys, "export", "--store", ingested["store"], "--format", fmt,
                           "--cutoff", "2025-12-31", "--out", str(folder / f"export-{fmt}"))
        assert code == 0, err
        code, _, err = run(capsys, "replay", *topic_args(ingested), "--format", fmt,
                           "--cutoff", "2025-12-31", "--out", str(folder / f"replay-{fmt}"))
        assert code == 0, err
        assert dataset_hashes(folder / f"export-{fmt}") == dataset_hashes(folder / f"replay-{fmt}")


def test_a_forged_record_on_the_topic_is_reported_by_verify(
    ingested: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An admin appends a rewritten copy of a ledger record: verify --bootstrap says where."""
    records = read_topic(ingested["bootstrap"], ingested["topics"].ledger)
    last = json.loads(records[-1].value)
    forged = {**last, "position": last["position"] + 1, "entered_by": "forger"}
    send_raw(ingested["bootstrap"], ingested["topics"].ledger,
             [(last["trial_id"].encode(), json.dumps(forged).encode())])
    code, out, _ = run(capsys, "verify", *topic_args(ingested), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["problems"][0]["position"] == forged["position"]


def test_a_forged_checkpoint_stops_the_outbox(ingested: dict[str, Any]) -> None:
    """A checkpoint record the store never made, on the checkpoints topic: publishing stops."""
    topic = checkpoints_topic_for(ingested["topics"].ledger)
    genuine = ingested["checkpoints"][-1]
    forged = {**genuine, "size": genuine["size"] + 10}
    send_raw(ingested["bootstrap"], topic,
             [(str(genuine["trial_id"]).encode(), json.dumps(forged).encode())])
    with LedgerService(ingested["store"]) as service:
        outbox = LedgerOutbox(service, ingested["bootstrap"],
                              ledger_topic=ingested["topics"].ledger,
                              rejections_topic=ingested["topics"].rejections)
        with pytest.raises(UntrustedTopicError) as refused:
            outbox.start()
        outbox.close()
    assert any("not a checkpoint this store recorded" in p for p in refused.value.problems)
