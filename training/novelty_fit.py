"""Fit and calibrate the novelty score of a written model folder (see ``consumer.novelty``).

The statistics come from the training slice's embeddings as the serving
``Predictor`` computes them (same weights, same pooling); the threshold is a
quantile of the validation slice's scores (``TrainingArgs.novelty_quantile``):
in-scope tickets the model was not fitted on, so about ``1 - quantile`` of
in-scope traffic is flagged novel, whatever the data set. The test slice is
never seen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consumer.novelty import (
    NoveltyMethod,
    NoveltyScorer,
    NoveltySignal,
    fit_novelty,
    quantile_threshold,
)
from consumer.predictor import Predictor
from training.records import Example


@dataclass
class NoveltyFit:
    scorer: NoveltyScorer
    threshold: float
    quantile: float
    validation_scores: np.ndarray
    report: dict[str, Any]
    # Kept for benchmarks that compare scorers on the same embeddings (not saved).
    train_embeddings: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    train_labels: tuple[str, ...] = field(repr=False, default=())
    validation_embeddings: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    validation_probs: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))


def embeddings_of(predictor: Predictor, examples: Sequence[Example]) -> np.ndarray:
    return embeddings_and_probs(predictor, examples)[0]


def embeddings_and_probs(
    predictor: Predictor, examples: Sequence[Example]
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled embeddings and served probabilities, from one pass of the serving path."""
    out = predictor.outputs([e.text for e in examples], embeddings=True)
    assert out.embeddings is not None or not examples
    emb = out.embeddings if out.embeddings is not None else np.zeros((0, 0), dtype=np.float32)
    return emb, out.probs


def fit_and_calibrate(
    predictor: Predictor,
    train: Sequence[Example],
    validation: Sequence[Example],
    *,
    method: NoveltyMethod,
    quantile: float,
    k: int,
    signal: NoveltySignal = "distance+confidence",
) -> NoveltyFit:
    """Fit ``method`` on ``train`` (labels as trained: fine labels of a grouped head); with
    ``signal="distance+confidence"`` weigh in the softmax's doubt (``consumer.novelty``)."""
    train_emb = embeddings_of(predictor, train)
    val_emb, val_probs = embeddings_and_probs(predictor, validation)
    labels = tuple(e.label for e in train)
    scorer = fit_novelty(method, train_emb, labels, k=k)
    val_distance = scorer.score(val_emb)
    if signal == "distance+confidence":
        scorer = scorer.with_confidence(val_distance, val_probs)
        val_scores = scorer.score_with(val_emb, val_probs)
    else:
        val_scores = val_distance
    threshold = quantile_threshold(val_scores, quantile)
    scorer.meta.update({"quantile": quantile, "threshold": threshold})
    report = {
        "method": method,
        "signal": signal,
        "k": k if method == "knn" else None,
        "quantile": quantile,
        "threshold": threshold,
        "fit_examples": len(train),
        "validation_flagged_share": float((val_scores > threshold).mean()),
        "validation_score_quantiles": {
            str(q): float(np.quantile(val_scores, q)) for q in (0.5, 0.9, 0.95, 0.99)
        },
        "train_distance_median": float(np.median(scorer.score(train_emb[: min(2000, len(train))]))),
    }
    return NoveltyFit(
        scorer=scorer,
        threshold=threshold,
        quantile=quantile,
        validation_scores=val_scores,
        report=report,
        train_embeddings=train_emb,
        train_labels=labels,
        validation_embeddings=val_emb,
        validation_probs=val_probs,
    )


def save(fit: NoveltyFit, folder: Path) -> None:
    fit.scorer.save(folder)
