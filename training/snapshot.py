"""A consistent snapshot of the labeled archive topic.

The end offset of every partition is taken first; every partition is then read
from its beginning up to that end and no further, so records that arrive while
training reads are left for the next run. The offsets go into the model's
``snapshot.json``: a run can be reproduced from the topic exactly.

The reader is assigned partitions directly (no group subscription, no commits):
it never disturbs a consumer group. A partition is done when the reader's
position reaches its end offset (the last offsets may hold no readable record:
transaction markers).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import TopicPartition
from pydantic import ValidationError

from consumer.errors import TicketsortError
from consumer.events import LabeledTicket
from consumer.kafka import Consumer, is_fatal
from consumer.logs import get_logger
from consumer.settings import Settings
from training.errors import BadInput
from training.records import RawData, SourceRecord

log = get_logger("training.snapshot")


class SnapshotError(TicketsortError):
    """The archive could not be read up to the end offsets in time."""


@dataclass
class _Partition:
    start: int
    end: int
    position: int
    records: int = 0

    @property
    def done(self) -> bool:
        return self.position >= self.end


def to_record(
    partition: int, offset: int, key: bytes | None, value: bytes | None, drops: Counter[str]
) -> SourceRecord | None:
    """One archive message as a record; unreadable ones are counted in ``drops``."""
    if value is None:
        if not key:
            drops["invalid_record"] += 1
            return None
        # A tombstone keyed by ticket id: forget that ticket's earlier labels.
        return SourceRecord(
            ticket_id=key.decode("utf-8", errors="replace"),
            subject=None,
            body="",
            label="",
            label_source="history",
            labeled_at=None,
            position=(partition, offset),
            deleted=True,
        )
    try:
        event = LabeledTicket.model_validate_json(value)
    except (ValidationError, ValueError):
        drops["invalid_record"] += 1
        return None
    return SourceRecord(
        ticket_id=event.ticket.id,
        subject=event.ticket.subject,
        body=event.ticket.body,
        label=event.label,
        label_source=event.label_source,
        labeled_at=event.labeled_at,
        position=(partition, offset),
    )


def end_offsets(consumer: Consumer, topic: str, timeout: float) -> dict[int, tuple[int, int]]:
    """``{partition: (low, high)}`` of ``topic``, taken now."""
    deadline = time.monotonic() + timeout
    partitions = consumer.topic_partitions(topic, timeout)
    if partitions is None:
        raise BadInput(f"the archive topic {topic!r} does not exist: no labeled data to train on")
    return {p: consumer.watermarks_until(TopicPartition(topic, p), deadline) for p in partitions}


def snapshot_archive(settings: Settings, *, timeout_s: float | None = None) -> RawData:
    """Read the archive topic from the beginning up to the end offsets taken at start.

    Raises ``SnapshotError`` when reading makes no progress for ``timeout_s``
    (default ``settings.training.snapshot_timeout_s``).
    """
    topic = settings.topics.labeled
    timeout = timeout_s if timeout_s is not None else settings.training.snapshot_timeout_s
    consumer = Consumer(
        settings.kafka, group_id=f"{settings.kafka.group_id}.training-snapshot.{uuid.uuid4().hex}"
    )
    drops: Counter[str] = Counter()
    records: list[SourceRecord] = []
    started = time.monotonic()
    try:
        marks = end_offsets(consumer, topic, timeout)
        parts = {p: _Partition(start=lo, end=hi, position=lo) for p, (lo, hi) in marks.items()}
        pending = sorted(p for p, state in parts.items() if not state.done)
        if pending:
            consumer.assign([TopicPartition(topic, p, parts[p].start) for p in pending])
        last_progress = time.monotonic()
        while any(not state.done for state in parts.values()):
            for rec in consumer.consume(1000, 0.5):
                state = parts[rec.partition]
                if rec.offset >= state.end:
                    continue  # arrived after the snapshot started: the next run's
                state.records += 1
                record = to_record(rec.partition, rec.offset, rec.key, rec.value, drops)
                if record is not None:
                    records.append(record)
            undone = [TopicPartition(topic, p) for p, s in parts.items() if not s.done]
            for tp in consumer.position(undone):
                state = parts[tp.partition]
                if tp.offset is not None and tp.offset > state.position:
                    state.position = int(tp.offset)
                    last_progress = time.monotonic()
            if consumer.errors:
                fatal = [e for e in consumer.errors if is_fatal(e)]
                if fatal:
                    raise SnapshotError(f"reading {topic} failed: {fatal[0]}")
                consumer.errors.clear()
            if time.monotonic() - last_progress > timeout:
                behind = {p: (s.position, s.end) for p, s in parts.items() if not s.done}
                raise SnapshotError(
                    f"reading {topic} made no progress for {timeout:.0f}s before its end"
                    f" offsets (partition: (position, end) = {behind})"
                )
    finally:
        consumer.close()
    info = {
        "kind": "kafka",
        "topic": topic,
        "partitions": {
            str(p): {"start": s.start, "end": s.end, "records": s.records}
            for p, s in sorted(parts.items())
        },
        "records": sum(s.records for s in parts.values()),
        "read_seconds": round(time.monotonic() - started, 3),
    }
    log.info("archive_snapshot_read", topic=topic, records=info["records"], partitions=len(parts))
    return RawData(records=records, drops=drops, info=info)
