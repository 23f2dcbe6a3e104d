"""The model on its own threads: the service prepares the next batch while these run.

``InferenceWorker`` takes prepared batches (validated, cleaned, tokenized) through a bounded
queue, runs ``finish`` on them (``BatchStep.finish``: predict, route) on ``workers`` threads,
and hands the
results back in the order they were submitted, so commit order is what it would be without
the threads. The queue's bound is the backpressure: the service polls no more than ``depth``
batches ahead. Each batch carries a generation: after an exactly-once rewind the service
moves to the next generation and drops what was in flight, since it will be read again.

With more than one worker each runs its batch on its own share of torch's CPU threads
(``threads`` each): on a small CPU two batches on one core each beat one batch on both
cores, whose threads wait for each other at the end of every operation
(``consumer.inference_streams`` measures which is faster on the serving machine).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from consumer.errors import TicketsortError

Batch = TypeVar("Batch")
Result = TypeVar("Result")


@dataclass
class _Job(Generic[Batch]):
    sequence: int
    generation: int
    batch: Batch


class InferenceFailed(TicketsortError):
    """The model raised on an inference thread (re-raised on the service's thread)."""


def pin_threads(threads: int | None) -> int:
    """Give the calling thread ``threads`` torch CPU threads of its own; its count after.

    torch keeps one count per thread, read by a thread the first time it asks; setting it
    also sets the count later threads start with, which ``restore_threads`` puts back.
    """
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()  # a thread's first read fixes its own count


def restore_threads(threads: int) -> None:
    """Put back the count for the calling thread and for threads started from now on."""
    torch.set_num_threads(threads)


class InferenceWorker(Generic[Batch, Result]):
    def __init__(
        self,
        finish: Callable[[Batch], Result],
        depth: int,
        *,
        workers: int = 1,
        threads: int | None = None,
    ) -> None:
        self.finish = finish
        self.workers = max(1, workers)
        self.threads = threads  # torch threads asked for each worker (None: the caller's)
        self.depth = max(self.workers, depth)
        self._jobs: queue.Queue[_Job[Batch] | None] = queue.Queue()
        self._done: dict[int, tuple[int, Result]] = {}  # sequence -> (generation, result)
        self._cond = threading.Condition()
        self._submitted = 0  # sequence numbers handed out
        self._taken = 0  # the sequence number handed back next
        self._error: BaseException | None = None
        self.thread_counts: list[int] = []  # torch threads each worker runs with
        main_threads = torch.get_num_threads()
        ready = threading.Barrier(self.workers + 1)
        self._threads = [
            threading.Thread(
                target=self._run, args=(ready, threads), name=f"inference-{i}", daemon=True
            )
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        try:
            ready.wait()  # every worker holds its own count before the service's is put back
        except threading.BrokenBarrierError:
            self.stop()
            raise InferenceFailed(f"an inference worker did not start: {self._error!r}") from None
        finally:
            restore_threads(main_threads)

    def _run(self, ready: threading.Barrier, threads: int | None) -> None:
        try:
            count = pin_threads(threads)
        except BaseException as exc:  # the constructor raises it
            self._error = exc
            ready.abort()
            return
        with self._cond:
            self.thread_counts.append(count)
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return  # another worker failed to start
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                result = self.finish(job.batch)
            except BaseException as exc:  # handed to the service's thread
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._done[job.sequence] = (job.generation, result)
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Submitted and not yet taken."""
        return self._submitted - self._taken

    @property
    def busy(self) -> bool:
        """Every worker has a batch: a new one would wait for the model."""
        return self.pending >= self.workers

    def has_room(self) -> bool:
        return self.pending < self.depth

    def submit(self, batch: Batch, generation: int) -> None:
        self._jobs.put(_Job(self._submitted, generation, batch))
        self._submitted += 1

    def take(self, wait_s: float = 0.0) -> list[tuple[int, Result]]:
        """The finished batches, oldest first, up to the first one still running (results
        never overtake each other); waits up to ``wait_s`` for the oldest when none is."""
        with self._cond:
            if self.pending and wait_s > 0:
                self._cond.wait_for(
                    lambda: self._error is not None or self._taken in self._done, wait_s
                )
            if self._error is not None:
                raise InferenceFailed(
                    f"{type(self._error).__name__}: {self._error}"
                ) from self._error
            out = []
            while self._taken in self._done:
                out.append(self._done.pop(self._taken))
                self._taken += 1
        return out

    def take_all(self, timeout_s: float = 60.0) -> list[tuple[int, Result]]:
        """Wait for every submitted batch (before a commit on revoke, or on shutdown)."""
        out: list[tuple[int, Result]] = []
        while self.pending:
            got = self.take(timeout_s)
            if not got:
                raise InferenceFailed(f"a batch did not finish within {timeout_s:.0f} s")
            out.extend(got)
        return out

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
