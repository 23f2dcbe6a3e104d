"""Batched inference on the best device and serving path at hand.

GPU when there is one. The precision/runtime (fp32, bf16, bf16 autocast, dynamic
int8 on the CPU; fp16, bf16, fp32 on a GPU) is chosen by ``consumer.precision``
from what training measured for this model folder and what this machine
supports, or forced by ``TICKETSORT_MODEL__PRECISION``. Within a batch, texts
are sorted by token length and run in chunks so little time goes to padding.

Training runs its own evaluations through this class too (``training.trainer``):
one tokenizer call, one padding, one chunked inference loop for both.

The same forward pass yields the pooled embedding; when the model folder has
novelty statistics (``consumer.novelty``) each prediction carries its novelty
score, and a grouped head (``consumer.label_groups``) is served as buckets by
summing fine-label probabilities (the fine label rides along).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from consumer import chunking
from consumer import precision as serving_paths
from consumer.logs import get_logger
from consumer.model_store import LoadedModel
from consumer.novelty import NoveltyScorer
from consumer.packed_linear import pack_linears, packing_works
from consumer.settings import ModelSettings

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "int8", "bf16", "bf16-autocast", "fp16", "onnx-fp32", "onnx-int8"]

log = get_logger("consumer.predictor")
WARMUP_ROUNDS = 3
WARMUP_BUDGET_S = 2.0  # more rounds while the timed ones took less (a fast machine)
# Start-up measurements per (model folder, version, hardware, candidates): a process that
# builds the same model's Predictor again (a restart of the service loop, tests) reuses them.
_WARM_UP_CACHE: dict[tuple[str, str, str, tuple[str, ...]], dict[str, float]] = {}


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


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids, truncated, unpadded: what serving and training both feed the network."""
    if not texts:
        return []
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [list(ids) for ids in encoded["input_ids"]]


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest row (dynamic padding): ids and attention mask, int64, on the CPU."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def quantize_int8(network: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations dynamic)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(network, {nn.Linear}, dtype=torch.qint8)


def prepare_network(network: nn.Module, spec: str, *, keep_original: bool = False) -> nn.Module:
    """``network`` ready for the serving spec (a ``consumer.precision.SPECS`` name).

    The bf16 and GPU casts work in place unless ``keep_original``; int8 always copies. On the
    CPU, bf16's Linear layers get their weights packed once for oneDNN (``consumer.packed_linear``).
    """
    network.eval()
    if spec == "int8":
        return quantize_int8(network)
    if spec in ("onnx-fp32", "onnx-int8"):
        from consumer.onnx_runtime import OnnxNetwork

        onnx: Any = OnnxNetwork(network, int8=spec == "onnx-int8")
        return cast(nn.Module, onnx)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "bf16-cuda": torch.bfloat16}
    device = serving_paths.SPECS[spec].device
    if spec in dtypes or device == "cuda":
        target = copy.deepcopy(network) if keep_original else network
        target = target.to(device=device, dtype=dtypes.get(spec, torch.float32))
        if spec == "bf16" and packing_works():  # weights packed once for oneDNN
            pack_linears(cast(Any, target).encoder if hasattr(target, "encoder") else target)
        return target
    return network


def autocast_for(spec: str) -> Callable[[], AbstractContextManager[Any]]:
    if spec == "bf16-autocast":
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext


def _random_chunks(
    *, device: str, batch: int, lengths: Sequence[int], vocab: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One chunk of ``batch`` random token ids (and its mask) at each of ``lengths``: the
    arithmetic, not the words, sets the speed."""
    generator = torch.Generator().manual_seed(0)
    chunks = []
    for length in lengths:
        ids = torch.randint(1000, max(vocab, 1001), (batch, length), generator=generator)
        chunks.append((ids.to(device), torch.ones_like(ids).to(device)))
    return chunks


def _forward(
    network: nn.Module, spec: str, chunks: list[tuple[torch.Tensor, torch.Tensor]], device: str
) -> Callable[[], object]:
    """A call that runs ``network`` on every chunk the way serving runs it (``spec``'s
    autocast, inference mode) and waits for the device."""
    autocast = autocast_for(spec)

    @torch.inference_mode()
    def run() -> object:
        with autocast():
            out = [network(chunk, mask) for chunk, mask in chunks]
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def warm_up_speeds(
    runs: dict[str, tuple[nn.Module, str]],
    *,
    device: str,
    batch: int,
    lengths: Sequence[int],
    vocab: int,
) -> dict[str, float]:
    """Tickets/s of each (prepared network, spec), interleaved: one call runs one chunk of
    ``batch`` tickets at each of ``lengths`` (``Record.warm_up_lengths``)."""
    chunks = _random_chunks(device=device, batch=batch, lengths=lengths, vocab=vocab)
    forwards = {
        name: _forward(network, spec, chunks, device) for name, (network, spec) in runs.items()
    }
    return serving_paths.interleaved_speeds(
        forwards, batch * len(chunks), WARMUP_ROUNDS, budget_s=WARMUP_BUDGET_S
    )


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
        if settings.threads:
            torch.set_num_threads(settings.threads)
        # Denormal floats make CPU matmuls crawl (seen here in training); flushing them
        # to zero changes no prediction.
        torch.set_flush_denormal(True)
        self.max_length = min(settings.max_length, model.max_length)
        self.chunk_size = chunk_size or (256 if self.device == "cuda" else 16)
        self.tokenizer = model.tokenizer
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.hardware = serving_paths.detect_hardware(self.device)
        self.record = serving_paths.Record.from_manifest(model.manifest)
        warmed: dict[str, nn.Module] = {}

        def measure(names: Sequence[str]) -> dict[str, float]:
            key = (str(model.path), self.version, self.hardware.signature(), tuple(names))
            if key not in _WARM_UP_CACHE:
                warmed.update(
                    {n: prepare_network(model.network, n, keep_original=True) for n in names}
                )
                _WARM_UP_CACHE[key] = self._warm_up(warmed)
            return _WARM_UP_CACHE[key]

        self.choice = serving_paths.choose(
            self.record,
            self.hardware,
            settings.precision,
            int8_safe=model.int8_safe,
            measure=measure,
        )
        self.spec = self.choice.name
        self.precision: Precision = self.choice.precision  # type: ignore[assignment]
        self._autocast = autocast_for(self.spec)
        if self.spec in warmed:
            self.network = warmed[self.spec]
        else:
            self.network = prepare_network(model.network, self.spec)
        # A forced or cached choice ran no forward in this process: ``warm`` runs one.
        self._cold = self.spec not in warmed
        warmed.clear()
        self.novelty: NoveltyScorer | None = None
        self._novelty_scale = 1.0
        self.set_novelty(model.novelty)
        self._group_matrix = model.groups.matrix(self.device) if model.groups is not None else None
        self._group_index = model.groups.index() if model.groups is not None else None

        log.info("serving_path_chosen", **self.describe())

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary: the range a speed measurement's random ids come from."""
        return int(getattr(self.tokenizer, "vocab_size", 30000))

    def warm_up_lengths(self) -> tuple[int, ...]:
        """The token lengths a speed measurement runs (``Record.warm_up_lengths``; a folder
        without a record: the default record's)."""
        record = self.record or serving_paths.Record(candidates=())
        return record.warm_up_lengths(self.max_length)

    def _warm_up(self, networks: dict[str, nn.Module]) -> dict[str, float]:
        return warm_up_speeds(
            {name: (network, name) for name, network in networks.items()},
            device=self.device,
            batch=self.chunk_size,
            lengths=self.warm_up_lengths(),
            vocab=self.vocab_size,
        )

    def warm(self) -> None:
        """Before serving: run the chosen path once at each warm-up length unless a speed
        measurement in this process already ran it, so that the first real batch does not
        pay for first-call kernel selection, weight packing and allocator growth (seen as the
        latency bench's warm-up p99 on a forced or cached path). Training's views skip it."""
        if not self._cold:
            return
        chunks = _random_chunks(
            device=self.device,
            batch=self.chunk_size,
            lengths=self.warm_up_lengths(),
            vocab=self.vocab_size,
        )
        _forward(self.network, self.spec, chunks, self.device)()
        self._cold = False

    def set_novelty(self, scorer: NoveltyScorer | None) -> None:
        """Score novelty with ``scorer`` from now on (training attaches a freshly fitted one)."""
        self.novelty = scorer.to(self.device) if scorer is not None else None
        self._novelty_scale = scorer.scale_for(self.precision) if scorer is not None else 1.0

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "device": self.device,
            "precision": self.precision,
            "serving_path": self.choice.to_dict(),
            "labels": len(self.labels),
            "grouped_from": len(self.fine_labels) if self._group_matrix is not None else None,
            "novelty": self.novelty.method if self.novelty is not None else None,
            "threads": torch.get_num_threads(),
        }

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return tokenize(self.tokenizer, texts, self.max_length)

    def _padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids_t, mask_t = pad(rows, self.pad_id)
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
        for idx, ids, mask in self._chunks(token_ids):
            with self._autocast():
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
                    distance = self.novelty.score_tensor(pooled.float())
                    raw = self.novelty.combine(distance, chunk).cpu().numpy()
                    novelty[idx] = raw * self._novelty_scale
                if embeddings:
                    if pooled_out is None:
                        pooled_out = np.zeros((n, pooled.shape[1]), dtype=np.float32)
                    pooled_out[idx] = pooled.float().cpu().numpy()
        return Outputs(probs, novelty, fine, pooled_out)

    def probabilities_from_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        """Class probabilities (n, served labels) for pre-tokenized texts, input order kept."""
        return self.outputs_from_ids(token_ids).probs

    @torch.inference_mode()
    def embeddings_from_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        """Pooled (and normalised, per the head config) embeddings (n, hidden), input order."""
        out = np.zeros((len(token_ids), int(self.model.network.head.in_features)), np.float32)
        for idx, ids, mask in self._chunks(token_ids):
            with self._autocast():
                pooled = cast(Any, self.network).embed(ids, mask)
            out[idx] = pooled.float().cpu().numpy()
        return out

    def _chunks(
        self, token_ids: list[list[int]]
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Chunks of similar length (``chunking.length_chunks``): input positions, ids, mask."""
        lengths = [len(row) for row in token_ids]
        # the calling thread's count: an inference worker's own share of the cores
        overhead = chunking.overhead_tokens(self.device, torch.get_num_threads())
        for idx in chunking.length_chunks(lengths, self.chunk_size, overhead):
            ids, mask = self._padded([token_ids[i] for i in idx])
            yield idx, ids, mask

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
        return self.predict_ids(self.tokenize(texts), top_k)

    def predict_ids(self, token_ids: list[list[int]], top_k: int = 3) -> list[Prediction]:
        """``predict`` for texts already through ``tokenize``."""
        return self.predictions_from_outputs(self.outputs_from_ids(token_ids), top_k)
