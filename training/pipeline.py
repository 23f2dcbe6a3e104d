"""One training run, end to end: ``run_training``.

snapshot (archive topic or file) -> deduplicate, clean -> split by id hash ->
fit on train, select on validation -> write the model folder -> score it through
the serving path (every serving candidate on validation: ``training.candidates``;
fp32 on test) -> thresholds on validation -> novelty statistics (train) and threshold
(validation) -> TF-IDF baseline -> promotion gate on the test slice -> report.

The test slice is touched only after ``fit`` has returned, and only to score.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from consumer.label_groups import LabelGroups
from consumer.logs import get_logger
from consumer.model_store import (
    Thresholds,
    load_model,
    new_version_name,
    update_manifest,
    write_model,
)
from consumer.modeling import resolve_base_model
from consumer.novelty import quantile_threshold
from consumer.precision import MAX_DROP_POINTS
from consumer.settings import Settings
from training import trainer
from training.args import TrainingArgs
from training.baseline import run_baseline
from training.calibrate import calibrate
from training.candidates import evaluate_candidates
from training.dataset import Prepared, prepare
from training.distribution import write_distribution
from training.errors import BadInput
from training.evaluate import Scored, score_probabilities, score_with_predictor
from training.files import Columns, file_sha256, load_label_map, read_file
from training.metrics import expected_calibration_error, headline
from training.novelty_fit import NoveltyFit, fit_and_calibrate
from training.promote import Decision, apply, as_shadow, decide
from training.records import Example, RawData
from training.report import confusion_png, render_report
from training.snapshot import snapshot_archive
from training.split import Split, split_examples
from training.threshold import choose_thresholds, review_outcome, write_thresholds

log = get_logger("training.pipeline")

INT8_MAX_DROP_POINTS = MAX_DROP_POINTS
Source = Literal["archive"] | Path


@dataclass
class TrainResult:
    model_dir: Path
    promoted: bool
    metrics: dict[str, Any]
    version: str = ""
    split: Split | None = field(default=None, repr=False)
    novelty: NoveltyFit | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DataOptions:
    """How to read file sources; ignored for the archive (except the label map)."""

    columns: Columns = field(default_factory=Columns)
    label_map: Path | None = None
    test_file: Path | None = None


def read_source(settings: Settings, source: Source, columns: Columns) -> RawData:
    if isinstance(source, str):
        if source != "archive":
            raise BadInput(f"unknown source {source!r}: use 'archive' or a file path")
        return snapshot_archive(settings)
    return read_file(Path(source), columns)


def prepare_data(
    settings: Settings, args: TrainingArgs, source: Source, options: DataOptions
) -> tuple[Prepared, RawData, Prepared | None, RawData | None, dict[str, str] | None]:
    label_map = load_label_map(options.label_map) if options.label_map else None
    # A grouped head trains on the fine labels the map knows (unknown ones are still
    # dropped); serving sums them into the buckets.
    prep_map = label_map
    if label_map is not None and args.grouped_head:
        prep_map = {label: label for label in label_map}
    raw = read_source(settings, source, options.columns)
    prepared = prepare(
        raw,
        label_map=prep_map,
        max_chars=settings.validation.max_clean_chars,
        min_examples_per_label=args.min_examples_per_label,
    )
    log.info(
        "data_prepared",
        records=prepared.records_in,
        examples=len(prepared.examples),
        labels=len(prepared.counts()),
        drops=dict(prepared.drops),
    )
    if len(prepared.examples) < settings.training.min_examples:
        raise BadInput(
            f"{len(prepared.examples)} usable examples (of {prepared.records_in} records;"
            f" dropped: {dict(prepared.drops)}): at least {settings.training.min_examples}"
            " are needed (settings.training.min_examples)"
        )
    if len(prepared.counts()) < 2:
        raise BadInput(f"only one label in the data ({list(prepared.counts())}): need two or more")
    test_prep: Prepared | None = None
    test_raw: RawData | None = None
    if options.test_file is not None:
        test_raw = read_file(options.test_file, options.columns)
        test_prep = prepare(
            test_raw,
            label_map=prep_map,
            max_chars=settings.validation.max_clean_chars,
            allowed_labels=prepared.counts(),
        )
        if not test_prep.examples:
            raise BadInput(f"the test file {options.test_file} has no usable examples")
    return prepared, raw, test_prep, test_raw, label_map


def make_split(
    args: TrainingArgs, prepared: Prepared, test_prep: Prepared | None, test_file: Path | None
) -> Split:
    split = split_examples(
        prepared.examples,
        salt=args.split_salt,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        test_file_examples=test_prep.examples if test_prep else None,
        test_file_name=test_file.name if test_file else "",
    )
    for name, size in split.sizes().items():
        if size == 0:
            raise BadInput(
                f"the {name} slice is empty ({split.sizes()}): too few examples to train and"
                " evaluate a model"
            )
    return split


def version_folder(store: Path) -> tuple[str, Path]:
    """A fresh version name (unique even within one second) and its partial folder."""
    store.mkdir(parents=True, exist_ok=True)
    base = new_version_name()
    version, n = base, 1
    while (store / version).exists() or (store / f".{version}.partial").exists():
        n += 1
        version = f"{base}-{n}"
    return version, store / f".{version}.partial"


def _serving_check(scored: Scored, in_memory: np.ndarray) -> dict[str, float]:
    if len(in_memory) == 0:
        return {"argmax_agreement": 1.0, "max_abs_prob_diff": 0.0}
    same = scored.probs.argmax(axis=1) == in_memory.argmax(axis=1)
    return {
        "argmax_agreement": float(same.mean()),
        "max_abs_prob_diff": float(np.abs(scored.probs - in_memory).max()),
    }


def _int8_check(val32: Scored, val8: Scored) -> dict[str, Any]:
    acc32 = float(val32.correct.mean())
    acc8 = float(val8.correct.mean())
    drop = 100 * (acc32 - acc8)
    return {
        "fp32_accuracy": acc32,
        "int8_accuracy": acc8,
        "drop_points": drop,
        "max_drop_points": INT8_MAX_DROP_POINTS,
        "int8_safe": drop <= INT8_MAX_DROP_POINTS,
        "slice": "validation",
    }


def _write_predictions(path: Path, examples: list[Example], train_time: Scored) -> None:
    """Test-slice predictions of the in-memory (training-time) network, ids only."""
    with path.open("w", encoding="utf-8") as handle:
        for i, example in enumerate(examples):
            row = {
                "id": example.ticket_id,
                "label": example.label,
                "predicted": train_time.y_pred[i],
                "confidence": round(float(train_time.confidence[i]), 6),
            }
            handle.write(json.dumps(row) + "\n")


def _snapshot_info(
    raw: RawData,
    prepared: Prepared,
    split: Split,
    args: TrainingArgs,
    options: DataOptions,
    test_raw: RawData | None,
    test_prep: Prepared | None,
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "source": raw.info,
        "records_in": prepared.records_in,
        "examples": len(prepared.examples),
        "drops": dict(sorted(prepared.drops.items())),
        "labels": prepared.counts(),
        "split": {
            "salt": args.split_salt,
            "validation_fraction": args.validation_fraction,
            "test_fraction": args.test_fraction if test_prep is None else 0.0,
            "test_source": split.test_source,
            "sizes": split.sizes(),
            "per_label": split.per_label_counts(),
        },
    }
    if options.label_map is not None:
        info["label_map"] = {
            "path": str(options.label_map.resolve()),
            "sha256": file_sha256(options.label_map),
        }
    if test_raw is not None and test_prep is not None:
        train_ids = split.ids("train") | split.ids("validation")
        info["test_file"] = {
            **test_raw.info,
            "examples": len(test_prep.examples),
            "drops": dict(sorted(test_prep.drops.items())),
            "ids_also_in_training_file": sum(
                1 for e in test_prep.examples if e.ticket_id in train_ids
            ),
        }
    return info


def _calibrate(
    fitted: trainer.FitResult, split: Split, labels: list[str], enabled: bool
) -> dict[str, float]:
    """Temperature scaling on validation (see ``training.calibrate``); the figures."""
    index = {label: i for i, label in enumerate(labels)}
    y_val = np.array([index[e.label] for e in split.validation], dtype=np.int64)

    def ece() -> float:
        probs = fitted.validation_probs
        correct = probs.argmax(axis=1) == y_val
        return expected_calibration_error(probs.max(axis=1), correct)

    before = ece()
    temperature = calibrate(fitted, y_val) if enabled else 1.0
    return {
        "temperature": temperature,
        "head_scale": fitted.head_config.scale,
        "validation_ece_before": before,
        "validation_ece_after": ece(),
    }


def run_training(
    settings: Settings,
    args: TrainingArgs,
    *,
    source: Source,
    force: bool = False,
    columns: Columns | None = None,
    label_map: Path | None = None,
    test_file: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
    shadow: bool = False,
) -> TrainResult:
    """Train, evaluate and (maybe) promote one model; see the module docstring.

    ``source`` is ``"archive"`` (``settings.topics.labeled``) or a CSV/JSONL path
    read with ``columns``. Raises ``BadInput`` for data that cannot make a model.
    """
    started = time.monotonic()
    options = DataOptions(columns=columns or Columns(), label_map=label_map, test_file=test_file)
    store = Path(store) if store is not None else settings.model.store
    prepared, raw, test_prep, test_raw, label_map_ = prepare_data(settings, args, source, options)
    split = make_split(args, prepared, test_prep, test_file)
    labels = sorted(prepared.counts())
    groups = (
        LabelGroups.from_map(labels, label_map_)
        if label_map_ is not None and args.grouped_head
        else None
    )
    base_model_path = resolve_base_model(settings.model.base_model)
    data_ready = time.monotonic()

    # The test slice is not an argument of fit: it cannot reach training, early
    # stopping or threshold choice.
    fitted = trainer.fit(
        split.train,
        split.validation,
        labels=labels,
        args=args,
        base_model_path=base_model_path,
        progress=progress,
    )
    calibration = _calibrate(fitted, split, labels, args.calibrate)
    fitted_at = time.monotonic()

    version, partial = version_folder(store)
    run = _Run(
        settings=settings,
        args=args,
        store=store,
        version=version,
        partial=partial,
        fitted=fitted,
        split=split,
        labels=labels,
        force=force,
        raw=raw,
        prepared=prepared,
        test_raw=test_raw,
        test_prep=test_prep,
        options=options,
        clock=(started, data_ready, fitted_at),
        calibration=calibration,
        groups=groups,
        shadow=shadow,
    )
    try:
        result = _finish(run)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    result.split = split
    log.info(
        "training_run_done",
        version=version,
        promoted=result.promoted,
        test_accuracy=round(result.metrics["test"]["accuracy"], 4),
        test_macro_f1=round(result.metrics["test"]["macro_f1"], 4),
        minutes=round((time.monotonic() - started) / 60, 2),
    )
    return result


@dataclass
class _Run:
    """Everything the second half of a run (write, score, report, promote) works on."""

    settings: Settings
    args: TrainingArgs
    store: Path
    version: str
    partial: Path
    fitted: trainer.FitResult
    split: Split
    labels: list[str]
    force: bool
    raw: RawData
    prepared: Prepared
    test_raw: RawData | None
    test_prep: Prepared | None
    options: DataOptions
    clock: tuple[float, float, float]  # started, data ready, fitted
    calibration: dict[str, float]
    groups: LabelGroups | None = None
    shadow: bool = False  # install as <store>/shadow instead of the promotion gate

    def served(self, examples: Sequence[Example]) -> list[Example]:
        """Examples labeled as serving labels them: by bucket for a grouped head."""
        if self.groups is None:
            return list(examples)
        of = self.groups.of_label
        return [replace(e, label=of[e.label]) for e in examples]

    def served_probs(self, fine_probs: np.ndarray) -> np.ndarray:
        return fine_probs if self.groups is None else self.groups.sum_probs(fine_probs)


def _finish(run: _Run) -> TrainResult:
    """Write the folder under a partial name, score it, report, then rename and promote."""
    settings, args, store, version, partial = (
        run.settings, run.args, run.store, run.version, run.partial
    )  # fmt: skip
    fitted, split, labels = run.fitted, run.split, run.labels
    prepared, test_prep = run.prepared, run.test_prep
    # What serving routes to (the buckets of a grouped head), and the slices labeled so.
    served = list(run.groups.served) if run.groups is not None else labels
    validation, test = run.served(split.validation), run.served(split.test)
    write_model(
        partial,
        encoder=fitted.network.encoder,
        head=fitted.network.head,
        tokenizer=fitted.tokenizer,
        labels=labels,
        head_config=fitted.head_config,
        max_length=fitted.max_length,
        base_model_path=fitted.base_model_path,
        thresholds=Thresholds(1.0),
        extra_manifest={"int8_safe": False, "created_at": datetime.now(UTC).isoformat()},
    )
    if run.groups is not None:
        run.groups.save(partial)
    model = load_model(partial, settings.model.base_model)
    evaluated = evaluate_candidates(
        model, validation, training_device=fitted.device, onnx=args.onnx_candidates
    )
    baseline_spec = evaluated.baseline(fitted.device)
    fp32 = evaluated.predictors[baseline_spec]
    int8_predictor = evaluated.predictors["int8"]
    val32 = evaluated.scored[baseline_spec]
    int8 = _int8_check(evaluated.scored["fp32"], evaluated.scored["int8"])
    serving = _serving_check(val32, run.served_probs(fitted.validation_probs))
    if serving["argmax_agreement"] < 1.0:
        log.warning("serving_path_disagrees_with_training", **serving)

    target = settings.training.target_accuracy
    thresholds = choose_thresholds(
        val32.confidence,
        val32.y_pred,
        val32.correct,
        target=target,
        per_category=args.per_category_thresholds,
        min_support=args.per_category_min_support,
    )
    novelty: NoveltyFit | None = None
    if args.novelty_method != "none":
        # Statistics of the training slice as trained (fine labels of a grouped head).
        novelty = fit_and_calibrate(
            fp32,
            split.train,
            split.validation,
            method=args.novelty_method,
            quantile=args.novelty_quantile,
            k=args.novelty_k,
            signal=args.novelty_signal,
        )
        fp32.set_novelty(novelty.scorer)
        # int8 embeddings shift the distances: the same quantile under int8, so that
        # serving at either precision flags the calibrated share (NoveltyScorer.scale_for).
        int8_predictor.set_novelty(novelty.scorer)
        val8_novelty = score_with_predictor(int8_predictor, validation).novelty
        if val8_novelty is not None:
            threshold8 = quantile_threshold(val8_novelty, args.novelty_quantile)
            novelty.scorer.meta["thresholds"] = {"fp32": novelty.threshold, "int8": threshold8}
            novelty.report["int8_threshold"] = threshold8
            novelty.report["int8_unscaled_validation_flagged_share"] = float(
                (val8_novelty > novelty.threshold).mean()
            )
        novelty.scorer.save(partial)
        thresholds = replace(thresholds, novelty=novelty.threshold)
    val_novelty = novelty.validation_scores if novelty is not None else None
    write_thresholds(partial, thresholds)
    write_distribution(partial, run.served(split.train), val32, thresholds, val_novelty)
    update_manifest(
        partial,
        version=version,
        int8_safe=bool(int8["int8_safe"]),
        int8_check=int8,
        serving_candidates=evaluated.record.to_dict(),
        target_accuracy=target,
    )

    # --- the held-out test slice: scoring only, from here on -------------------------
    test32 = score_with_predictor(fp32, test)
    test_metrics = test32.metrics(served)
    train_time = score_probabilities(
        run.served_probs(fitted.predict_proba([e.text for e in test], args.eval_batch_size)),
        served,
        test,
    )
    _write_predictions(partial / "predictions.jsonl", test, train_time)
    review = review_outcome(
        test32.confidence, test32.y_pred, test32.correct, thresholds, test32.novelty
    )
    baseline: dict[str, Any] = {}
    if args.baseline:
        scored, fit_s = run_baseline(
            run.served(split.train),
            {"validation": validation, "test": test},
            served,
            balanced=args.imbalance != "none",
        )
        baseline = {name: s.metrics(served) for name, s in scored.items()}
        baseline["fit_seconds"] = round(fit_s, 2)
    decision: Decision = (
        as_shadow(store, float(test_metrics["macro_f1"]))
        if run.shadow
        else decide(
            store,
            new_macro_f1=float(test_metrics["macro_f1"]),
            test=test,
            force=run.force,
            device=fitted.device,
            base_model=settings.model.base_model,
        )
    )

    metrics: dict[str, Any] = {
        "version": version,
        "labels": served,
        "fine_labels": labels if run.groups is not None else None,
        "test": test_metrics,
        "validation": val32.metrics(served),
        "baseline": baseline,
        "int8": int8,
        "serving_candidates": evaluated.record.to_dict(),
        "serving_check": serving,
        "calibration": run.calibration,
        "thresholds": {
            **thresholds.to_dict(),
            "target_accuracy": target,
            "validation": review_outcome(
                val32.confidence, val32.y_pred, val32.correct, thresholds, val_novelty
            ),
        },
        "novelty": novelty.report if novelty is not None else None,
        "review_on_test": review,
        "training": {
            "steps": fitted.steps,
            "stopped": fitted.stopped,
            "best": fitted.best,
            "history": fitted.history,
            "train_seconds": fitted.train_seconds,
            "device": fitted.device,
            "init_validation": fitted.init_validation,
            "gap": fitted.gap,
            "timings": fitted.timings,
            "budget": fitted.budget,
        },
        "data": {
            "records_in": prepared.records_in,
            "examples": len(prepared.examples),
            "labels": prepared.counts(),
            "drops": dict(sorted(prepared.drops.items())),
            "test_drops": dict(sorted(test_prep.drops.items())) if test_prep else {},
            "sizes": split.sizes(),
            "test_source": split.test_source,
        },
        "promotion": decision.to_dict(),
    }
    (partial / "training_args.json").write_text(args.to_json(), encoding="utf-8")
    snapshot = _snapshot_info(run.raw, prepared, split, args, run.options, run.test_raw, test_prep)
    (partial / "snapshot.json").write_text(
        json.dumps(snapshot, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    confusion_png(test_metrics["confusion"], partial / "confusion.png", f"{version}: test slice")
    (partial / "report.md").write_text(render_report(metrics), encoding="utf-8")
    started, data_ready, fitted_at = run.clock
    metrics["timing"] = {
        "data_s": round(data_ready - started, 2),
        "fit_s": round(fitted_at - data_ready, 2),
        "evaluate_and_write_s": round(time.monotonic() - fitted_at, 2),
        "total_s": round(time.monotonic() - started, 2),
    }
    (partial / "metrics.json").write_text(
        json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    final = store / version
    partial.rename(final)
    apply(store, final, decision, shadow=run.shadow)
    log.info(
        "model_written",
        version=version,
        test=headline(test_metrics),
        baseline_test=headline(baseline.get("test", {})),
        int8_safe=int8["int8_safe"],
    )
    return TrainResult(
        model_dir=final,
        promoted=decision.promoted,
        metrics=metrics,
        version=version,
        novelty=novelty,
    )
