"""Out-of-scope signals compared on a leave-buckets-out model, validation-style data only.

``python -m training.oos_signals --model bench-results/models/<version>`` reads a model that
``training.bench_banking77 --task oos`` trained (the held-out buckets absent from its
training), rebuilds that run's validation slice from train.csv with the run's own split salt
(in-scope rows, through training's own ``prepare_data`` and ``make_split``), and scores it
against the held-out buckets' rows of train.csv, which training never saw. test.csv is not
read. For each score: AUROC (in-scope vs held-out) and the share of
held-out rows over the validation slice's ``--quantile``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consumer.clean import clean_ticket
from consumer.model_store import load_model
from consumer.novelty import NoveltyScorer, fit_mahalanobis
from consumer.predictor import Outputs, Predictor
from consumer.settings import ModelSettings, Settings
from training.args import TrainingArgs
from training.bench_oos import HELD_OUT, auroc, read_rows, write_rows
from training.files import Columns, load_label_map
from training.pipeline import DataOptions, make_split, prepare_data

Score = Callable[[Outputs], np.ndarray]


def _doubt(probs: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 - probs.max(axis=1))


def _entropy(probs: np.ndarray) -> np.ndarray:
    return np.asarray(-(probs * np.log(probs + 1e-12)).sum(axis=1))


def _scaled(score: Score, validation: Outputs) -> Score:
    """``score`` divided by its spread on the validation slice (to add scores fairly)."""
    spread = float(score(validation).std()) or 1.0
    return lambda o: score(o) / spread


@dataclass(frozen=True)
class Distances:
    """The served Mahalanobis fit (``consumer.novelty``) on the class labels, and the same fit
    with one class for all the data: the background of the relative distance (Ren et al. 2021).
    """

    classes: NoveltyScorer
    background: NoveltyScorer

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: Sequence[str]) -> Distances:
        every = ["all"] * len(labels)
        return cls(fit_mahalanobis(embeddings, labels), fit_mahalanobis(embeddings, every))

    def distance(self, x: np.ndarray) -> np.ndarray:
        return self.classes.score(x)

    def relative(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes.score(x) - self.background.score(x))


def compare(
    model_dir: Path, datasets: Path, quantile: float = 0.95, fit_rows: int = 4000
) -> dict[str, dict[str, float]]:
    buckets = load_label_map(datasets / "coarse11.json")
    held_intents = {i for i, b in buckets.items() if b in HELD_OUT}
    rows = read_rows(datasets / "train.csv")
    args = TrainingArgs.model_validate_json((model_dir / "training_args.json").read_text())
    settings = Settings(_env_file=None)
    with tempfile.TemporaryDirectory() as work:
        in_scope = Path(work) / "train-in-scope.csv"
        write_rows(in_scope, [r for r in rows if r[1] not in held_intents])
        options = DataOptions(columns=Columns(text="text", label="category"))
        prepared = prepare_data(settings, args, in_scope, options)[0]
    # The same validation slice as the benchmark's run (the same ids, salt and fraction).
    split = make_split(args, prepared, None, None)
    max_chars = settings.validation.max_clean_chars
    held = [clean_ticket(None, t, max_chars=max_chars) for t, c in rows if c in held_intents]
    predictor = Predictor(load_model(model_dir), ModelSettings(precision="fp32"))
    val = predictor.outputs([e.text for e in split.validation], embeddings=True)
    out = predictor.outputs([t for t in held if t], embeddings=True)
    rng = np.random.default_rng(0)
    train = list(split.train)
    take = rng.choice(len(train), size=min(fit_rows, len(train)), replace=False)
    fit = predictor.outputs([train[i].text for i in take], embeddings=True)
    assert fit.embeddings is not None and val.fine_probs is not None
    distances = Distances.fit(fit.embeddings, [train[i].label for i in take])

    def emb(o: Outputs) -> np.ndarray:
        assert o.embeddings is not None
        return o.embeddings

    def fine(o: Outputs) -> np.ndarray:
        assert o.fine_probs is not None
        return o.fine_probs

    def served(o: Outputs) -> np.ndarray:
        assert o.novelty is not None
        return o.novelty

    bucket_doubt = _scaled(lambda o: _doubt(o.probs), val)
    fine_doubt = _scaled(lambda o: _doubt(fine(o)), val)
    scores: dict[str, Score] = {
        "served: Mahalanobis + bucket doubt": served,
        "1 - max bucket probability": lambda o: _doubt(o.probs),
        "1 - max fine-label probability": lambda o: _doubt(fine(o)),
        "entropy of the fine-label probabilities": lambda o: _entropy(fine(o)),
        "Mahalanobis refit (the served fit, fine classes)": lambda o: distances.distance(emb(o)),
        "relative Mahalanobis": lambda o: distances.relative(emb(o)),
    }
    served_scaled = _scaled(served, val)

    def served_plus_fine(weight: float) -> Score:
        return lambda o: served_scaled(o) + weight * fine_doubt(o)

    for weight in (0.5, 1.0, 2.0):
        scores[f"served + {weight:g} x fine-label doubt"] = served_plus_fine(weight)
    relative = _scaled(lambda o: distances.relative(emb(o)), val)
    scores["relative Mahalanobis + bucket doubt"] = lambda o: relative(o) + bucket_doubt(o)
    table: dict[str, dict[str, float]] = {}
    for name, score in scores.items():
        inside, outside = score(val), score(out)
        table[name] = {
            "auroc": round(auroc(inside, outside), 4),
            "held_out_flagged": round(float((outside > np.quantile(inside, quantile)).mean()), 4),
        }
    table["_sizes"] = {"validation": float(len(split.validation)), "held_out": float(len(held))}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.oos_signals", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a leave-buckets-out model")
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets/banking77"))
    parser.add_argument("--quantile", type=float, default=0.95)
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.model, args.datasets, args.quantile), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
