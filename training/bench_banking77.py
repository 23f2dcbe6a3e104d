"""banking77 benchmark: the fine-tuned model next to TF-IDF, on 11 buckets and 77 intents.

    .venv/bin/python -m training.bench_banking77 [--task coarse11|intents77|oos|small10]
        [--set KEY=VALUE]

``oos``: leave-buckets-out (``training.bench_oos``): two buckets held out of
training, where their test tickets go. ``small10``: 77 intents from 10 training
examples per intent (fixed seed), with the train/validation gap and where
early stopping stopped.

Trains through ``training.pipeline.run_training`` on ``train.csv`` (validation
carved from it by the id hash) and evaluates on ``test.csv`` (never used for
training, epochs or thresholds), for the 11 coarse buckets (``coarse11.json``)
and for the 77 intents. Writes ``bench-results/banking77.json`` (one entry per
task, the shape ``make bench`` reads: ``ours``, ``baseline``, ``train_wall_s``,
``model_dir``) and, with ``--update-md``, the training section of BENCHMARKS.md.
This is a benchmark, not a test: it takes minutes (``--quick``: a smoke run on
a quarter of the data, one epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from consumer.settings import REPO_ROOT, Settings
from training.args import TrainingArgs
from training.cli import parse_overrides
from training.files import Columns
from training.pipeline import run_training
from training.split import hash_unit

DATASETS = REPO_ROOT.parent / "shared" / "datasets" / "banking77"
TASKS = ("coarse11", "intents77", "oos", "small10")
SMALL_PER_LABEL = 10
OOS_PNG = "banking77-oos-curve.png"
SMALL_SEED = 77
MD_START = "<!-- training:banking77:start -->"
MD_END = "<!-- training:banking77:end -->"


def subset_csv(source: Path, fraction: float, folder: Path) -> Path:
    """A deterministic share of a CSV's rows (for quick experiments)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [lines[0]] + [x for x in lines[1:] if hash_unit(x, "bench-subset") < fraction]
    out = folder / f"{source.stem}-{fraction:g}.csv"
    out.write_text("".join(kept), encoding="utf-8")
    return out


def per_label_csv(source: Path, per_label: int, seed: int, folder: Path) -> Path:
    """``per_label`` rows of every label, drawn with a fixed seed (the small-data run)."""
    import csv
    import random

    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["category"], []).append(row)
    rng = random.Random(seed)
    kept = [
        r
        for label in sorted(by_label)
        for r in rng.sample(by_label[label], min(per_label, len(by_label[label])))
    ]
    out = folder / f"{source.stem}-{per_label}-per-label.csv"
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in kept)
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_name(),
        "cores_available": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def setfit_row(result: Any, datasets: Path, task: str, budget_s: float) -> dict[str, Any]:
    """SetFit on the run's own training and test slices, as served labels, same budget."""
    try:
        from training.setfit_reference import run_setfit
    except ImportError:  # pragma: no cover - the extra is missing
        return {"skipped": "setfit is not installed (pip install -e '.[bench]')"}
    from dataclasses import replace

    from consumer.model_store import resolve_base_model
    from consumer.settings import Settings as _Settings
    from training.files import load_label_map

    split = result.split
    buckets = load_label_map(datasets / "coarse11.json") if task == "coarse11" else None

    def served(examples: Sequence[Any]) -> list[Any]:
        if buckets is None:
            return list(examples)
        return [replace(e, label=buckets.get(e.label, e.label)) for e in examples]

    base = resolve_base_model(_Settings(_env_file=None).model.base_model)
    return run_setfit(
        served(split.train), served(split.test), base_model_path=base, budget_s=budget_s
    )


def run_task(
    task: str,
    args: TrainingArgs,
    datasets: Path,
    store: Path,
    train_file: Path,
    test_file: Path,
    setfit: bool = False,
) -> dict[str, Any]:
    if task == "oos":
        from training.bench_oos import run_oos

        started = time.monotonic()
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            out = run_oos(args, datasets, store, train_file, test_file, Path(tmp))
        out["train_wall_s"] = round(time.monotonic() - started, 1)
        out["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        return out
    if task == "small10":
        with tempfile.TemporaryDirectory() as tmp:
            small = per_label_csv(train_file, SMALL_PER_LABEL, SMALL_SEED, Path(tmp))
            out = run_task("intents77", args, datasets, store, small, test_file, setfit)
        out["task"] = "small10"
        out["per_label"], out["seed"] = SMALL_PER_LABEL, SMALL_SEED
        return out
    base = Settings(_env_file=None)
    settings = base.model_copy(update={"model": base.model.model_copy(update={"store": store})})
    started = time.monotonic()
    cpu_before = time.process_time()
    load_before = os.getloadavg()[0]
    result = run_training(
        settings,
        args,
        source=train_file,
        columns=Columns(text="text", label="category"),
        label_map=datasets / "coarse11.json" if task == "coarse11" else None,
        test_file=test_file,
        progress=sys.stderr.isatty(),
    )
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    m = result.metrics
    base_test = m["baseline"].get("test", {})
    extra: dict[str, Any] = {}
    if task == "intents77":
        extra["intents_mapped_to_buckets"] = mapped_to_buckets(
            result.model_dir, datasets / "coarse11.json"
        )
    load_after_ours = os.getloadavg()[0]
    if setfit:
        # The same budget: the seconds our own training took on this machine.
        extra["setfit"] = setfit_row(result, datasets, task, m["training"]["train_seconds"])
    return {
        **extra,
        "task": task,
        "labels": len(m["labels"]),
        "model_dir": str(result.model_dir),
        "train_wall_s": round(wall, 1),  # the whole run, as `make train` would take
        "ours": {
            "accuracy": m["test"]["accuracy"],
            "macro_f1": m["test"]["macro_f1"],
            "ece": m["test"]["ece"],
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "train_s": m["training"]["train_seconds"],
            "steps": m["training"]["steps"],
            "stopped": m["training"]["stopped"],
            "epochs_run": m["training"]["budget"]["epochs_run"],
            "epochs_planned": m["training"]["budget"]["epochs_planned"],
            "cut_by_time": m["training"]["budget"]["cut_by_time"],
            "seconds_per_step": m["training"]["timings"].get("seconds_per_step"),
            "best_epoch": m["training"]["best"].get("epoch"),
            "val_accuracy": m["validation"]["accuracy"],
            "val_macro_f1": m["validation"]["macro_f1"],
            "head_init_val_macro_f1": m["training"]["init_validation"].get("macro_f1"),
            "int8_val_accuracy": m["int8"]["int8_accuracy"],
            "fp32_val_accuracy": m["int8"]["fp32_accuracy"],
            "serving_candidates": m["serving_candidates"],
            "review_share_on_test": m["review_on_test"]["review_share"],
            "auto_accuracy_on_test": m["review_on_test"]["auto_accuracy"],
            "novel_share_on_test": m["review_on_test"].get("novel_share"),
            "grouped_head": m.get("fine_labels") is not None,
            "gap": m["training"].get("gap"),
        },
        "baseline": {
            "name": "TF-IDF (word 1-2 + char 2-5 grams) + logistic regression",
            "accuracy": base_test.get("accuracy"),
            "macro_f1": base_test.get("macro_f1"),
            "fit_s": m["baseline"].get("fit_seconds"),
        },
        "val_history": [
            {k: row[k] for k in ("epoch", "val_accuracy", "val_macro_f1", "elapsed_s")}
            for row in m["training"]["history"]
        ],
        "data": m["data"]["sizes"],
        "load_average_1m": [round(load_before, 2), round(load_after_ours, 2)],
    }


def mapped_to_buckets(model_dir: Path, label_map_path: Path) -> dict[str, float]:
    """The 77-intent model's test predictions read as buckets (not servable as one model)."""
    from sklearn.metrics import accuracy_score, f1_score

    from training.files import load_label_map

    buckets = load_label_map(label_map_path)
    rows = [
        json.loads(line)
        for line in (model_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    true = [buckets[r["label"]] for r in rows]
    pred = [buckets[r["predicted"]] for r in rows]
    return {
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(f1_score(true, pred, average="macro")),
    }


TASK_NAMES = {
    "coarse11": "11 buckets",
    "intents77": "77 intents",
    "small10": f"77 intents, {SMALL_PER_LABEL} per intent",
}
# Published few-shot LLM figures on BANKING77 (77 intents), quoted, not measured here.
LLM_REFERENCES = [
    ("GPT-4, 3-shot prompt", "83.1%"),
    ("GPT-4, 20 retrieved examples in the prompt", "87.7%"),
    ("GPT-3.5, 3-shot prompt", "65.5%"),
]
LLM_SOURCE = (
    "Loukas et al., *Making LLMs Worth Every Penny: Resource-Limited Text Classification in"
    " Banking*, ICAIF 2023, Tables 4-5 (quoted, not measured here)"
)


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _epochs(ours: dict[str, Any]) -> str:
    if "epochs_run" not in ours:
        return "n/a"
    cut = " (**cut by the time budget**)" if ours.get("cut_by_time") else ""
    return f"{ours['epochs_run']:g} of {ours['epochs_planned']:g}{cut}"


def cut_tasks(results: dict[str, Any]) -> list[str]:
    """The tasks whose training a time budget cut short."""
    return [
        name
        for task, name in TASK_NAMES.items()
        if task in results and results[task].get("ours", {}).get("cut_by_time")
    ]


def _accuracy_rows(results: dict[str, Any]) -> list[str]:
    rows = [
        "| task | model | accuracy | macro-F1 | wall time | epochs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for task, name in TASK_NAMES.items():
        if task not in results:
            continue
        r = results[task]
        ours, tfidf = r["ours"], r["baseline"]
        head = " (grouped head: 77 intents summed)" if ours.get("grouped_head") else ""
        rows.append(
            f"| {name} | LoRA MiniLM-L6 (ours){head} | {_pct(ours['accuracy'])} |"
            f" {ours['macro_f1']:.4f} | {ours['wall_s'] / 60:.1f} min"
            f" (training {ours['train_s'] / 60:.1f}) | {_epochs(ours)} |"
        )
        if tfidf["accuracy"] is not None:
            rows.append(
                f"| {name} | TF-IDF + logistic regression | {_pct(tfidf['accuracy'])} |"
                f" {tfidf['macro_f1']:.4f} | {tfidf['fit_s']:.0f} s (fit) | |"
            )
        sf = r.get("setfit") or {}
        if "accuracy" in sf:
            cut = ", cut by the budget" if sf["cut_by_time"] else ""
            rows.append(
                f"| {name} | SetFit, same base model and budget | {_pct(sf['accuracy'])} |"
                f" {sf['macro_f1']:.4f} | {sf['wall_s'] / 60:.1f} min (training"
                f" {sf['train_s'] / 60:.1f}) | {sf['body_steps']} pair steps{cut} |"
            )
        mapped = r.get("intents_mapped_to_buckets")
        if mapped:
            rows.append(
                f"| 11 buckets | the {name} model, predictions mapped to buckets |"
                f" {_pct(mapped['accuracy'])} | {mapped['macro_f1']:.4f} | (same run) | |"
            )
    if "intents77" in results or "small10" in results:
        for name, figure in LLM_REFERENCES:
            rows.append(f"| 77 intents | {name} (published) | {figure} | | | |")
    return rows


def _small_lines(r: dict[str, Any]) -> list[str]:
    ours, gap = r["ours"], r["ours"].get("gap") or {}
    history = ", ".join(
        f"epoch {h['epoch']}: {_pct(h['val_accuracy'], 1)}" for h in r.get("val_history", [])
    )
    return [
        f"### Small data: {r['per_label']} training examples per intent (seed {r['seed']})",
        "",
        f"Sizes: train {r['data']['train']}, validation {r['data']['validation']} (carved from"
        f" the subsample by id hash), test {r['data']['test']}. Stopped: {ours['stopped']}"
        f" after {ours['steps']} steps, best checkpoint at epoch {ours['best_epoch']}"
        f" (validation per epoch: {history}). Train/validation gap at that checkpoint:"
        f" accuracy {_pct(gap.get('train_accuracy'))} vs {_pct(gap.get('validation_accuracy'))},"
        f" macro-F1 {gap.get('train_macro_f1', float('nan')):.4f} vs"
        f" {gap.get('validation_macro_f1', float('nan')):.4f}.",
        "",
    ]


def _oos_lines(r: dict[str, Any]) -> list[str]:
    point, conf = r["operating_point"], r["operating_point"]["confidence_only"]
    scorers = r["scorers"]
    n = r["test_rows"]
    lines = [
        "### Out of scope: leave-buckets-out",
        "",
        f"Held out of training: {', '.join(r['held_out_buckets'])} ({r['held_out_intents']}"
        " intents; their neighbours such as cash_withdrawal_charge and exchange_charge stay in"
        " fees_and_charges). Trained on the other buckets (grouped head), every row of test.csv"
        f" scored ({n['held_out']} held-out, {n['in_scope']} in-scope) and routed as the"
        f" consumer routes. Operating point chosen by training on validation only: novelty"
        f" threshold = the {point['quantile']} quantile of the validation slice's"
        f" {r['novelty']['method']} scores ({r['novelty'].get('signal', 'distance')}),"
        " confidence thresholds for the target accuracy.",
        "",
        "| routing | held-out to review | in-scope auto-routed | in-scope auto precision |"
        " all auto-routed precision | review share |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| confidence + novelty | {_pct(point['held_out_to_review'], 1)} |"
        f" {_pct(point['in_scope_auto_share'], 1)} | {_pct(point['in_scope_auto_precision'])} |"
        f" {_pct(point['auto_precision'])} | {_pct(point['review_share'], 1)} |",
        f"| confidence only (before) | {_pct(conf['held_out_to_review'], 1)} |"
        f" {_pct(conf['in_scope_auto_share'], 1)} | {_pct(conf['in_scope_auto_precision'])} |"
        f" {_pct(conf['auto_precision'])} | {_pct(conf['review_share'], 1)} |",
        "",
        "Targets: >= 85% held-out to review, >= 85% in-scope auto-routed at >= 98.5% precision."
        " Scorer choice (AUROC in-scope vs held-out; validation-style = validation slice vs"
        " the held-out buckets' rows of train.csv, which training never saw):",
        "",
        "| score | validation-style AUROC | held-out train rows flagged at q | test AUROC |"
        " test at q: held-out to review / in-scope auto / precision |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, v in scorers.items():
        at = v.get("test_at_quantile") or {}
        lines.append(
            f"| {name} | {v.get('validation_style_auroc', float('nan')):.3f} |"
            f" {_pct(v.get('validation_style_held_out_flagged'), 1)} | {v['test_auroc']:.3f} |"
            f" {_pct(at.get('held_out_to_review'), 1)} / {_pct(at.get('in_scope_auto_share'), 1)}"
            f" / {_pct(at.get('in_scope_auto_precision'))} |"
        )
    lines += [
        "",
        f"The curve (novelty quantile 0.5 to 1.0; `{r['png']}`, also in the model's report.md):",
        "",
        f"![leave-buckets-out curve](docs/{OOS_PNG})",
        "",
    ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    sized = [results[t] for t in ("coarse11", "intents77", "small10") if t in results]
    test_n = sized[0]["data"]["test"] if sized else "3080"
    quick = " **Quick mode: a quarter of the data, one epoch; indicative only.**"
    body = [
        MD_START,
        "## Training: banking77 accuracy",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Measured {results['finished_at']} on {info['cores_available']} CPU cores"
        f" ({info['cpu']}, torch {info['torch']}, CUDA: {info['cuda'] or 'none'}; load average"
        f" {info.get('load_average')}); wall time covers the whole run (data, training,"
        " serving-candidate checks, novelty fit, baseline, report). Test: banking77"
        f" test.csv ({test_n} texts), never used for training, epochs or thresholds; validation"
        " is 10% of train.csv by id hash." + (quick if results.get("quick") else ""),
        "",
        *_accuracy_rows(results),
        "",
    ]
    if cut := cut_tasks(results):
        body += [
            f"**Warning: the time budget cut training short for {', '.join(cut)}:** the"
            " figures are what this machine reached in that time, not the recipe's.",
            "",
        ]
    if "intents77" in results or "small10" in results:
        body += [f"Published LLM rows: {LLM_SOURCE}.", ""]
    if "small10" in results:
        body += _small_lines(results["small10"])
    if "oos" in results:
        body += _oos_lines(results["oos"])
    body += [
        f"Figures: `{results['out']}`. Recipe: `TrainingArgs` defaults"
        + (f" with {results['overrides']}" if results["overrides"] else "")
        + ".",
        MD_END,
    ]
    return "\n".join(body)


def update_benchmarks_md(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(MD_START) + ".*?" + re.escape(MD_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m training.bench_banking77")
    parser.add_argument("--task", choices=TASKS, action="append", help="default: all")
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results" / "banking77.json")
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "bench-results" / "models")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--train-fraction", type=float, default=1.0, help="quick experiments")
    parser.add_argument("--test-fraction", type=float, default=1.0, help="quick experiments")
    parser.add_argument("--update-md", type=Path, help="write the section into this BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1/4 of the data, 1 epoch")
    parser.add_argument(
        "--no-setfit",
        dest="setfit",
        action="store_false",
        help="skip the SetFit reference rows (same split, base model and time budget)",
    )
    ns = parser.parse_args(argv)
    overrides = parse_overrides(ns.overrides)
    if ns.quick:
        overrides = {"epochs": 1, **overrides}
        ns.train_fraction = min(ns.train_fraction, 0.25)
        ns.test_fraction = min(ns.test_fraction, 0.25)
    args = TrainingArgs().with_overrides(overrides)
    train_file, test_file = ns.datasets / "train.csv", ns.datasets / "test.csv"
    with tempfile.TemporaryDirectory() as tmp:
        if ns.train_fraction < 1:
            train_file = subset_csv(train_file, ns.train_fraction, Path(tmp))
        if ns.test_fraction < 1:
            test_file = subset_csv(test_file, ns.test_fraction, Path(tmp))
        results: dict[str, Any] = {
            "command": " ".join(
                [".venv/bin/python -m training.bench_banking77", *(argv or sys.argv[1:])]
            ),
            "overrides": overrides,
            "args": args.model_dump(mode="json"),
            "train_fraction": ns.train_fraction,
            "test_fraction": ns.test_fraction,
            "quick": ns.quick,
            "out": os.path.relpath(ns.out, REPO_ROOT),
        }
        # Written after every task: a long run that fails late keeps what it measured.
        for task in ns.task or TASKS:
            r = run_task(task, args, ns.datasets, ns.store, train_file, test_file, ns.setfit)
            results[task] = r
            results["machine"] = machine()
            results["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            ns.out.parent.mkdir(parents=True, exist_ok=True)
            ns.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            if task == "oos":
                from training.bench_oos import copy_png

                copy_png(Path(r["png"]), ns.out.parent / OOS_PNG)
                if ns.update_md:
                    copy_png(Path(r["png"]), ns.update_md.parent / "docs" / OOS_PNG)
                print(json.dumps({"task": "oos", "operating_point": r["operating_point"]}))
            else:
                print(json.dumps({"task": task, "ours": r["ours"], "baseline": r["baseline"]}))
            if ns.update_md:
                update_benchmarks_md(ns.update_md, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
