"""The training distribution a model folder keeps for drift monitoring, and the statistics.

``write_distribution`` (called where training writes the folder) stores
``distribution.json`` (format: ``consumer.drift.TrainingDistribution``): the label shares of
the training slice, and on the validation slice the predicted-category shares, the review
share at the chosen thresholds and the confidence histogram with the fixed bins
``consumer.drift.CONFIDENCE_BUCKETS``.

``psi`` and ``chi_square`` compare a live mix with the stored one (``python -m training
drift`` and the tests); the alert rules compute the same PSI in PromQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from consumer.drift import (
    CONFIDENCE_BUCKETS,
    ConfidenceHistogram,
    SliceShares,
    TrainingDistribution,
    ValidationDistribution,
)
from consumer.model_store import Thresholds
from training.evaluate import Scored
from training.records import Example

# Shares below this are raised to it before a logarithm or a division (an empty category
# would make PSI infinite); the same floor is in the PromQL rules.
SHARE_FLOOR = 1e-4
PSI_MODERATE = 0.1  # the usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant
PSI_SIGNIFICANT = 0.25


def shares(items: Iterable[str], labels: Sequence[str]) -> dict[str, float]:
    """Share of each label among ``items`` (every label present, 0.0 when absent)."""
    counts = Counter(items)
    total = sum(counts[label] for label in labels)
    return {label: (counts[label] / total if total else 0.0) for label in labels}


def confidence_histogram(
    confidences: Iterable[float], upper_bounds: Sequence[float] = CONFIDENCE_BUCKETS
) -> ConfidenceHistogram:
    """Counts per bin with Prometheus semantics: a value lands in the first bin whose upper
    bound is >= it (values above the last bound land in the last bin)."""
    values = np.clip(np.asarray(list(confidences), dtype=np.float64), 0.0, upper_bounds[-1])
    index = np.searchsorted(np.asarray(upper_bounds), values, side="left")
    counts = np.bincount(index, minlength=len(upper_bounds))[: len(upper_bounds)]
    return ConfidenceHistogram(upper_bounds=list(upper_bounds), counts=[int(c) for c in counts])


def compute_distribution(
    labels: Sequence[str],
    train_labels: Sequence[str],
    predicted: Sequence[str],
    confidence: Sequence[float] | np.ndarray,
    thresholds: Thresholds,
    novelty: Sequence[float] | np.ndarray | None = None,
) -> TrainingDistribution:
    conf = [float(c) for c in confidence]
    review = [c < thresholds.for_category(p) for p, c in zip(predicted, conf, strict=True)]
    if novelty is not None and thresholds.novelty is not None:
        # As serving routes: a confident ticket unlike the training data goes to review too.
        review = [r or float(n) > thresholds.novelty for r, n in zip(review, novelty, strict=True)]
    return TrainingDistribution(
        labels=list(labels),
        train=SliceShares(count=len(train_labels), category_shares=shares(train_labels, labels)),
        validation=ValidationDistribution(
            count=len(predicted),
            category_shares=shares(predicted, labels),
            review_share=sum(review) / len(review) if review else 0.0,
            confidence=confidence_histogram(conf),
        ),
    )


def write_distribution(
    folder: Path,
    train: Sequence[Example],
    validation: Scored,
    thresholds: Thresholds,
    novelty: np.ndarray | None = None,
) -> Path:
    """Write ``folder/distribution.json`` from the training slice and validation scoring."""
    dist = compute_distribution(
        list(validation.labels),
        [e.label for e in train],
        list(validation.y_pred),
        validation.confidence,
        thresholds,
        novelty,
    )
    return dist.write(folder)


def _floored(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(values, dtype=np.float64), SHARE_FLOOR)


def psi_terms(expected: Sequence[float], actual: Sequence[float]) -> np.ndarray:
    """Per-category PSI contributions ``(a - e) * ln(a / e)``, shares floored at SHARE_FLOOR."""
    e, a = _floored(expected), _floored(actual)
    return np.asarray((a - e) * np.log(a / e))


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of ``actual`` shares against ``expected`` shares."""
    if len(expected) != len(actual):
        raise ValueError("psi needs two share vectors of the same length")
    return float(psi_terms(expected, actual).sum())


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    p_value: float
    dof: int


def chi_square(expected_shares: Sequence[float], observed_counts: Sequence[int]) -> ChiSquare:
    """Goodness of fit of observed counts to the expected shares (Pearson, scipy)."""
    observed = np.asarray(observed_counts, dtype=np.float64)
    total = observed.sum()
    if total <= 0 or len(observed) < 2:
        return ChiSquare(0.0, 1.0, max(0, len(observed) - 1))
    e = _floored(expected_shares)
    expected = e / e.sum() * total
    result = stats.chisquare(observed, expected)
    return ChiSquare(float(result.statistic), float(result.pvalue), len(observed) - 1)


def max_cdf_gap(expected: ConfidenceHistogram, actual: ConfidenceHistogram) -> float:
    """Largest gap between the two cumulative confidence shares (binned Kolmogorov-Smirnov)."""
    if expected.upper_bounds != actual.upper_bounds:
        raise ValueError("the two histograms have different bins")
    gaps = np.abs(np.subtract(expected.cumulative_shares(), actual.cumulative_shares()))
    return float(gaps.max()) if len(gaps) else 0.0


def ordered(mapping: Mapping[str, float], labels: Sequence[str]) -> list[float]:
    return [float(mapping.get(label, 0.0)) for label in labels]
