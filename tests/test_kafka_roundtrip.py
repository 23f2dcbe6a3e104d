"""The project's own producer and consumer wrappers against the real broker."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from confluent_kafka.admin import NewTopic

from consumer.events import RawTicket
from consumer.kafka import Consumer, DeliveryFailed, KafkaFatal, Producer, ensure_topics
from consumer.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_raw_ticket_round_trips_through_the_broker(kafka_settings: KafkaSettings) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex}"
    assert ensure_topics(kafka_settings, [NewTopic(topic, num_partitions=1)]) == [topic]
    assert ensure_topics(kafka_settings, [NewTopic(topic, num_partitions=1)]) == []  # idempotent
    sent = RawTicket(id="rt-1", subject="Login", body="I can't log in since the update ❤ 你好")
    producer = Producer(kafka_settings)
    producer.produce(topic, sent.to_bytes(), key=sent.id, headers=[("source", b"test")])
    assert producer.flush(10) == 0
    consumer = Consumer(kafka_settings, f"g-{uuid.uuid4().hex}")
    consumer.subscribe([topic])
    records = []
    for _ in range(60):
        records += consumer.consume(10, 0.5)
        if records:
            break
    assert len(records) == 1
    record = records[0]
    assert record.key == b"rt-1"
    assert ("source", b"test") in record.headers
    assert RawTicket.model_validate_json(record.value or b"") == sent
    from confluent_kafka import TopicPartition

    consumer.commit([TopicPartition(topic, record.partition, record.offset + 1)])
    committed = consumer.committed([TopicPartition(topic, record.partition)])
    assert committed[0].offset == record.offset + 1
    consumer.close()


def test_delivery_failure_is_raised_not_swallowed(kafka_settings: KafkaSettings) -> None:
    topic = f"small-{uuid.uuid4().hex}"
    ensure_topics(
        kafka_settings,
        [NewTopic(topic, num_partitions=1, config={"max.message.bytes": "2048"})],
    )
    producer = Producer(kafka_settings, extra={"message.timeout.ms": 5000})
    producer.produce(topic, os.urandom(10_000), key="big")  # incompressible
    with pytest.raises(DeliveryFailed, match=topic):
        producer.flush(15)


def test_connect_looks_the_topics_up_and_names_the_missing_ones(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"connect-{uuid.uuid4().hex}"
    ensure_topics(kafka_settings, [NewTopic(topic, num_partitions=2)])
    producer = Producer(kafka_settings)
    missing = f"connect-missing-{uuid.uuid4().hex}"
    assert producer.connect([topic, missing], timeout=10) == [missing]
    # The topic connect found is the one created: both its partitions are there.
    known = producer.client.list_topics(topic, timeout=0.5).topics[topic]
    assert sorted(known.partitions) == [0, 1]


def test_a_static_member_fenced_by_its_successor_raises_instead_of_polling_on(
    kafka_settings: KafkaSettings,
) -> None:
    """librdkafka hands a consumer its fatal error as a message with code ``_FATAL`` whose
    ``fatal()`` is False; read as a transient error, a fenced static member polled on for good
    without a record (librdkafka #3437; seen in the chaos test after a broker restart)."""
    topic = f"fenced-{uuid.uuid4().hex}"
    ensure_topics(kafka_settings, [NewTopic(topic, num_partitions=1)])
    group = f"g-{uuid.uuid4().hex}"
    static = {"group.instance.id": f"{group}-0", "session.timeout.ms": 6000}
    first = Consumer(kafka_settings, group, extra=static)
    first.subscribe([topic])
    deadline = time.monotonic() + 30
    while not first.client.assignment() and time.monotonic() < deadline:
        first.consume(10, 0.2)
    assert first.client.assignment(), "the first member was never assigned"
    second = Consumer(kafka_settings, group, extra=static)  # same instance id: fences the first
    second.subscribe([topic])
    try:
        with pytest.raises(KafkaFatal, match="fenced"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                second.consume(10, 0.1)
                first.consume(10, 0.1)
        assert not first.errors, "the fatal error was kept as a transient one"
    finally:
        second.close()
