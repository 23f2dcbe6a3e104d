"""Read topics over a time window, without a consumer group's commits.

Every partition of each topic is read from the first offset at or after the window's
start (``offsets_for_times``) up to its end offset taken at the start of the read, so
the read ends even while producers keep writing. Used by ``training.drift`` (classified
and review topics) and ``training.online_eval`` (the labeled archive and the shadow topic).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from confluent_kafka import TopicPartition

from consumer.errors import TicketsortError
from consumer.kafka import Consumer, Record
from consumer.settings import Settings
from training.errors import BadInput


class WindowReadError(TicketsortError):
    """The topics could not be read up to their end offsets in time."""


def scan_window(
    settings: Settings,
    topics: Sequence[str],
    since_ms: int,
    on_record: Callable[[Record], None],
    *,
    timeout_s: float = 60.0,
    group: str | None = None,
    purpose: str = "window",
) -> int:
    """Call ``on_record`` for each record of ``topics`` with a timestamp at or after
    ``since_ms``; returns the window's end (ms). ``BadInput`` for a missing topic."""
    until_ms = int(time.time() * 1000)
    consumer = Consumer(
        settings.kafka,
        group_id=group or f"{settings.kafka.group_id}.{purpose}.{uuid.uuid4().hex}",
        extra={"isolation.level": "read_committed"},
    )
    try:
        deadline = time.monotonic() + timeout_s
        ends: dict[tuple[str, int], int] = {}
        starts: list[TopicPartition] = []
        for topic in topics:
            partitions = consumer.topic_partitions(topic, timeout_s)
            if partitions is None:
                raise BadInput(f"the topic {topic!r} does not exist")
            wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
            for tp in consumer.offsets_for_times(wanted, timeout_s):
                _low, high = consumer.watermarks_until(
                    TopicPartition(topic, tp.partition), deadline
                )
                if 0 <= tp.offset < high:
                    ends[(topic, tp.partition)] = high
                    starts.append(TopicPartition(topic, tp.partition, tp.offset))
        if starts:
            consumer.assign(starts)
        positions = {(tp.topic, tp.partition): tp.offset for tp in starts}
        last_progress = time.monotonic()
        while any(positions[k] < ends[k] for k in ends):
            for rec in consumer.consume(1000, 0.5):
                key = (rec.topic, rec.partition)
                if rec.offset >= ends[key] or (rec.timestamp_ms or 0) < since_ms:
                    continue
                on_record(rec)
            undone = [
                TopicPartition(t, p) for (t, p), end in ends.items() if positions[(t, p)] < end
            ]
            for tp in consumer.position(undone):
                key = (tp.topic, tp.partition)
                if tp.offset is not None and tp.offset > positions[key]:
                    positions[key] = int(tp.offset)
                    last_progress = time.monotonic()
            if time.monotonic() - last_progress > timeout_s:
                behind = {f"{t}[{p}]": (positions[(t, p)], e) for (t, p), e in ends.items()}
                raise WindowReadError(f"reading made no progress for {timeout_s:.0f}s: {behind}")
    finally:
        consumer.close()
    return until_ms
