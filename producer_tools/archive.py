"""A snapshot of the ticket ids already in the labeled archive topic."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from consumer.errors import TicketsortError
from consumer.kafka import Consumer
from consumer.settings import KafkaSettings


class ArchiveSnapshotTimeout(TicketsortError):
    """The archive could not be read up to its end offsets in time."""


def archived_ids(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> set[str]:
    """Keys (ticket ids) of every record in ``topic`` up to the end offsets seen at the start.

    Reads with partition assignment and a throwaway group id: no group join, no commits.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(kafka, group_id=f"ticketsort-tools-snapshot-{uuid.uuid4().hex[:12]}")
    try:
        partitions = consumer.topic_partitions(topic, timeout) or []
        ends: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.watermarks_until(TopicPartition(topic, partition), deadline)
            if high > low:
                ends[partition] = high
        ids: set[str] = set()
        if not ends:
            return ids
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            if time.monotonic() > deadline:
                raise ArchiveSnapshotTimeout(
                    f"could not read {topic} to its end within {timeout:.0f}s"
                    f" ({len(ends)} partition(s) unfinished)"
                )
            for record in consumer.consume(1000, 0.5):
                if record.key is not None:
                    ids.add(record.key.decode("utf-8", errors="replace"))
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            for tp in positions:
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        return ids
    finally:
        consumer.close()
