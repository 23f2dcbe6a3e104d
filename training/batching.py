"""Training batches.

Texts are tokenized once, without padding, by the serving tokenizer call
(``consumer.predictor.tokenize``). Batches are padded to their own longest text
(dynamic padding, ``consumer.predictor.pad``) and, when ``length_grouping`` is
on, made of texts of similar length: on a CPU the padded tokens are most of the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Batches are formed inside windows of this many batches, sorted by length, so
# that batches stay random while their texts have similar lengths.
GROUP_WINDOW = 50


def epoch_order(labels: np.ndarray, *, balanced: bool, rng: np.random.Generator) -> np.ndarray:
    """Example indices for one epoch: a permutation, or a class-balanced draw."""
    n = len(labels)
    if not balanced:
        return rng.permutation(n)
    y = labels
    counts = np.bincount(y)
    weights = 1.0 / counts[y]
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


def make_batches(
    order: np.ndarray,
    lengths: Sequence[int],
    batch_size: int,
    *,
    group_by_length: bool,
    rng: np.random.Generator,
) -> list[list[int]]:
    """Split an epoch's order into batches (length-grouped within windows), shuffled."""
    idx = [int(i) for i in order]
    if group_by_length:
        window = batch_size * GROUP_WINDOW
        grouped: list[int] = []
        for start in range(0, len(idx), window):
            chunk = idx[start : start + window]
            grouped.extend(sorted(chunk, key=lambda i: lengths[i]))
        idx = grouped
    batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    if group_by_length:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))
