"""Batched inference on the best device at hand.

GPU when there is one (half precision, pinned host memory, large chunks); on
the CPU, dynamic int8 quantization when training measured it safe for this
model (``int8_safe`` in the manifest), else fp32. Within a batch, texts are
sorted by token length and run in chunks so little time goes to padding.

The same forward pass yields the pooled embedding; when the model folder has
novelty statistics (``consumer.novelty``) each prediction carries its novelty
score, and a grouped head (``consumer.label_groups``) is served as buckets by
summing fine-label probabilities (the fine label rides along).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from consumer.model_store import LoadedModel
from consumer.novelty import NoveltyScorer
from consumer.settings import ModelSettings

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "int8", "bf16", "fp16"]


@dataclass(frozen=True, slots=True)
class Prediction:
    category: str
    confidence: float
    top: list[tuple[str, float]]
    # Distance to the training data (higher: more novel); None when the model has no statistics.
    novelty: float | None = None
    # A grouped head's most probable fine label within ``category``; None for a plain head.
    fine_label: str | None = None


@dataclass(frozen=True, slots=True)
class Outputs:
    """What one forward pass gives, input order kept."""

    probs: np.ndarray  # (n, served labels)
    novelty: np.ndarray | None = None  # (n,)
    fine_probs: np.ndarray | None = None  # (n, fine labels) of a grouped head
    embeddings: np.ndarray | None = None  # (n, dim), only when asked for


def choose_device(wanted: str) -> Device:
    if wanted == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("TICKETSORT_MODEL__DEVICE=cuda but no CUDA device is available")
        return "cuda"
    if wanted == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(wanted: str, device: Device, int8_safe: bool) -> Precision:
    if device == "cuda":
        if wanted in ("fp32", "bf16", "fp16"):
            return wanted  # type: ignore[return-value]
        return "fp16"
    if wanted in ("fp32", "int8", "bf16"):
        return wanted  # type: ignore[return-value]
    if wanted == "fp16":
        raise ValueError("fp16 is a GPU precision; on the CPU use fp32, int8 or bf16")
    return "int8" if int8_safe else "fp32"


def quantize_int8(network: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations dynamic)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(network, {nn.Linear}, dtype=torch.qint8)


def prepare_network(network: nn.Module, device: Device, precision: Precision) -> nn.Module:
    network.eval()
    if device == "cuda":
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
        return network.to(device=device, dtype=dtype)
    if precision == "int8":
        return quantize_int8(network)
    if precision == "bf16":
        return network.to(dtype=torch.bfloat16)
    return network


class Predictor:
    def __init__(
        self,
        model: LoadedModel,
        settings: ModelSettings | None = None,
        *,
        chunk_size: int | None = None,
    ) -> None:
        settings = settings or ModelSettings()
        self.model = model
        self.labels = model.served_labels
        self.fine_labels = list(model.labels)
        self.version = model.version
        self.device: Device = choose_device(settings.device)
        self.precision: Precision = choose_precision(
            settings.precision, self.device, model.int8_safe
        )
        if settings.threads:
            torch.set_num_threads(settings.threads)
        # Denormal floats make CPU matmuls crawl (seen here in training); flushing them
        # to zero changes no prediction.
        torch.set_flush_denormal(True)
        self.max_length = min(settings.max_length, model.max_length)
        self.chunk_size = chunk_size or (256 if self.device == "cuda" else 16)
        self.tokenizer = model.tokenizer
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.network = prepare_network(model.network, self.device, self.precision)
        self.novelty: NoveltyScorer | None = None
        self._novelty_scale = 1.0
        self.set_novelty(model.novelty)
        self._group_matrix = model.groups.matrix(self.device) if model.groups is not None else None
        self._group_index = model.groups.index() if model.groups is not None else None

    def set_novelty(self, scorer: NoveltyScorer | None) -> None:
        """Score novelty with ``scorer`` from now on (training attaches a freshly fitted one)."""
        self.novelty = scorer.to(self.device) if scorer is not None else None
        self._novelty_scale = scorer.scale_for(self.precision) if scorer is not None else 1.0

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "device": self.device,
            "precision": self.precision,
            "labels": len(self.labels),
            "grouped_from": len(self.fine_labels) if self._group_matrix is not None else None,
            "novelty": self.novelty.method if self.novelty is not None else None,
            "threads": torch.get_num_threads(),
        }

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(encoded["input_ids"])

    def _padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        if self.device == "cuda":
            ids_t = ids_t.pin_memory().to(self.device, non_blocking=True)
            mask_t = mask_t.pin_memory().to(self.device, non_blocking=True)
        return ids_t, mask_t

    @torch.inference_mode()
    def outputs_from_ids(self, token_ids: list[list[int]], *, embeddings: bool = False) -> Outputs:
        """Probabilities (and novelty, fine probabilities, embeddings) in one forward pass."""
        n = len(token_ids)
        grouped = self._group_matrix is not None
        probs = np.zeros((n, len(self.labels)), dtype=np.float32)
        fine = np.zeros((n, len(self.fine_labels)), dtype=np.float32) if grouped else None
        novelty = np.zeros(n, dtype=np.float32) if self.novelty is not None else None
        pooled_out: np.ndarray | None = None
        need_pooled = embeddings or self.novelty is not None
        order = sorted(range(n), key=lambda i: len(token_ids[i]))
        for start in range(0, n, self.chunk_size):
            idx = order[start : start + self.chunk_size]
            ids, mask = self._padded([token_ids[i] for i in idx])
            if need_pooled:
                logits, pooled = cast(Any, self.network).logits_and_embedding(ids, mask)
            else:
                logits, pooled = self.network(ids, mask), None
            chunk = torch.softmax(logits.float(), dim=-1)
            if self._group_matrix is not None and fine is not None:
                fine[idx] = chunk.cpu().numpy()
                chunk = chunk @ self._group_matrix
            probs[idx] = chunk.cpu().numpy()
            if pooled is not None:
                if self.novelty is not None and novelty is not None:
                    raw = self.novelty.score_tensor(pooled).cpu().numpy()
                    novelty[idx] = raw * self._novelty_scale
                if embeddings:
                    if pooled_out is None:
                        pooled_out = np.zeros((n, pooled.shape[1]), dtype=np.float32)
                    pooled_out[idx] = pooled.float().cpu().numpy()
        return Outputs(probs, novelty, fine, pooled_out)

    def probabilities_from_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        """Class probabilities (n, served labels) for pre-tokenized texts, input order kept."""
        return self.outputs_from_ids(token_ids).probs

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities_from_ids(self.tokenize(texts))

    def outputs(self, texts: Sequence[str], *, embeddings: bool = False) -> Outputs:
        return self.outputs_from_ids(self.tokenize(texts), embeddings=embeddings)

    def predictions_from_probabilities(
        self,
        probs: np.ndarray,
        top_k: int = 3,
        *,
        novelty: np.ndarray | None = None,
        fine_probs: np.ndarray | None = None,
    ) -> list[Prediction]:
        k = min(top_k, probs.shape[1])
        top_idx = np.argsort(-probs, axis=1)[:, :k]
        fine_top = None
        if fine_probs is not None and self._group_index is not None:
            # The most probable fine label within the served bucket.
            inside = self._group_index[None, :] == top_idx[:, :1]
            fine_top = np.where(inside, fine_probs, -1.0).argmax(axis=1)
        out = []
        for i, (row, idx) in enumerate(zip(probs, top_idx, strict=True)):
            top = [(self.labels[j], float(row[j])) for j in idx]
            out.append(
                Prediction(
                    category=top[0][0],
                    confidence=top[0][1],
                    top=top,
                    novelty=float(novelty[i]) if novelty is not None else None,
                    fine_label=self.fine_labels[fine_top[i]] if fine_top is not None else None,
                )
            )
        return out

    def predictions_from_outputs(self, outputs: Outputs, top_k: int = 3) -> list[Prediction]:
        return self.predictions_from_probabilities(
            outputs.probs, top_k, novelty=outputs.novelty, fine_probs=outputs.fine_probs
        )

    def predict(self, texts: Sequence[str], top_k: int = 3) -> list[Prediction]:
        return self.predictions_from_outputs(self.outputs(texts), top_k)
