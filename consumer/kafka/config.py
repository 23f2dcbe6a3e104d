"""librdkafka configuration: project defaults merged under user extras.

The few keys the wrappers must own always win over user settings.
"""

from __future__ import annotations

from typing import Any

from consumer.settings import KafkaSettings

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
    "message.timeout.ms": 120_000,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 45_000,
    "max.poll.interval.ms": 300_000,
    "fetch.wait.max.ms": 50,
}


def producer_config(kafka: KafkaSettings, **owned: Any) -> dict[str, Any]:
    conf = {**PRODUCER_DEFAULTS, **kafka.client_config()}
    conf.update(owned)
    return conf


def consumer_config(
    kafka: KafkaSettings, group_id: str, auto_offset_reset: str = "earliest", **owned: Any
) -> dict[str, Any]:
    conf = {**CONSUMER_DEFAULTS, **kafka.client_config()}
    conf.update(
        {
            "group.id": group_id,
            "auto.offset.reset": auto_offset_reset,
            # Offsets are committed explicitly, after output is delivered.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    conf.update(owned)
    return conf
