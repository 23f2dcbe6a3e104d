"""Novelty and the grouped head in serving, on the fixture's tiny trained model."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from consumer.events import ClassifiedTicket, RawTicket, ReviewRequest
from consumer.label_groups import LabelGroups
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import ModelSettings, Settings
from producer_tools.synthetic import generate_tickets
from tests.kafka_helpers import produce_values, read_topic
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

# Nothing like a support ticket of the synthetic help desk the fixture learned.
FAR_OFF = [
    "Der Hund bellt laut im Garten, und die Katze schläft auf dem warmen Dach.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "zq xv 77 kkkk pppp 0000 ####",
]


def usual_texts(n: int = 24) -> list[str]:
    return [f"{t.subject}\n{t.body}" for t in generate_tickets(n, seed=99)]


def test_training_stores_calibrated_novelty_and_serving_scores_it(trained_model_dir: Path) -> None:
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    saved = json.loads((trained_model_dir / "thresholds.json").read_text())
    report = metrics["novelty"]
    assert report["method"] in ("mahalanobis", "knn")
    assert saved["novelty"] == report["threshold"] > 0
    assert report["validation_flagged_share"] <= 1 - report["quantile"] + 1e-9

    model = load_model(trained_model_dir)
    assert model.novelty is not None and model.thresholds.novelty == report["threshold"]
    predictor = Predictor(model, ModelSettings(device="cpu", precision="fp32"))
    texts = usual_texts() + FAR_OFF
    outputs = predictor.outputs(texts, embeddings=True)
    assert outputs.novelty is not None and outputs.embeddings is not None
    # The score of the forward pass is the scorer's score of that pass's own embeddings
    # (and, with the default distance+confidence signal, of its own probabilities).
    assert model.novelty.uses_confidence
    np.testing.assert_allclose(
        outputs.novelty,
        model.novelty.score_with(outputs.embeddings, outputs.probs),
        rtol=1e-4,
        atol=1e-4,
    )
    predictions = predictor.predict(texts)
    novelty = np.array([p.novelty for p in predictions], dtype=np.float64)
    np.testing.assert_allclose(novelty, outputs.novelty, rtol=1e-5)
    # Far-off texts are more novel than every usual ticket, and over the threshold.
    assert novelty[-len(FAR_OFF) :].min() > novelty[: -len(FAR_OFF)].max()
    assert novelty[-len(FAR_OFF) :].min() > report["threshold"]

    # int8 serving: its own validation quantile puts its scores on the fp32 scale.
    thresholds = model.novelty.meta["thresholds"]
    assert thresholds["fp32"] == report["threshold"] and thresholds["int8"] > 0
    int8 = Predictor(model, ModelSettings(device="cpu", precision="int8"))
    out8 = int8.outputs(texts, embeddings=True)
    assert out8.novelty is not None and out8.embeddings is not None
    raw8 = model.novelty.score_with(out8.embeddings, out8.probs)
    np.testing.assert_allclose(
        out8.novelty, raw8 * thresholds["fp32"] / thresholds["int8"], rtol=1e-4, atol=1e-4
    )


def test_a_grouped_head_serves_buckets_by_summing_fine_probabilities(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / trained_model_dir.name
    shutil.copytree(trained_model_dir, folder)
    fine = load_model(folder).labels
    buckets = {
        label: ("first_half" if i < len(fine) // 2 else "second_half")
        for i, label in enumerate(fine)
    }
    LabelGroups.from_map(fine, buckets).save(folder)
    texts = usual_texts(16)

    # One serving path for both (auto could time its way to bf16 for one and fp32 for the other).
    fp32 = ModelSettings(precision="fp32")
    plain = Predictor(load_model(trained_model_dir), fp32)
    fine_probs = plain.probabilities(texts)
    grouped = Predictor(load_model(folder), fp32)
    assert grouped.labels == ["first_half", "second_half"] and grouped.fine_labels == fine
    outputs = grouped.outputs(texts)
    assert outputs.fine_probs is not None
    np.testing.assert_allclose(outputs.fine_probs, fine_probs, atol=1e-5)
    first = np.array([buckets[label] == "first_half" for label in fine])
    np.testing.assert_allclose(outputs.probs[:, 0], fine_probs[:, first].sum(axis=1), atol=1e-5)
    for text_probs, prediction in zip(fine_probs, grouped.predict(texts), strict=True):
        assert prediction.category in ("first_half", "second_half")
        assert (
            prediction.fine_label is not None
            and buckets[prediction.fine_label] == prediction.category
        )
        members = [j for j, label in enumerate(fine) if buckets[label] == prediction.category]
        assert prediction.fine_label == fine[max(members, key=lambda j: text_probs[j])]
        assert prediction.confidence == pytest.approx(text_probs[members].sum(), abs=1e-5)


@pytest.mark.integration
def test_a_far_off_ticket_goes_to_review_as_novel_on_a_real_broker(
    settings: Settings, model_store_factory: Callable[..., Path]
) -> None:
    store = model_store_factory(promote=True)
    cfg = settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"store": store}),
            # Every ticket is confident enough: only novelty can send one to review.
            "routing": settings.routing.model_copy(update={"threshold": 0.0}),
        }
    )
    usual = [
        RawTicket(id=f"usual-{i}", subject=t.subject, body=t.body)
        for i, t in enumerate(generate_tickets(6, seed=5))
    ]
    far = [RawTicket(id=f"far-{i}", body=body) for i, body in enumerate(FAR_OFF)]
    service = ClassifierService(cfg, Predictor(load_model(store / "current")))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        produce_values(cfg.kafka, cfg.topics.raw, [(t.id, t.to_bytes()) for t in usual + far])
        wait_until(lambda: service.totals["consumed"] >= len(usual) + len(far), 120, "all")
    finally:
        service.stop_event.set()
        thread.join(60)
    reviews = [
        ReviewRequest.model_validate_json(v or b"")
        for _, v, _ in read_topic(cfg.kafka, cfg.topics.review, idle=2.0)
    ]
    classified = [
        ClassifiedTicket.model_validate_json(v or b"")
        for _, v, _ in read_topic(cfg.kafka, cfg.topics.classified, idle=2.0)
    ]
    by_id = {r.ticket.id: r for r in reviews}
    for ticket in far:
        review = by_id[ticket.id]
        assert review.reason == "novel" and review.schema_version == 3
        assert review.novelty is not None and review.novelty_threshold is not None
        assert review.novelty > review.novelty_threshold
    assert all(c.novelty is not None for c in classified)
    assert len(classified) + len(reviews) == len(usual) + len(far)
    assert sum(c.ticket.id.startswith("usual") for c in classified) >= len(usual) - 1


def test_a_corrupt_novelty_file_refuses_the_model_folder(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    from consumer.model_store import ModelLoadError
    from consumer.novelty import TENSORS_FILE

    folder = tmp_path / trained_model_dir.name
    shutil.copytree(trained_model_dir, folder)
    (folder / TENSORS_FILE).write_bytes(b"\x00 not safetensors")
    with pytest.raises(ModelLoadError, match="novelty"):
        load_model(folder)


def test_the_batch_step_hands_each_outputs_novelty_to_the_drift_metrics(
    trained_model_dir: Path,
) -> None:
    # The drift histogram ticketsort_novelty_score reads Output.novelty; the batch step used
    # to leave it unset, so the histogram stayed empty with a novelty-scoring model.
    from consumer.batch_step import BatchStep
    from consumer.drift import observe_output
    from consumer.metrics import Metrics
    from tests.fakes import record

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    step = BatchStep(settings, Predictor(load_model(trained_model_dir), settings.model))
    raw = [RawTicket(id=f"nv-{i}", body=text).to_bytes() for i, text in enumerate(FAR_OFF)]
    result = step.process([record(0, i, value, settings.topics.raw) for i, value in enumerate(raw)])
    assert all(o.novelty is not None and o.novelty > 0 for o in result.primaries)
    metrics = Metrics()
    for output in result.primaries:
        observe_output(metrics, output, step.predictor.version)
    count = metrics.registry.get_sample_value(
        "ticketsort_novelty_score_count", {"model_version": step.predictor.version}
    )
    assert count == len(FAR_OFF)
