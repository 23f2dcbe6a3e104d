"""The model on its own thread: the service prepares the next batch while this one runs.

``InferenceWorker`` takes prepared batches (validated, cleaned) through a bounded queue, runs
``BatchStep.finish`` (predict, route) on one thread, and hands the results back in the order
they were submitted, so commit order is what it would be without the thread. The queue's
bound is the backpressure: the service polls no more than ``depth`` batches ahead. Each batch
carries a generation: after an exactly-once rewind the service moves to the next generation
and drops what was in flight, since it will be read again.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass

from consumer.batch_step import BatchStep, PreparedBatch
from consumer.errors import TicketsortError
from consumer.outputs import BatchResult


@dataclass
class _Job:
    generation: int
    batch: PreparedBatch


class InferenceFailed(TicketsortError):
    """The model raised on the inference thread (re-raised on the service's thread)."""


class InferenceWorker:
    def __init__(self, step: BatchStep, depth: int) -> None:
        self.step = step
        self.depth = max(1, depth)
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._done: deque[tuple[int, BatchResult]] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # submitted and not yet taken
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                result = self.step.finish(job.batch)
            except BaseException as exc:  # handed to the service's thread
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._done.append((job.generation, result))
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        return self._pending

    def has_room(self) -> bool:
        return self._pending < self.depth

    def submit(self, batch: PreparedBatch, generation: int) -> None:
        self._pending += 1
        self._jobs.put(_Job(generation, batch))

    def take(self, wait_s: float = 0.0) -> list[tuple[int, BatchResult]]:
        """The finished batches, oldest first; waits up to ``wait_s`` for one when none is."""
        with self._cond:
            if not self._done and self._error is None and self._pending and wait_s > 0:
                self._cond.wait(wait_s)
            if self._error is not None:
                raise InferenceFailed(
                    f"{type(self._error).__name__}: {self._error}"
                ) from self._error
            out = list(self._done)
            self._done.clear()
        self._pending -= len(out)
        return out

    def take_all(self, timeout_s: float = 60.0) -> list[tuple[int, BatchResult]]:
        """Wait for every submitted batch (before a commit on revoke, or on shutdown)."""
        out: list[tuple[int, BatchResult]] = []
        while self._pending:
            got = self.take(timeout_s)
            if not got:
                raise InferenceFailed(f"a batch did not finish within {timeout_s:.0f} s")
            out.extend(got)
        return out

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)
