"""Fine-tune the encoder with a LoRA adapter and train the head fully.

``fit`` sees the training and validation slices only: the test slice is not one
of its parameters. It evaluates on validation every epoch (or every N steps),
keeps the checkpoint with the best validation macro-F1, stops early after
``patience`` evaluations without improvement, and reports the gap between
training and validation scores at the best checkpoint.

CPU: flush denormals (training stalls after ~100 steps without it), dynamic
padding and length-grouped batches. GPU: automatic mixed precision.

Every inference here (head-init embeddings, validation scores, the train gap)
runs through the serving ``consumer.predictor.Predictor`` wrapped around the
in-memory network: the same tokenizer call, padding and chunked loop as serving.
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm import tqdm

from consumer.logs import get_logger
from consumer.model_store import LoadedModel, Thresholds
from consumer.modeling import HeadConfig, TicketClassifier
from consumer.precision import cpu_has_bf16
from consumer.predictor import Predictor, pad, tokenize
from consumer.settings import ModelSettings
from training.args import TrainingArgs
from training.batching import epoch_order, make_batches, steps_per_epoch
from training.contrastive import margin_contrastive
from training.records import Example
from training.threads import ThreadTuner, thread_candidates

log = get_logger("training.trainer")


@dataclass
class FitResult:
    """The trained network (best checkpoint, eval mode) and how training went."""

    network: TicketClassifier
    tokenizer: Any
    labels: list[str]
    head_config: HeadConfig
    base_model_path: Path
    max_length: int
    device: str
    history: list[dict[str, float]]
    best: dict[str, float]
    stopped: str
    steps: int
    train_seconds: float
    init_validation: dict[str, float]
    gap: dict[str, float]
    validation_probs: np.ndarray
    trained_ids: tuple[str, ...]
    validation_ids: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Class probabilities from the in-memory network, through the serving Predictor."""
        view = serving_view(self.network, self.tokenizer, self.labels, self.max_length, batch_size)
        return infer(view, view.tokenize(texts))


def pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id or 0)


def choose_device(wanted: str) -> torch.device:
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is available")
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def configure_cpu(threads: int | None) -> int:
    """Flush denormals and set the thread count; returns the thread count used."""
    torch.set_flush_denormal(True)
    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return count


def autocast_for(
    device: torch.device, cpu_bf16: bool | None
) -> Callable[[], AbstractContextManager[Any]]:
    """Mixed precision for training: AMP on the GPU, bf16 on CPUs that have it natively."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return lambda: torch.autocast("cuda", dtype=dtype)
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_bf16()
    if cpu_bf16:
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def target_pattern(modules: Sequence[str]) -> str:
    """LoRA targets inside the encoder blocks only (not the unused pooler)."""
    names = "|".join(re.escape(m) for m in modules)
    return rf"encoder\.layer\.\d+\.(?:.*\.)?(?:{names})"


def load_base(base_model_path: Path) -> tuple[Any, nn.Module]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_path))
    encoder = AutoModel.from_pretrained(str(base_model_path), use_safetensors=True)
    return tokenizer, encoder


def build_network(encoder: nn.Module, num_labels: int, args: TrainingArgs) -> TicketClassifier:
    from peft import LoraConfig, TaskType, get_peft_model

    if args.encoder_dropout is not None:
        for module in encoder.modules():
            if isinstance(module, nn.Dropout):
                module.p = args.encoder_dropout
        config_any = cast(Any, encoder).config
        config_any.hidden_dropout_prob = args.encoder_dropout
        config_any.attention_probs_dropout_prob = args.encoder_dropout

    config = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_pattern(args.lora_target_modules),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peft_encoder = get_peft_model(encoder, config)
    head = HeadConfig(
        pooling=args.pooling, normalize=args.normalize, scale=args.scale, dropout=args.head_dropout
    )
    return TicketClassifier(peft_encoder, num_labels, head)


def serving_view(
    network: TicketClassifier,
    tokenizer: Any,
    labels: Sequence[str],
    max_length: int,
    chunk_size: int,
    precision: str = "fp32",
) -> Predictor:
    """The serving ``Predictor`` around the in-memory (unmerged, training) network.

    fp32 or bf16 autocast only: neither copies nor casts the network being trained.
    """
    device = next(network.parameters()).device.type
    model = LoadedModel(
        path=Path("<training>"),
        version="training",
        labels=list(labels),
        thresholds=Thresholds(1.0),
        manifest={"max_length": max_length},
        network=network,
        tokenizer=tokenizer,
    )
    settings = ModelSettings.model_validate(
        {"device": device, "precision": precision, "max_length": max_length}
    )
    return Predictor(model, settings, chunk_size=chunk_size)


def infer(view: Predictor, token_ids: list[list[int]]) -> np.ndarray:
    """Class probabilities in eval mode (the training loop leaves the network in train mode)."""
    view.network.eval()
    return view.probabilities_from_ids(token_ids)


def init_head(
    head: nn.Linear,
    embeddings: np.ndarray,
    y: np.ndarray,
    num_labels: int,
    args: TrainingArgs,
) -> None:
    """Start a head from class centroids or a logistic regression on frozen embeddings."""
    if args.head_init == "random":
        return
    scale = args.scale
    weight = np.zeros((num_labels, embeddings.shape[1]), dtype=np.float32)
    bias = np.zeros(num_labels, dtype=np.float32)
    if args.head_init == "centroid":
        for k in range(num_labels):
            centroid = embeddings[y == k].mean(axis=0)
            weight[k] = centroid / max(float(np.linalg.norm(centroid)), 1e-6)
    else:
        present = np.unique(y)
        model = LogisticRegression(
            C=args.head_init_c,
            max_iter=500,
            class_weight="balanced" if args.imbalance != "none" else None,
        )
        model.fit(embeddings, y)
        coef, intercept = model.coef_, model.intercept_
        if len(present) == 2 and coef.shape[0] == 1:
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        weight[present] = coef / scale
        bias[present] = intercept / scale
        bias[np.setdiff1d(np.arange(num_labels), present)] = -10.0 / scale
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))


def class_weights(y: np.ndarray, num_labels: int) -> torch.Tensor:
    """``n / (k * count)`` per class (scikit-learn's "balanced"), 0 for absent classes."""
    counts = np.bincount(y, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels, dtype=np.float64)
    weights[present] = len(y) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


class Plan:
    """The planned steps and the learning-rate factor per step (warmup, then decay).

    With a time budget the plan shrinks to the steps that fit, so the schedule
    still decays to its end instead of being cut off mid-way.
    """

    def __init__(self, total: int, warmup_ratio: float, schedule: str) -> None:
        self.total = total
        self.warmup = int(total * warmup_ratio)
        self.schedule = schedule
        self.shrunk = False

    def factor(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    def fit_time(self, step: int, seconds_per_step: float, seconds_left: float) -> None:
        """Shrink the plan to the steps that ``seconds_left`` affords at the pace so far."""
        affordable = step + int(max(0.0, seconds_left) / max(seconds_per_step, 1e-6))
        if affordable < self.total:
            self.total = max(step + 1, affordable)
            self.shrunk = True


def scores(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    if len(y) == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


class _Best:
    """The best checkpoint so far: trainable tensors only (LoRA and head), on the CPU."""

    def __init__(self) -> None:
        self.score = -1.0
        self.state: dict[str, torch.Tensor] = {}
        self.record: dict[str, float] = {}
        self.probs: np.ndarray = np.zeros((0, 0), dtype=np.float32)

    def offer(self, network: nn.Module, record: dict[str, float], probs: np.ndarray) -> bool:
        if record["val_macro_f1"] <= self.score + 1e-9:
            return False
        self.score = record["val_macro_f1"]
        self.record = dict(record)
        self.probs = probs
        self.state = {
            name: p.detach().to("cpu", copy=True)
            for name, p in network.named_parameters()
            if p.requires_grad
        }
        return True

    def restore(self, network: nn.Module) -> None:
        params = dict(network.named_parameters())
        with torch.no_grad():
            for name, value in self.state.items():
                params[name].copy_(value.to(params[name].device))


def fit(
    train: Sequence[Example],
    validation: Sequence[Example],
    *,
    labels: Sequence[str],
    args: TrainingArgs,
    base_model_path: Path,
    progress: bool = True,
) -> FitResult:
    """Train on ``train``, select and stop on ``validation``. Nothing else is seen."""
    started = time.monotonic()
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    device = choose_device(args.device)
    threads = configure_cpu(args.threads) if device.type == "cpu" else torch.get_num_threads()
    # threads=None on the CPU: the count is measured on the run's own steps (training.threads).
    tuner = (
        ThreadTuner(thread_candidates(threads))
        if device.type == "cpu" and args.threads is None
        else None
    )
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    autocast = autocast_for(device, args.cpu_bf16)
    mixed = autocast is not nullcontext

    tokenizer, encoder = load_base(base_model_path)
    network = build_network(encoder, len(labels), args).to(device)
    pid = pad_id(tokenizer)
    train_ids = tokenize(tokenizer, [e.text for e in train], args.max_length)
    val_ids = tokenize(tokenizer, [e.text for e in validation], args.max_length)
    y_train = np.array([index[e.label] for e in train], dtype=np.int64)
    y_val = np.array([index[e.label] for e in validation], dtype=np.int64)
    lengths = [len(ids) for ids in train_ids]
    loaded = time.monotonic()

    # Validation is scored in fp32, as the fp32 serving path; the head-init embeddings
    # (the whole training slice) in bf16 autocast where training itself uses it.
    view = serving_view(network, tokenizer, labels, args.max_length, args.eval_batch_size)
    # The adapter is a no-op before training (LoRA B = 0): embed with the base encoder alone.
    if args.head_init != "random":
        embed_precision = "bf16-autocast" if device.type == "cpu" and mixed else "fp32"
        embedder = serving_view(
            network, tokenizer, labels, args.max_length, args.eval_batch_size, embed_precision
        )
        with cast(Any, network.encoder).disable_adapter():
            init_embeddings = embedder.embeddings_from_ids(train_ids)
        init_head(network.head, init_embeddings, y_train, len(labels), args)
        del init_embeddings, embedder
    init_validation = scores(y_val, infer(view, val_ids))
    head_ready = time.monotonic()
    log.info(
        "training_started",
        train=len(train),
        validation=len(validation),
        labels=len(labels),
        device=device.type,
        threads=threads,
        mixed_precision=mixed,
        head_init=args.head_init,
        init_val_macro_f1=round(init_validation["macro_f1"], 4),
        mean_tokens=round(float(np.mean(lengths)), 1) if lengths else 0.0,
    )

    head_params = list(network.head.parameters())
    head_ids = {id(p) for p in head_params}
    lora_params = [p for p in network.parameters() if p.requires_grad and id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": lora_params, "lr": args.lr},
            {"params": head_params, "lr": args.head_lr},
        ],
        weight_decay=args.weight_decay,
    )
    per_epoch = steps_per_epoch(len(train), args.batch_size)
    total = per_epoch * args.epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    plan = Plan(total, args.warmup_ratio, args.schedule)
    planned_steps = total
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan.factor)
    weight = class_weights(y_train, len(labels)) if args.imbalance == "class_weight" else None
    loss_fn = nn.CrossEntropyLoss(
        weight=weight.to(device) if weight is not None else None,
        label_smoothing=args.label_smoothing,
    )
    scaler = torch.amp.GradScaler(
        "cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported()
    )

    best = _Best()
    eval_seconds = 0.0
    history: list[dict[str, float]] = []
    step = 0
    since_best = 0
    stopped = "completed"
    running: list[float] = []
    bar = tqdm(
        total=total,
        desc="train",
        unit="step",
        disable=not progress,
        file=sys.stderr,
        mininterval=1.0,
        dynamic_ncols=True,
    )

    def evaluate_now() -> bool:
        """Score validation, keep the best; True when patience is exhausted."""
        nonlocal since_best, eval_seconds
        eval_started = time.monotonic()
        probs = infer(view, val_ids)  # fp32, as served
        val = scores(y_val, probs)
        record = {
            "step": float(step),
            "epoch": round(step / per_epoch, 3),
            "train_loss": float(np.mean(running)) if running else float("nan"),
            "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        running.clear()
        history.append(record)
        eval_seconds = time.monotonic() - eval_started
        improved = best.offer(network, record, probs)
        since_best = 0 if improved else since_best + 1
        bar.set_postfix(val_f1=f"{val['macro_f1']:.4f}", best=f"{best.score:.4f}")
        log.info(
            "validation_scored",
            step=step,
            epoch=record["epoch"],
            train_loss=round(record["train_loss"], 4),
            val_accuracy=round(val["accuracy"], 4),
            val_macro_f1=round(val["macro_f1"], 4),
            improved=improved,
        )
        return since_best >= args.patience

    last_eval_step = -1
    deadline = started + args.max_train_minutes * 60 if args.max_train_minutes else None
    loop_started = time.monotonic()
    try:
        while step < plan.total and stopped == "completed":
            order = epoch_order(y_train, balanced=args.imbalance == "balanced_sampler", rng=rng)
            batches = make_batches(
                order, lengths, args.batch_size, group_by_length=args.length_grouping, rng=rng
            )
            for batch in batches:
                if tuner is not None:
                    tuner.before_step(step)
                step_started = time.perf_counter()
                network.train()
                ids, mask = pad([train_ids[i] for i in batch], pid)
                target = torch.from_numpy(y_train[batch]).to(device)
                with autocast():
                    logits, pooled = network.logits_and_embedding(ids.to(device), mask.to(device))
                loss = loss_fn(logits.float(), target)
                if args.contrastive_weight:
                    loss = loss + args.contrastive_weight * margin_contrastive(pooled, target)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if args.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(
                        [p for group in optimizer.param_groups for p in group["params"]],
                        args.grad_clip,
                    )
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if tuner is not None:
                    tuner.after_step(step, time.perf_counter() - step_started)
                step += 1
                running.append(float(loss.detach()))
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(running[-50:]):.4f}", best=f"{best.score:.4f}")
                if args.eval_every_steps and step % args.eval_every_steps == 0:
                    last_eval_step = step
                    if evaluate_now():
                        stopped = "early_stopping"
                        break
                if deadline is not None and step >= 20 and step % 25 == 0:
                    now = time.monotonic()
                    # Leave time for the last validation pass (and one more as margin).
                    plan.fit_time(
                        step, (now - loop_started) / step, deadline - now - 2 * eval_seconds
                    )
                    if bar.total != plan.total:
                        bar.total = plan.total
                        bar.refresh()
                if step >= plan.total:
                    if plan.shrunk:
                        stopped = "time_budget"
                    elif args.max_steps == plan.total:
                        stopped = "max_steps"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    stopped = "time_limit"
                    break
            if not args.eval_every_steps and last_eval_step != step:
                last_eval_step = step
                if evaluate_now() and stopped == "completed":
                    stopped = "early_stopping"
        if last_eval_step != step:
            evaluate_now()
    finally:
        bar.close()

    best.restore(network)
    network.eval()
    trained = time.monotonic()
    budget = epoch_budget(step, per_epoch, planned_steps, args, stopped)
    if tuner is not None:
        budget["thread_choices"] = tuner.choices
        log.info("training_threads", candidates=tuner.candidates, choices=tuner.choices)
        # Evaluation and the serving candidates' speeds at the count serving will use.
        torch.set_num_threads(threads)
    if budget["cut_by_time"]:
        log.warning("time_budget_cut_training", **budget)
    gap = _train_gap(view, train_ids, y_train, best.record, rng, args)
    log.info(
        "training_finished",
        steps=step,
        stopped=stopped,
        best_step=best.record.get("step"),
        best_val_macro_f1=round(best.score, 4),
        minutes=round((trained - started) / 60, 2),
    )
    return FitResult(
        network=network,
        tokenizer=tokenizer,
        labels=labels,
        head_config=network.head_config,
        base_model_path=base_model_path,
        max_length=args.max_length,
        device=device.type,
        history=history,
        best=best.record,
        stopped=stopped,
        steps=step,
        train_seconds=round(trained - started, 2),
        init_validation=init_validation,
        gap=gap,
        validation_probs=best.probs,
        trained_ids=tuple(e.ticket_id for e in train),
        validation_ids=tuple(e.ticket_id for e in validation),
        timings={
            "load_s": round(loaded - started, 2),
            "head_init_s": round(head_ready - loaded, 2),
            "loop_s": round(trained - head_ready, 2),
            "threads": float(threads),
            "label_counts_min": float(min(Counter(y_train.tolist()).values(), default=0)),
            "seconds_per_step": round((trained - loop_started) / max(step, 1), 4),
        },
        budget=budget,
    )


def epoch_budget(
    steps: int, per_epoch: int, planned_steps: int, args: TrainingArgs, stopped: str
) -> dict[str, Any]:
    """How many epochs ran of those planned, and whether a time budget cut them."""
    return {
        "epochs_planned": round(planned_steps / per_epoch, 3),
        "epochs_run": round(steps / per_epoch, 3),
        "steps_planned": planned_steps,
        "steps_run": steps,
        "max_train_minutes": args.max_train_minutes,
        "cut_by_time": stopped in ("time_budget", "time_limit"),
    }


def _train_gap(
    view: Predictor,
    train_ids: list[list[int]],
    y_train: np.ndarray,
    best: dict[str, float],
    rng: np.random.Generator,
    args: TrainingArgs,
) -> dict[str, float]:
    """Scores on (a sample of) the training slice next to validation, best checkpoint."""
    if args.gap_sample == 0 or not train_ids:
        return {}
    take = min(args.gap_sample, len(train_ids))
    sample = np.sort(rng.choice(len(train_ids), size=take, replace=False))
    probs = infer(view, [train_ids[i] for i in sample])
    train_scores = scores(y_train[sample], probs)
    val_acc = best.get("val_accuracy", 0.0)
    val_f1 = best.get("val_macro_f1", 0.0)
    return {
        "train_sample": float(take),
        "train_accuracy": train_scores["accuracy"],
        "train_macro_f1": train_scores["macro_f1"],
        "validation_accuracy": val_acc,
        "validation_macro_f1": val_f1,
        "accuracy_gap": train_scores["accuracy"] - val_acc,
        "macro_f1_gap": train_scores["macro_f1"] - val_f1,
    }
