"""Honest fakes of the Kafka wrappers for unit tests of the service's parts.

They keep the state a real client keeps (assignment, pause flags, queued messages) and let a
test decide what the broker does: which deliveries fail, which records a poll returns. What
only a broker can show (rebalances, real refusals) is tested against the real broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, TopicPartition

from consumer.kafka import Record

PartitionsCallback = Callable[[list[TopicPartition]], None]


def record(partition: int, offset: int, value: bytes = b"{}", topic: str = "raw") -> Record:
    return Record(topic, partition, offset, f"k{offset}".encode(), value, (), None)


class FakeConsumer:
    """Records queued per partition; paused partitions return nothing, as in librdkafka."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        self.queued: dict[tuple[str, int], deque[Record]] = {}
        self.paused: set[tuple[str, int]] = set()
        self.assignment: set[tuple[str, int]] = set()
        self.callbacks: dict[str, PartitionsCallback] = {}
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.commits: list[list[TopicPartition]] = []
        self.seeks: list[TopicPartition] = []
        self.pending_errors: list[KafkaError] = []
        self.close_error: Exception | None = None
        self.closed = False
        # librdkafka's fetch state per partition, as its statistics report it
        self.fetch_states: dict[tuple[str, int], str] = {}

    # what a test does
    def add(self, *records: Record) -> None:
        for r in records:
            self.queued.setdefault((r.topic, r.partition), deque()).append(r)

    def assign_now(self, *keys: tuple[str, int]) -> None:
        """A rebalance hands these partitions over (the wrapper applies them, then calls back)."""
        self.assignment.update(keys)
        self.callbacks["on_assign"]([TopicPartition(t, p) for t, p in keys])

    def revoke_now(self, *keys: tuple[str, int]) -> None:
        self.callbacks["on_revoke"]([TopicPartition(t, p) for t, p in keys])
        self.assignment.difference_update(keys)  # the pause flag stays, as in librdkafka

    # the client interface
    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        on_lost: PartitionsCallback | None = None,
    ) -> None:
        for name, cb in (("on_assign", on_assign), ("on_revoke", on_revoke), ("on_lost", on_lost)):
            if cb is not None:
                self.callbacks[name] = cb

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        self.errors.extend(self.pending_errors)
        self.pending_errors = []
        out: list[Record] = []
        for key in sorted(self.assignment):
            if key in self.paused:
                continue
            queue = self.queued.get(key, deque())
            while queue and len(out) < max_records:
                out.append(queue.popleft())
        return out

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((p.topic, p.partition) for p in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((p.topic, p.partition) for p in partitions)

    def commit(self, offsets: list[TopicPartition]) -> None:
        self.commits.append(offsets)
        for tp in offsets:
            self.committed_offsets[(tp.topic, tp.partition)] = tp.offset

    def committed(
        self, partitions: list[TopicPartition], timeout: float = 10.0
    ) -> list[TopicPartition]:
        return [
            TopicPartition(
                p.topic, p.partition, self.committed_offsets.get((p.topic, p.partition), -1001)
            )
            for p in partitions
        ]

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(partition)

    def group_metadata(self) -> Any:
        return object()

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return partitions

    def watermarks(
        self, partition: TopicPartition, timeout: float = 5.0, cached: bool = False
    ) -> tuple[int, int]:
        return 0, 0

    def close(self) -> None:
        self.closed = True
        if self.close_error is not None:
            raise self.close_error


class FakeProducer:
    """Queues messages; ``poll`` delivers them, failing those ``refuse`` says no to."""

    def __init__(
        self, refuse: Callable[[str, bytes, bytes | None], KafkaError | None] | None = None
    ):
        self.refuse = refuse or (lambda topic, value, key: None)
        self.queue: list[tuple[str, bytes, bytes | None, Any]] = []
        self.delivered: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.headers: dict[int, list[tuple[str, bytes]]] = {}
        self.attempts = 0
        self.connected: list[str] = []  # the topics ``connect`` looked up

    def connect(self, topics: Sequence[str], timeout: float = 10.0) -> list[str]:
        self.connected.extend(topics)
        return []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        headers: Sequence[tuple[str, str | bytes]] | None = None,
        on_delivery: Any = None,
    ) -> None:
        self.attempts += 1
        k = key.encode() if isinstance(key, str) else key
        h = [(n, v.encode() if isinstance(v, str) else v) for n, v in (headers or [])]
        self.queue.append((topic, value, k, (on_delivery, h)))

    def poll(self, timeout: float = 0.0) -> int:
        queue, self.queue = self.queue, []
        for topic, value, key, (callback, headers) in queue:
            error = self.refuse(topic, value, key)
            if error is None:
                self.delivered.append((topic, value, key, headers))
            if callback is not None:
                callback(error, None)
        return len(queue)

    def __len__(self) -> int:
        return len(self.queue)


def size_error() -> KafkaError:
    return KafkaError(
        confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"
    )


class FakeTransactionalProducer(FakeProducer):
    """A transactional producer whose first ``abort_times`` commits fail as abortable."""

    def __init__(self, abort_times: int = 0) -> None:
        super().__init__()
        self.abort_times = abort_times
        self.aborted = 0
        self.committed = 0

    def init_transactions(self, timeout: float = 30.0) -> None:
        return None

    def begin_transaction(self) -> None:
        return None

    def send_offsets_to_transaction(self, offsets: object, meta: object, t: float = 30) -> None:
        return None

    def commit_transaction(self, timeout: float = 30.0) -> None:
        if self.abort_times > 0:
            self.abort_times -= 1
            raise confluent_kafka.KafkaException(
                KafkaError(KafkaError._FENCED, "abortable", txn_requires_abort=True)
            )
        self.poll()
        self.committed += 1

    def abort_transaction(self, timeout: float = 30.0) -> None:
        self.queue.clear()
        self.aborted += 1
