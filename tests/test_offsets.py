from __future__ import annotations

from consumer.offsets import OffsetTracker


def test_commit_stops_at_first_undelivered_record() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 15):
        tracker.add("raw", 0, offset)
    assert tracker.committable() == {("raw", 0): 10}
    tracker.mark_done("raw", 0, 11)
    tracker.mark_done("raw", 0, 12)
    assert tracker.committable() == {("raw", 0): 10}, "10 is not delivered yet"
    tracker.mark_done("raw", 0, 10)
    assert tracker.committable() == {("raw", 0): 13}
    tracker.mark_done("raw", 0, 14)
    tracker.mark_done("raw", 0, 13)
    assert tracker.committable() == {("raw", 0): 15}
    assert tracker.in_flight() == 0


def test_partitions_are_independent_and_commits_are_not_repeated() -> None:
    tracker = OffsetTracker()
    tracker.add("raw", 0, 0)
    tracker.add("raw", 1, 7)
    tracker.mark_done("raw", 1, 7)
    offsets = tracker.committable()
    assert offsets == {("raw", 0): 0, ("raw", 1): 8}
    tracker.mark_committed(offsets)
    assert tracker.committable() == {}
    tracker.mark_done("raw", 0, 0)
    assert tracker.committable() == {("raw", 0): 1}


def test_forgotten_partition_ignores_late_deliveries() -> None:
    tracker = OffsetTracker()
    tracker.add("raw", 2, 5)
    tracker.forget([("raw", 2)])
    tracker.mark_done("raw", 2, 5)
    assert tracker.committable() == {}
    assert tracker.in_flight() == 0


def test_redelivered_offsets_after_seek_are_not_double_counted() -> None:
    tracker = OffsetTracker()
    tracker.add("raw", 0, 3)
    tracker.add("raw", 0, 3)
    assert tracker.in_flight() == 1
