"""``python -m training drift`` against the real broker: a shifted mix is reported, a steady
one is not, and only the window's records count."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer as RawProducer

from consumer.drift import read_distribution
from consumer.events import ClassifiedTicket, RawTicket, ReviewRequest
from consumer.model_store import Thresholds
from consumer.settings import Settings
from training.cli import main
from training.distribution import compute_distribution
from training.drift import run_drift

pytestmark = [pytest.mark.integration]

LABELS = ["account", "billing", "shipping", "technical"]
TRAIN = [0.1, 0.4, 0.2, 0.3]
SHIFTED = [0.45, 0.15, 0.2, 0.2]
DAY_MS = 86_400_000


def _model_folder(folder: Path) -> Path:
    """A model folder holding what drift reads: the manifest and distribution.json."""
    folder.mkdir(parents=True)
    manifest = {"format": "ticketsort-model", "format_version": 1, "version": folder.name}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    rng = random.Random(0)
    predicted = rng.choices(LABELS, weights=TRAIN, k=3000)
    conf = np.random.default_rng(0).beta(8, 2, size=3000)
    compute_distribution(LABELS, predicted, predicted, conf, Thresholds(0.6)).write(folder)
    assert read_distribution(folder) is not None
    return folder


def _produce(
    settings: Settings, weights: list[float], n: int, seed: int, timestamp_ms: int | None = None
) -> int:
    """``n`` events, 80% classified and 20% review, categories drawn with ``weights``."""
    rng = random.Random(seed)
    conf = np.random.default_rng(seed).beta(8, 2, size=n)
    producer = RawProducer(settings.kafka.client_config())
    for i in range(n):
        ticket = RawTicket(id=f"d{seed}-{i}", body="text")
        category = rng.choices(LABELS, weights=weights)[0]
        common = {
            "ticket": ticket,
            "category": category,
            "confidence": float(conf[i]),
            "scores": [],
            "model_version": "v-drift",
        }
        if i % 5 == 0:
            topic, value = settings.topics.review, ReviewRequest(threshold=0.6, **common)
        else:
            topic, value = settings.topics.classified, ClassifiedTicket(**common)
        extra = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        producer.produce(topic, value.to_bytes(), key=ticket.id, **extra)
    producer.produce(settings.topics.classified, b"{not an event", key="bad")
    assert producer.flush(30) == 0
    return n


def test_drift_reports_a_shifted_mix_and_writes_the_png(settings: Settings, tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "v-drift")
    sent = _produce(settings, SHIFTED, 600, seed=1)
    png = tmp_path / "drift.png"
    report = run_drift(settings, window_s=3600, model_dir=folder, png=png, timeout_s=30)
    assert report.sample.count == sent
    assert report.sample.unreadable == 1
    assert report.sample.routes["review"] == sent // 5
    assert report.category_shift and report.psi > 0.25, report.verdict
    assert report.chi_square.p_value < 1e-6
    rows = {r.category: r for r in report.rows}
    assert rows["account"].live_share > 0.35 and rows["billing"].live_share < 0.22
    assert not report.confidence_shift  # the confidences were drawn as in training
    assert png.stat().st_size > 10_000


def test_drift_counts_only_the_window(settings: Settings, tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "v-drift")
    now_ms = int(time.time() * 1000)
    _produce(settings, SHIFTED, 900, seed=2, timestamp_ms=now_ms - 2 * DAY_MS)  # two days ago
    recent = _produce(settings, TRAIN, 600, seed=3)
    day = run_drift(settings, window_s=86_400, model_dir=folder, timeout_s=30)
    assert day.sample.count == recent
    assert not day.shifted and day.psi < 0.05, day.verdict
    three_days = run_drift(settings, window_s=3 * 86_400, model_dir=folder, timeout_s=30)
    assert three_days.sample.count == recent + 900
    assert three_days.category_shift, three_days.verdict


def test_the_drift_command(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _model_folder(tmp_path / "v-drift")
    _produce(settings, SHIFTED, 300, seed=4)
    monkeypatch.setenv("TICKETSORT_KAFKA__BOOTSTRAP_SERVERS", settings.kafka.bootstrap_servers)
    monkeypatch.setenv("TICKETSORT_TOPICS__CLASSIFIED", settings.topics.classified)
    monkeypatch.setenv("TICKETSORT_TOPICS__REVIEW", settings.topics.review)
    png = tmp_path / "out" / "drift.png"
    args = ["drift", "--model", str(folder), "--png", str(png), "--since", "30m"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "verdict: shift: category mix" in out and png.exists()
    assert main([*args, "--fail-on-drift"]) == 1
    old = tmp_path / "v-old"
    old.mkdir()
    (old / "manifest.json").write_text((folder / "manifest.json").read_text(), encoding="utf-8")
    assert main(["drift", "--model", str(old)]) == 2  # no distribution.json
    assert "no readable distribution.json" in capsys.readouterr().err
    assert main(["drift", "--since", "soon"]) == 2
