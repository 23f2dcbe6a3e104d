"""Out-of-scope benchmark: leave whole buckets out of training and see where their tickets go.

Hold out two buckets of the label map (BANKING77: ``cash_and_atm`` and
``exchange_and_currency``, 10 intents; their neighbours such as
``cash_withdrawal_charge`` stay in-scope), train on the rest through
``run_training`` (so the novelty statistics and both thresholds are chosen by
training, on validation only), then score every row of the test file through
the serving ``Predictor`` and route it as ``consumer.routing`` does:

* held-out tickets: the share sent to review (what should happen to a kind of
  ticket nobody trained on);
* in-scope tickets: the share routed automatically and its precision;
* the curve: review share vs auto-routed precision as the novelty threshold
  moves over quantiles of the *validation* scores (a quantile is the generic,
  data-set-free knob training turns; the operating point is training's own).

The scorer comparison (Mahalanobis vs kNN) is measured on validation-style
data: the in-scope validation slice against the held-out buckets' rows of the
*training* file (never trained on); the test file only reports.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from consumer.clean import clean_ticket
from consumer.model_store import load_model
from consumer.novelty import NoveltyMethod, fit_novelty, quantile_threshold
from consumer.settings import Settings
from training.args import TrainingArgs
from training.evaluate import make_predictor
from training.files import Columns, load_label_map
from training.pipeline import run_training
from training.threshold import auto_routed

HELD_OUT = ("cash_and_atm", "exchange_and_currency")
QUANTILES = tuple(round(q, 3) for q in np.linspace(0.5, 1.0, 51))


def read_rows(path: Path) -> list[tuple[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def write_rows(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)


def routing_figures(
    auto: np.ndarray, correct: np.ndarray, held: np.ndarray
) -> dict[str, float | None]:
    inside = ~held
    auto_in = auto & inside
    return {
        "held_out_to_review": float(1 - auto[held].mean()) if held.any() else None,
        "in_scope_auto_share": float(auto_in.sum() / max(1, inside.sum())),
        "in_scope_auto_precision": float(correct[auto_in].mean()) if auto_in.any() else None,
        "review_share": float(1 - auto.mean()),
        # Every held-out ticket routed automatically lands in a wrong bucket.
        "auto_precision": float((correct & auto).sum() / max(1, auto.sum())),
    }


def auroc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(in_scope)), np.ones(len(out_of_scope))]
    return float(roc_auc_score(y, np.r_[in_scope, out_of_scope]))


def curve_png(curve: list[dict[str, Any]], point: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    xs = [100 * c["review_share"] for c in curve]
    left.plot(
        xs, [100 * c["auto_precision"] for c in curve], marker=".", label="confidence + novelty"
    )
    conf = point["confidence_only"]
    left.scatter(
        [100 * conf["review_share"]],
        [100 * conf["auto_precision"]],
        c="grey",
        label="confidence only",
    )
    left.scatter(
        [100 * point["review_share"]],
        [100 * point["auto_precision"]],
        c="red",
        zorder=3,
        label=f"training's point (q={point['quantile']})",
    )
    left.set_xlabel("test tickets sent to review (%)")
    left.set_ylabel("precision of the auto-routed (%)")
    left.set_title("all test tickets (held-out auto-routed = wrong)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.plot(
        [100 * c["in_scope_auto_share"] for c in curve],
        [100 * (c["held_out_to_review"] or 0) for c in curve],
        marker=".",
    )
    right.scatter(
        [100 * point["in_scope_auto_share"]], [100 * point["held_out_to_review"]], c="red", zorder=3
    )
    right.axhline(85, ls="--", c="grey", lw=0.8)
    right.axvline(85, ls="--", c="grey", lw=0.8)
    right.set_xlabel("in-scope tickets auto-routed (%)")
    right.set_ylabel("held-out tickets sent to review (%)")
    right.set_title("the trade-off (targets: 85% / 85%)")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_oos(
    args: TrainingArgs,
    datasets: Path,
    store: Path,
    train_file: Path,
    test_file: Path,
    workdir: Path,
    held_out: Sequence[str] = HELD_OUT,
    progress: bool = False,
) -> dict[str, Any]:
    buckets = load_label_map(datasets / "coarse11.json")  # intent -> bucket
    unknown = sorted(set(held_out) - set(buckets.values()))
    if unknown:
        raise ValueError(f"held-out buckets {unknown} are not in coarse11.json")
    held_intents = {i for i, b in buckets.items() if b in held_out}
    groups: dict[str, list[str]] = {}
    for intent, bucket in sorted(buckets.items()):
        if bucket not in held_out:
            groups.setdefault(bucket, []).append(intent)
    map_path = workdir / "in-scope-buckets.json"
    map_path.write_text(json.dumps(groups, indent=2), encoding="utf-8")
    train_rows = read_rows(train_file)
    in_train = workdir / "train-in-scope.csv"
    write_rows(in_train, [r for r in train_rows if r[1] not in held_intents])
    held_train = [r for r in train_rows if r[1] in held_intents]

    base = Settings(_env_file=None)
    settings = base.model_copy(update={"model": base.model.model_copy(update={"store": store})})
    result = run_training(
        settings,
        args,
        source=in_train,
        columns=Columns(text="text", label="category"),
        label_map=map_path,
        test_file=test_file,  # in-scope rows only reach training's own test metrics
        progress=progress,
    )
    fit = result.novelty
    if fit is None:
        raise ValueError("the out-of-scope benchmark needs novelty_method != none")
    model = load_model(result.model_dir)
    predictor = make_predictor(model, "fp32")
    thresholds = model.thresholds
    max_chars = settings.validation.max_clean_chars

    test_rows = [(clean_ticket(None, t, max_chars=max_chars), c) for t, c in read_rows(test_file)]
    test_rows = [r for r in test_rows if r[0]]
    outputs = predictor.outputs([t for t, _ in test_rows], embeddings=True)
    assert outputs.novelty is not None and outputs.embeddings is not None
    served = predictor.labels
    predicted = [served[i] for i in outputs.probs.argmax(axis=1)]
    confidence = outputs.probs.max(axis=1)
    truth = [buckets[c] for _, c in test_rows]
    held = np.array([b in held_out for b in truth])
    correct = np.array([p == t for p, t in zip(predicted, truth, strict=True)])

    def figures_at(
        novelty_threshold: float | None, scores: np.ndarray | None = None
    ) -> dict[str, float | None]:
        limits = type(thresholds)(
            thresholds.global_threshold, thresholds.per_category, novelty_threshold
        )
        novelty = outputs.novelty if scores is None else scores
        auto, _ = auto_routed(confidence, predicted, limits, novelty)
        return routing_figures(auto, correct, held)

    point: dict[str, Any] = {
        "quantile": fit.quantile,
        "novelty_threshold": thresholds.novelty,
        **figures_at(thresholds.novelty),
        "confidence_only": figures_at(None),
    }
    curve = [
        {"quantile": q, **figures_at(quantile_threshold(fit.validation_scores, q))}
        for q in QUANTILES
    ]

    # Scorer comparison on validation-style data (test.csv only reports, below).
    held_clean = [clean_ticket(None, t, max_chars=max_chars) for t, _ in held_train]
    held_out_pass = predictor.outputs([t for t in held_clean if t], embeddings=True)
    held_emb = held_out_pass.embeddings
    assert held_emb is not None
    comparison: dict[str, Any] = {}
    pairs: tuple[tuple[NoveltyMethod, str], ...] = (
        ("mahalanobis", "distance"),
        ("mahalanobis", "distance+confidence"),
        ("knn", "distance"),
        ("knn", "distance+confidence"),
    )
    for method, signal in pairs:
        scorer = fit_novelty(method, fit.train_embeddings, fit.train_labels, k=args.novelty_k)
        val_scores = scorer.score(fit.validation_embeddings)
        ood_scores = scorer.score(held_emb)
        test_scores = scorer.score(outputs.embeddings)
        name: str = method
        if signal == "distance+confidence":
            scorer = scorer.with_confidence(val_scores, fit.validation_probs)
            val_scores = scorer.score_with(fit.validation_embeddings, fit.validation_probs)
            ood_scores = scorer.score_with(held_emb, held_out_pass.probs)
            test_scores = scorer.score_with(outputs.embeddings, outputs.probs)
            name = f"{method}+confidence"
        threshold = quantile_threshold(val_scores, args.novelty_quantile)
        comparison[name] = {
            "validation_style_auroc": auroc(val_scores, ood_scores),
            "validation_style_held_out_flagged": float((ood_scores > threshold).mean()),
            "test_auroc": auroc(test_scores[~held], test_scores[held]),
            "test_at_quantile": figures_at(threshold, test_scores),
        }
    val_confidence = fit.validation_probs.max(axis=1)
    comparison["max_softmax_confidence"] = {
        "validation_style_auroc": auroc(-val_confidence, -held_out_pass.probs.max(axis=1)),
        "test_auroc": auroc(-confidence[~held], -confidence[held]),
    }
    png = result.model_dir / "oos_curve.png"
    title = f"leave-buckets-out ({', '.join(held_out)}): {model.version}"
    curve_png(curve, point, png, title)
    _append_report(result.model_dir, point, comparison, held_out)
    return {
        "task": "oos",
        "held_out_buckets": list(held_out),
        "held_out_intents": len(held_intents),
        "model_dir": str(result.model_dir),
        "png": str(png),
        "test_rows": {"held_out": int(held.sum()), "in_scope": int((~held).sum())},
        "validation_style_rows": {
            "in_scope_validation": len(fit.validation_scores),
            "held_out_train_rows": len(held_emb),
        },
        "novelty": result.metrics["novelty"],
        "thresholds": thresholds.to_dict(),
        "operating_point": point,
        "curve": curve,
        "scorers": comparison,
        "in_scope_test": {
            "accuracy": result.metrics["test"]["accuracy"],
            "macro_f1": result.metrics["test"]["macro_f1"],
        },
        "training": {
            "steps": result.metrics["training"]["steps"],
            "train_s": result.metrics["training"]["train_seconds"],
            "stopped": result.metrics["training"]["stopped"],
        },
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _append_report(
    folder: Path, point: dict[str, Any], comparison: dict[str, Any], held_out: Sequence[str]
) -> None:
    conf = point["confidence_only"]
    lines = [
        "",
        "## Out-of-scope: leave-buckets-out",
        "",
        f"Buckets held out of training: {', '.join(held_out)}. Test file scored in full through"
        " the serving path; thresholds as training chose them on validation.",
        "",
        "| routing | held-out to review | in-scope auto-routed | in-scope auto precision |",
        "| --- | --- | --- | --- |",
        f"| confidence + novelty (q={point['quantile']}) | {_pct(point['held_out_to_review'])} |"
        f" {_pct(point['in_scope_auto_share'])} | {_pct(point['in_scope_auto_precision'])} |",
        f"| confidence only | {_pct(conf['held_out_to_review'])} |"
        f" {_pct(conf['in_scope_auto_share'])} | {_pct(conf['in_scope_auto_precision'])} |",
        "",
        "Scorers (AUROC, in-scope vs held-out): "
        + ", ".join(
            f"{name} {v.get('validation_style_auroc', float('nan')):.3f} validation-style /"
            f" {v['test_auroc']:.3f} test"
            if "validation_style_auroc" in v
            else f"{name} {v['test_auroc']:.3f} test"
            for name, v in comparison.items()
        ),
        "",
        "![review share vs auto precision](oos_curve.png)",
        "",
    ]
    with (folder / "report.md").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def copy_png(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
