"""Thresholds, metrics, arguments, batching and the command line's exit codes (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from consumer.errors import ExitCode
from consumer.model_store import Thresholds
from training.args import TrainingArgs
from training.batching import epoch_order, make_batches
from training.calibrate import fit_temperature, rescale
from training.cli import main, parse_overrides
from training.metrics import OTHER, classification_metrics, expected_calibration_error
from training.threshold import choose_thresholds, lowest_threshold, review_outcome
from training.trainer import Plan


def test_lowest_threshold_reaching_the_target() -> None:
    confidence = np.array([0.99, 0.95, 0.90, 0.80, 0.70, 0.60])
    correct = np.array([True, True, True, True, False, False])
    assert lowest_threshold(confidence, correct, 1.0) == pytest.approx(0.80)
    # 4 right of 5 = 0.8 at 0.70
    assert lowest_threshold(confidence, correct, 0.8) == pytest.approx(0.70)
    assert lowest_threshold(confidence, correct, 0.5) == pytest.approx(0.60)
    assert lowest_threshold(np.array([0.9]), np.array([False]), 0.99) == 1.0


def test_ties_route_together() -> None:
    # Both 0.9 tickets route at a 0.9 threshold: one of them is wrong, so 0.9 cannot reach 1.0.
    confidence = np.array([0.95, 0.9, 0.9])
    correct = np.array([True, True, False])
    assert lowest_threshold(confidence, correct, 1.0) == pytest.approx(0.95)


def test_per_category_thresholds_and_review_outcome() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 400)
    predicted = ["a"] * 200 + ["b"] * 190 + ["c"] * 10
    # "a" is right whenever confident; "b" is right only above 0.9.
    correct = np.array(
        [c > 0.5 for c in confidence[:200]] + [c > 0.9 for c in confidence[200:390]] + [True] * 10
    )
    thresholds = choose_thresholds(
        confidence, predicted, correct, target=0.99, per_category=True, min_support=30
    )
    assert set(thresholds.per_category) == {"a", "b"}
    assert thresholds.per_category["a"] < 0.55 < 0.9 <= thresholds.per_category["b"]
    outcome = review_outcome(confidence, predicted, correct, thresholds)
    assert outcome["auto_accuracy"] >= 0.99
    assert outcome["auto_count"] + outcome["review_count"] == 400
    everything = review_outcome(confidence, predicted, correct, Thresholds(0.0))
    assert everything["review_share"] == 0.0


def test_metrics_count_foreign_predictions_as_wrong() -> None:
    y_true = ["a", "a", "b", "b"]
    y_pred = ["a", "zzz", "b", "a"]
    metrics = classification_metrics(y_true, y_pred, np.array([0.9, 0.8, 0.7, 0.6]), ["a", "b"])
    assert metrics["accuracy"] == 0.5
    assert metrics["confusion"]["columns"] == ["a", "b", OTHER]
    assert metrics["confusion"]["matrix"] == [[1, 0, 1], [1, 1, 0]]
    assert metrics["per_class"]["b"]["recall"] == 0.5


def test_expected_calibration_error() -> None:
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.6, 0.6])
    correct = np.array([True, True, True, False, True, False])
    # bin 0.9: |0.75 - 0.9| * 4/6 ; bin 0.6: |0.5 - 0.6| * 2/6
    assert expected_calibration_error(confidence, correct) == pytest.approx(
        0.15 * 4 / 6 + 0.1 * 2 / 6
    )


def test_training_args_validate_and_round_trip(tmp_path: Path) -> None:
    args = TrainingArgs().with_overrides({"epochs": 2, "imbalance": "balanced_sampler"})
    path = tmp_path / "args.json"
    path.write_text(args.to_json(), encoding="utf-8")
    assert TrainingArgs.from_file(path) == args
    with pytest.raises(ValueError):
        TrainingArgs(imbalance="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TrainingArgs(validation_fraction=0.5, test_fraction=0.45)
    with pytest.raises(ValueError):
        TrainingArgs(unknown_field=1)  # type: ignore[call-arg]
    assert parse_overrides(["epochs=3", "schedule=cosine", 'lora_target_modules=["query"]']) == {
        "epochs": 3,
        "schedule": "cosine",
        "lora_target_modules": ["query"],
    }


def test_length_grouped_batches_cover_the_epoch_once() -> None:
    rng = np.random.default_rng(1)
    lengths = list(rng.integers(3, 60, 1000))
    order = epoch_order(np.zeros(1000, dtype=np.int64), balanced=False, rng=rng)
    batches = make_batches(order, lengths, 32, group_by_length=True, rng=rng)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10, "batches are not grouped by length"


def test_balanced_sampler_draws_classes_evenly() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    order = epoch_order(labels, balanced=True, rng=np.random.default_rng(0))
    share = float((labels[order] == 1).mean())
    assert 0.4 < share < 0.6


def test_cli_exit_code_2_for_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    few = tmp_path / "few.csv"
    few.write_text("text,category\nhello there,a\nmy card,b\n", encoding="utf-8")
    store = ["--store", str(tmp_path / "models")]
    assert main(["--from-file", str(few), *store]) == ExitCode.BAD_INPUT
    assert "at least" in capsys.readouterr().err
    assert main(["--from-file", str(tmp_path / "missing.csv"), *store]) == ExitCode.BAD_INPUT
    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps(["not", "a", "map"]), encoding="utf-8")
    assert (
        main(["--from-file", str(few), "--label-map", str(bad_map), *store]) == ExitCode.BAD_INPUT
    )
    assert main(["--from-file", str(few), "--set", "epochs=zero", *store]) == ExitCode.BAD_INPUT
    assert main(["evaluate", "--model", str(tmp_path / "no-model")]) == ExitCode.BAD_INPUT
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_the_plan_shrinks_to_the_time_budget_and_still_decays() -> None:
    plan = Plan(1000, 0.1, "linear")
    assert plan.factor(0) == pytest.approx(0.01)
    assert plan.factor(100) == pytest.approx(1.0)
    plan.fit_time(step=200, seconds_per_step=1.0, seconds_left=300.0)
    assert plan.shrunk and plan.total == 500
    assert plan.factor(499) == pytest.approx(1 / 400)
    assert plan.factor(500) == 0.0
    plan.fit_time(step=300, seconds_per_step=0.01, seconds_left=1e6)
    assert plan.total == 500, "a plan never grows back"


def test_temperature_scaling_recovers_the_true_temperature() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.0, (4000, 5))
    true_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.uniform(size=(4000, 1)) > true_probs.cumsum(axis=1)).sum(axis=1)
    overconfident = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    temperature = fit_temperature(overconfident, y)
    assert temperature == pytest.approx(3.0, rel=0.1)
    fixed = rescale(overconfident, temperature)
    assert np.array_equal(fixed.argmax(axis=1), overconfident.argmax(axis=1))
    np.testing.assert_allclose(fixed, true_probs, atol=0.05)


def test_the_contrastive_term_rewards_compact_separated_labels_and_pulls_pairs_together() -> None:
    import torch

    from training.contrastive import margin_contrastive

    labels = torch.tensor([0, 0, 1, 1])
    compact = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.99, 0.1], [0.1, 0.99]])
    assert margin_contrastive(compact, labels) < margin_contrastive(mixed, labels)
    assert float(margin_contrastive(compact, torch.tensor([0, 1, 2, 3]))) == 0.0  # no pair
    x = mixed.clone().requires_grad_(True)
    margin_contrastive(x, labels).backward()
    assert x.grad is not None
    step = x.detach() - 0.1 * x.grad
    before = torch.dist(mixed[0], mixed[1])
    assert torch.dist(step[0], step[1]) < before  # a same-label pair moves closer
