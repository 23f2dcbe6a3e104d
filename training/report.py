"""``report.md`` and ``confusion.png`` of a model folder (no ticket text in either)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion_png(confusion: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion["matrix"], dtype=np.float64)
    rows, cols = confusion["labels"], confusion["columns"]
    size = min(28.0, max(6.0, 0.32 * len(cols) + 3))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7 if len(cols) > 20 else 9)
    ax.set_yticks(range(len(rows)), rows, fontsize=7 if len(rows) > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(cols) <= 20:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                if matrix[i, j]:
                    colour = "white" if shares[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_text(confusion: dict[str, Any]) -> str:
    rows, cols = confusion["labels"], confusion["columns"]
    matrix = confusion["matrix"]
    width = max(5, *(len(str(v)) for row in matrix for v in row))
    name_w = max(len(r) for r in rows)
    header = " " * name_w + " | " + " ".join(f"{j:>{width}}" for j in range(len(cols)))
    lines = [header, "-" * len(header)]
    for i, row in enumerate(matrix):
        lines.append(f"{rows[i]:<{name_w}} | " + " ".join(f"{v:>{width}}" for v in row))
    legend = ", ".join(f"{j}={c}" for j, c in enumerate(cols))
    return "\n".join(lines) + f"\n\ncolumns: {legend}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def serving_candidates_table(record: dict[str, Any]) -> list[str]:
    """The serving candidates scored on validation: the consumer picks among the safe ones."""
    rows = record.get("candidates") or []
    if not rows:
        return []
    gate = record.get("max_drop_points", 0.3)
    out = [
        f"Serving candidates, scored on validation through the serving `Predictor` (the"
        f" consumer serves the fastest its machine supports among those losing ≤ {gate} points;"
        f" speeds: a chunk at the mean length, {record.get('mean_tokens')} tokens, and one at"
        f" the 90th percentile, {record.get('long_tokens', '(not kept)')}, on this machine):",
        "",
        "| candidate | accuracy | points lost | tickets/s here | needs | safe |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        needs = " or ".join(row.get("needs_any") or []) or "any " + row.get("device", "cpu")
        safe = "yes" if row["drop_points"] <= gate else "**no**"
        out.append(
            f"| {row['name']} | {_pct(row['accuracy'])} | {row['drop_points']:+.2f} |"
            f" {row.get('tickets_per_s') or 'n/a'} | {needs} | {safe} |"
        )
    return [*out, ""]


def _novelty_lines(novelty: dict[str, Any] | None, review: dict[str, Any]) -> list[str]:
    if not novelty:
        return []
    int8 = novelty.get("int8_unscaled_validation_flagged_share")
    return [
        "",
        f"Novelty ({novelty['method']}, fitted on {novelty['fit_examples']} training"
        f" embeddings): threshold {novelty['threshold']:.4g}, the {novelty['quantile']} quantile"
        f" of validation scores; flags {_pct(novelty['validation_flagged_share'])} of validation"
        + (
            f" (int8 embeddings, unscaled: {_pct(int8)}; int8 serving rescales to the"
            f" fp32 threshold with its own quantile {novelty['int8_threshold']:.4g})"
            if int8 is not None
            else ""
        )
        + f" and {_pct(review.get('novel_share'))} of test (included in the review share above).",
    ]


def render_report(metrics: dict[str, Any]) -> str:
    """The human summary of one training run, from its ``metrics.json`` content."""
    test, base = metrics["test"], metrics.get("baseline", {}).get("test")
    data, train = metrics["data"], metrics["training"]
    promo, thr = metrics["promotion"], metrics["thresholds"]
    out: list[str] = [f"# Model {metrics['version']}", ""]
    verdict = "promoted to `current`" if promo["promoted"] else "NOT promoted"
    out += [f"**{verdict}**: {promo['reason']}", ""]
    out += ["## Held-out test", "", f"Test slice: {data['test_source']}, {test['n']} tickets.", ""]
    out += ["| model | accuracy | macro-F1 | ECE |", "| --- | --- | --- | --- |"]
    out.append(
        f"| fine-tuned (fp32, serving path) | {_pct(test['accuracy'])} | "
        f"{_num(test['macro_f1'])} | {_num(test['ece'])} |"
    )
    if base:
        out.append(
            f"| TF-IDF + logistic regression | {_pct(base['accuracy'])} | "
            f"{_num(base['macro_f1'])} | {_num(base['ece'])} |"
        )
    review = metrics["review_on_test"]
    out += [
        "",
        f"Review threshold (chosen on validation for {_pct(thr['target_accuracy'])} accuracy):"
        f" global {thr['global']:.4f}, per category {len(thr['per_category'])}."
        f" On test: {_pct(review['review_share'])} would go to review; the automatically"
        f" routed rest is {_pct(review['auto_accuracy'])} accurate.",
        *_novelty_lines(metrics.get("novelty"), review),
        "",
        "![confusion matrix](confusion.png)",
        "",
        "### Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, row in test["per_class"].items():
        out.append(
            f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |"
            f" {row['support']} |"
        )
    out += ["", "### Confusion matrix", "", "```", confusion_text(test["confusion"]), "```", ""]
    out += ["## Validation", ""]
    out += serving_candidates_table(metrics.get("serving_candidates") or {})
    out += [
        f"- accuracy {_pct(metrics['validation']['accuracy'])}, macro-F1"
        f" {_num(metrics['validation']['macro_f1'])}",
        f"- frozen embeddings + logistic regression (the head's start):"
        f" macro-F1 {_num(train['init_validation'].get('macro_f1'))}",
    ]
    calibration = metrics.get("calibration") or {}
    if calibration:
        before, after = calibration["validation_ece_before"], calibration["validation_ece_after"]
        out.append(
            f"- temperature {calibration['temperature']:.3f} fitted on validation (folded into"
            f" the head scale, now {calibration['head_scale']:.3f}): validation ECE"
            f" {before:.4f} -> {after:.4f}"
        )
    gap = train.get("gap") or {}
    if gap:
        out.append(
            f"- train/validation gap at the best checkpoint: accuracy"
            f" {_pct(gap['train_accuracy'])} vs {_pct(gap['validation_accuracy'])},"
            f" macro-F1 {gap['train_macro_f1']:.4f} vs {gap['validation_macro_f1']:.4f}"
        )
    serving = metrics.get("serving_check", {})
    if serving:
        out.append(
            f"- serving path vs training-time predictions on validation: argmax agreement"
            f" {_pct(serving['argmax_agreement'])}, max |p diff| {serving['max_abs_prob_diff']:.2e}"
        )
    out += ["", "## Training", ""]
    best = train["best"]
    budget = train.get("budget") or {}
    if budget.get("cut_by_time"):
        out += [
            f"> **Warning: the time budget ({budget['max_train_minutes']} min) cut training at"
            f" epoch {budget['epochs_run']:g} of {budget['epochs_planned']:g}.** The model is"
            " what this machine managed in that time: a faster one would train further. Raise"
            " `max_train_minutes` (or leave it unset) for the full recipe.",
            "",
        ]
    if budget:
        out.append(
            f"Epochs: {budget['epochs_run']:g} of {budget['epochs_planned']:g} planned"
            f" ({budget['steps_run']} of {budget['steps_planned']} steps)."
        )
    out.append(
        f"{train['steps']} steps in {train['train_seconds'] / 60:.1f} min on {train['device']},"
        f" stopped: {train['stopped']}; best checkpoint at step {int(best['step'])}"
        f" (epoch {best['epoch']}), validation macro-F1 {best['val_macro_f1']:.4f}."
    )
    out += ["", "| step | epoch | train loss | val accuracy | val macro-F1 |"]
    out.append("| --- | --- | --- | --- | --- |")
    for row in train["history"]:
        out.append(
            f"| {int(row['step'])} | {row['epoch']} | {row['train_loss']:.4f} |"
            f" {_pct(row['val_accuracy'])} | {row['val_macro_f1']:.4f} |"
        )
    out += ["", "## Data", ""]
    sizes = data["sizes"]
    out.append(
        f"{data['examples']} examples ({data['records_in']} records read) in {len(data['labels'])}"
        f" labels: train {sizes['train']}, validation {sizes['validation']},"
        f" test {sizes['test']}."
    )
    drops = data["drops"]
    if drops:
        out.append("Dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items())) + ".")
    if data.get("test_drops"):
        out.append(
            "Dropped from the test file: "
            + ", ".join(f"{k} {v}" for k, v in sorted(data["test_drops"].items()))
            + "."
        )
    out += ["", "Training arguments: `training_args.json`; data snapshot: `snapshot.json`.", ""]
    return "\n".join(out)
