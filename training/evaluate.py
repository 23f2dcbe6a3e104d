"""Score examples through the serving path: ``load_model`` + ``Predictor``.

What training reports is what the consumer will do: the model folder as
written, loaded the way serving loads it, run by the serving inference code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from consumer.model_store import LoadedModel, load_model
from consumer.predictor import Predictor
from consumer.settings import ModelSettings
from training.metrics import classification_metrics
from training.records import Example

EvalPrecision = Literal["fp32", "int8", "bf16", "bf16-autocast", "onnx-fp32", "onnx-int8"]


@dataclass(frozen=True)
class Scored:
    """Per-example outcome of one evaluation (ids only, never text)."""

    ids: tuple[str, ...]
    y_true: tuple[str, ...]
    y_pred: tuple[str, ...]
    confidence: np.ndarray
    probs: np.ndarray
    labels: tuple[str, ...]
    novelty: np.ndarray | None = None  # (n,) when the predictor has novelty statistics

    @property
    def correct(self) -> np.ndarray:
        return np.asarray(self.y_true, dtype=object) == np.asarray(self.y_pred, dtype=object)

    def metrics(self, labels: Sequence[str] | None = None) -> dict[str, Any]:
        return classification_metrics(
            self.y_true, self.y_pred, self.confidence, list(labels or self.labels)
        )


def make_predictor(
    model: LoadedModel, precision: EvalPrecision, device: str = "cpu", max_length: int = 512
) -> Predictor:
    """A serving ``Predictor`` with a fixed precision (int8 and bf16 variants: CPU only)."""
    settings = ModelSettings(
        device="cpu" if precision != "fp32" else device,
        precision=precision,
        max_length=max_length,
    )
    return Predictor(model, settings, chunk_size=64)


def score_probabilities(
    probs: np.ndarray, labels: Sequence[str], examples: Sequence[Example]
) -> Scored:
    label_list = list(labels)
    top = probs.argmax(axis=1) if len(examples) else np.zeros(0, dtype=np.int64)
    return Scored(
        ids=tuple(e.ticket_id for e in examples),
        y_true=tuple(e.label for e in examples),
        y_pred=tuple(label_list[i] for i in top),
        confidence=probs.max(axis=1) if len(examples) else np.zeros(0, dtype=np.float32),
        probs=probs,
        labels=tuple(label_list),
    )


def score_with_predictor(predictor: Predictor, examples: Sequence[Example]) -> Scored:
    outputs = predictor.outputs([e.text for e in examples])
    scored = score_probabilities(outputs.probs, predictor.labels, examples)
    return replace(scored, novelty=outputs.novelty)


def score_model_dir(
    folder: Path,
    examples: Sequence[Example],
    *,
    precision: EvalPrecision = "fp32",
    device: str = "cpu",
    base_model: str | Path | None = None,
) -> Scored:
    model = load_model(folder, base_model)
    return score_with_predictor(make_predictor(model, precision, device), examples)
