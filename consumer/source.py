"""The source: owns polling, pause/resume and the assignment of the raw topic's consumer.

Invariants (issue #12):
- nothing polled is ever discarded: records that arrive while the source is paused (a
  partition assigned during the pause may deliver some before it is paused) are buffered and
  handed out, in order, once the source resumes;
- a partition assigned while paused is paused at once; one assigned while running is resumed
  explicitly, because librdkafka keeps an application pause across re-assignment (a partition
  revoked while paused and assigned back later would otherwise stay paused for good);
- records of a partition that is revoked or lost are dropped from the buffer (they were never
  handed out, and their new owner reads them again from the committed offset).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, TopicPartition

from consumer.kafka import KafkaFatal, Record, is_fatal
from consumer.logs import get_logger

log = get_logger(__name__)

PartitionKey = tuple[str, int]
PartitionsCallback = Callable[[list[TopicPartition]], None]
KeysCallback = Callable[[list[PartitionKey]], None]


class ConsumerClient(Protocol):
    """What the source needs of ``consumer.kafka.Consumer`` (a fake in unit tests)."""

    errors: list[KafkaError]

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        on_lost: PartitionsCallback | None = None,
    ) -> None: ...

    def consume(self, max_records: int, timeout: float) -> list[Record]: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...


class RebalanceListener(Protocol):
    def partitions_assigned(self, keys: list[PartitionKey]) -> None: ...

    def partitions_revoked(self, keys: list[PartitionKey]) -> None: ...

    def partitions_lost(self, keys: list[PartitionKey]) -> None: ...


def _tps(keys: Iterable[PartitionKey]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in sorted(keys)]


class RecordSource:
    def __init__(self, consumer: ConsumerClient, listener: RebalanceListener | None = None) -> None:
        self.consumer = consumer
        self.listener = listener
        self.assigned: set[PartitionKey] = set()
        self.paused = False
        # What was polled and not yet handed out, with the monotonic time each record came in.
        self._buffer: deque[tuple[float, Record]] = deque()

    # Subscription and rebalances --------------------------------------------------------
    def subscribe(self, topics: Sequence[str]) -> None:
        self.consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.assigned.update(keys)
        if self.paused:
            self.consumer.pause(_tps(keys))
        else:
            self.consumer.resume(_tps(keys))
        log.info(
            "partitions_assigned", partitions=[f"{t}[{p}]" for t, p in keys], paused=self.paused
        )
        if self.listener is not None:
            self.listener.partitions_assigned(keys)

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        if self.listener is not None:  # deliver and commit what is in flight first
            self.listener.partitions_revoked(keys)
        self._forget(keys)
        log.info("partitions_revoked", partitions=[f"{t}[{p}]" for t, p in keys])

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        if self.listener is not None:
            self.listener.partitions_lost(keys)
        self._forget(keys)
        log.warning("partitions_lost", partitions=[f"{t}[{p}]" for t, p in keys])

    def _forget(self, keys: list[PartitionKey]) -> None:
        gone = set(keys)
        self.assigned.difference_update(gone)
        if self._buffer:
            self._buffer = deque(
                (t, r) for t, r in self._buffer if (r.topic, r.partition) not in gone
            )

    # Polling ----------------------------------------------------------------------------
    def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records of assigned partitions; none while paused.

        While paused this still polls (the group session and rebalances go on) and keeps
        whatever arrives for later.
        """
        if self.paused:
            self._fetch(max_records, 0.0)
            return []
        self.fill(max_records, 0.0 if self._buffer else timeout)
        out: list[Record] = []
        while self._buffer and len(out) < max_records:
            out.append(self._buffer.popleft()[1])
        return out

    def fill(self, max_records: int, timeout: float) -> None:
        """Poll into the buffer (up to ``max_records`` buffered) without handing anything out:
        a batch builds up while the model is busy with the previous one."""
        if len(self._buffer) < max_records:
            self._fetch(max_records - len(self._buffer), timeout)

    def oldest_wait(self, now: float | None = None) -> float:
        """Seconds the oldest buffered record has waited (0 when the buffer is empty)."""
        if not self._buffer:
            return 0.0
        return (time.monotonic() if now is None else now) - self._buffer[0][0]

    def _fetch(self, max_records: int, timeout: float) -> None:
        records = self.consumer.consume(max(1, max_records), timeout)
        errors, self.consumer.errors[:] = list(self.consumer.errors), []
        for err in errors:
            if is_fatal(err):  # the client cannot go on: exit 5, restart from the commits
                raise KafkaFatal(f"consumer: {err}")
            log.warning("consumer_error", error=str(err))
        # Records of partitions revoked during this poll are re-read by their new owner.
        arrived = time.monotonic()
        kept = (r for r in records if (r.topic, r.partition) in self.assigned)
        self._buffer.extend((arrived, r) for r in kept)

    def discard_buffered(self) -> None:
        """Drop what was polled but not handed out (after a seek: it is read again)."""
        self._buffer.clear()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # Pause and resume -------------------------------------------------------------------
    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.consumer.pause(_tps(self.assigned))

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.consumer.resume(_tps(self.assigned))

    def describe(self) -> dict[str, Any]:
        return {"assigned": sorted(self.assigned), "paused": self.paused, "buffered": self.buffered}
