"""The promotion gate: ``models/current`` moves only to a better model.

The current model is scored on the new run's held-out test slice (the same
tickets, through the same serving path) and the new model is promoted when its
macro-F1 is strictly higher; or with ``force``; or when there is no current
model, or it cannot be loaded any more (serving could not load it either).

With ``--shadow`` the gate is not asked: the new version becomes ``models/shadow``,
scored on live traffic beside the served one (``consumer.shadow``), and promoted
later on that evidence (``python -m training promote --from-shadow``,
``training.online_eval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from consumer.logs import get_logger
from consumer.model_store import SHADOW, ModelLoadError, current_version, promote
from training.evaluate import score_model_dir
from training.records import Example

log = get_logger("training.promote")


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    current_version: str | None
    current_macro_f1: float | None
    new_macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    store: Path,
    *,
    new_macro_f1: float,
    test: Sequence[Example],
    force: bool,
    device: str = "cpu",
    base_model: str | Path | None = None,
) -> Decision:
    """Whether the new model should replace ``<store>/current`` (nothing is changed here)."""
    current = current_version(store)
    if force:
        return Decision(True, "forced (--force)", current, None, new_macro_f1)
    if current is None:
        return Decision(True, "there was no current model", None, None, new_macro_f1)
    try:
        scored = score_model_dir(store / "current", test, device=device, base_model=base_model)
    except ModelLoadError as exc:
        log.warning("current_model_unloadable", version=current, error=str(exc))
        return Decision(
            True, f"the current model {current} cannot be loaded ({exc})", current, None,
            new_macro_f1,
        )  # fmt: skip
    current_f1 = float(scored.metrics()["macro_f1"])
    if new_macro_f1 > current_f1:
        reason = (
            f"beats {current} on the held-out test slice: macro-F1 {new_macro_f1:.4f}"
            f" > {current_f1:.4f}"
        )
        return Decision(True, reason, current, current_f1, new_macro_f1)
    reason = (
        f"does not beat {current} on the held-out test slice: macro-F1 {new_macro_f1:.4f}"
        f" <= {current_f1:.4f} (use --force to promote anyway)"
    )
    return Decision(False, reason, current, current_f1, new_macro_f1)


def as_shadow(store: Path, new_macro_f1: float) -> Decision:
    """The decision of a run installed as the shadow: not served, no gate."""
    return Decision(
        False,
        "installed as the shadow model (--shadow): scored on live traffic, not served;"
        " `python -m training promote --from-shadow` promotes it on that evidence",
        current_version(store),
        None,
        new_macro_f1,
    )


def apply(store: Path, folder: Path, decision: Decision, *, shadow: bool = False) -> None:
    if shadow:
        promote(store, folder, SHADOW)
        log.info("model_installed_as_shadow", version=folder.name)
    elif decision.promoted:
        promote(store, folder)
        log.info("model_promoted", version=folder.name, reason=decision.reason)
    else:
        log.info("model_not_promoted", version=folder.name, reason=decision.reason)
