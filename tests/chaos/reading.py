"""Reading the output topics back, counting by key, and checking commits against outputs."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import KafkaError, TopicPartition

from consumer.events import ClassifiedTicket, DeadLetter, ReviewRequest
from consumer.settings import KafkaSettings, Settings
from tests.chaos.figures import Figures
from tests.chaos.producing import Landed


@dataclass
class Outputs:
    """Everything on the three output topics, counted by message key."""

    by_topic: dict[str, Counter[str]]
    reasons: dict[str, str] = field(default_factory=dict)  # dead-letter key -> error_type
    source_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    bad_values: list[str] = field(default_factory=list)
    places: dict[str, list[str]] = field(default_factory=dict)  # key -> "topic-partition" each

    def keys(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_topic.values():
            total.update(counts)
        return total

    def count(self, topic: str) -> int:
        return sum(self.by_topic.get(topic, Counter()).values())


class OutputReader:
    """Reads the classified / review / dead-letter topics from the beginning, incrementally."""

    def __init__(self, settings: Settings, isolation: str = "read_uncommitted") -> None:
        t = settings.topics
        self.names = {"classified": t.classified, "review": t.review, "dead_letter": t.dead_letter}
        self.consumer = RawConsumer(
            {
                **settings.kafka.client_config(),
                "group.id": f"chaos-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "isolation.level": isolation,
                "fetch.message.max.bytes": 8 * 1024 * 1024,
                "fetch.wait.max.ms": 50,
            }
        )
        self.out = Outputs({name: Counter() for name in self.names})
        self.isolation = isolation
        self.at_end: set[tuple[str, int]] = set()  # partitions that reported end-of-partition
        self.next_offset: dict[tuple[str, int], int] = {}
        self.partitions: list[TopicPartition] = []
        for topic in self.names.values():
            meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue  # created later (missing-topic scenario): call refresh()
            self.partitions += [TopicPartition(topic, p, 0) for p in meta.partitions]
        self.consumer.assign(self.partitions)

    def refresh_assignment(self) -> None:
        known = {(tp.topic, tp.partition) for tp in self.partitions}
        added = []
        for topic in self.names.values():
            meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            added += [
                TopicPartition(topic, p, 0) for p in meta.partitions if (topic, p) not in known
            ]
        if added:
            self.partitions += added
            self.consumer.incremental_assign(added)

    def drain(self, timeout: float = 20.0) -> Outputs:
        """Read what the output topics hold now.

        read_uncommitted: up to the high watermarks taken at the call. read_committed: until
        every partition reported end-of-partition (its last stable offset), as the high
        watermark may lie behind an open or aborted transaction.
        """
        route_of = {v: k for k, v in self.names.items()}
        targets: dict[tuple[str, int], int] = {}
        if self.isolation == "read_uncommitted":
            for tp in self.partitions:
                high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                targets[(tp.topic, tp.partition)] = high
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.consumer.consume(500, 0.2)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        key = (msg.topic(), msg.partition())
                        self.at_end.add(key)
                        # The end may lie past a transaction marker (never delivered).
                        self.next_offset[key] = max(self.next_offset.get(key, 0), msg.offset())
                    continue
                self.at_end.discard((msg.topic(), msg.partition()))
                self.next_offset[(msg.topic(), msg.partition())] = msg.offset() + 1
                self._take(route_of[msg.topic()], msg.key(), msg.value())
                name = (msg.key() or b"").decode("utf-8", "replace")
                self.out.places.setdefault(name, []).append(f"{msg.topic()}-{msg.partition()}")
            if batch:
                continue
            if targets:
                if all(self.next_offset.get(k, 0) >= hi for k, hi in targets.items()):
                    break
            elif self.at_end >= {(tp.topic, tp.partition) for tp in self.partitions}:
                break
        return self.out

    def _take(self, route: str, key: bytes | None, value: bytes | None) -> None:
        name = (key or b"").decode("utf-8", "replace")
        self.out.by_topic[route][name] += 1
        try:
            if route == "dead_letter":
                event = DeadLetter.model_validate_json(value or b"")
                self.out.reasons[name] = event.error_type
                self.out.source_offsets[name] = (event.source_partition, event.source_offset)
            else:
                model = ClassifiedTicket if route == "classified" else ReviewRequest
                ticket = model.model_validate_json(value or b"").ticket
                if ticket.id != name:
                    self.out.bad_values.append(f"{route}: key {name!r} holds ticket {ticket.id!r}")
        except ValueError as exc:
            self.out.bad_values.append(f"{route}: {name!r}: {exc}"[:300])

    def wait_for(self, expected: set[str], timeout: float = 90.0, linger: float = 1.5) -> Outputs:
        """Drain until every expected key is seen, then once more after ``linger`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain(timeout=max(1.0, deadline - time.monotonic()))
            if expected <= set(self.out.keys()):
                break
            time.sleep(0.5)
        time.sleep(linger)
        return self.drain()

    def close(self) -> None:
        self.consumer.close()


def tally(
    scenario: str, landed: Sequence[Landed], out: Outputs, started: float, **notes: Any
) -> Figures:
    """Lost (input keys without output) and duplicated (extra outputs) for one run."""
    keys = out.keys()
    expected = [x.key for x in landed]
    lost = sum(1 for k in set(expected) if keys[k] == 0)
    duplicated = sum(c - 1 for k, c in keys.items() if c > 1)
    strangers = set(keys) - set(expected)
    if strangers:
        notes["unexpected_keys"] = len(strangers)
    return Figures(
        scenario=scenario,
        inputs=len(landed),
        classified=out.count("classified"),
        review=out.count("review"),
        dead_letter=out.count("dead_letter"),
        lost=lost,
        duplicated=duplicated,
        seconds=time.monotonic() - started,
        notes=notes,
    )


def committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = RawConsumer({**kafka.client_config(), "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
        return {tp.partition: tp.offset for tp in parts}
    finally:
        consumer.close()


def assert_commit_not_past_output(
    landed: Sequence[Landed], delivered: set[str], offsets: dict[int, int]
) -> int:
    """Every raw record below the committed offset of its partition has its output.

    Returns how many records lie below the committed offsets (the committed prefix).
    """
    below = [x for x in landed if x.offset < offsets.get(x.partition, -1)]
    missing = [x for x in below if x.key not in delivered]
    assert not missing, (
        f"committed offsets {offsets} are past {len(missing)} record(s) without output,"
        f" e.g. {missing[:3]}"
    )
    return len(below)
