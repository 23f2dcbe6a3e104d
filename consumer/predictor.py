"""Batched inference on the best device at hand.

GPU when there is one (half precision, pinned host memory, large chunks); on
the CPU, dynamic int8 quantization when training measured it safe for this
model (``int8_safe`` in the manifest), else fp32. Within a batch, texts are
sorted by token length and run in chunks so little time goes to padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from consumer.model_store import LoadedModel
from consumer.settings import ModelSettings

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "int8", "bf16", "fp16"]


@dataclass(frozen=True, slots=True)
class Prediction:
    category: str
    confidence: float
    top: list[tuple[str, float]]


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
        self.labels = model.labels
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

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "device": self.device,
            "precision": self.precision,
            "labels": len(self.labels),
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
    def probabilities_from_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        """Class probabilities (n, labels) for pre-tokenized texts, input order kept."""
        n = len(token_ids)
        out = np.zeros((n, len(self.labels)), dtype=np.float32)
        if n == 0:
            return out
        order = sorted(range(n), key=lambda i: len(token_ids[i]))
        for start in range(0, n, self.chunk_size):
            idx = order[start : start + self.chunk_size]
            ids, mask = self._padded([token_ids[i] for i in idx])
            logits = self.network(ids, mask)
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            out[idx] = probs
        return out

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities_from_ids(self.tokenize(texts))

    def predictions_from_probabilities(self, probs: np.ndarray, top_k: int = 3) -> list[Prediction]:
        k = min(top_k, probs.shape[1])
        top_idx = np.argsort(-probs, axis=1)[:, :k]
        out = []
        for row, idx in zip(probs, top_idx, strict=True):
            top = [(self.labels[j], float(row[j])) for j in idx]
            out.append(Prediction(category=top[0][0], confidence=top[0][1], top=top))
        return out

    def predict(self, texts: Sequence[str], top_k: int = 3) -> list[Prediction]:
        return self.predictions_from_probabilities(self.probabilities(texts), top_k)
