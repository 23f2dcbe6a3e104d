"""Review thresholds, chosen on the validation slice.

The global threshold is the lowest confidence at which the tickets routed
automatically (confidence >= threshold, as ``consumer.routing`` does) still
reach the target accuracy; the rest go to review. Per-category thresholds do
the same among the tickets predicted as that category, for categories with
enough validation predictions. The test slice only reports the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from consumer.model_store import Thresholds


def lowest_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest confidence c with accuracy(confidence >= c) >= target; 1.0 when none."""
    if len(confidence) == 0:
        return 1.0
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    hits = np.cumsum(correct[order].astype(np.float64))
    counts = np.arange(1, len(conf) + 1, dtype=np.float64)
    # Only positions where the confidence changes are possible thresholds
    # (a threshold at c routes every ticket with confidence >= c).
    last_of_value = np.append(conf[1:] != conf[:-1], True)
    ok = (hits / counts >= target) & last_of_value
    if not ok.any():
        return 1.0
    return float(conf[np.flatnonzero(ok).max()])


def choose_thresholds(
    confidence: np.ndarray,
    predicted: Sequence[str],
    correct: np.ndarray,
    *,
    target: float,
    per_category: bool,
    min_support: int,
) -> Thresholds:
    global_threshold = lowest_threshold(confidence, correct, target)
    categories: dict[str, float] = {}
    if per_category:
        pred = np.asarray(predicted, dtype=object)
        for category in sorted(set(predicted)):
            members = pred == category
            if int(members.sum()) < min_support:
                continue
            categories[category] = lowest_threshold(confidence[members], correct[members], target)
    return Thresholds(global_threshold, categories)


def auto_routed(
    confidence: np.ndarray,
    predicted: Sequence[str],
    thresholds: Thresholds,
    novelty: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(auto-routed, flagged novel) masks, the way ``consumer.routing.Router`` decides."""
    limits = np.array([thresholds.for_category(p) for p in predicted], dtype=np.float64)
    confident = np.asarray(confidence) >= limits
    novel = np.zeros(len(confident), dtype=bool)
    if novelty is not None and thresholds.novelty is not None:
        novel = np.asarray(novelty) > thresholds.novelty
    return confident & ~novel, novel


def review_outcome(
    confidence: np.ndarray,
    predicted: Sequence[str],
    correct: np.ndarray,
    thresholds: Thresholds,
    novelty: np.ndarray | None = None,
) -> dict[str, Any]:
    """Share sent to review and accuracy of the automatically routed rest.

    As ``consumer.routing`` routes: review under the confidence threshold, or over
    the novelty threshold when there are both a threshold and ``novelty`` scores.
    """
    n = len(confidence)
    if n == 0:
        return {"n": 0, "review_share": 0.0, "auto_accuracy": None, "auto_count": 0}
    auto, novel = auto_routed(confidence, predicted, thresholds, novelty)
    auto_count = int(auto.sum())
    return {
        "n": n,
        "novel_share": float(novel.mean()),
        "review_share": 1.0 - auto_count / n,
        "review_count": n - auto_count,
        "auto_count": auto_count,
        "auto_accuracy": float(correct[auto].mean()) if auto_count else None,
        "review_accuracy": float(correct[~auto].mean()) if auto_count < n else None,
    }


def write_thresholds(folder: Path, thresholds: Thresholds) -> None:
    """Replace ``thresholds.json`` of a model folder (the format of ``Thresholds``)."""
    (folder / "thresholds.json").write_text(
        json.dumps(thresholds.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
