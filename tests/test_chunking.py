"""``length_chunks``: every row once, chunks within their cap, and the cheapest cut."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from consumer.chunking import length_chunks, overhead_tokens
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.settings import ModelSettings
from tests.chaos.models import write_untrained_model


def _cost(lengths: list[int], chunks: list[list[int]], overhead: float) -> float:
    return sum(len(c) * max(lengths[i] for i in c) + overhead for c in chunks)


def _cheapest(lengths: list[int], cap: int, overhead: float) -> float:
    """Brute force over every cut of the length-sorted rows into runs of at most ``cap``."""
    ordered = sorted(lengths)
    n = len(ordered)
    best = float("inf")
    for cuts in itertools.product((False, True), repeat=n - 1):
        runs, start = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                runs.append(ordered[start:i])
                start = i
        runs.append(ordered[start:])
        if all(len(r) <= cap for r in runs):
            best = min(best, sum(len(r) * r[-1] + overhead for r in runs))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_chunks_hold_every_row_once_within_the_cap_at_the_least_cost(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(3, 20), 64]) for _ in range(rng.randint(1, 11))]
    cap, overhead = rng.randint(1, 6), rng.choice([0, 8, 64, 500])
    chunks = length_chunks(lengths, cap, overhead)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    assert all(1 <= len(c) <= cap for c in chunks)
    flat = [lengths[i] for c in chunks for i in c]
    assert flat == sorted(flat)  # shortest first, so a chunk's rows are neighbours in length
    assert _cost(lengths, chunks, overhead) == _cheapest(lengths, cap, overhead)


def test_short_questions_are_not_padded_to_a_long_email() -> None:
    """Ten tickets in one fixed chunk padded to 640 tokens for 236 real ones."""
    lengths = [9, 64, 12, 14, 64, 10, 16, 11, 13, 23]
    chunks = length_chunks(lengths, 16, 64)
    padded = sum(len(c) * max(lengths[i] for i in c) for c in chunks)
    assert padded < 0.6 * len(lengths) * max(lengths)
    for chunk in chunks:  # no short question rides with an email
        rows = [lengths[i] for i in chunk]
        assert max(rows) < 20 or min(rows) > 20


def test_a_large_fixed_cost_keeps_as_few_chunks_as_the_cap_allows() -> None:
    lengths = list(range(1, 41))
    assert len(length_chunks(lengths, 16, 1e9)) == 3
    assert length_chunks([], 16, 64) == []


def test_the_predictor_runs_short_questions_apart_from_a_long_email(tmp_path: Path) -> None:
    """With fixed chunks of 16 the ten questions ran padded to the email's 64 tokens; the
    predictor's chunks keep them short, and every ticket still gets its own answer."""
    model = load_model(write_untrained_model(tmp_path / "v-chunks"))
    predictor = Predictor(model, ModelSettings(precision="fp32"))
    email = " ".join(["the invoice was charged twice and nobody answers"] * 20)
    texts = [f"where is my card {i}" for i in range(10)] + [email]
    rows = predictor.tokenize(texts)
    widths = {len(idx): ids.shape[1] for idx, ids, _ in predictor._chunks(rows)}
    assert widths == {10: max(len(r) for r in rows[:10]), 1: len(rows[10])}
    alone = [predictor.probabilities_from_ids([row])[0] for row in rows]
    together = predictor.probabilities_from_ids(rows)
    assert np.allclose(together, np.stack(alone), atol=1e-5)


def test_the_fixed_cost_grows_with_the_threads_and_a_gpu_keeps_a_batch_whole() -> None:
    """Two threads meet at every operation: a chunk is dearer than on one, so fewer cuts."""
    lengths = [8] * 10 + [30] * 6  # one chunk: 480 padded tokens; two: 80 + 180
    one, two = (length_chunks(lengths, 16, overhead_tokens("cpu", t)) for t in (1, 2))
    assert overhead_tokens("cpu", 2) == 2 * overhead_tokens("cpu", 1)
    assert len(one) > len(two)
    assert len(length_chunks(lengths * 8, 256, overhead_tokens("cuda", 1))) == 1
