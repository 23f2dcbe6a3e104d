"""The source: pause/resume across rebalances, and nothing polled is ever discarded."""

from __future__ import annotations

import time

from consumer.source import RecordSource
from tests.fakes import FakeConsumer, record


def _source() -> tuple[RecordSource, FakeConsumer]:
    consumer = FakeConsumer()
    source = RecordSource(consumer)
    source.subscribe(["raw"])
    return source, consumer


def test_a_partition_assigned_while_paused_is_paused_and_its_records_are_kept() -> None:
    source, consumer = _source()
    consumer.assign_now(("raw", 0))
    consumer.add(record(0, 0))
    assert [r.offset for r in source.poll(10, 0)] == [0]
    source.pause()
    consumer.assign_now(("raw", 1))
    assert ("raw", 1) in consumer.paused, "assigned while paused: paused at once"
    consumer.add(record(1, 0), record(1, 1))
    assert source.poll(10, 0) == []
    source.resume()
    got = source.poll(10, 0)
    assert [(r.partition, r.offset) for r in got] == [(1, 0), (1, 1)]


def test_records_polled_while_paused_are_handed_out_after_resume() -> None:
    """The keep-alive poll of a paused source keeps what a not-yet-paused partition returns."""
    source, consumer = _source()
    consumer.assign_now(("raw", 0))
    source.pause()
    consumer.paused.clear()  # a partition the client fetched before the pause took effect
    consumer.add(record(0, 5), record(0, 6))
    assert source.poll(10, 0) == []
    assert source.buffered == 2
    source.resume()
    assert [r.offset for r in source.poll(10, 0)] == [5, 6]


def test_a_partition_revoked_while_paused_and_assigned_back_is_consumed_again() -> None:
    source, consumer = _source()
    consumer.assign_now(("raw", 0), ("raw", 1))
    source.pause()
    consumer.revoke_now(("raw", 1))
    assert ("raw", 1) in consumer.paused  # librdkafka keeps the application pause
    source.resume()
    consumer.assign_now(("raw", 1))
    consumer.add(record(1, 0))
    assert [(r.partition, r.offset) for r in source.poll(10, 0)] == [(1, 0)]


def test_revoked_partitions_leave_the_buffer() -> None:
    source, consumer = _source()
    consumer.assign_now(("raw", 0), ("raw", 1))
    source.pause()
    consumer.paused.clear()
    consumer.add(record(0, 0), record(1, 0))
    source.poll(10, 0)
    consumer.revoke_now(("raw", 1))
    source.resume()
    assert [(r.partition, r.offset) for r in source.poll(10, 0)] == [(0, 0)]


def test_poll_returns_at_most_max_records_and_keeps_the_order() -> None:
    source, consumer = _source()
    consumer.assign_now(("raw", 0))
    consumer.add(*(record(0, i) for i in range(7)))
    assert [r.offset for r in source.poll(3, 0)] == [0, 1, 2]
    assert [r.offset for r in source.poll(10, 0)] == [3, 4, 5, 6]


def test_fill_buffers_without_handing_out_and_knows_how_long_the_oldest_waited() -> None:
    source, consumer = _source()
    consumer.assign_now(("raw", 0), ("raw", 1))
    assert source.oldest_wait() == 0.0
    consumer.add(record(1, 0))
    source.fill(8, 0)
    first = time.monotonic()
    time.sleep(0.05)
    consumer.add(record(0, 0), record(0, 1))
    source.fill(8, 0)
    assert source.buffered == 3
    assert source.oldest_wait() >= 0.05
    # The revoked partition's record leaves with its arrival time: the wait is the next one's.
    consumer.revoke_now(("raw", 1))
    assert source.buffered == 2
    assert source.oldest_wait() < time.monotonic() - first
    assert [(r.partition, r.offset) for r in source.poll(8, 0)] == [(0, 0), (0, 1)]
    assert source.oldest_wait() == 0.0
    consumer.add(*(record(0, i) for i in range(2, 12)))
    source.fill(4, 0)
    assert source.buffered == 4  # no more than asked for
