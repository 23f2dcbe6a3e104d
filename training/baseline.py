"""The floor every model must beat: TF-IDF features and a logistic regression.

Word 1-2 grams and character 2-5 grams (inside word boundaries), sublinear term
frequencies, trained on the same training slice and scored on the same
validation and test slices as the fine-tuned model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline

from training.evaluate import Scored, score_probabilities
from training.records import Example


def tfidf_logreg(balanced: bool, c: float = 10.0) -> Any:
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                ),
            ),
        ]
    )
    classifier = LogisticRegression(
        C=c, max_iter=2000, class_weight="balanced" if balanced else None
    )
    return make_pipeline(features, classifier)


def run_baseline(
    train: Sequence[Example],
    evaluations: dict[str, Sequence[Example]],
    labels: Sequence[str],
    *,
    balanced: bool = True,
) -> tuple[dict[str, Scored], float]:
    """Fit on ``train``; score each named slice. Returns the scores and the fit seconds."""
    started = time.monotonic()
    model = tfidf_logreg(balanced)
    model.fit([e.text for e in train], [e.label for e in train])
    fit_seconds = time.monotonic() - started
    classes = [str(c) for c in model.classes_]
    column = {c: i for i, c in enumerate(classes)}
    out: dict[str, Scored] = {}
    for name, examples in evaluations.items():
        probs = np.zeros((len(examples), len(labels)), dtype=np.float32)
        if examples:
            raw = model.predict_proba([e.text for e in examples])
            for j, label in enumerate(labels):
                if label in column:
                    probs[:, j] = raw[:, column[label]]
        out[name] = score_probabilities(probs, labels, examples)
    return out, fit_seconds
