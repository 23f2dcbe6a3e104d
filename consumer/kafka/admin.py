"""Topic creation and broker reachability."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.kafka.errors import BrokerUnavailable
from consumer.settings import KafkaSettings, TopicSettings

FOREVER = "-1"


def admin_client(kafka: KafkaSettings, quiet: bool = False) -> AdminClient:
    conf = kafka.client_config()
    conf["logger"] = logging.getLogger("librdkafka.admin")
    if quiet:  # a reachability probe: its refused connections are not news
        conf["log_level"] = 2
    return AdminClient(conf)


def wait_for_broker(kafka: KafkaSettings, timeout: float = 30.0) -> int:
    """Return the number of brokers once the cluster answers, else raise."""
    deadline = time.monotonic() + timeout
    admin = admin_client(kafka, quiet=True)
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            brokers = admin.list_topics(timeout=2).brokers
            if brokers:
                return len(brokers)
        except KafkaException as exc:
            last = exc
        time.sleep(0.5)
    raise BrokerUnavailable(
        f"no Kafka broker answered at {kafka.bootstrap_servers} within {timeout:.0f}s"
        f" ({last}). Start the local one with `make kafka-up`, or set"
        " KAFKA_BOOTSTRAP_SERVERS to your cluster."
    )


def topic_specs(topics: TopicSettings) -> list[NewTopic]:
    def spec(name: str, **config: str) -> NewTopic:
        config.setdefault("max.message.bytes", str(topics.max_message_bytes))
        return NewTopic(
            name,
            num_partitions=topics.partitions,
            replication_factor=topics.replication_factor,
            config=config,
        )

    return [
        spec(topics.raw),
        spec(topics.classified),
        # A queue people drain: kept long enough for a team back from holidays.
        spec(topics.review, **{"retention.ms": str(topics.review_retention_ms)}),
        spec(topics.dead_letter),
        # The labeled archive is the training set: kept forever.
        spec(topics.labeled, **{"retention.ms": FOREVER, "retention.bytes": FOREVER}),
        # Both models' answers: what online evaluation and promotion read.
        spec(topics.shadow),
    ]


def ensure_topics(
    kafka: KafkaSettings, topics: TopicSettings | list[NewTopic], timeout: float = 30.0
) -> list[str]:
    """Create missing topics; return the names created. Idempotent."""
    admin = admin_client(kafka)
    specs = topic_specs(topics) if isinstance(topics, TopicSettings) else topics
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in specs if spec.topic not in existing]
    if not missing:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    _wait_for_leaders(admin, [spec.topic for spec in missing], timeout)
    return created


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """New topics are usable once every partition has a leader."""
    deadline = time.monotonic() + timeout
    pending = set(topics)
    while pending and time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=timeout).topics
        for name in list(pending):
            meta = metadata.get(name)
            if (
                meta is not None
                and meta.error is None
                and meta.partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                pending.discard(name)
        if pending:
            time.sleep(0.1)


# Errors seen while a new topic's partition leaders are being elected, or a broker restarts.
TRANSIENT_CODES = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


def is_transient(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return False
    return bool(error.retriable()) or error.code() in TRANSIENT_CODES


def partition_watermarks(client: Any, partition: Any, deadline: float) -> tuple[int, int]:
    """Low and high offsets of one partition, retrying transient errors until ``deadline``."""
    while True:
        try:
            low, high = client.get_watermark_offsets(
                partition, timeout=max(1.0, deadline - time.monotonic()), cached=False
            )
            return int(low), int(high)
        except KafkaException as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def watermarks(
    kafka: KafkaSettings, topic: str, timeout: float = 10.0
) -> dict[int, tuple[int, int]]:
    """``{partition: (low, high)}`` of ``topic`` now; empty when the topic does not exist."""
    from confluent_kafka import Consumer as RawConsumer
    from confluent_kafka import TopicPartition

    client = RawConsumer({**kafka.client_config(), "group.id": "ticketsort-watermarks"})
    try:
        meta = client.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        deadline = time.monotonic() + timeout
        return {
            p: partition_watermarks(client, TopicPartition(topic, p), deadline)
            for p in meta.partitions
        }
    finally:
        client.close()
