"""Model-only throughput: tokenizer + model at the configured batch size."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from consumer.inference import InferenceWorker
from consumer.inference_streams import Streams
from consumer.predictor import Predictor


def measure(
    predictor: Predictor,
    texts: list[str],
    batch_size: int,
    min_seconds: float = 5.0,
    *,
    streams: Streams | None = None,
) -> dict[str, Any]:
    """Tickets per second, batches of ``batch_size`` in stream order, tokenization included.

    With ``streams`` of more than one worker, the batches run as the service runs them:
    tokenized on this thread, the model on ``streams.workers`` ``InferenceWorker`` threads.
    ``batch_ms`` is the time one batch spends with the model (with one worker, the time
    between batches).
    """
    workers = streams.workers if streams is not None else 1
    spent: list[float] = []

    def timed(token_ids: list[list[int]]) -> None:
        started = time.perf_counter()
        predictor.probabilities_from_ids(token_ids)
        spent.append(time.perf_counter() - started)

    pool = (
        InferenceWorker(timed, workers, workers=workers, threads=streams.threads)
        if streams is not None and workers > 1
        else None
    )

    def run(chunk: list[str]) -> None:
        if pool is None:
            timed(predictor.tokenize(chunk))
            return
        if not pool.has_room():
            pool.take(60.0)
        pool.submit(predictor.tokenize(chunk), 0)

    try:
        for start in range(0, min(len(texts), 2 * batch_size * workers), batch_size):  # warm-up
            run(texts[start : start + batch_size])
        if pool is not None:
            pool.take_all()
        spent.clear()
        done = 0
        batches = 0
        started = time.perf_counter()
        while True:
            for start in range(0, len(texts), batch_size):
                run(texts[start : start + batch_size])
                done += len(texts[start : start + batch_size])
                batches += 1
            if pool is not None:
                pool.take_all()
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
    finally:
        if pool is not None:
            pool.stop()
    tokens = [len(ids) for ids in predictor.tokenize(texts)]
    return {
        "device": predictor.device,
        "precision": predictor.precision,
        "batch_size": batch_size,
        "workers": workers,
        "tickets": done,
        "seconds": round(elapsed, 3),
        "tickets_per_s": round(done / elapsed, 1),
        "ms_per_batch": round(1000 * elapsed / batches, 2),
        "batch_ms": round(1000 * statistics.mean(spent), 2),
        "mean_tokens": round(float(np.mean(tokens)), 1),
    }


def flops_per_ticket(predictor: Predictor, tokens: float) -> float:
    """Forward FLOPs of the encoder for one ticket of ``tokens`` tokens (2 * MACs)."""
    config: Any = predictor.model.network.encoder.config
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_token_per_layer = 2 * (4 * h * h + 2 * h * inter)  # QKV+O projections and the MLP
    attention = 2 * 2 * tokens * h  # QK^T and AV, per token per layer
    return layers * tokens * (per_token_per_layer + attention)


def gemm_peak_gflops(size: int = 2048, seconds: float = 2.0) -> float:
    """The machine's practical fp32 peak: the best rate of a large fp32 matrix product
    (torch's GEMM, the same threads the model gets), in GFLOP/s."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def interleaved(
    rate: Callable[[str], float], names: Sequence[str], rounds: int = 3
) -> dict[str, Any]:
    """Each name's tickets/s over ``rounds`` rounds taken in turn (A B A B ...), medians.

    A ratio of two rows measured minutes apart carries the machine's drift between them (on
    a shared VM the same path measured twice in one run differed by a quarter); taken in turn,
    the drift falls on both sides alike.
    """
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            rates[name].append(float(rate(name)))
    return {
        "rounds": rounds,
        "rates": {name: [round(r, 1) for r in rs] for name, rs in rates.items()},
        "medians": {name: round(statistics.median(rs), 1) for name, rs in rates.items()},
    }
