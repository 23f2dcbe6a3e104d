"""Training runs on tiny synthetic data: the test slice, promotion, the model folder round trip."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from consumer.model_store import current_version, load_model
from consumer.precision import Record, cpu_has_bf16, detect_hardware, specs_for
from consumer.predictor import Predictor
from consumer.settings import ModelSettings
from tests.fixtures_model import SYNTHETIC_COLUMNS, offline_settings
from training import trainer
from training.args import TrainingArgs
from training.cli import main
from training.dataset import prepare
from training.files import Columns, read_file
from training.pipeline import TrainResult, run_training
from training.split import assign_split

pytestmark = pytest.mark.slow

COLUMNS = Columns(**SYNTHETIC_COLUMNS)
# One step from a logistic-regression head: decent, and fast.
GOOD = {"max_steps": 1, "batch_size": 16, "max_length": 64, "baseline": False, "gap_sample": 0}
# One step at a negligible learning rate from a random head: close to chance.
BAD = {**GOOD, "head_init": "random", "lr": 1e-7, "head_lr": 1e-7}


BUCKETS = {
    "money": ["billing", "refund", "cancellation"],
    "access": ["account_access", "security", "data_privacy"],
    "product": ["bug_report", "feature_request", "integrations_api", "how_to", "feedback"],
    "logistics": ["shipping"],
}


def train(
    store: Path,
    source: Path,
    overrides: dict[str, Any],
    force: bool = False,
    label_map: Path | None = None,
) -> TrainResult:
    return run_training(
        offline_settings(store),
        TrainingArgs.model_validate(overrides),
        source=source,
        columns=COLUMNS,
        force=force,
        label_map=label_map,
        progress=False,
    )


def texts_by_id(
    path: Path, min_per_label: int = 1, label_map: dict[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """What training saw: id -> (cleaned text, label)."""
    prepared = prepare(
        read_file(path, COLUMNS),
        label_map=label_map,
        max_chars=2000,
        min_examples_per_label=min_per_label,
    )
    return {e.ticket_id: (e.text, e.label) for e in prepared.examples}


def test_the_test_slice_never_reaches_the_trainer(
    synthetic_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, set[str]] = {}
    real_fit = trainer.fit

    def spy(train: Any, validation: Any, **kwargs: Any) -> trainer.FitResult:
        seen["train"] = {e.ticket_id for e in train}
        seen["validation"] = {e.ticket_id for e in validation}
        return real_fit(train, validation, **kwargs)

    monkeypatch.setattr(trainer, "fit", spy)
    # With a label map: the model learns the fine labels and serves the buckets.
    map_path = tmp_path / "buckets.json"
    map_path.write_text(json.dumps(BUCKETS), encoding="utf-8")
    result = train(tmp_path / "models", synthetic_file, GOOD, label_map=map_path)
    assert result.split is not None
    assert result.metrics["labels"] == sorted(BUCKETS)
    served = load_model(result.model_dir)
    assert served.served_labels == sorted(BUCKETS)
    assert served.labels == sorted(label for members in BUCKETS.values() for label in members)
    assert set(served.thresholds.per_category) <= set(BUCKETS)
    assert len(result.metrics["test"]["per_class"].keys() & set(BUCKETS)) >= 3
    assert set(result.metrics["test"]["per_class"]) <= set(BUCKETS)
    test_ids = result.split.ids("test")
    args = TrainingArgs()
    label_map = {label: bucket for bucket, members in BUCKETS.items() for label in members}
    expected_test = {
        ticket_id
        for ticket_id in texts_by_id(synthetic_file, args.min_examples_per_label, label_map)
        if assign_split(
            ticket_id,
            salt=args.split_salt,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
        )
        == "test"
    }
    assert test_ids == expected_test and len(test_ids) > 10
    assert seen["train"] == result.split.ids("train")
    assert seen["validation"] == result.split.ids("validation")
    assert seen["train"].isdisjoint(test_ids)
    assert seen["validation"].isdisjoint(test_ids)
    assert result.metrics["test"]["n"] == len(test_ids)
    predicted_ids = {
        json.loads(line)["id"]
        for line in (result.model_dir / "predictions.jsonl").read_text().splitlines()
    }
    assert predicted_ids == test_ids


def test_promotion_gate(
    synthetic_file: Path, model_store_factory: Callable[..., Path], trained_model_dir: Path
) -> None:
    store = model_store_factory()  # current: a copy of the (decent) fixture model
    assert current_version(store) == trained_model_dir.name

    worse = train(store, synthetic_file, BAD)
    promo = worse.metrics["promotion"]
    assert not worse.promoted, promo
    assert current_version(store) == trained_model_dir.name
    assert promo["current_macro_f1"] > promo["new_macro_f1"]
    assert "NOT promoted" in (worse.model_dir / "report.md").read_text()

    forced = train(store, synthetic_file, BAD, force=True)
    assert forced.promoted
    assert current_version(store) == forced.model_dir.name
    assert "forced" in forced.metrics["promotion"]["reason"]

    better = train(store, synthetic_file, GOOD)
    promo = better.metrics["promotion"]
    assert better.promoted, promo
    assert promo["current_version"] == forced.model_dir.name
    assert promo["new_macro_f1"] > promo["current_macro_f1"]
    assert current_version(store) == better.model_dir.name
    assert "promoted to `current`" in (better.model_dir / "report.md").read_text()
    versions = {p.name for p in store.iterdir() if not p.name.startswith(".")}
    assert versions == {
        "current",
        trained_model_dir.name,
        worse.model_dir.name,
        forced.model_dir.name,
        better.model_dir.name,
    }


def test_model_folder_round_trip_matches_training_time_predictions(
    trained_model_dir: Path, synthetic_file: Path
) -> None:
    texts = texts_by_id(synthetic_file)
    rows = [
        json.loads(x) for x in (trained_model_dir / "predictions.jsonl").read_text().splitlines()
    ]
    assert rows, "no test predictions written"
    model = load_model(trained_model_dir)
    predictor = Predictor(model, ModelSettings(device="cpu", precision="fp32", max_length=512))
    served = predictor.predict([texts[r["id"]][0] for r in rows])
    assert [p.category for p in served] == [r["predicted"] for r in rows]
    np.testing.assert_allclose(
        [p.confidence for p in served], [r["confidence"] for r in rows], atol=1e-4
    )
    assert [texts[r["id"]][1] for r in rows] == [r["label"] for r in rows]

    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    accuracy = float(np.mean([p.category == r["label"] for p, r in zip(served, rows, strict=True)]))
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)
    assert metrics["serving_check"]["argmax_agreement"] == 1.0
    assert model.int8_safe == metrics["int8"]["int8_safe"]
    assert model.int8_safe == (metrics["int8"]["drop_points"] <= 0.3)
    for name in ("report.md", "confusion.png", "training_args.json", "snapshot.json"):
        assert (trained_model_dir / name).is_file(), name
    snapshot = json.loads((trained_model_dir / "snapshot.json").read_text())
    assert snapshot["source"]["kind"] == "file" and len(snapshot["source"]["sha256"]) == 64
    assert model.thresholds.global_threshold == metrics["thresholds"]["global"]


def test_evaluate_command_prints_json_metrics(
    trained_model_dir: Path, synthetic_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "evaluate",
            "--model",
            str(trained_model_dir),
            "--from-file",
            str(synthetic_file),
            "--text-column",
            "body",
            "--subject-column",
            "subject",
            "--id-column",
            "ticket_id",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == len(texts_by_id(synthetic_file)) - out["drops"].get("label_not_in_model", 0)
    assert 0.0 <= out["accuracy"] <= 1.0 and "macro_f1" in out and "review" in out


def _manifest(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "manifest.json").read_text()))


def test_training_records_every_serving_candidate_this_cpu_runs(trained_model_dir: Path) -> None:
    manifest = _manifest(trained_model_dir)
    record = Record.from_manifest(manifest)
    assert record is not None, "no serving_candidates in the manifest"
    hardware = detect_hardware("cpu")
    names = [c.name for c in record.candidates]
    # ONNX Runtime's candidates only with --set onnx_candidates=true (tests/test_onnx_runtime.py)
    assert names == [s.name for s in specs_for(hardware) if not s.name.startswith("onnx-")]
    assert names[0] == "fp32" and "int8" in names
    assert ("bf16" in names) == ("bf16-autocast" in names) == cpu_has_bf16()
    by_name = {c.name: c for c in record.candidates}
    fp32 = by_name["fp32"]
    assert fp32.drop_points == 0
    for candidate in record.candidates:
        assert candidate.drop_points == pytest.approx(100 * (fp32.accuracy - candidate.accuracy))
        assert candidate.tickets_per_s is not None and candidate.tickets_per_s > 0
    assert record.measured_on == {"cpu": hardware.signature()}
    assert record.long_tokens is not None and record.long_tokens >= record.mean_tokens > 0
    assert (
        manifest["serving_candidates"]["n"]
        == _metrics(trained_model_dir)["data"]["sizes"]["validation"]
    )
    int8 = _metrics(trained_model_dir)["int8"]  # the old record, still written for old readers
    assert int8["int8_accuracy"] == pytest.approx(by_name["int8"].accuracy)
    assert manifest["int8_safe"] == (by_name["int8"].drop_points <= 0.3)


def _metrics(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "metrics.json").read_text()))


def test_the_predictor_picks_from_the_recorded_candidates(trained_model_dir: Path) -> None:
    record = Record.from_manifest(_manifest(trained_model_dir))
    assert record is not None
    predictor = Predictor(load_model(trained_model_dir), ModelSettings(device="cpu"))
    safe = [c.name for c in record.candidates if c.drop_points <= 0.3]
    assert predictor.spec in safe
    if len(safe) > 1:
        assert list(predictor.choice.eligible) == safe
        assert predictor.choice.measured, "several qualify: speeds (training's or measured) decide"
        fastest = max(safe, key=lambda n: predictor.choice.measured[n])
        assert predictor.spec == fastest
    assert predictor.precision == predictor.choice.precision
    assert predictor.describe()["serving_path"]["name"] == predictor.spec
    served = predictor.predict(["I was charged twice for my subscription"], top_k=2)
    assert served[0].category in predictor.labels and len(served[0].top) == 2


def _doctored_copy(source: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    import shutil

    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    manifest = _manifest(folder)
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_recorded_speeds_on_this_hardware_decide_and_a_forced_precision_wins(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    signature = detect_hardware("cpu").signature()

    def int8_clearly_fastest(manifest: dict[str, Any]) -> None:
        for row in manifest["serving_candidates"]["candidates"]:
            row["drop_points"] = 0.0
            row["tickets_per_s"] = 900.0 if row["name"] == "int8" else 100.0
        manifest["serving_candidates"]["measured_on"] = {"cpu": signature}

    folder = _doctored_copy(trained_model_dir, tmp_path, int8_clearly_fastest)
    auto = Predictor(load_model(folder), ModelSettings(device="cpu"))
    assert auto.precision == "int8" and "training" in auto.choice.reason
    forced = Predictor(load_model(folder), ModelSettings(device="cpu", precision="fp32"))
    assert forced.precision == "fp32" and "forced" in forced.choice.reason
    bf16 = Predictor(load_model(folder), ModelSettings(device="cpu", precision="bf16"))
    assert bf16.precision == "bf16"
    assert next(bf16.network.parameters()).dtype == torch.bfloat16


def test_an_unsafe_candidate_is_skipped_and_old_folders_keep_loading(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    signature = detect_hardware("cpu").signature()

    def int8_fastest_but_unsafe(manifest: dict[str, Any]) -> None:
        for row in manifest["serving_candidates"]["candidates"]:
            row["drop_points"] = 0.36 if row["name"] == "int8" else 0.0
            row["tickets_per_s"] = 900.0 if row["name"] == "int8" else 100.0
            if row["name"] == "bf16":
                row["tickets_per_s"] = 400.0
        manifest["serving_candidates"]["measured_on"] = {"cpu": signature}

    folder = _doctored_copy(trained_model_dir, tmp_path / "unsafe", int8_fastest_but_unsafe)
    auto = Predictor(load_model(folder), ModelSettings(device="cpu"))
    assert auto.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert "int8" not in auto.choice.eligible

    def old_folder(int8_safe: bool) -> Callable[[dict[str, Any]], None]:
        def edit(manifest: dict[str, Any]) -> None:
            del manifest["serving_candidates"]
            manifest["int8_safe"] = int8_safe

        return edit

    for int8_safe, expected in ((False, "fp32"), (True, "int8")):
        old = _doctored_copy(trained_model_dir, tmp_path / str(int8_safe), old_folder(int8_safe))
        predictor = Predictor(load_model(old), ModelSettings(device="cpu"))
        assert predictor.precision == expected
        assert "no candidate record" in predictor.choice.reason


def test_the_report_says_how_many_epochs_ran_and_warns_when_a_budget_cut_them(
    trained_model_dir: Path,
) -> None:
    from training.report import render_report

    metrics = _metrics(trained_model_dir)
    budget = metrics["training"]["budget"]
    assert budget["steps_run"] == metrics["training"]["steps"] == 12
    assert budget["cut_by_time"] is False
    # threads=None: the thread count was probed on the run's own steps (training.threads).
    cores = len(os.sched_getaffinity(0))
    if cores > 1:
        assert [step for step, _ in budget["thread_choices"]] == [6]
        assert budget["thread_choices"][0][1] in {cores, cores // 2, 1}
    report = (trained_model_dir / "report.md").read_text()
    assert f"Epochs: {budget['epochs_run']:g} of {budget['epochs_planned']:g} planned" in report
    assert "Warning" not in report

    metrics["training"]["budget"] = {
        **budget,
        "epochs_run": 2.6,
        "epochs_planned": 4.0,
        "max_train_minutes": 6.5,
        "cut_by_time": True,
    }
    cut = render_report(metrics)
    assert "**Warning: the time budget (6.5 min) cut training at epoch 2.6 of 4.**" in cut


def test_the_report_lists_the_serving_candidates(trained_model_dir: Path) -> None:
    report = (trained_model_dir / "report.md").read_text()
    record = Record.from_manifest(_manifest(trained_model_dir))
    assert record is not None
    for candidate in record.candidates:
        safe = "yes" if candidate.drop_points <= 0.3 else "**no**"
        assert f"| {candidate.name} | " in report
        assert f"{candidate.drop_points:+.2f} | {candidate.tickets_per_s} |" in report
        assert report.count(f"| {safe} |") >= 1
