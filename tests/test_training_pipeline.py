"""Training runs on tiny synthetic data: the test slice, promotion, the model folder round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from consumer.model_store import current_version, load_model
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
GOOD = {"max_steps": 1, "batch_size": 16, "max_length": 64, "baseline": False}
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
