"""Novelty scores: fit, score, calibrate, save/load (safetensors + JSON, never pickle)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from consumer.label_groups import LabelGroups, LabelGroupsError, load_groups
from consumer.model_store import PICKLE_SUFFIXES
from consumer.novelty import (
    META_FILE,
    TENSORS_FILE,
    NoveltyError,
    fit_knn,
    fit_mahalanobis,
    fit_novelty,
    load_novelty,
    quantile_threshold,
)


def clusters(seed: int = 0, n: int = 200, dim: int = 16) -> tuple[np.ndarray, list[str]]:
    """Three elongated Gaussian clusters (anisotropic: Mahalanobis differs from Euclid)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(3, dim))
    scale = np.linspace(0.2, 2.0, dim)
    x = np.concatenate([c + rng.normal(size=(n, dim)) * scale for c in centres])
    y = [f"c{i}" for i in range(3) for _ in range(n)]
    return x.astype(np.float32), y


def test_mahalanobis_matches_the_definition_and_ranks_far_points_higher() -> None:
    x, y = clusters()
    scorer = fit_mahalanobis(x, y)
    probes = np.concatenate([x[:5], x[:5] + 40.0]).astype(np.float32)
    got = scorer.score(probes)
    means = scorer.tensors["means"].numpy().astype(np.float64)
    precision = scorer.tensors["precision"].numpy().astype(np.float64)
    expected = np.array(
        [min((p - m) @ precision @ (p - m) for m in means) for p in probes.astype(np.float64)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-2)
    assert got[5:].min() > 10 * got[:5].max()
    # The shared covariance is the within-class one: a point 2 sd off along the widest
    # axis scores within a few times one 2 sd off along the narrowest (shrinkage pulls
    # them apart a little); in Euclid the squared ratio would be (4 / 0.4)^2 = 100.
    centre = means[0].astype(np.float32)
    wide = centre.copy()
    wide[-1] += 2 * 2.0
    narrow = centre.copy()
    narrow[0] += 2 * 0.2
    w, nr = scorer.score(np.stack([wide, narrow]))
    assert 0.5 < w / nr < 10.0


def test_knn_is_the_cosine_distance_to_the_kth_neighbour() -> None:
    x, y = clusters(seed=1)
    scorer = fit_knn(x, y, k=5)
    probes = x[[0, 250, 500]] + 0.01
    bank = x / np.linalg.norm(x, axis=1, keepdims=True)
    unit = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    expected = 1 - np.sort(unit @ bank.T, axis=1)[:, -5]
    np.testing.assert_allclose(scorer.score(probes), expected, atol=1e-5)


def test_quantile_threshold_flags_the_top_share_of_validation() -> None:
    scores = np.arange(1000, dtype=np.float32)
    threshold = quantile_threshold(scores, 0.95)
    assert (scores > threshold).mean() == pytest.approx(0.05, abs=0.002)
    assert quantile_threshold(scores, 1.0) == scores.max()
    with pytest.raises(NoveltyError):
        quantile_threshold(np.array([]), 0.95)
    with pytest.raises(NoveltyError):
        quantile_threshold(scores, 0.0)


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_save_and_load_round_trip_without_pickles(tmp_path: Path, method: str) -> None:
    x, y = clusters(seed=2)
    scorer = fit_novelty(method, x, y, k=7)  # type: ignore[arg-type]
    scorer.meta["threshold"] = 1.5
    scorer.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {TENSORS_FILE, META_FILE}
    assert not any(p.suffix in PICKLE_SUFFIXES for p in tmp_path.iterdir())
    again = load_novelty(tmp_path)
    assert again is not None and again.method == method and again.meta["threshold"] == 1.5
    probes = np.concatenate([x[:20], x[:20] * 3])
    # knn stores its bank as float16: the scores move a little, no more.
    np.testing.assert_allclose(again.score(probes), scorer.score(probes), rtol=1e-2, atol=2e-3)
    assert again.k == (7 if method == "knn" else scorer.k)


def test_load_refuses_broken_files(tmp_path: Path) -> None:
    assert load_novelty(tmp_path) is None  # older models have none
    x, y = clusters(seed=3)
    fit_mahalanobis(x, y).save(tmp_path)
    (tmp_path / TENSORS_FILE).unlink()
    with pytest.raises(NoveltyError, match="missing"):
        load_novelty(tmp_path)
    fit_mahalanobis(x, y).save(tmp_path)
    (tmp_path / TENSORS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(NoveltyError, match="unreadable"):
        load_novelty(tmp_path)
    fit_mahalanobis(x, y).save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "method": "oracle"}))
    with pytest.raises(NoveltyError, match="no known method"):
        load_novelty(tmp_path)


def test_bad_fit_inputs_are_clear_errors() -> None:
    x, y = clusters()
    with pytest.raises(NoveltyError, match="labels"):
        fit_mahalanobis(x, y[:-1])
    with pytest.raises(NoveltyError, match="NaN"):
        fit_knn(np.full((4, 3), np.nan))
    with pytest.raises(NoveltyError, match="expected"):
        fit_mahalanobis(x, y).score_tensor(torch.zeros(2, 5))


def test_label_groups_sum_probabilities_within_buckets(tmp_path: Path) -> None:
    fine = ["atm", "card_lost", "fee", "refund"]
    groups = LabelGroups.from_map(
        fine, {"atm": "cash", "card_lost": "cards", "fee": "money", "refund": "money"}
    )
    assert groups.served == ("cards", "cash", "money")
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]], dtype=np.float32)
    np.testing.assert_allclose(groups.sum_probs(probs), [[0.2, 0.1, 0.7], [0.1, 0.7, 0.2]])
    torch.testing.assert_close(
        torch.from_numpy(probs) @ groups.matrix(), torch.from_numpy(groups.sum_probs(probs))
    )
    groups.save(tmp_path)
    assert load_groups(tmp_path, fine) == groups
    with pytest.raises(LabelGroupsError, match="without a bucket"):
        load_groups(tmp_path, [*fine, "new_intent"])


def test_scores_at_another_precision_are_put_on_the_fp32_scale() -> None:
    x, y = clusters(seed=4)
    scorer = fit_mahalanobis(x, y)
    assert scorer.scale_for("int8") == 1.0  # nothing calibrated at int8: no rescale
    scorer.meta["thresholds"] = {"fp32": 10.0, "int8": 25.0}
    assert scorer.scale_for("int8") == pytest.approx(0.4)
    assert scorer.scale_for("fp32") == 1.0 and scorer.scale_for("bf16") == 1.0


def test_the_confidence_signal_adds_the_softmax_doubt_scaled_by_the_spreads(
    tmp_path: Path,
) -> None:
    x, y = clusters()
    distance_only = fit_mahalanobis(x, y)
    rng = np.random.default_rng(1)
    val = x[::7]
    val_probs = rng.dirichlet([5, 1, 1], size=len(val)).astype(np.float32)
    val_distance = distance_only.score(val)
    scorer = distance_only.with_confidence(val_distance, val_probs)
    assert scorer.uses_confidence and not distance_only.uses_confidence
    doubt = 1 - val_probs.max(axis=1)
    expected = val_distance / val_distance.std() + doubt / doubt.std()
    np.testing.assert_allclose(scorer.score_with(val, val_probs), expected, rtol=1e-4)
    # The same embedding scores higher when the model doubts it: a confident look-alike
    # and a doubtful one are told apart, which a distance alone cannot do.
    point = x[:1]
    sure, unsure = np.array([[0.98, 0.01, 0.01]]), np.array([[0.4, 0.35, 0.25]])
    assert scorer.score_with(point, unsure)[0] > scorer.score_with(point, sure)[0]
    assert distance_only.score_with(point, unsure)[0] == distance_only.score_with(point, sure)[0]
    # The weights travel with the model folder.
    scorer.save(tmp_path)
    loaded = load_novelty(tmp_path)
    assert loaded is not None and loaded.uses_confidence
    np.testing.assert_allclose(
        loaded.score_with(val, val_probs), scorer.score_with(val, val_probs), rtol=1e-5
    )
