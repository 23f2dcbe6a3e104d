"""Classification metrics on label strings: accuracy, macro-F1, per class, confusion, ECE.

Predictions may hold labels the reference label list lacks (another model's
labels, in the promotion comparison): they count as wrong and appear in the
confusion matrix under ``(other)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

OTHER = "(other)"
ECE_BINS = 15


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x bin share."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(float(correct[members].mean()) - float(confidence[members].mean()))
            ece += gap * float(members.mean())
    return ece


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: np.ndarray,
    labels: Sequence[str],
) -> dict[str, Any]:
    """All the figures of one evaluation; ``labels`` orders the tables."""
    n = len(y_true)
    if n == 0:
        return {"n": 0, "accuracy": 0.0, "macro_f1": 0.0}
    true = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    correct = true == pred
    order = list(labels)
    present = [label for label in order if label in set(true) | set(pred)]
    extra = sorted(set(pred) - set(order))
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=present, zero_division=0)
    per_class = {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, label in enumerate(present)
    }
    columns = order + ([OTHER] if extra else [])
    col_index = {label: i for i, label in enumerate(order)}
    row_index = {label: i for i, label in enumerate(order)}
    matrix = np.zeros((len(order), len(columns)), dtype=np.int64)
    for t, q in zip(true, pred, strict=True):
        if t in row_index:
            matrix[row_index[t], col_index.get(q, len(columns) - 1)] += 1
    return {
        "n": n,
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "ece": expected_calibration_error(np.asarray(confidence, dtype=np.float64), correct),
        "mean_confidence": float(np.mean(confidence)),
        "per_class": per_class,
        "confusion": {"labels": order, "columns": columns, "matrix": matrix.tolist()},
    }


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth printing."""
    return {k: metrics[k] for k in ("n", "accuracy", "macro_f1", "ece") if k in metrics}
