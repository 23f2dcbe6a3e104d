"""Topic creation and broker reachability."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.kafka.errors import BrokerUnavailable
from consumer.settings import KafkaSettings, TopicSettings

FOREVER = "-1"


def admin_client(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(kafka.client_config())


def wait_for_broker(kafka: KafkaSettings, timeout: float = 30.0) -> int:
    """Return the number of brokers once the cluster answers, else raise."""
    deadline = time.monotonic() + timeout
    admin = admin_client(kafka)
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
        spec(topics.review),
        spec(topics.dead_letter),
        # The labeled archive is the training set: kept forever.
        spec(topics.labeled, **{"retention.ms": FOREVER, "retention.bytes": FOREVER}),
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
    return created
