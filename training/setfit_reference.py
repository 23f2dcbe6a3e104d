"""SetFit on the same split and base model, within the same time budget: a reference row.

SetFit (contrastive fine-tuning of the sentence encoder on pairs, then a logistic
regression head on its embeddings) is the obvious alternative for small labeled
sets. The benchmark trains it on the training slice our run used, from the same
bundled base model, stops its body training when the budget is spent (a
``transformers`` callback: the library's own loop, not ours), and scores the
test slice. An optional extra: ``pip install -e '.[bench]'`` (``make bench``
installs it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.records import Example

PROBE_STEPS = 6


def run_setfit(
    train: Sequence[Example],
    test: Sequence[Example],
    *,
    base_model_path: Path,
    budget_s: float,
    seed: int = 13,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Train SetFit on ``train`` for at most ``budget_s`` of body training; score ``test``."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.steps = 0
            self.cut = False
            self.step_ends: list[float] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.steps = state.global_step
            self.step_ends.append(time.monotonic())
            if time.monotonic() - self.started > budget_s:
                self.cut = True
                control.should_training_stop = True
            return control

    def train_for(max_steps: int) -> tuple[Any, TimeBudget, float]:
        model = SetFitModel.from_pretrained(str(base_model_path), local_files_only=True)
        budget = TimeBudget()
        args = TrainingArguments(
            batch_size=batch_size,
            num_epochs=1,
            max_steps=max_steps,
            max_length=64,
            seed=seed,
            show_progress_bar=False,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            eval_strategy="no",
        )
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[budget])
        budget.started = time.monotonic()
        trainer.train()
        return model, budget, time.monotonic() - budget.started

    started = time.monotonic()
    data = Dataset.from_dict({"text": [e.text for e in train], "label": [e.label for e in train]})
    # A short probe sizes the run so that its learning-rate schedule (warm-up, decay)
    # fits the budget, as our trainer plans its own; the callback still guards it.
    # The probe's time counts against the budget.
    _, probe, _ = train_for(PROBE_STEPS)
    ends = probe.step_ends[1:]  # the first step pays for warm-up
    step_s = (ends[-1] - ends[0]) / max(len(ends) - 1, 1)
    remaining = budget_s - (time.monotonic() - started)
    planned = max(PROBE_STEPS, int(0.95 * remaining / step_s))
    model, budget, _ = train_for(planned)
    train_s = time.monotonic() - started
    predicted = [str(p) for p in model.predict([e.text for e in test], batch_size=64)]
    truth = [e.label for e in test]
    return {
        "name": "SetFit (same base model, contrastive body + logistic head)",
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "train_s": round(train_s, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "body_steps": budget.steps,
        "planned_steps": planned,
        "seconds_per_step": round(step_s, 3),
        "cut_by_time": budget.cut,
        "budget_s": budget_s,
        "train_examples": len(train),
    }
