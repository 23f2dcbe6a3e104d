"""Model folders: what training writes and what serving loads.

A model folder (``models/<version>/``) holds::

    manifest.json        format, version, base model, labels, head, max_length, int8 check
    labels.json          the label list, index = class id
    thresholds.json      review thresholds chosen on validation (confidence; novelty)
    novelty.safetensors, novelty.json   novelty statistics (optional; ``consumer.novelty``)
    groups.json          fine label -> served bucket (optional; ``consumer.label_groups``)
    adapter/             the LoRA adapter (peft, safetensors)
    head.safetensors     the classification head
    tokenizer/           the tokenizer
    metrics.json, report.md, confusion.png, training_args.json, snapshot.json
    distribution.json    training category mix and confidences (drift; optional)

``models/current`` is a symlink to the promoted version. Only safetensors are
ever read: a folder holding pickle files (``*.bin``, ``*.pt``, ...) is refused
before anything in it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from consumer.errors import ExitCode, TicketsortError
from consumer.label_groups import LabelGroups, LabelGroupsError, load_groups
from consumer.modeling import HeadConfig, TicketClassifier, resolve_base_model
from consumer.novelty import NoveltyError, NoveltyScorer, load_novelty

FORMAT = "ticketsort-model"
FORMAT_VERSION = 1
CURRENT = "current"
SHADOW = "shadow"  # a version scored on live traffic beside the served one (consumer.shadow)
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy"}


class ModelLoadError(TicketsortError):
    """A model folder is missing, incomplete, unsafe or inconsistent."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class Thresholds:
    global_threshold: float
    per_category: dict[str, float] = field(default_factory=dict)
    # Novelty scores above this go to review (reason "novel"); None: no novelty routing.
    novelty: float | None = None

    def for_category(self, category: str) -> float:
        return self.per_category.get(category, self.global_threshold)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"global": self.global_threshold, "per_category": self.per_category}
        if self.novelty is not None:
            out["novelty"] = self.novelty
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        novelty = data.get("novelty")
        return cls(
            float(data["global"]),
            {k: float(v) for k, v in data.get("per_category", {}).items()},
            None if novelty is None else float(novelty),
        )


@dataclass
class LoadedModel:
    path: Path
    version: str
    labels: list[str]
    thresholds: Thresholds
    manifest: dict[str, Any]
    network: TicketClassifier
    tokenizer: Any
    novelty: NoveltyScorer | None = None
    groups: LabelGroups | None = None

    @property
    def served_labels(self) -> list[str]:
        """What serving routes to: the buckets of a grouped head, else the labels."""
        return list(self.groups.served) if self.groups is not None else list(self.labels)

    @property
    def max_length(self) -> int:
        return int(self.manifest.get("max_length", 128))

    @property
    def int8_safe(self) -> bool:
        return bool(self.manifest.get("int8_safe", False))


def base_fingerprint(base_path: Path) -> str:
    """Identify a base model by its config and weight file sizes (cheap, stable)."""
    digest = hashlib.sha256((base_path / "config.json").read_bytes())
    for weights in sorted(base_path.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path.name} is missing in {path.parent}") from exc
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is unreadable: {exc}") from exc


def refuse_pickles(folder: Path) -> None:
    unsafe = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES
    )
    if unsafe:
        raise ModelLoadError(
            f"model folder {folder} holds pickle-based files {unsafe}: refused. ticketsort loads"
            " safetensors only and never executes a pickle; retrain with `make train`."
        )


def resolve_model_dir(store: Path, explicit: Path | None = None) -> Path:
    """The folder to serve: an explicit one, else ``<store>/current``."""
    folder = explicit if explicit is not None else store / CURRENT
    if not folder.exists():
        hint = (
            f"no model at {folder}. Train one first: `make train` (or `make run`, which trains a"
            " demo model on first start), or set TICKETSORT_MODEL__PATH to a model folder."
        )
        raise ModelLoadError(hint)
    return folder.resolve()


def write_model(
    folder: Path,
    *,
    encoder: nn.Module,
    head: nn.Linear,
    tokenizer: Any,
    labels: list[str],
    head_config: HeadConfig,
    max_length: int,
    base_model_path: Path,
    thresholds: Thresholds,
    extra_manifest: dict[str, Any] | None = None,
) -> None:
    """Write the servable core of a model folder. ``encoder`` is a peft-wrapped encoder."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(str(folder / "adapter"), safe_serialization=True)  # type: ignore[operator]
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
        str(folder / "head.safetensors"),
    )
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    (folder / "labels.json").write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")
    (folder / "thresholds.json").write_text(
        json.dumps(thresholds.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": folder.name,
        "base_model": str(base_model_path),
        "base_fingerprint": base_fingerprint(base_model_path),
        "num_labels": len(labels),
        "head": head_config.to_dict(),
        "max_length": max_length,
    }
    manifest.update(extra_manifest or {})
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def update_manifest(folder: Path, **values: Any) -> None:
    manifest = _read_json(folder / "manifest.json")
    manifest.update(values)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any]:
    manifest = _read_json(folder / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{folder}/manifest.json is not a {FORMAT} manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelLoadError(f"{folder} was written by a newer ticketsort (format too new)")
    return manifest


def load_model(folder: Path, base_model: str | Path | None = None) -> LoadedModel:
    """Load base + adapter (merged) + head + tokenizer, checking everything first."""
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist; run `make train`")
    refuse_pickles(folder)
    manifest = read_manifest(folder)
    labels = _read_json(folder / "labels.json")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelLoadError(f"{folder}/labels.json must be a non-empty list of strings")
    if len(set(labels)) != len(labels):
        raise ModelLoadError(f"{folder}/labels.json has duplicate labels")
    try:
        thresholds = Thresholds.from_dict(_read_json(folder / "thresholds.json"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{folder}/thresholds.json is malformed: {exc}") from exc
    for required in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "head.safetensors",
        "tokenizer",
    ):
        if not (folder / required).exists():
            raise ModelLoadError(f"{folder} is incomplete: {required} is missing")

    base_path = resolve_base_model(base_model if base_model is not None else None)
    if manifest.get("base_fingerprint") and manifest["base_fingerprint"] != base_fingerprint(
        base_path
    ):
        raise ModelLoadError(
            f"{folder} was trained on another base model ({manifest.get('base_model')}) than"
            f" the configured one ({base_path})"
        )
    try:
        head_state = load_file(str(folder / "head.safetensors"))
        encoder = AutoModel.from_pretrained(str(base_path), use_safetensors=True)
        encoder = PeftModel.from_pretrained(encoder, str(folder / "adapter"), use_safetensors=True)
        encoder = encoder.merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    except ModelLoadError:
        raise
    except Exception as exc:  # corrupt files surface as many exception types
        raise ModelLoadError(f"{folder} could not be loaded: {type(exc).__name__}: {exc}") from exc
    network = TicketClassifier(encoder, len(labels), HeadConfig.from_dict(manifest.get("head", {})))
    weight = head_state.get("weight")
    if weight is None or tuple(weight.shape) != tuple(network.head.weight.shape):
        raise ModelLoadError(
            f"{folder}: head shape {None if weight is None else tuple(weight.shape)} does not"
            f" match {len(labels)} labels"
        )
    network.head.load_state_dict(head_state)
    network.eval()
    try:
        novelty = load_novelty(folder)
        groups = load_groups(folder, labels)
    except (NoveltyError, LabelGroupsError) as exc:
        raise ModelLoadError(str(exc)) from exc
    if novelty is not None and novelty.dim != network.head.weight.shape[1]:
        raise ModelLoadError(
            f"{folder}: novelty statistics are {novelty.dim}-dimensional, the encoder"
            f" {network.head.weight.shape[1]}"
        )
    return LoadedModel(
        path=folder,
        version=str(manifest.get("version", folder.name)),
        labels=labels,
        thresholds=thresholds,
        manifest=manifest,
        network=network,
        tokenizer=tokenizer,
        novelty=novelty,
        groups=groups,
    )


def promote(store: Path, folder: Path, link_name: str = CURRENT) -> None:
    """Point ``<store>/current`` (or ``<store>/shadow``) at ``folder`` atomically."""
    link = store / link_name
    tmp = store / f".{link_name}.tmp.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    target = os.path.relpath(folder.resolve(), store.resolve())
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


def current_version(store: Path, link_name: str = CURRENT) -> str | None:
    link = store / link_name
    if not link.exists():
        return None
    return link.resolve().name


def remove_link(store: Path, link_name: str) -> bool:
    """Remove ``<store>/<link_name>`` (the folder it points at stays); False if absent."""
    link = store / link_name
    if not link.is_symlink():
        return False
    link.unlink()
    return True


def new_version_name() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("v%Y%m%d-%H%M%S")


def state_dict_to_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
