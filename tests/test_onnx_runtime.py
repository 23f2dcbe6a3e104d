"""ONNX Runtime serving candidates (issue 13): exported, optimised, served like torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consumer import precision
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.settings import ModelSettings
from tests.chaos.models import write_untrained_model
from training.candidates import candidate_specs

TEXTS = [
    "I was charged twice for my subscription this month",
    "The app crashes when I open the settings page",
    "hello",
    "Where is my parcel? It was due last week and the tracking page says nothing at all.",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_model(tmp_path_factory.mktemp("onnx") / "v-onnx", seed=5)


def test_onnx_fp32_serves_what_torch_fp32_serves(folder: Path) -> None:
    torch_fp32 = Predictor(load_model(folder), ModelSettings(device="cpu", precision="fp32"))
    onnx_fp32 = Predictor(load_model(folder), ModelSettings(device="cpu", precision="onnx-fp32"))
    assert onnx_fp32.spec == "onnx-fp32" and onnx_fp32.precision == "onnx-fp32"
    assert "MatMulInteger" not in onnx_fp32.network.op_types  # type: ignore[attr-defined]
    a = torch_fp32.outputs(TEXTS, embeddings=True)
    b = onnx_fp32.outputs(TEXTS, embeddings=True)
    assert a.embeddings is not None and b.embeddings is not None
    np.testing.assert_allclose(b.probs, a.probs, atol=1e-4)
    np.testing.assert_allclose(b.embeddings, a.embeddings, atol=1e-4)
    # A varying batch and length go through the one exported graph (dynamic axes).
    one = onnx_fp32.outputs(TEXTS[:1])
    np.testing.assert_allclose(one.probs, a.probs[:1], atol=1e-4)


def test_onnx_int8_is_close_and_quantized(folder: Path) -> None:
    torch_fp32 = Predictor(load_model(folder), ModelSettings(device="cpu", precision="fp32"))
    onnx_int8 = Predictor(load_model(folder), ModelSettings(device="cpu", precision="onnx-int8"))
    a, b = torch_fp32.probabilities(TEXTS), onnx_int8.probabilities(TEXTS)
    assert np.abs(a - b).max() < 0.05
    ops = onnx_int8.network.op_types  # type: ignore[attr-defined]
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops  # quantized by onnxruntime
    assert "BiasGelu" in ops  # and fused by its transformer optimiser


def test_training_offers_onnx_candidates_only_when_asked() -> None:
    default = {s.name for s in candidate_specs("cpu")}
    asked = {s.name for s in candidate_specs("cpu", onnx=True)}
    assert not {"onnx-fp32", "onnx-int8"} & default
    assert {"onnx-fp32", "onnx-int8"} <= asked
    assert precision.onnx_available()
