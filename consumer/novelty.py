"""Novelty: how unlike the training data a ticket is, from the served model's pooled embedding.

Softmax confidence stays high on look-alikes the model has never seen; a
distance to the training data does not. Two scorers, both fitted by training
on the embeddings of the training slice (the model folder's own encoder) and
both computed from the embedding the classifier forward pass already made:

* ``mahalanobis``: class-conditional Gaussians with one shared covariance
  (Lee et al. 2018), Ledoit-Wolf shrunk; the score is the smallest squared
  Mahalanobis distance to a class mean. Stored: the class means and the
  precision matrix (``labels x dim + dim x dim`` floats).
* ``knn``: cosine distance to the k-th nearest training embedding (Sun et al.
  2022). Stored: the L2-normalised training embeddings (float16).

With ``signal="distance+confidence"`` (training's default since issue 14's full run) the
score adds the softmax's doubt to the distance, each divided by its spread on the
validation slice: ``d / sd(d) + (1 - max p) / sd(1 - max p)``. On BANKING77's
leave-buckets-out benchmark a fully trained model was confident on look-alikes from
the held-out buckets *and* they sat close to in-scope classes; the two signals miss
different ones (validation-style AUROC: distance 0.865, confidence 0.952, both 0.965;
chosen on the held-out buckets' train rows, never on test). The weights are stored in
``novelty.json``; the score stays non-negative.

Higher is more novel. The review threshold is a quantile of the scores on the
validation slice (in-scope data the model was not fitted on), chosen by
training and saved in ``thresholds.json`` (``novelty``); nothing about it is
specific to one data set. Saved as ``novelty.safetensors`` (tensors) and
``novelty.json`` (method and metadata) in the model folder: never a pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

NoveltyMethod = Literal["mahalanobis", "knn"]
NoveltySignal = Literal["distance", "distance+confidence"]
METHODS: tuple[NoveltyMethod, ...] = ("mahalanobis", "knn")
TENSORS_FILE = "novelty.safetensors"
META_FILE = "novelty.json"
FORMAT_VERSION = 1


class NoveltyError(ValueError):
    """Novelty statistics that cannot be fitted or loaded."""


@dataclass
class NoveltyScorer:
    """A fitted novelty score; ``score`` maps pooled embeddings (n, dim) to (n,) scores."""

    method: NoveltyMethod
    tensors: dict[str, torch.Tensor]
    k: int = 10
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        key = "means" if self.method == "mahalanobis" else "bank"
        return int(self.tensors[key].shape[1])

    @property
    def uses_confidence(self) -> bool:
        return "confidence_weight" in self.meta

    def combine(self, distance: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The stored signal from the distance and the served probabilities of the same pass."""
        if not self.uses_confidence:
            return distance
        doubt = 1.0 - probs.float().max(dim=1).values
        return float(self.meta["distance_weight"]) * distance.float() + float(
            self.meta["confidence_weight"]
        ) * doubt.to(distance.device)

    def with_confidence(self, distance: np.ndarray, probs: np.ndarray) -> NoveltyScorer:
        """This scorer plus the softmax's doubt, weighted by their spreads on (validation)
        ``distance`` scores and served ``probs``."""
        doubt = 1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)
        spread_d, spread_c = float(np.std(distance)), float(np.std(doubt))
        meta = {
            **self.meta,
            "signal": "distance+confidence",
            "distance_weight": 1.0 / spread_d if spread_d > 0 else 1.0,
            "confidence_weight": 1.0 / spread_c if spread_c > 0 else 1.0,
        }
        return NoveltyScorer(self.method, dict(self.tensors), self.k, meta)

    def score_with(self, embeddings: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """``score`` combined with the served probabilities (the full signal)."""
        distance = torch.from_numpy(self.score(embeddings))
        return self.combine(distance, torch.as_tensor(np.asarray(probs))).numpy().astype(np.float32)

    def scale_for(self, precision: str) -> float:
        """Factor that puts scores computed at ``precision`` on the fp32 scale.

        Quantized embeddings shift the distances (int8 flagged 2-3 times the
        calibrated share of validation in one BANKING77 run), so training also
        takes the quantile under int8 (``meta["thresholds"]``); scaling by the ratio
        makes the one threshold in ``thresholds.json`` flag the calibrated share at
        either precision. Precisions without their own quantile are not rescaled.
        """
        thresholds = self.meta.get("thresholds") or {}
        base, own = thresholds.get("fp32"), thresholds.get(precision)
        if not base or not own or precision == "fp32":
            return 1.0
        return float(base) / float(own)

    def to(self, device: str | torch.device) -> NoveltyScorer:
        tensors = {name: t.to(device) for name, t in self.tensors.items()}
        if self.method == "knn":
            # float16 on disk (compact); matmul in float32 on the CPU, half on a GPU.
            dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
            tensors["bank"] = tensors["bank"].to(dtype)
        return NoveltyScorer(self.method, tensors, self.k, dict(self.meta))

    @torch.inference_mode()
    def score_tensor(self, pooled: torch.Tensor) -> torch.Tensor:
        """Scores (n,) as float32 on the embeddings' device."""
        if pooled.ndim != 2 or pooled.shape[1] != self.dim:
            raise NoveltyError(
                f"embeddings of shape {tuple(pooled.shape)}: expected (n, {self.dim})"
            )
        if self.method == "mahalanobis":
            x = pooled.float()
            means, precision, mean_terms = (
                self.tensors["means"],
                self.tensors["precision"],
                self.tensors["mean_terms"],
            )
            xp = x @ precision
            # (x - m)^T P (x - m) = x^T P x - 2 x^T P m + m^T P m, for every class mean m
            dist = (xp * x).sum(dim=1, keepdim=True) - 2.0 * (xp @ means.T) + mean_terms
            return dist.min(dim=1).values.clamp(min=0.0)
        bank = self.tensors["bank"]
        x = torch.nn.functional.normalize(pooled.to(bank.dtype), dim=-1)
        sims = x @ bank.T
        k = min(self.k, bank.shape[0])
        kth = sims.topk(k, dim=1).values[:, k - 1]
        return (1.0 - kth).float()

    def score(self, embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
        """Scores (n,) as a float32 numpy array."""
        ref = next(iter(self.tensors.values()))
        tensor = torch.as_tensor(
            np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings
        )
        return self.score_tensor(tensor.to(ref.device)).cpu().numpy().astype(np.float32)

    # --- persistence --------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        stored = {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}
        if self.method == "knn":
            stored["bank"] = stored["bank"].to(torch.float16)
        save_file(stored, str(folder / TENSORS_FILE))
        meta = {
            **self.meta,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "k": self.k,
            "dim": self.dim,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", "utf-8")


def fit_mahalanobis(embeddings: np.ndarray, labels: Sequence[str]) -> NoveltyScorer:
    """Class means and one Ledoit-Wolf shrunk covariance of the class-centred embeddings."""
    from sklearn.covariance import LedoitWolf

    x, y = _check(embeddings, labels)
    classes = sorted(set(y))
    if len(classes) < 1 or not y:
        raise NoveltyError("mahalanobis needs a label per embedding")
    index = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([index[c] for c in y], dtype=np.int64)
    means = np.stack([x[y_idx == i].mean(axis=0) for i in range(len(classes))])
    centred = x - means[y_idx]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    precision = (precision + precision.T) / 2
    mean_terms = np.einsum("cd,de,ce->c", means, precision, means)
    tensors = {
        "means": torch.from_numpy(means.astype(np.float32)),
        "precision": torch.from_numpy(precision.astype(np.float32)),
        "mean_terms": torch.from_numpy(mean_terms.astype(np.float32)).unsqueeze(0),
    }
    return NoveltyScorer("mahalanobis", tensors, meta={"classes": classes, "fit_examples": len(x)})


def fit_knn(
    embeddings: np.ndarray, labels: Sequence[str] | None = None, k: int = 10
) -> NoveltyScorer:
    """The normalised training embeddings themselves: a brute-force cosine index."""
    if k < 1:
        raise NoveltyError(f"k must be >= 1, got {k}")
    x, _ = _check(embeddings, labels)
    bank = torch.nn.functional.normalize(torch.from_numpy(x.astype(np.float32)), dim=-1)
    return NoveltyScorer("knn", {"bank": bank}, k=k, meta={"fit_examples": len(x)})


def fit_novelty(
    method: NoveltyMethod, embeddings: np.ndarray, labels: Sequence[str], k: int = 10
) -> NoveltyScorer:
    if method == "mahalanobis":
        return fit_mahalanobis(embeddings, labels)
    if method == "knn":
        return fit_knn(embeddings, labels, k=k)
    raise NoveltyError(f"unknown novelty method {method!r}: use one of {METHODS}")


def quantile_threshold(validation_scores: np.ndarray, quantile: float) -> float:
    """The review threshold: scores above the ``quantile`` of validation scores are novel."""
    if not 0 < quantile <= 1:
        raise NoveltyError(f"quantile must be in (0, 1], got {quantile}")
    scores = np.asarray(validation_scores, dtype=np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise NoveltyError("no finite validation scores to calibrate the novelty threshold on")
    return float(np.quantile(scores, quantile, method="higher"))


def load_novelty(folder: Path) -> NoveltyScorer | None:
    """The folder's scorer, or None when it has none (older models)."""
    meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.exists() and not tensors_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensors_path))
    except FileNotFoundError as exc:
        raise NoveltyError(
            f"{folder}: {exc.filename} is missing (novelty files come in pairs)"
        ) from exc
    except Exception as exc:  # corrupt json or safetensors
        raise NoveltyError(
            f"{folder}: novelty files are unreadable: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(meta, dict) or meta.get("method") not in METHODS:
        raise NoveltyError(f"{meta_path} names no known method ({METHODS})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise NoveltyError(f"{meta_path} was written by a newer ticketsort")
    method: NoveltyMethod = meta["method"]
    needed = {"mahalanobis": {"means", "precision", "mean_terms"}, "knn": {"bank"}}[method]
    if not needed <= set(tensors):
        raise NoveltyError(f"{tensors_path} lacks {sorted(needed - set(tensors))}")
    tensors = {name: t.float() for name, t in tensors.items()}
    scorer = NoveltyScorer(method, tensors, k=int(meta.get("k", 10)), meta=meta)
    if int(meta.get("dim", scorer.dim)) != scorer.dim:
        raise NoveltyError(f"{folder}: novelty dim {meta.get('dim')} != stored {scorer.dim}")
    return scorer


def _check(embeddings: np.ndarray, labels: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise NoveltyError(f"need a (n >= 2, dim) embedding matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise NoveltyError("embeddings contain NaN or infinity")
    y = list(labels) if labels is not None else []
    if labels is not None and len(y) != len(x):
        raise NoveltyError(f"{len(x)} embeddings but {len(y)} labels")
    return x, y
