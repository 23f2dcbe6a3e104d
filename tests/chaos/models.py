"""A servable model folder without training (``CHAOS_MODEL=untrained``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

LABELS = ["billing", "technical", "account", "shipping"]


def write_untrained_model(folder: Path, labels: Sequence[str] = LABELS, seed: int = 0) -> Path:
    """A complete, servable model folder (LoRA adapter + head + tokenizer), never trained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    from consumer.model_store import Thresholds, write_model
    from consumer.modeling import HeadConfig, resolve_base_model

    base = resolve_base_model(None)
    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(str(base), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    hidden = int(encoder.config.hidden_size)
    encoder = get_peft_model(encoder, LoraConfig(r=4, lora_alpha=8, target_modules=["query"]))
    head = torch.nn.Linear(hidden, len(labels))
    write_model(
        folder,
        encoder=encoder,
        head=head,
        tokenizer=tokenizer,
        labels=list(labels),
        head_config=HeadConfig(),
        max_length=64,
        base_model_path=base,
        thresholds=Thresholds(0.5),
    )
    return folder
