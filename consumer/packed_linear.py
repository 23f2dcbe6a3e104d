"""bf16 Linear layers with their weights packed once for oneDNN, as torch.compile's CPU freezing
pass does, instead of on every call.

``nn.Linear`` in bf16 on the CPU hands oneDNN a plain weight matrix, which oneDNN reorders into
its blocked (AMX/AVX512-BF16) layout on every call: for this encoder's small matrices and short
batches that reorder is a large part of the forward pass (measured on a 2-core Xeon with AMX:
a 384x1536 layer at 216 rows, 482 µs plain vs 215 µs packed; the whole model +13-16% tickets/s
at batch 8, +2-19% at batch 32). ``pack_linears`` swaps each Linear of a bf16 module for a
``PackedLinear`` holding ``torch.ops.mkldnn._reorder_linear_weight``'s result and calling
``_linear_pointwise``: the ops inductor itself emits for frozen bf16 linears. Where they are
missing or fail a self-check, nothing is swapped and the plain layers serve.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from consumer.logs import get_logger

log = get_logger(__name__)

# The rows (tokens in a batch) oneDNN plans the packed layout for; any row count works.
ROWS_HINT = 256


class PackedLinear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` packed once (inference only)."""

    def __init__(self, linear: nn.Linear, rows_hint: int = ROWS_HINT) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows_hint)
        self.register_buffer("packed_weight", packed)
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        y = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, self.bias, "none", [], "")
        return y.reshape(*x.shape[:-1], self.out_features)


@functools.cache
def packing_works() -> bool:
    """True when this torch build packs bf16 Linear weights and gets the plain layer's answer."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops, "mkldnn"):
        return False
    try:
        with torch.no_grad():
            layer = nn.Linear(64, 32).to(torch.bfloat16)
            x = torch.randn(5, 3, 64, dtype=torch.bfloat16)
            want = layer(x).float()
            got = PackedLinear(layer, rows_hint=16)(x).float()
        return bool(torch.allclose(want, got, rtol=0.05, atol=0.05))
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        log.info("bf16_packing_unavailable", error=f"{type(exc).__name__}: {exc}")
        return False


def pack_linears(module: nn.Module, rows_hint: int = ROWS_HINT) -> int:
    """Swap every bf16 ``nn.Linear`` under ``module`` for a ``PackedLinear``; how many."""
    swapped = 0
    with torch.no_grad():
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child.weight.dtype == torch.bfloat16:
                setattr(module, name, PackedLinear(child, rows_hint))
                swapped += 1
            else:
                swapped += pack_linears(child, rows_hint)
    return swapped
