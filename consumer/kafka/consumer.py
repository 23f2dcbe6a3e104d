"""A typed consumer with explicit, caller-driven offset commits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka

from consumer.kafka.config import consumer_config
from consumer.settings import KafkaSettings

PartitionsCallback = Callable[[list[confluent_kafka.TopicPartition]], None]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, detached from the client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None

    @classmethod
    def from_message(cls, msg: confluent_kafka.Message) -> Record:
        ts_type, ts = msg.timestamp()
        raw_headers = msg.headers() or []
        return cls(
            topic=str(msg.topic()),
            partition=int(msg.partition() or 0),
            offset=int(msg.offset() or 0),
            key=msg.key(),
            value=msg.value(),
            headers=tuple(
                (str(h[0]), h[1] if isinstance(h[1], bytes) else b"") for h in raw_headers
            ),
            timestamp_ms=ts if ts_type != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
        )


class Consumer:
    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        *,
        auto_offset_reset: str = "earliest",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._conf = consumer_config(kafka, group_id, auto_offset_reset, **(extra or {}))
        self._conf["logger"] = logging.getLogger("librdkafka.consumer")
        self._client: confluent_kafka.Consumer | None = None
        self.errors: list[confluent_kafka.KafkaError] = []

    @property
    def client(self) -> confluent_kafka.Consumer:
        if self._client is None:
            self._client = confluent_kafka.Consumer(self._conf)
        return self._client

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        on_lost: PartitionsCallback | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if on_assign is not None:
            kwargs["on_assign"] = lambda _c, parts: on_assign(parts)
        if on_revoke is not None:
            kwargs["on_revoke"] = lambda _c, parts: on_revoke(parts)
        if on_lost is not None:
            kwargs["on_lost"] = lambda _c, parts: on_lost(parts)
        self.client.subscribe(list(topics), **kwargs)

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records; transient errors are kept in ``errors``."""
        out: list[Record] = []
        for msg in self.client.consume(max_records, timeout):
            err = msg.error()
            if err is not None:
                if err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    self.errors.append(err)
                continue
            out.append(Record.from_message(msg))
        return out

    def commit(self, offsets: list[confluent_kafka.TopicPartition]) -> None:
        """Commit synchronously the given next-offsets."""
        if offsets:
            self.client.commit(offsets=offsets, asynchronous=False)

    def committed(
        self, partitions: list[confluent_kafka.TopicPartition], timeout: float = 10.0
    ) -> list[confluent_kafka.TopicPartition]:
        return list(self.client.committed(partitions, timeout=timeout))

    def assignment(self) -> list[confluent_kafka.TopicPartition]:
        return list(self.client.assignment())

    def pause(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        if partitions:
            self.client.pause(partitions)

    def resume(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        if partitions:
            self.client.resume(partitions)

    def seek(self, partition: confluent_kafka.TopicPartition) -> None:
        self.client.seek(partition)

    def position(
        self, partitions: list[confluent_kafka.TopicPartition]
    ) -> list[confluent_kafka.TopicPartition]:
        return list(self.client.position(partitions))

    def group_metadata(self) -> Any:
        return self.client.consumer_group_metadata()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
