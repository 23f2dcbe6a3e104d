"""The interface both sinks offer the service loop, and the client calls they need."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import confluent_kafka
from confluent_kafka import TopicPartition

from consumer.outputs import BatchResult, Output

PartitionKey = tuple[str, int]
DeliveryCallback = Callable[[confluent_kafka.KafkaError | None, Any], None]
Delivered = Callable[[Output], None]


class ProducerClient(Protocol):
    """What a sink needs of ``consumer.kafka.Producer`` (a fake in unit tests)."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        headers: Sequence[tuple[str, str | bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def __len__(self) -> int: ...


class CommitClient(Protocol):
    def commit(self, offsets: list[TopicPartition]) -> None: ...


class Sink(Protocol):
    def start(self) -> None:
        """Before the first batch (exactly-once: init_transactions)."""

    def publish(self, result: BatchResult) -> bool:
        """Hand over a batch; False when it was not accepted and will be read again."""

    def blocked(self) -> bool:
        """True while no more batches should be taken (backpressure)."""

    def can_resume(self) -> bool:
        """True once a paused source may take batches again."""

    def in_flight(self) -> int: ...

    def uncommitted(self) -> bool:
        """True while delivered work waits for its offset commit."""

    def service(self) -> None:
        """Serve delivery reports, retries and commits; called every loop turn."""

    def partitions_revoked(self, keys: list[PartitionKey]) -> None: ...

    def partitions_lost(self, keys: list[PartitionKey]) -> None: ...

    def close(self) -> None:
        """Deliver and commit what can be, before the clients close."""


def kafka_error(exc: confluent_kafka.KafkaException) -> confluent_kafka.KafkaError:
    error = exc.args[0] if exc.args else None
    if isinstance(error, confluent_kafka.KafkaError):
        return error
    return confluent_kafka.KafkaError(confluent_kafka.KafkaError._FAIL, str(exc))
