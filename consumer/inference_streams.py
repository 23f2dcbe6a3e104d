"""How many batches the model runs at once on the CPU: measured on the serving machine.

torch runs one batch on all its CPU threads, and they wait for each other at the end of
every operation; the encoder's matrices at a few dozen tokens are small, so on a small CPU
much of that is waiting. Measured on a 2-core Xeon (bf16, batches of 32 mixed tickets, taken
in turn): one batch on both cores 315-419 tickets/s, two batches on one core each 437-518
together. Whether that holds depends on the chip, the precision and the core count, so the
service times both at start-up, on the served model, the way it will run them: one
``InferenceWorker`` with all the threads against ``n`` workers with ``threads / n`` each.

``BatchingSettings.inference_workers`` forces a count; a GPU runs one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from consumer.inference import InferenceWorker
from consumer.precision import interleaved_speeds
from consumer.predictor import Outputs, Predictor

ROUNDS = 3
BUDGET_S = 1.5  # more rounds while the timed ones took less (a fast machine)

_CACHE: dict[tuple[str, str, str, str, int], Streams] = {}


@dataclass(frozen=True)
class Streams:
    """The chosen worker count, torch threads per worker, and what it was chosen on."""

    workers: int
    threads: int | None  # None: torch's own count (one worker)
    reason: str  # "configured", "gpu", "one_thread" or "measured"
    speeds: dict[int, float] = field(default_factory=dict)  # workers -> tickets/s

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "threads_per_worker": self.threads or torch.get_num_threads(),
            "reason": self.reason,
            **({"speeds": {str(k): v for k, v in self.speeds.items()}} if self.speeds else {}),
        }


def candidates(threads: int) -> list[int]:
    """Worker counts worth timing: one, one per two threads, one per thread."""
    return sorted({1, max(1, threads // 2), max(1, threads)})


def split(threads: int, workers: int) -> int | None:
    """torch threads for each of ``workers`` (None: one worker keeps the service's count)."""
    return None if workers == 1 else max(1, threads // workers)


def sample_rows(predictor: Predictor, rows: int) -> list[list[int]]:
    """A batch of ``rows`` random token rows, half at the warm-up's mean length, half long."""
    lengths = predictor.warm_up_lengths()
    high = max(predictor.vocab_size, 1001)
    generator = np.random.default_rng(0)
    return [
        generator.integers(1000, high, lengths[i * len(lengths) // rows]).tolist()
        for i in range(rows)
    ]


def measure(predictor: Predictor, counts: list[int], batch: int) -> dict[int, float]:
    """Tickets/s with each worker count: ``n`` workers each run a batch of ``batch``."""
    threads = torch.get_num_threads()
    rows = sample_rows(predictor, batch)
    pools: dict[int, InferenceWorker[list[list[int]], Outputs]] = {
        n: InferenceWorker(predictor.outputs_from_ids, n, workers=n, threads=split(threads, n))
        for n in counts
    }

    def forward(pool: InferenceWorker[list[list[int]], Outputs]) -> Any:
        def run() -> object:
            for _ in range(pool.workers):
                pool.submit(rows, 0)
            return pool.take_all()

        return run

    try:
        speeds = interleaved_speeds(
            {str(n): forward(pool) for n, pool in pools.items()},
            {str(n): n * batch for n in pools},
            ROUNDS,
            budget_s=BUDGET_S,
        )
    finally:
        for pool in pools.values():
            pool.stop()
    return {int(name): rate for name, rate in speeds.items()}


def choose(predictor: Predictor, configured: int | None, batch: int) -> Streams:
    """The worker count to serve with (``configured`` when set)."""
    threads = torch.get_num_threads()
    if configured:
        return Streams(configured, split(threads, configured), "configured")
    if predictor.device == "cuda":
        return Streams(1, None, "gpu")
    counts = candidates(threads)
    if len(counts) == 1:
        return Streams(1, None, "one_thread")
    key = (
        str(predictor.model.path),
        predictor.version,
        predictor.spec,
        predictor.hardware.signature(),
        batch,
    )
    if key not in _CACHE:
        speeds = measure(predictor, counts, batch)
        best = max(speeds, key=lambda n: speeds[n])
        _CACHE[key] = Streams(best, split(threads, best), "measured", speeds)
    return _CACHE[key]
