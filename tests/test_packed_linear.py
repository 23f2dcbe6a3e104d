"""bf16 Linear layers with weights packed once for oneDNN (``consumer.packed_linear``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from consumer.model_store import load_model
from consumer.packed_linear import PackedLinear, pack_linears, packing_works
from consumer.predictor import Predictor
from consumer.settings import ModelSettings
from tests.chaos.models import write_untrained_model

needs_packing = pytest.mark.skipif(
    not packing_works(), reason="this torch build or CPU cannot pack bf16 weights for oneDNN"
)


@needs_packing
def test_a_packed_layer_answers_what_the_plain_one_does() -> None:
    torch.manual_seed(0)
    plain = nn.Linear(384, 1536).to(torch.bfloat16)
    packed = PackedLinear(plain)
    for shape in ((1, 384), (16, 27, 384), (3, 1, 384)):
        x = torch.randn(*shape, dtype=torch.bfloat16)
        with torch.no_grad():
            want, got = plain(x).float(), packed(x).float()
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0.02, atol=0.05)


def test_only_bf16_linear_layers_are_swapped() -> None:
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 4)))
    assert pack_linears(net) == 0  # fp32: left alone
    assert all(not isinstance(m, PackedLinear) for m in net.modules())


@needs_packing
def test_the_bf16_serving_path_is_packed_and_agrees_with_the_plain_one(tmp_path: Path) -> None:
    folder = write_untrained_model(tmp_path / "v-packed")
    texts = [f"my invoice {i} was charged twice, please refund order {i * 7}" for i in range(24)]
    served = Predictor(load_model(folder), ModelSettings(device="cpu", precision="bf16"))
    assert any(isinstance(m, PackedLinear) for m in served.network.modules())
    plain_model = load_model(folder)
    plain_model.network.to(torch.bfloat16)
    plain = Predictor(plain_model, ModelSettings(device="cpu", precision="fp32"))
    got, want = served.probabilities(texts), plain.probabilities(texts)
    assert (got.argmax(1) == want.argmax(1)).all()
    assert abs(got - want).max() < 0.02


def test_a_cpu_with_bf16_instructions_packs() -> None:
    """Where the bf16 path is offered at all (avx512_bf16 or AMX), it must be the packed one."""
    from consumer.precision import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("no avx512_bf16/AMX here: the bf16 path is not offered")
    assert packing_works()
