"""Which texts of a batch the model runs together: chunks of similar length, little padding.

Every row of a chunk is padded to the chunk's longest, and the encoder's work grows with
the padded tokens (its attention with their square). Support tickets are short questions
and long emails cut at ``max_length``, so a batch's lengths spread widely: fixed chunks of
16 length-sorted rows padded the bench's mixed tickets to 1.53 times their tokens in
batches of 32 and 2.21 times in batches of 10 (one chunk); these chunks pad them 1.22 and
1.33 times. Fewer, larger chunks run more efficiently, though: each forward pass has a
fixed cost. ``length_chunks`` cuts the sorted rows where the padding saved outweighs that
cost, ``overhead_tokens`` per chunk (exactly, by dynamic programming over the cut points:
a batch is at most a few hundred rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A forward pass's fixed cost, in padded tokens, per torch thread of the calling thread (its
# threads meet at the end of every operation, and each of them has fewer tokens to do).
# Measured on the 2-core Xeon, batches of the bench's mixed tickets, speed relative to
# fixed chunks of 16 (taken in turn; two runs of the bf16 two-thread row):
#   overhead tokens        16    32    64   128   256
#   bf16 1 thread, 32     0.87  1.02  1.08  1.09  1.07
#   bf16 1 thread, 10     1.04  1.17  1.27  1.30  1.20
#   fp32 2 threads, 32    1.10  1.17  1.21  1.20  1.12
#   fp32 2 threads, 10    1.12  1.22  1.29  1.28  1.15
#   int8 2 threads, 32    1.03  1.13  1.23  1.25  1.06
#   bf16 2 threads, 32    0.73  0.84  0.92  0.97  1.03
#                         0.76  0.87  0.93  0.83  1.04
# 128 per thread is at or above fixed chunks in every row, and near the best with one
# thread (what each inference worker runs with here). A GPU's chunks use
# ``GPU_OVERHEAD_TOKENS``: there a forward's fixed cost (kernel launches) is worth thousands
# of tokens, so a batch stays whole unless the padding it saves is larger still.
CPU_OVERHEAD_TOKENS_PER_THREAD = 128
GPU_OVERHEAD_TOKENS = 4096


def overhead_tokens(device: str, threads: int) -> float:
    """A forward's fixed cost in padded tokens on ``device`` with ``threads`` torch threads."""
    if device == "cuda":
        return GPU_OVERHEAD_TOKENS
    return CPU_OVERHEAD_TOKENS_PER_THREAD * max(1, threads)


def length_chunks(lengths: Sequence[int], max_rows: int, chunk_cost: float) -> list[list[int]]:
    """Positions into ``lengths`` grouped into chunks of at most ``max_rows``, shortest first,
    minimising the padded tokens plus ``chunk_cost`` (tokens) per chunk."""
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(np.asarray(lengths), kind="stable")
    ls = np.asarray(lengths, dtype=np.float64)[order]
    cap = max(1, max_rows)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - cap), end)
        # a chunk of rows [start, end) pads to its last (longest) row
        costs = best[starts] + (end - starts) * ls[end - 1] + chunk_cost
        pick = int(np.argmin(costs))
        best[end], cut[end] = costs[pick], starts[pick]
    bounds: list[tuple[int, int]] = []
    end = n
    while end > 0:
        bounds.append((int(cut[end]), end))
        end = int(cut[end])
    return [order[start:stop].tolist() for start, stop in reversed(bounds)]
