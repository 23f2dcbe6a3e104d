"""Per-partition offset tracking: commit only past contiguously delivered records."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TopicPartitionKey = tuple[str, int]


@dataclass
class _PartitionState:
    pending: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    outputs_left: dict[int, int] = field(default_factory=dict)  # offsets with > 1 output
    next_offset: int | None = None  # first offset not yet safely delivered
    committed: int | None = None


class OffsetTracker:
    """Records enter as pending when consumed and leave when their output is delivered.

    The committable offset of a partition is the first offset that is still
    pending (or one past the last delivered one): everything before it has been
    delivered, so a restart from there loses nothing.
    """

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, _PartitionState] = {}

    def add(self, topic: str, partition: int, offset: int, outputs: int = 1) -> None:
        state = self._parts.setdefault((topic, partition), _PartitionState())
        if state.pending and offset <= state.pending[-1]:
            return  # re-delivered after a seek: already tracked
        if state.next_offset is not None and offset < state.next_offset and not state.pending:
            return
        if state.next_offset is None:
            state.next_offset = offset
        state.pending.append(offset)
        if outputs > 1:
            state.outputs_left[offset] = outputs

    def mark_done(self, topic: str, partition: int, offset: int) -> None:
        """One output of the record at ``offset`` was delivered."""
        state = self._parts.get((topic, partition))
        if state is None:
            return  # partition was revoked meanwhile
        left = state.outputs_left.get(offset)
        if left is not None:
            if left > 1:
                state.outputs_left[offset] = left - 1
                return
            del state.outputs_left[offset]
        state.done.add(offset)
        while state.pending and state.pending[0] in state.done:
            first = state.pending.popleft()
            state.done.discard(first)
            state.next_offset = first + 1

    def in_flight(self) -> int:
        return sum(len(s.pending) for s in self._parts.values())

    def committable(self) -> dict[TopicPartitionKey, int]:
        """Partitions whose safe offset moved past the last commit."""
        out: dict[TopicPartitionKey, int] = {}
        for key, state in self._parts.items():
            safe = state.pending[0] if state.pending else state.next_offset
            if safe is not None and (state.committed is None or safe > state.committed):
                out[key] = safe
        return out

    def mark_committed(self, offsets: dict[TopicPartitionKey, int]) -> None:
        for key, offset in offsets.items():
            state = self._parts.get(key)
            if state is not None:
                state.committed = offset

    def forget(self, keys: list[TopicPartitionKey]) -> None:
        for key in keys:
            self._parts.pop(key, None)

    def reset(self) -> None:
        self._parts.clear()
