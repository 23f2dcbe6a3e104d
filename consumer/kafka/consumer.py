"""A typed consumer with explicit, caller-driven offset commits."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from consumer.kafka.config import consumer_config
from consumer.kafka.errors import KafkaFatal, is_fatal
from consumer.settings import KafkaSettings

PartitionsCallback = Callable[[list[confluent_kafka.TopicPartition]], None]

# librdkafka's statistics, every this often: each partition's fetch state (``fetch_states``).
STATISTICS_INTERVAL_MS = 5000


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
        self._conf.setdefault("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        self._conf["stats_cb"] = self._on_statistics
        self._client: confluent_kafka.Consumer | None = None
        self.errors: list[confluent_kafka.KafkaError] = []
        # (topic, partition) -> librdkafka's fetch state ("none" until the committed offset is
        # known and fetching starts, "active" while fetching, ...), from the last statistics.
        self.fetch_states: dict[tuple[str, int], str] = {}

    def _on_statistics(self, payload: str) -> None:
        """Called from poll/consume with librdkafka's statistics JSON."""
        try:
            topics = json.loads(payload).get("topics", {})
        except ValueError:
            return
        states: dict[tuple[str, int], str] = {}
        for topic, info in topics.items():
            for partition, part in (info.get("partitions") or {}).items():
                if partition != "-1" and part.get("desired"):  # -1: librdkafka's UA partition
                    states[(str(topic), int(partition))] = str(part.get("fetch_state", ""))
        self.fetch_states = states

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

            def assigned(_c: confluent_kafka.Consumer, parts: list[TopicPartition]) -> None:
                # Apply the assignment first, so that the callback can pause (or resume) the
                # new partitions before anything is fetched for them (issue #12).
                if self.cooperative:
                    self.client.incremental_assign(parts)
                else:
                    self.client.assign(parts)
                on_assign(parts)

            kwargs["on_assign"] = assigned
        if on_revoke is not None:
            kwargs["on_revoke"] = lambda _c, parts: on_revoke(parts)
        if on_lost is not None:
            kwargs["on_lost"] = lambda _c, parts: on_lost(parts)
        self.client.subscribe(list(topics), **kwargs)

    @property
    def cooperative(self) -> bool:
        return "cooperative" in str(self._conf.get("partition.assignment.strategy", ""))

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records; transient errors are kept in ``errors``.

        A fatal error raises ``KafkaFatal``: the client cannot go on (issue #12).
        """
        out: list[Record] = []
        for msg in self.client.consume(max_records, timeout):
            err = msg.error()
            if err is not None:
                if is_fatal(err):
                    raise KafkaFatal(f"consumer: {err}")
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

    def watermarks(
        self, partition: TopicPartition, timeout: float = 5.0, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high) offsets of ``partition``; ``cached`` uses the last fetch's figures."""
        low, high = self.client.get_watermark_offsets(partition, timeout=timeout, cached=cached)
        return int(low), int(high)

    def watermarks_until(self, partition: TopicPartition, deadline: float) -> tuple[int, int]:
        """(low, high) of ``partition``, retrying transient errors until ``deadline``."""
        from consumer.kafka.admin import partition_watermarks

        return partition_watermarks(self.client, partition, deadline)

    def topic_partitions(self, topic: str, timeout: float = 10.0) -> list[int] | None:
        """The partition ids of ``topic``; None when it does not exist."""
        meta = self.client.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return None
        return sorted(meta.partitions)

    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float = 10.0
    ) -> list[TopicPartition]:
        """For each partition (``offset`` = a timestamp in ms), the earliest offset whose
        record timestamp is at or after it; -1 when there is none."""
        return list(self.client.offsets_for_times(partitions, timeout=timeout))

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Manual assignment (tools that read a topic without a group)."""
        self.client.assign(partitions)

    def close(self) -> None:
        """Leave the group; a fatal error on the way out raises ``KafkaFatal``."""
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.close()
            except confluent_kafka.KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if is_fatal(error):
                    raise KafkaFatal(f"consumer close: {error}") from exc
                raise
