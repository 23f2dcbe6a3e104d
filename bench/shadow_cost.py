"""What shadow scoring costs: batch-step throughput with no shadow, 10% and 100% of traffic.

    .venv/bin/python -m bench.shadow_cost --model MODEL_DIR [--seconds 5] [--rounds 3]

The batch step (validate, clean, predict, route; what the inference thread runs) over
the same raw tickets, with the shadow (a second load of the same model folder: the
cost of a model of the same size) off, at ``shadow.share`` 0.1 and at 1.0, in
interleaved rounds (A B C A B C ...) so that load drift hits every side alike;
medians compared. The served path is what ``auto`` picks; the shadow gets the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import corpus
from consumer.batch_step import BatchStep
from consumer.kafka import Record
from consumer.metrics import Metrics
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.settings import Settings
from consumer.shadow import ShadowScorer

SHARES = (0.0, 0.1, 1.0)


def _records(values: list[bytes], topic: str) -> list[Record]:
    return [
        Record(topic=topic, partition=0, offset=i, key=None, value=v, headers=(), timestamp_ms=0)
        for i, v in enumerate(values)
    ]


def _rate(step: BatchStep, records: list[Record], batch: int, seconds: float) -> float:
    done, started, i = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = records[i : i + batch] or records[:batch]
        i = i + batch if i + batch < len(records) else 0
        step.process(chunk)
        done += len(chunk)
    return done / (time.perf_counter() - started)


def measure(
    model_dir: Path,
    settings: Settings,
    values: list[bytes],
    *,
    seconds: float = 5.0,
    rounds: int = 3,
) -> dict[str, Any]:
    served = Predictor(load_model(model_dir, settings.model.base_model), settings.model)
    shadow = Predictor(load_model(model_dir, settings.model.base_model), settings.model)
    records = _records(values, settings.topics.raw)
    batch = settings.batching.max_batch
    steps: dict[float, BatchStep] = {}
    for share in SHARES:
        cfg = settings.model_copy(
            update={"shadow": settings.shadow.model_copy(update={"share": share})}
        )
        step = BatchStep(cfg, served)
        if share > 0:
            step.use_shadow(ShadowScorer(cfg, shadow, Metrics()))
        step.process(records[:batch])  # warm
        steps[share] = step
    rates: dict[float, list[float]] = {share: [] for share in SHARES}
    load_before = [round(x, 2) for x in os.getloadavg()]
    for _ in range(rounds):
        for share, step in steps.items():
            rates[share].append(_rate(step, records, batch, seconds))
    base = statistics.median(rates[0.0])
    out: dict[str, Any] = {
        "batch_size": batch,
        "served_path": served.spec,
        "rounds": rounds,
        "seconds_per_round": seconds,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "shares": {},
    }
    for share in SHARES:
        rate = statistics.median(rates[share])
        out["shares"][f"{share:g}"] = {
            "tickets_per_s": round(rate, 1),
            "cost_share": round(1 - rate / base, 4),
            "rates": [round(r, 1) for r in rates[share]],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shadow_cost")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tickets", type=int, default=1000)
    ns = parser.parse_args(argv)
    settings = Settings(_env_file=None)
    values = [t.to_bytes() for t in corpus.mixed_raw_tickets(ns.tickets)]
    print(json.dumps(measure(ns.model, settings, values, seconds=ns.seconds, rounds=ns.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
