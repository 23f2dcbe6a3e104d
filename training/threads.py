"""Torch CPU threads for training, measured on the run's own steps.

torch's OpenMP threads wait for each other at the end of every parallel region.
On a machine whose cores other processes also use, a descheduled thread stalls
the rest: measured on a 2-core Xeon at load average ~5.5, a LoRA step took 6.8 s
with 2 threads and 0.88 s with 1 (interleaved, same batches); on a quiet machine
all cores win. So no thread count is right everywhere: ``ThreadTuner`` times
real training steps with each candidate count in turn (a short probe), keeps the
fastest, and probes again every ``every`` steps as the load changes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import torch


def thread_candidates(cores: int) -> list[int]:
    """All the cores, half of them and one: the counts worth probing."""
    return sorted({max(1, cores), max(1, cores // 2), 1}, reverse=True)


class ThreadTuner:
    def __init__(
        self,
        candidates: Sequence[int],
        *,
        probe_steps: int = 2,
        every: int = 150,
        first_probe: int = 2,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.candidates = list(candidates)
        self.probe_steps = probe_steps
        self.every = every
        self.set_threads = set_threads
        self.current = self.candidates[0]
        self.next_probe = first_probe
        self._times: dict[int, list[float]] = {}
        self.choices: list[tuple[int, int]] = []  # (step, threads) after each probe

    @property
    def probe_length(self) -> int:
        return self.probe_steps * len(self.candidates)

    def before_step(self, step: int) -> None:
        if len(self.candidates) < 2:
            return
        offset = step - self.next_probe
        if 0 <= offset < self.probe_length:
            threads = self.candidates[offset % len(self.candidates)]
            if threads != self.current:
                self.set_threads(threads)
                self.current = threads

    def after_step(self, step: int, seconds: float) -> None:
        if len(self.candidates) < 2:
            return
        offset = step - self.next_probe
        if not 0 <= offset < self.probe_length:
            return
        self._times.setdefault(self.current, []).append(seconds)
        if offset == self.probe_length - 1:
            best = min(self._times, key=lambda t: statistics.median(self._times[t]))
            self._times.clear()
            if best != self.current:
                self.set_threads(best)
                self.current = best
            self.choices.append((step + 1, best))
            self.next_probe += self.every
