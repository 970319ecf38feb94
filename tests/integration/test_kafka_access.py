"""Who may write what on the secure broker (contract §7), tried as a hostile client would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from consumers._kafka import KafkaSettings, client_settings, kafka, kafka_errors
from consumers.audit import read_ledger_topics
from consumers.ingest import DEFAULT_GROUP, IngestSettings, run_ingest
from consumers.outbox import LedgerOutbox, UntrustedTopicError, default_transactional_id
from consumers.publisher import SubmissionPublisher
from consumers.security import DEMO_SITE, add_site
from consumers.topics import (
    CHECKPOINTS_TOPIC,
    HISTORY_CONFIGS,
    LEDGER_TOPIC,
    REJECTIONS_TOPIC,
    SUBMISSIONS_TOPIC,
    ensure_topics,
    site_topic,
)
from deploy import broker
from ledger.application import LedgerService
from tests.builders import TRIAL_ID
from tests.integration.test_kafka_ingest import (
    _create,
    _topics,
    demo_lines,
    ledger_values,
    outbox_for,
    read_topic,
    record_directly,
    send_raw,
)
from tests.kafka_fixtures import ExternalBroker, client

pytest_plugins = ["tests.kafka_fixtures"]
pytestmark = pytest.mark.kafka

OTHER_SITE = "edc-site-02"
#: Refused clients fail fast in tests (kafka-python waits 30 s to bootstrap by default).
FAST = {"bootstrap_timeout_ms": 4000}
FAST_PRODUCER = {**FAST, "max_block_ms": 4000, "request_timeout_ms": 4000}


@pytest.fixture(scope="module")
def secure(kafka_broker: broker.BrokerCluster | ExternalBroker) -> broker.BrokerCluster:
    """The session broker with a second site added (`ledger broker add-site`)."""
    if isinstance(kafka_broker, ExternalBroker):
        pytest.skip("access tests need the local secure broker")
    add_site(kafka_broker.data_dir, OTHER_SITE)
    return kafka_broker


def _send(settings: KafkaSettings, topic: str, value: bytes = b"{}") -> None:
    # Not idempotent: a principal with no WRITE anywhere would fail earlier, on the cluster.
    producer = kafka().KafkaProducer(**client_settings(settings, "test-attacker"), acks="all",
                                     enable_idempotence=False, **FAST_PRODUCER)
    with closing(producer):
        producer.send(topic, key=TRIAL_ID.encode(), value=value).get(timeout=10)


@pytest.mark.parametrize(
    ("principal", "topic", "allowed"),
    [
        pytest.param(DEMO_SITE, site_topic(DEMO_SITE), True, id="a site writes its own topic"),
        pytest.param(DEMO_SITE, LEDGER_TOPIC, False, id="a site cannot write trial.ledger"),
        pytest.param(DEMO_SITE, REJECTIONS_TOPIC, False,
                     id="a site cannot write trial.rejections"),
        pytest.param(DEMO_SITE, CHECKPOINTS_TOPIC, False,
                     id="a site cannot write trial.checkpoints"),
        pytest.param(DEMO_SITE, site_topic(OTHER_SITE), False,
                     id="a site cannot write another site's topic"),
        pytest.param(DEMO_SITE, SUBMISSIONS_TOPIC, False,
                     id="a site cannot write the shared topic"),
        pytest.param("auditor", LEDGER_TOPIC, False, id="the auditor cannot write trial.ledger"),
        pytest.param("auditor", site_topic(DEMO_SITE), False,
                     id="the auditor cannot write submissions"),
        pytest.param("ledger", site_topic(DEMO_SITE), False,
                     id="the ledger cannot forge a site's submission"),
    ],
)
def test_who_may_write_which_topic(
    secure: broker.BrokerCluster, principal: str, topic: str, allowed: bool
) -> None:
    """Each principal writes exactly the topics of the contract's §7 table."""
    settings = client(secure, principal)
    if allowed:
        _send(settings, topic, b"not a submission: the ledger rejects it")
    else:
        with pytest.raises(kafka_errors().TopicAuthorizationFailedError):
            _send(settings, topic)


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda s: KafkaSettings(s.bootstrap), id="anonymous"),
        pytest.param(lambda s: replace(s, password="guessed"), id="wrong password"),
        pytest.param(lambda s: replace(s, username="nobody"), id="unknown user"),
    ],
)
def test_unauthenticated_clients_are_refused(
    secure: broker.BrokerCluster, credentials: Callable[[KafkaSettings], KafkaSettings]
) -> None:
    """No client gets metadata, let alone a topic, without a known user's password."""
    settings = credentials(client(secure, DEMO_SITE))
    with pytest.raises(kafka_errors().KafkaError, match="Unable to bootstrap"):
        kafka().KafkaAdminClient(**client_settings(settings, "test-anonymous"), **FAST)


def test_a_site_cannot_take_the_ledgers_transactional_id(secure: broker.BrokerCluster) -> None:
    """Fencing the outbox needs the ledger's transactional id, which no site may use."""
    producer = kafka().KafkaProducer(
        **client_settings(client(secure, DEMO_SITE), "test-fencer"), **FAST_PRODUCER,
        transactional_id=default_transactional_id(LEDGER_TOPIC, REJECTIONS_TOPIC))
    with closing(producer), pytest.raises(
        kafka_errors().TransactionalIdAuthorizationFailedError
    ):
        producer.init_transactions()


def test_a_site_cannot_join_the_ledgers_group(secure: broker.BrokerCluster) -> None:
    """Joining the ingest group would steal its partitions; a site is refused."""
    consumer = kafka().KafkaConsumer(**client_settings(client(secure, DEMO_SITE), "test-joiner"),
                                     group_id=DEFAULT_GROUP, **FAST)
    with closing(consumer):
        consumer.subscribe([site_topic(DEMO_SITE)])
        with pytest.raises(kafka_errors().GroupAuthorizationFailedError):
            consumer.poll(timeout_ms=4000)


@pytest.mark.parametrize("principal", [DEMO_SITE, "auditor", "ledger"])
@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda a: a.delete_topics([LEDGER_TOPIC]), id="delete trial.ledger"),
        pytest.param(lambda a: a.create_topics({f"{SUBMISSIONS_TOPIC}.forged": {
            "num_partitions": 1, "replication_factor": 1}}), id="create a site topic"),
        pytest.param(lambda a: a.delete_topics([site_topic(DEMO_SITE)]),
                     id="delete a site topic"),
    ],
)
def test_no_principal_but_admin_deletes_or_creates_topics(
    secure: broker.BrokerCluster, principal: str, action: Callable[[Any], object]
) -> None:
    """Deleting history or inventing a site's topic is an operator's act only."""
    admin = kafka().KafkaAdminClient(**client_settings(client(secure, principal), "test-del"),
                                     **FAST)
    with closing(admin), pytest.raises(kafka_errors().TopicAuthorizationFailedError):
        action(admin)


def test_the_broker_creates_no_topic_on_its_own(secure: broker.BrokerCluster) -> None:
    """Writing to a topic that does not exist does not create it (auto-creation is off)."""
    name = f"never-created-{uuid.uuid4().hex[:8]}"
    with pytest.raises(kafka_errors().KafkaTimeoutError):
        _send(client(secure), name)
    admin = kafka().KafkaAdminClient(**client_settings(client(secure), "test-list"))
    with closing(admin):
        assert name not in admin.list_topics()


def test_the_auditor_reads_the_ledgers_topics_and_nothing_else(
    secure: broker.BrokerCluster,
) -> None:
    """The auditor reads the ledger's topics with their history settings, not submissions."""
    auditor = client(secure, "auditor")
    snapshot = read_ledger_topics(auditor, TRIAL_ID)
    assert snapshot.problems == []
    _send(client(secure, DEMO_SITE), site_topic(DEMO_SITE), b"something to snoop on")
    consumer = kafka().KafkaConsumer(**client_settings(auditor, "test-snoop"), group_id=None,
                                     **FAST)
    with closing(consumer):
        k = kafka()
        tp = k.TopicPartition(site_topic(DEMO_SITE), 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        assert consumer.poll(timeout_ms=2000) == {}
        with pytest.raises(kafka_errors().TopicAuthorizationFailedError):
            consumer.end_offsets([tp])
    assert read_topic(client(secure), site_topic(DEMO_SITE))  # the admin sees what is there


def test_a_site_sends_only_as_itself(secure: broker.BrokerCluster, tmp_path: Path) -> None:
    """On a site's topic, a submission whose `source` is another site is rejected; the site's own
    are recorded with it as their source (ingest as the `ledger` principal, real topic names).
    `ledger publish` refuses the foreign line by its number before sending; sent all the same
    (the site's own client, raw), ingest rejects it."""
    lines = [json.loads(raw) for raw in demo_lines(tmp_path)]
    own = [d for d in lines if d["source"] == DEMO_SITE and d["type"] == "subject.enrolled"][:2]
    foreign = next(d for d in lines if d["source"] == OTHER_SITE)
    with SubmissionPublisher(client(secure, DEMO_SITE)) as publisher:
        report = publisher.publish(
            (n, json.dumps(d).encode()) for n, d in enumerate([*own, foreign], start=1))
    assert report.published == 2 and publisher.topic == site_topic(DEMO_SITE)
    assert [(bad.line, bad.event_id, bad.reason_code) for bad in report.invalid] == [
        (3, foreign["event_id"], "SOURCE_NOT_AUTHENTICATED")]
    send_raw(client(secure, DEMO_SITE), site_topic(DEMO_SITE),
             [(TRIAL_ID.encode(), json.dumps(foreign).encode())])

    with LedgerService(str(tmp_path / "sites.db")) as service:
        run_ingest(service, client(secure, "ledger"), IngestSettings(until_idle=True))
        recorded = {e.event_id: e.source for e in service.entries(TRIAL_ID)}
        rejected = {m["event_id"]: m["reason_code"] for m in service.rejections()}

    assert all(recorded.get(d["event_id"]) == DEMO_SITE for d in own)
    assert foreign["event_id"] not in recorded
    assert rejected[foreign["event_id"]] == "SOURCE_NOT_AUTHENTICATED"
    on_topic = read_ledger_topics(client(secure, "auditor"), TRIAL_ID)
    assert {d["event_id"] for d in own} <= {r["event_id"] for r in on_topic.ledger}
    assert foreign["event_id"] in {r["event_id"] for r in on_topic.rejections}
    assert on_topic.problems == []


def _forge_next(service: LedgerService, last: dict[str, Any]) -> dict[str, Any]:
    return {**last, "position": last["position"] + 1, "type": "mtd.declared",
            "data": {"cohort": "A"}, "leaf_hash": None}


FORGERIES: list[Any] = [
    pytest.param(lambda _s, last: json.dumps(_forge_next(_s, last)),
                 id="a forged mtd.declared at the next position"),
    pytest.param(lambda _s, last: json.dumps({**last, "position": 10**9}),
                 id="a record at position 10^9"),
    pytest.param(lambda _s, last: json.dumps({**last, "data": {"dose_mg": 30}}),
                 id="the last record with other data"),
    pytest.param(lambda _s, last: json.dumps(last), id="the last record again"),
    pytest.param(lambda _s, last: json.dumps({**last, "leaf_hash": "00" * 32}),
                 id="the last record with another leaf hash"),
    pytest.param(lambda _s, _last: "not json {", id="bytes that are not a record"),
]


@pytest.mark.parametrize("forge", FORGERIES)
def test_a_forged_ledger_record_stops_the_outbox(
    kafka_broker: Any, tmp_path: Path, forge: Callable[[LedgerService, dict[str, Any]], str]
) -> None:
    """A record on trial.ledger the store does not vouch for stops publishing with a clear
    error: nothing is skipped, nothing published twice."""
    admin, topics = client(kafka_broker), _topics()
    _create(admin, topics, configs=HISTORY_CONFIGS)
    lines = demo_lines(tmp_path)
    with LedgerService(str(tmp_path / "forged.db")) as service:
        service.ensure_trial()
        record_directly(service, lines[:30], first_offset=0)
        with closing(outbox_for(service, admin, topics)) as outbox:
            outbox.publish_pending()
        published = ledger_values(admin, topics.ledger)
        send_raw(admin, topics.ledger,
                 [(TRIAL_ID.encode(), forge(service, json.loads(published[-1])).encode())])
        record_directly(service, lines[30:60], first_offset=30)
        outbox = outbox_for(service, admin, topics)
        with closing(outbox), pytest.raises(UntrustedTopicError, match="refusing to publish"):
            outbox.publish_pending()
    assert ledger_values(admin, topics.ledger)[:-1] == published


def test_a_forged_rejection_stops_the_outbox(kafka_broker: Any, tmp_path: Path) -> None:
    """A rejection record the store does not hold stops publishing too."""
    admin, topics = client(kafka_broker), _topics()
    _create(admin, topics, configs=HISTORY_CONFIGS)
    with LedgerService(str(tmp_path / "forged-rejection.db")) as service:
        service.ensure_trial()
        send_raw(admin, topics.rejections, [(None, json.dumps(
            {"sequence": 1, "reason_code": "INVALID_JSON", "submission": "x"}).encode())])
        with closing(LedgerOutbox(service, admin, ledger_topic=topics.ledger,
                                  rejections_topic=topics.rejections)) as outbox, \
                pytest.raises(UntrustedTopicError, match="rejection 1 is beyond the store"):
            outbox.start()


@pytest.mark.parametrize(
    ("configs", "problem"),
    [
        pytest.param({"retention.ms": "604800000"}, "retention.ms=604800000",
                     id="seven days' retention"),
        pytest.param({"retention.bytes": "1048576"}, "retention.bytes=1048576",
                     id="size retention"),
        pytest.param({"cleanup.policy": "compact"}, "cleanup.policy=compact", id="compaction"),
    ],
)
def test_topics_that_would_lose_history_are_reported(
    kafka_broker: Any, configs: dict[str, str], problem: str
) -> None:
    """A ledger topic whose settings would drop records is named in the snapshot's problems."""
    admin, topics = client(kafka_broker), _topics()
    ensure_topics(admin, [topics.ledger], configs={**HISTORY_CONFIGS, **configs})
    ensure_topics(admin, [topics.rejections, f"{topics.ledger}.cp"], configs=HISTORY_CONFIGS)
    snapshot = read_ledger_topics(admin, None, ledger_topic=topics.ledger,
                                  rejections_topic=topics.rejections,
                                  checkpoints_topic=f"{topics.ledger}.cp")
    assert [p for p in snapshot.problems if problem in p] and len(snapshot.problems) == 1


def test_a_log_that_no_longer_starts_at_zero_is_reported(kafka_broker: Any) -> None:
    """Records deleted from the head of trial.ledger make the snapshot name the new start."""
    admin, topics = client(kafka_broker), _topics()
    ensure_topics(admin, [topics.ledger, topics.rejections, f"{topics.ledger}.cp"],
                  configs=HISTORY_CONFIGS)
    send_raw(admin, topics.ledger, [(TRIAL_ID.encode(), json.dumps(
        {"trial_id": TRIAL_ID, "position": n}).encode()) for n in (1, 2, 3)])
    client_ = kafka().KafkaAdminClient(**client_settings(admin, "test-truncate"))
    with closing(client_):
        client_.delete_records({kafka().TopicPartition(topics.ledger, 0): 2})
    snapshot = read_ledger_topics(admin, TRIAL_ID, ledger_topic=topics.ledger,
                                  rejections_topic=topics.rejections,
                                  checkpoints_topic=f"{topics.ledger}.cp")
    assert snapshot.problems == [f"{topics.ledger}[0]: the log starts at offset 2, not 0: "
                                 f"earlier records were deleted"]
    assert [r["position"] for r in snapshot.ledger] == [3]
    assert [r.offset for r in read_topic(admin, topics.ledger)] == [2]
