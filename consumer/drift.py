"""Drift monitoring on the serving side: the training distribution file and its metrics.

Training writes ``distribution.json`` into the model folder (``training.distribution``):
the category shares of the training slice (labels) and of the validation slice (the
model's predictions, the same thing the consumer counts live), the validation review share
and a histogram of the validation confidences with the fixed upper bounds
``CONFIDENCE_BUCKETS`` — the consumer's ``ticketsort_confidence`` histogram uses the same
bounds, so live and training bins line up one for one.

The consumer exports the stored figures as gauges (``ticketsort_training_*``) next to the
live counters, and the alert rules (``deploy/prometheus/rules.yml``) compare the two. A model
folder without the file (older than this) loads and serves as before: the training gauges
are then absent, and so are the drift alerts.

Novelty: ``observe_output`` records ``Output.novelty`` in ``ticketsort_novelty_score`` when
the batch step sets it (a novelty score is not computed yet: the histogram stays empty).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prometheus_client.utils import floatToGoString
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from consumer.logs import get_logger

if TYPE_CHECKING:
    from consumer.metrics import Metrics
    from consumer.outputs import Output

log = get_logger(__name__)

DISTRIBUTION_FILE = "distribution.json"
FORMAT = "ticketsort-distribution"
FORMAT_VERSION = 1
# Upper bounds (Prometheus ``le``) of the confidence bins; the last bin ends at 1.0.
CONFIDENCE_BUCKETS: tuple[float, ...] = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0
)  # fmt: skip
NOVELTY_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16)


class ConfidenceHistogram(BaseModel):
    """Counts per bin: bin i holds ``upper_bounds[i-1] < confidence <= upper_bounds[i]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upper_bounds: list[float]
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def shares(self) -> list[float]:
        total = self.total
        return [c / total if total else 0.0 for c in self.counts]

    def cumulative_shares(self) -> list[float]:
        """Share of confidences at or below each upper bound (Prometheus ``le`` semantics)."""
        out, running = [], 0.0
        for share in self.shares():
            running += share
            out.append(min(1.0, running))
        return out


class SliceShares(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=0)
    category_shares: dict[str, float]


class ValidationDistribution(SliceShares):
    review_share: float = Field(ge=0, le=1)
    confidence: ConfidenceHistogram


class TrainingDistribution(BaseModel):
    """The content of ``distribution.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["ticketsort-distribution"] = "ticketsort-distribution"
    format_version: int = FORMAT_VERSION
    labels: list[str]
    train: SliceShares = Field(description="label shares of the training slice")
    validation: ValidationDistribution = Field(
        description="predicted-category shares, review share and confidences on validation"
    )

    def write(self, folder: Path) -> Path:
        path = folder / DISTRIBUTION_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def read_distribution(folder: Path) -> TrainingDistribution | None:
    """The folder's training distribution; None when it has none or it is unreadable.

    Never raises: drift figures are optional, serving does not depend on them.
    """
    path = Path(folder) / DISTRIBUTION_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("distribution_unreadable", path=str(path), error=str(exc))
        return None
    try:
        data = json.loads(text)
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            log.warning("distribution_format_too_new", path=str(path))
            return None
        return TrainingDistribution.model_validate(data)
    except (ValueError, TypeError, AttributeError, ValidationError) as exc:
        log.warning("distribution_unreadable", path=str(path), error=str(exc))
        return None


def export_training(metrics: Metrics, folder: Path, version: str) -> TrainingDistribution | None:
    """Set the ``ticketsort_training_*`` gauges of model ``version`` from ``folder``'s file.

    The previous model's gauges are removed first (none are left when the file is missing).
    """
    metrics.training_category_share.clear()
    metrics.training_confidence_share.clear()
    metrics.training_review_share.clear()
    dist = read_distribution(folder)
    if dist is None:
        return None
    slices = {"train": dist.train, "validation": dist.validation}
    for slice_name, shares in slices.items():
        for category in dist.labels:
            metrics.training_category_share.labels(
                category=category, slice=slice_name, model_version=version
            ).set(shares.category_shares.get(category, 0.0))
    hist = dist.validation.confidence
    for bound, share in zip(hist.upper_bounds, hist.cumulative_shares(), strict=True):
        metrics.training_confidence_share.labels(
            le=floatToGoString(bound), model_version=version
        ).set(share)
    metrics.training_review_share.labels(model_version=version).set(dist.validation.review_share)
    return dist


def observe_output(metrics: Metrics, output: Output, version: str) -> None:
    """Count one delivered output of model ``version`` in the drift metrics.

    Dead letters carry no prediction and are not counted.
    """
    if output.category is None or output.confidence is None:
        return
    metrics.category_predictions.labels(
        category=output.category, route=output.route, model_version=version
    ).inc()
    metrics.confidence.labels(model_version=version).observe(output.confidence)
    if output.novelty is not None:
        metrics.novelty.labels(model_version=version).observe(output.novelty)
