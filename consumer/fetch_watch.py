"""Assigned partitions that never start fetching: said out loud instead of waiting in silence.

A partition is fetched once its committed offset is known. With ``isolation.level=
read_committed`` (the exactly-once mode) librdkafka asks for *stable* offsets (KIP-447) and
retries, without end and without an error, while a transaction holds uncommitted offsets for
the group. A transaction the broker never finishes (a *hanging* transaction: Kafka 4.4 skips
the commit/abort markers of a transaction that completes while a partition it wrote has no
leader, e.g. while a single-node broker shuts down) keeps such a consumer assigned, healthy
and idle for good. librdkafka's statistics show the partition's fetch state staying "none";
after ``stall_s`` this is logged as an error naming the partitions and the remedy, and exported
as ``ticketsort_partitions_not_fetching``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PartitionKey = tuple[str, int]

# librdkafka's fetch state of a partition that waits for its start offset.
WAITING_STATES = frozenset({"none", "offset-query", "offset-wait"})

REMEDY = (
    "the committed offsets of these partitions are not available: most likely a transaction"
    " holds offsets for this group and the broker never completed it (a hanging transaction)."
    " Find it with `kafka-transactions.sh --bootstrap-server HOST:PORT find-hanging"
    " --broker-id N` and, once checked, end it with `kafka-transactions.sh abort` (see the"
    " README, Operations: a consumer that stays idle)"
)


class FetchWatch:
    """Tracks, per assigned partition, since when it has been waiting to start fetching."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._waiting_since: dict[PartitionKey, float] = {}
        self._reported: set[PartitionKey] = set()

    def observe(
        self,
        assigned: Iterable[PartitionKey],
        paused: bool,
        states: Mapping[PartitionKey, str],
        now: float,
    ) -> list[PartitionKey]:
        """The partitions that have just been waiting longer than ``stall_s`` (each once)."""
        assigned = set(assigned)
        for key in list(self._waiting_since):
            if key not in assigned or states.get(key) not in WAITING_STATES:
                del self._waiting_since[key]  # fetching now, or no longer ours
                self._reported.discard(key)
        if paused:  # a paused source fetches nothing on purpose: not a stall
            self._waiting_since.clear()
            self._reported.clear()
            return []
        for key in assigned:
            if states.get(key) in WAITING_STATES:
                self._waiting_since.setdefault(key, now)
        stalled = sorted(
            key
            for key, since in self._waiting_since.items()
            if now - since >= self.stall_s and key not in self._reported
        )
        self._reported.update(stalled)
        return stalled

    @property
    def not_fetching(self) -> list[PartitionKey]:
        """Partitions reported and still waiting."""
        return sorted(self._reported)
