"""A grouped head: the network scores fine labels, serving reads buckets.

Training on the fine labels a team has (e.g. 77 intents) and serving the
buckets a label map groups them into (e.g. 11) by summing the probabilities of
the fine labels within each bucket: the served confidence of a bucket is the
probability that the ticket is any of its labels. Saved as ``groups.json`` in
the model folder (``{"served": [bucket, ...], "of_label": {fine: bucket}}``);
thresholds and novelty are chosen on the served buckets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

GROUPS_FILE = "groups.json"


class LabelGroupsError(ValueError):
    """A grouping that does not cover the model's labels."""


@dataclass(frozen=True)
class LabelGroups:
    fine: tuple[str, ...]
    served: tuple[str, ...]
    of_label: Mapping[str, str]

    @classmethod
    def from_map(cls, fine_labels: Sequence[str], of_label: Mapping[str, str]) -> LabelGroups:
        missing = sorted(set(fine_labels) - set(of_label))
        if missing:
            raise LabelGroupsError(f"labels without a bucket in the label map: {missing[:10]}")
        fine = tuple(fine_labels)
        served = tuple(sorted({of_label[f] for f in fine}))
        return cls(fine, served, {f: of_label[f] for f in fine})

    def index(self) -> np.ndarray:
        """Served-bucket index of every fine label, in fine-label order."""
        position = {s: i for i, s in enumerate(self.served)}
        return np.array([position[self.of_label[f]] for f in self.fine], dtype=np.int64)

    def matrix(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """(fine, served) 0/1 matrix: ``fine_probs @ matrix`` sums within buckets."""
        m = torch.zeros(len(self.fine), len(self.served), dtype=torch.float32)
        m[torch.arange(len(self.fine)), torch.from_numpy(self.index())] = 1.0
        return m.to(device)

    def sum_probs(self, fine_probs: np.ndarray) -> np.ndarray:
        return np.asarray(fine_probs, dtype=np.float32) @ self.matrix().numpy()

    def save(self, folder: Path) -> None:
        data = {"served": list(self.served), "of_label": dict(self.of_label)}
        (folder / GROUPS_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load_groups(folder: Path, fine_labels: Sequence[str]) -> LabelGroups | None:
    path = folder / GROUPS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        of_label = {str(k): str(v) for k, v in dict(data["of_label"]).items()}
        served = [str(s) for s in data["served"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelGroupsError(f"{path} is malformed: {exc}") from exc
    groups = LabelGroups.from_map(fine_labels, of_label)
    if list(groups.served) != served:
        raise LabelGroupsError(f"{path}: served buckets {served} do not match the label map")
    return groups
