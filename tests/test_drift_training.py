"""A trained model folder carries distribution.json, consistent with its metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.drift import CONFIDENCE_BUCKETS, read_distribution

pytestmark = pytest.mark.slow


def test_training_writes_the_distribution_file(trained_model_dir: Path) -> None:
    dist = read_distribution(trained_model_dir)
    assert dist is not None
    metrics = json.loads((trained_model_dir / "metrics.json").read_text(encoding="utf-8"))
    labels = metrics["labels"]
    assert dist.labels == labels
    sizes = metrics["data"]["sizes"]
    assert dist.train.count == sizes["train"] and dist.validation.count == sizes["validation"]
    per_label = json.loads((trained_model_dir / "snapshot.json").read_text())["split"]["per_label"]
    for label in labels:
        assert dist.train.category_shares[label] == pytest.approx(
            per_label[label]["train"] / sizes["train"]
        )
    assert sum(dist.validation.category_shares.values()) == pytest.approx(1.0)
    validation = metrics["thresholds"]["validation"]
    assert dist.validation.review_share == pytest.approx(validation["review_share"])
    assert dist.validation.confidence.total == sizes["validation"]
    assert dist.validation.confidence.upper_bounds == list(CONFIDENCE_BUCKETS)
