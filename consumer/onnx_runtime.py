"""ONNX Runtime serving candidates: ``onnx-fp32`` and ``onnx-int8`` (an optional extra).

The network (LoRA merged into the encoder) is exported with PyTorch's own exporter
(``torch.onnx.export``, dynamo), rewritten by ONNX Runtime's transformer optimiser
(``onnxruntime.transformers.optimizer``: fused LayerNorm, Gelu, ...) and, for int8,
quantized by ``onnxruntime.quantization.quantize_dynamic``. No graph code is written
here. The graph returns the logits and the pooled embedding, so novelty and the
grouped head work as with torch. ``OnnxNetwork`` looks like the torch network to the
``Predictor`` (``__call__``, ``logits_and_embedding``, ``embed``).

``pip install -e '.[onnx]'``; without it the candidates are simply not offered
(``consumer.precision``: the feature ``onnxruntime`` is missing).
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FEATURE = "onnxruntime"
OPSET = 18


def available() -> bool:
    """Whether the exporter and the runtime can be imported here."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript")
    )


class _Export(nn.Module):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        network: Any = self.network
        return network.logits_and_embedding(input_ids, attention_mask)


def merged_copy(network: nn.Module) -> Any:
    """An fp32 eval copy with the LoRA adapter merged into the encoder's weights."""
    out: Any = copy.deepcopy(network).float().eval()
    encoder = out.encoder
    if hasattr(encoder, "merge_and_unload"):
        out.encoder = encoder.merge_and_unload()
    return out


def export(network: nn.Module, folder: Path, *, int8: bool) -> Path:
    """Export, optimise (and quantize) ``network`` into ``folder``; the model file's path."""
    from onnxruntime.transformers.optimizer import optimize_model

    folder.mkdir(parents=True, exist_ok=True)
    merged = merged_copy(network)
    config = merged.encoder.config
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=4096)
    raw = folder / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Export(merged),
            (ids, mask),
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits", "pooled"],
            dynamic_shapes={
                "input_ids": {0: batch, 1: tokens},
                "attention_mask": {0: batch, 1: tokens},
            },
            opset_version=OPSET,
            dynamo=True,
        )
    optimized = folder / "model.opt.onnx"
    optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
    ).save_model_to_file(str(optimized))
    if not int8:
        return optimized
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = folder / "model.int8.onnx"
    quantize_dynamic(str(optimized), str(quantized), weight_type=QuantType.QInt8)
    return quantized


class OnnxNetwork:
    """An ONNX Runtime session with the torch network's calling convention."""

    def __init__(self, network: nn.Module, *, int8: bool, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.int8 = int8
        with tempfile.TemporaryDirectory(prefix="ticketsort-onnx-") as tmp:
            path = export(network, Path(tmp), int8=int8)
            import onnx

            self.op_types = frozenset(n.op_type for n in onnx.load(str(path)).graph.node)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    def eval(self) -> OnnxNetwork:
        return self

    def logits_and_embedding(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = self.session.run(
            None,
            {
                "input_ids": input_ids.cpu().numpy().astype(np.int64),
                "attention_mask": attention_mask.cpu().numpy().astype(np.int64),
            },
        )
        return torch.from_numpy(logits), torch.from_numpy(pooled)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(input_ids, attention_mask)[1]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(input_ids, attention_mask)[0]
