"""The ledger's producers place records as the Java client does (contract: key = trial id).

`consumers._kafka.key_hashing_partitioner` remembers each key's murmur2 hash; these tests hold
its choices to Apache Kafka's own murmur2 vectors (`UtilsTest.testMurmur2`, the Java client's
`toPositive(murmur2(key)) % partitions`) and to kafka-python's `DefaultPartitioner`, including
after the topic gains partitions (a remembered hash must not pin an old partition count).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import consumers.publisher
from consumers._kafka import kafka, key_hashing_partitioner, producer_settings
from consumers.outbox import LedgerOutbox
from consumers.publisher import SubmissionPublisher
from ledger.application import LedgerService

#: Apache Kafka's UtilsTest.testMurmur2: key -> the Java client's signed 32-bit murmur2.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


class Cluster:
    """The three questions a kafka-python partitioner asks of the cluster metadata."""

    def __init__(self, partitions: dict[str, int], unavailable: frozenset[int] = frozenset()
                 ) -> None:
        self.partitions = partitions
        self.unavailable = unavailable

    def topics(self) -> set[str]:
        return set(self.partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.partitions.get(topic)
        return None if count is None else set(range(count))

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        every = self.partitions_for_topic(topic)
        return None if every is None else every - self.unavailable


def place(partitioner: Any, key: bytes | None, cluster: Cluster, topic: str = "t") -> int:
    return int(partitioner.partition(topic, key, key, b"v", b"v", cluster))


@pytest.mark.parametrize(("key", "java_hash"), sorted(JAVA_MURMUR2.items()))
def test_each_kafka_vector_goes_where_the_java_client_puts_it(key: bytes, java_hash: int) -> None:
    """Kafka's own murmur2 vectors, over 1 to 64 partitions, twice (the hash remembered)."""
    partitioner = key_hashing_partitioner()
    for count in range(1, 65):
        expected = (java_hash & 0x7FFFFFFF) % count  # Utils.toPositive(murmur2(key)) % count
        assert place(partitioner, key, Cluster({"t": count})) == expected
        assert place(partitioner, key, Cluster({"t": count})) == expected  # remembered hash


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=8),
    counts=st.lists(st.integers(min_value=1, max_value=48), min_size=1, max_size=4),
)
def test_it_chooses_as_kafka_pythons_default_partitioner(keys: list[bytes], counts: list[int]
                                                         ) -> None:
    """Any keys, partition counts changing between sends: the default's choice every time."""
    default = kafka().partitioner.DefaultPartitioner()
    ours = key_hashing_partitioner()
    for count in counts:  # the topic grows (or is another topic of another size) between sends
        cluster = Cluster({"t": count})
        for key in keys + keys:
            assert place(ours, key, cluster) == place(default, key, cluster)


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    """No key: a random available partition, as the default does."""
    partitioner = key_hashing_partitioner()
    cluster = Cluster({"t": 6}, unavailable=frozenset({0, 1, 2, 4, 5}))
    assert {place(partitioner, None, cluster) for _ in range(50)} == {3}


def test_an_unknown_topic_is_refused_as_kafka_python_refuses_it() -> None:
    """A topic the metadata does not know: the default's ValueError."""
    with pytest.raises(ValueError, match="not found"):
        place(key_hashing_partitioner(), b"NCT05406206", Cluster({"other": 3}))


def test_the_outbox_and_the_publisher_start_from_the_producer_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both producers are built from the one settings function, partitioner included."""
    settings_ = producer_settings("127.0.0.1:1", "test")
    assert type(settings_["partitioner"]).__name__ == "KeyHashingPartitioner"
    assert (settings_["acks"], settings_["enable_idempotence"]) == ("all", True)
    with LedgerService(str(tmp_path / "ledger.db")) as service:
        outbox = LedgerOutbox(service, "127.0.0.1:1")  # never dialled: no start
        config = outbox._config
    assert type(config["partitioner"]).__name__ == "KeyHashingPartitioner"
    assert {key: config[key] for key in ("acks", "enable_idempotence")} == {
        "acks": "all", "enable_idempotence": True}
    made: list[dict[str, Any]] = []  # the publisher dials on construction: its config is kept
    monkeypatch.setattr(consumers.publisher, "kafka",
                        lambda: SimpleNamespace(KafkaProducer=lambda **c: made.append(c)))
    SubmissionPublisher("127.0.0.1:1")
    assert type(made[0]["partitioner"]).__name__ == "KeyHashingPartitioner"
    assert (made[0]["acks"], made[0]["enable_idempotence"]) == ("all", True)
