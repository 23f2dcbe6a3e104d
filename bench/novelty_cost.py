"""What the novelty score costs: model-only throughput with and without it.

    .venv/bin/python -m bench.novelty_cost --model MODEL_DIR [--seconds 5] [--rounds 3]

Same predictor, same texts, same batch size; the scorer is switched off and on
between interleaved rounds (A B A B ...), so load drift on a shared machine
hits both sides alike; the medians are compared. Besides the model's own
scorer, a cosine kNN scorer with a bank the size of the model's training slice
(random unit vectors: its cost depends only on the bank size) is timed the same
way, so both candidates' costs come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench import corpus, model_only
from consumer.model_store import load_model
from consumer.novelty import NoveltyScorer, fit_knn
from consumer.predictor import Predictor
from consumer.settings import ModelSettings


def _rate(predictor: Predictor, texts: list[str], batch: int, seconds: float) -> float:
    return float(model_only.measure(predictor, texts, batch, seconds)["tickets_per_s"])


def compare(
    predictor: Predictor,
    texts: list[str],
    batch: int,
    scorers: dict[str, NoveltyScorer],
    seconds: float = 5.0,
    rounds: int = 3,
) -> dict[str, Any]:
    original = predictor.novelty
    rates: dict[str, list[float]] = {"none": [], **{name: [] for name in scorers}}
    try:
        for _ in range(rounds):
            predictor.set_novelty(None)
            rates["none"].append(_rate(predictor, texts, batch, seconds))
            for name, scorer in scorers.items():
                predictor.set_novelty(scorer)
                rates[name].append(_rate(predictor, texts, batch, seconds))
    finally:
        predictor.novelty = original
    base = statistics.median(rates["none"])
    out: dict[str, Any] = {
        "batch_size": batch,
        "precision": predictor.precision,
        "rounds": rounds,
        "seconds_per_round": seconds,
        "without_tickets_per_s": round(base, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for name in scorers:
        rate = statistics.median(rates[name])
        out[name] = {
            "tickets_per_s": round(rate, 1),
            "cost_share": round(1 - rate / base, 4),
            "rates": [round(r, 1) for r in rates[name]],
        }
    out["none_rates"] = [round(r, 1) for r in rates["none"]]
    return out


def measure(
    model_dir: Path,
    settings: ModelSettings,
    texts: list[str],
    batch: int,
    seconds: float = 5.0,
    rounds: int = 3,
    knn_bank: int | None = None,
) -> dict[str, Any] | None:
    model = load_model(model_dir, settings.base_model)
    if model.novelty is None:
        return None
    predictor = Predictor(model, settings)
    scorers: dict[str, NoveltyScorer] = {model.novelty.method: model.novelty}
    if model.novelty.method != "knn":
        n = knn_bank or int(model.novelty.meta.get("fit_examples", 8000))
        rng = np.random.default_rng(0)
        bank = rng.normal(size=(n, model.novelty.dim)).astype(np.float32)
        scorers[f"knn (bank of {n}, cost only)"] = fit_knn(bank, k=10)
    return compare(predictor, texts, batch, scorers, seconds, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.novelty_cost")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--knn-bank", type=int, help="size of the kNN bank timed (default: train)")
    ns = parser.parse_args(argv)
    settings = ModelSettings(precision=ns.precision)
    from consumer.settings import BatchingSettings

    texts = corpus.cleaned_texts(corpus.mixed_raw_tickets(ns.texts))
    batch = BatchingSettings().max_batch
    result = measure(ns.model, settings, texts, batch, ns.seconds, ns.rounds, ns.knn_bank)
    print(json.dumps(result, indent=2))
    return 0 if result is not None else 2


if __name__ == "__main__":
    sys.exit(main())
