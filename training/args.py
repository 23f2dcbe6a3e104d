"""``TrainingArgs``: every knob of one training run, with documented defaults.

The defaults are the recipe measured on banking77 (see BENCHMARKS.md): LoRA on
every linear layer of the encoder, mean pooling into a cosine classifier whose
head starts from a logistic regression on the frozen embeddings, a head learning
rate above the LoRA one, short sequences with dynamic padding. A run writes the
args it used to ``training_args.json`` in the model folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALL_LINEAR = ["query", "key", "value", "dense"]


class TrainingArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- LoRA on the encoder ------------------------------------------------------------
    lora_r: int = Field(default=16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(default=32, ge=1, description="LoRA scaling numerator (alpha / r).")
    lora_dropout: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "Dropout on each adapter's input. 0 (no dropout module): at 0.05 the 36 adapters'"
            " dropout masks took ~40% of a CPU step (random numbers are generated serially);"
            " the encoder's own dropout and label smoothing still regularise."
        ),
    )
    encoder_dropout: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="Dropout inside the encoder while training; None: the base model's (0.1).",
    )
    lora_target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_LINEAR),
        description=(
            "Encoder Linear layers that get an adapter. 'dense' matches the attention output,"
            " intermediate and output dense layers of every BERT block (all linear layers)."
        ),
    )

    # --- head ---------------------------------------------------------------------------
    pooling: Literal["mean", "cls"] = Field(
        default="mean", description="mean: how sentence-transformers pretrained this encoder."
    )
    normalize: bool = Field(default=True, description="L2-normalise pooled embeddings.")
    scale: float = Field(
        default=20.0, gt=0, description="Logit scale (with normalize: a cosine classifier)."
    )
    head_dropout: float = Field(default=0.1, ge=0, lt=1)
    head_init: Literal["logistic", "centroid", "random"] = Field(
        default="logistic",
        description=(
            "Start the head from a logistic regression (or the class centroids) on the frozen"
            " embeddings of the training slice, so fine-tuning starts from a good classifier."
        ),
    )
    calibrate: bool = Field(
        default=True,
        description=(
            "Fit a temperature on validation (min NLL) and fold it into the head's logit"
            " scale: better-calibrated confidences, same predictions."
        ),
    )
    head_init_c: float = Field(
        default=1.0, gt=0, description="Inverse regularisation of the head-init regression."
    )

    # --- optimisation -------------------------------------------------------------------
    lr: float = Field(default=1e-3, gt=0, description="Peak learning rate of the LoRA weights.")
    head_lr: float = Field(default=3e-3, gt=0, description="Peak learning rate of the head.")
    weight_decay: float = Field(default=0.01, ge=0)
    schedule: Literal["linear", "cosine", "constant"] = Field(
        default="linear", description="Decay after warmup, over the planned steps."
    )
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    epochs: int = Field(default=4, ge=1)
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=64, ge=8, le=512, description="Tokens per text, truncated.")
    label_smoothing: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "Share of each target spread over every label. 0 since issue 14: with a grouped"
            " head, mass spread over the fine labels of other buckets lowered the served"
            " buckets' confidence and sent in-scope tickets to review (validation, leave-"
            "buckets-out model: review share 16.4% at 0.1 vs 9.9% at 0), and it blurred the"
            " embedding distances novelty relies on."
        ),
    )
    contrastive_weight: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Weight of a margin-based contrastive term on the pooled embeddings next to"
            " cross-entropy (training.contrastive): compact classes for the novelty score."
        ),
    )
    grad_clip: float | None = Field(default=1.0, gt=0)
    imbalance: Literal["class_weight", "balanced_sampler", "none"] = Field(
        default="class_weight",
        description=(
            "class_weight: loss weighted by n / (k * count) per class; balanced_sampler:"
            " draw every class equally often; none."
        ),
    )
    length_grouping: bool = Field(
        default=True, description="Batch texts of similar length together (less padding)."
    )
    seed: int = 13

    # --- evaluation and stopping --------------------------------------------------------
    eval_every_steps: int | None = Field(
        default=None, ge=1, description="Evaluate on validation every N steps; None: per epoch."
    )
    patience: int = Field(
        default=2, ge=1, description="Evaluations without a better validation macro-F1 to stop."
    )
    max_steps: int | None = Field(default=None, ge=1, description="Stop after N steps (tests).")
    max_train_minutes: float | None = Field(
        default=None, gt=0, description="Stop training (keep the best so far) after this long."
    )
    gap_sample: int = Field(
        default=2000, ge=0, description="Training examples re-scored to report the train gap."
    )

    # --- split --------------------------------------------------------------------------
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)
    test_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Ignored (joins train) when a test file is given."
    )
    split_salt: str = Field(
        default="ticketsort-split-v1",
        description="Changing it reshuffles every ticket's split: leave it alone.",
    )
    min_examples_per_label: int = Field(
        default=3, ge=1, description="Labels with fewer cleaned examples are dropped."
    )

    # --- label map, novelty -------------------------------------------------------------
    grouped_head: bool = Field(
        default=True,
        description=(
            "With a label map: train on the fine labels and serve the buckets by summing their"
            " probabilities (the fine label rides along); False: train on the buckets."
        ),
    )
    novelty_method: Literal["mahalanobis", "knn", "none"] = Field(
        default="mahalanobis",
        description=(
            "Novelty score from the pooled embedding: class-conditional Mahalanobis with a shared"
            " covariance, cosine k-nearest-neighbour distance, or none (no novelty routing)."
        ),
    )
    novelty_quantile: float = Field(
        default=0.95,
        gt=0.5,
        le=1,
        description="Novelty threshold: this quantile of the validation slice's scores.",
    )
    novelty_k: int = Field(default=10, ge=1, description="k of the knn novelty score.")
    novelty_signal: Literal["distance", "distance+confidence"] = Field(
        default="distance+confidence",
        description=(
            "distance: the embedding's distance alone; distance+confidence: plus the softmax's"
            " doubt (1 - max probability), each scaled by its spread on validation."
        ),
    )

    onnx_candidates: bool = Field(
        default=False,
        description=(
            "Also score ONNX Runtime fp32/int8 as serving candidates (needs the onnx extra;"
            " each is an export and an optimisation pass)."
        ),
    )

    # --- thresholds, baseline, hardware -------------------------------------------------
    per_category_thresholds: bool = True
    per_category_min_support: int = Field(
        default=30, ge=1, description="Validation predictions a category needs for its own one."
    )
    baseline: bool = Field(default=True, description="Also score TF-IDF + logistic regression.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "torch CPU threads; None: measured on the run's own steps among all, half and one"
            " of the cores, again every 150 steps (a shared machine's load changes)."
        ),
    )
    cpu_bf16: bool | None = Field(
        default=None,
        description=(
            "bf16 autocast for training on the CPU (weights stay fp32; validation and serving"
            " run fp32). None: on when the CPU has native bf16 (avx512_bf16 or AMX)."
        ),
    )
    eval_batch_size: int = Field(default=128, ge=1)

    @model_validator(mode="after")
    def _fractions(self) -> TrainingArgs:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave >= 10% for training")
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules is empty")
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    def with_overrides(self, overrides: dict[str, Any]) -> TrainingArgs:
        return TrainingArgs.model_validate({**self.model_dump(), **overrides})

    @classmethod
    def from_file(cls, path: Path) -> TrainingArgs:
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
