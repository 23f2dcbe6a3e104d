"""Drift units: PSI, chi-square, the confidence bins, distribution.json, the consumer's gauges."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram
from scipy import stats

from consumer.drift import (
    CONFIDENCE_BUCKETS,
    DISTRIBUTION_FILE,
    TrainingDistribution,
    export_training,
    observe_output,
    read_distribution,
)
from consumer.metrics import Metrics
from consumer.model_store import Thresholds
from consumer.outputs import Output
from tests.fakes import record
from training.distribution import (
    SHARE_FLOOR,
    chi_square,
    compute_distribution,
    confidence_histogram,
    max_cdf_gap,
    psi,
    write_distribution,
)
from training.drift import LiveSample, compare, parse_duration
from training.evaluate import Scored
from training.records import Example

LABELS = ["account", "billing", "shipping", "technical"]
SHARES = [0.1, 0.4, 0.2, 0.3]


def _sample(labels: list[str], weights: list[float], n: int, seed: int) -> list[str]:
    return random.Random(seed).choices(labels, weights=weights, k=n)


def _distribution(n: int = 2000, seed: int = 1) -> TrainingDistribution:
    rng = np.random.default_rng(seed)
    predicted = _sample(LABELS, SHARES, n, seed)
    return compute_distribution(
        LABELS,
        _sample(LABELS, SHARES, 3 * n, seed + 1),
        predicted,
        rng.beta(8, 2, size=n),
        Thresholds(0.6, {"billing": 0.8}),
    )


def test_psi_is_zero_for_equal_shares_and_matches_its_formula() -> None:
    assert psi(SHARES, SHARES) == pytest.approx(0.0, abs=1e-12)
    shifted = [0.4, 0.1, 0.2, 0.3]
    by_hand = sum((a - e) * math.log(a / e) for e, a in zip(SHARES, shifted, strict=True))
    assert psi(SHARES, shifted) == pytest.approx(by_hand)
    assert psi(SHARES, shifted) > 0.25  # a 30-point swap is a significant shift
    # an empty live category is floored, not infinite
    empty = psi([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(empty)
    assert empty == pytest.approx(
        (1 - 0.5) * math.log(1 / 0.5) + (SHARE_FLOOR - 0.5) * math.log(SHARE_FLOOR / 0.5)
    )
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])


def test_chi_square_is_pearson_against_the_expected_shares() -> None:
    observed = [30, 90, 40, 40]
    result = chi_square(SHARES, observed)
    expected = [s * sum(observed) for s in SHARES]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(stats.chi2.sf(statistic, len(observed) - 1))
    assert result.dof == 3
    assert chi_square(SHARES, [0, 0, 0, 0]).p_value == 1.0


def test_confidence_bins_are_prometheus_buckets() -> None:
    """The stored histogram counts exactly what the consumer's histogram counts per le."""
    values = [0.0, 0.1, 0.10001, 0.5, 0.55, 0.95, 0.99, 0.999, 1.0, *np.linspace(0, 1, 101)]
    hist = confidence_histogram(values)
    registry = CollectorRegistry()
    prom = Histogram("c", "c", buckets=CONFIDENCE_BUCKETS, registry=registry)
    for v in values:
        prom.observe(v)
    cumulative = {
        float(s.labels["le"]): s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == "c_bucket"
    }
    running = np.cumsum(hist.counts)
    for bound, count in zip(CONFIDENCE_BUCKETS, running, strict=True):
        assert cumulative[bound] == count, bound
    assert hist.total == len(values)
    assert hist.cumulative_shares()[-1] == pytest.approx(1.0)


def test_the_distribution_file_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = [
        Example(f"t{i}", "x", label) for i, label in enumerate(_sample(LABELS, SHARES, 500, 2))
    ]
    predicted = tuple(_sample(LABELS, [0.25] * 4, 200, 3))
    confidence = rng.uniform(0.2, 1.0, size=200)
    scored = Scored(
        ids=tuple(f"v{i}" for i in range(200)),
        y_true=predicted,
        y_pred=predicted,
        confidence=confidence,
        probs=np.zeros((200, 4)),
        labels=tuple(LABELS),
    )
    thresholds = Thresholds(0.7, {"billing": 0.9})
    path = write_distribution(tmp_path, train, scored, thresholds)
    assert path == tmp_path / DISTRIBUTION_FILE
    back = read_distribution(tmp_path)
    assert back is not None
    assert back.labels == LABELS
    assert back.train.count == 500 and back.validation.count == 200
    for label in LABELS:
        assert back.train.category_shares[label] == pytest.approx(
            sum(e.label == label for e in train) / 500
        )
        assert back.validation.category_shares[label] == pytest.approx(predicted.count(label) / 200)
    review = [c < thresholds.for_category(p) for p, c in zip(predicted, confidence, strict=True)]
    assert back.validation.review_share == pytest.approx(sum(review) / 200)
    assert back.validation.confidence.total == 200
    assert back.validation.confidence.upper_bounds == list(CONFIDENCE_BUCKETS)


def test_old_broken_or_newer_distribution_files_read_as_none(tmp_path: Path) -> None:
    assert read_distribution(tmp_path) is None  # a folder from before drift monitoring
    (tmp_path / DISTRIBUTION_FILE).write_text("{not json", encoding="utf-8")
    assert read_distribution(tmp_path) is None
    good = json.loads(_distribution().model_dump_json())
    (tmp_path / DISTRIBUTION_FILE).write_text(
        json.dumps({**good, "format_version": 99}), encoding="utf-8"
    )
    assert read_distribution(tmp_path) is None
    (tmp_path / DISTRIBUTION_FILE).write_text(json.dumps(good), encoding="utf-8")
    assert read_distribution(tmp_path) is not None


def test_the_consumer_exports_training_shares_and_counts_live_predictions(
    tmp_path: Path,
) -> None:
    dist = _distribution()
    dist.write(tmp_path)
    metrics = Metrics()
    assert export_training(metrics, tmp_path, "v1") is not None
    text = metrics.render().decode()
    billing = dist.validation.category_shares["billing"]
    share = 'ticketsort_training_category_share{category="billing",model_version="v1"'
    assert f'{share},slice="validation"}} {billing}' in text
    cdf = dist.validation.confidence.cumulative_shares()
    assert f'ticketsort_training_confidence_share{{le="0.5",model_version="v1"}} {cdf[4]}' in text
    review = dist.validation.review_share
    assert f'ticketsort_training_review_share{{model_version="v1"}} {review}' in text

    rec = record(0, 0, b"{}", "t.raw")
    for category, confidence, route in (
        ("billing", 0.9, "classified"),
        ("billing", 0.3, "review"),
        ("shipping", 0.97, "classified"),
    ):
        out = Output(rec, "t", b"k", b"{}", [], route, category=category, confidence=confidence)
        observe_output(metrics, out, "v1")
    observe_output(metrics, Output(rec, "t.dl", None, b"", [], "dead_letter", "invalid_json"), "v1")
    text = metrics.render().decode()
    counted = 'ticketsort_category_predictions_total{category="billing",model_version="v1"'
    assert f'{counted},route="classified"}} 1.0' in text
    assert f'{counted},route="review"}} 1.0' in text
    assert 'category="shipping",model_version="v1",route="classified"} 1.0' in text
    assert 'route="dead_letter"' not in text
    assert 'ticketsort_confidence_count{model_version="v1"} 3.0' in text
    assert 'ticketsort_confidence_bucket{le="0.3",model_version="v1"} 1.0' in text
    assert 'ticketsort_confidence_bucket{le="0.9",model_version="v1"} 2.0' in text
    assert "ticketsort_novelty_score_count" not in text  # no novelty score given
    out = Output(rec, "t", b"k", b"{}", [], "classified", category="billing", confidence=0.9)
    out.novelty = 3.0
    observe_output(metrics, out, "v1")
    assert 'ticketsort_novelty_score_count{model_version="v1"} 1.0' in metrics.render().decode()

    # a model without the file: the training gauges go away (no alert compares against stale ones)
    assert export_training(metrics, tmp_path / "nowhere", "v0") is None
    assert "ticketsort_training_category_share{" not in metrics.render().decode()


def test_compare_reports_a_shifted_mix_and_not_a_resampled_one() -> None:
    dist = _distribution()
    rng = np.random.default_rng(5)

    def live(weights: list[float], seed: int) -> LiveSample:
        sample = LiveSample(0, 1)
        categories = _sample(LABELS, weights, 1500, seed)
        sample.categories.update(categories)
        sample.routes.update({"classified": 1500})
        sample.confidences.extend(rng.beta(8, 2, size=1500).tolist())
        return sample

    steady = compare(dist, live(SHARES, 11), "v1", 100)
    assert steady.psi < 0.05 and not steady.shifted, steady.verdict
    moved = compare(dist, live([0.45, 0.15, 0.2, 0.2], 12), "v1", 100)
    assert moved.category_shift and moved.psi > 0.25, moved.verdict
    assert moved.chi_square.p_value < 1e-6
    by_category = {r.category: r for r in moved.rows}
    assert by_category["account"].live_share > by_category["account"].validation_share + 0.25

    unsure = live(SHARES, 13)
    unsure.confidences[:] = rng.uniform(0.2, 0.6, size=1500).tolist()
    low = compare(dist, unsure, "v1", 100)
    assert low.confidence_shift and not low.category_shift, low.verdict
    few = compare(dist, live([0.45, 0.15, 0.2, 0.2], 14), "v1", 5000)
    assert not few.shifted and "too few" in few.verdict
    assert max_cdf_gap(dist.validation.confidence, dist.validation.confidence) == 0.0


def test_parse_duration() -> None:
    assert parse_duration("24h") == 86400
    assert parse_duration("30m") == 1800
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("2") == 7200
    for bad in ("", "h", "-1h", "0h", "3y"):
        with pytest.raises(Exception, match="not a duration"):
            parse_duration(bad)


def test_the_service_exports_the_model_distribution_and_counts_delivered_outputs(
    tmp_path: Path,
) -> None:
    """The wiring: the served folder's file becomes gauges (again on a swap), and every
    delivered classified or review output is counted by its predicted category."""
    from consumer.events import RawTicket
    from consumer.model_store import load_model
    from consumer.predictor import Predictor
    from consumer.service import ClassifierService
    from consumer.settings import Settings
    from tests.chaos.models import LABELS as MODEL_LABELS
    from tests.chaos.models import write_untrained_model
    from tests.fakes import FakeConsumer, FakeProducer

    folder = write_untrained_model(tmp_path / "v-wired")
    rng = np.random.default_rng(0)
    labels = list(MODEL_LABELS)
    compute_distribution(
        labels, labels * 5, labels * 3, rng.uniform(0.3, 1, 3 * len(labels)), Thresholds(0.5)
    ).write(folder)
    predictor = Predictor(load_model(folder))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    service = ClassifierService(
        settings,
        predictor,
        consumer=FakeConsumer(),  # type: ignore[arg-type]
        producer=FakeProducer(),  # type: ignore[arg-type]
    )
    text = service.metrics.render().decode()
    share = 1 / len(labels)
    for label in labels:
        expected = f'category="{label}",model_version="v-wired",slice="validation"}} {share}'
        assert expected in text

    raw = settings.topics.raw
    tickets = [RawTicket(id=f"w{i}", body=f"my invoice {i} was charged twice") for i in range(6)]
    records = [record(0, i, t.to_bytes(), raw) for i, t in enumerate(tickets)]
    records.append(record(0, 6, b"{not json", raw))
    result = service.step.process(records)
    for output in result.outputs:
        service._delivered(output)
    predicted = [o for o in result.outputs if o.route != "dead_letter"]
    assert len(predicted) == 6 and all(o.category in labels for o in predicted)
    counted = {
        (s.labels["category"], s.labels["route"]): s.value
        for metric in service.metrics.registry.collect()
        for s in metric.samples
        if s.name == "ticketsort_category_predictions_total"
    }
    expected_counts: dict[tuple[str, str], float] = {}
    for o in predicted:
        key = (str(o.category), o.route)
        expected_counts[key] = expected_counts.get(key, 0) + 1
    assert counted == expected_counts
    assert 'ticketsort_confidence_count{model_version="v-wired"} 6.0' in (
        service.metrics.render().decode()
    )

    # a hot swap to a folder without the file removes the previous model's gauges
    bare = SimpleNamespace(
        version="v-bare", device="cpu", precision="fp32", model=SimpleNamespace(path=tmp_path)
    )
    service._set_model_metrics(bare)  # type: ignore[arg-type]
    assert "ticketsort_training_category_share{" not in service.metrics.render().decode()


def test_the_dashboard_and_alerts_use_only_defined_recording_rules() -> None:
    """Recorded series (``ticketsort:...``) the dashboard or alerts read are defined in
    rules.yml; the drift panels show the live and the training side."""
    import re

    import yaml

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    rules = yaml.safe_load((deploy / "prometheus" / "rules.yml").read_text(encoding="utf-8"))
    entries = [rule for group in rules["groups"] for rule in group["rules"]]
    recorded = {rule["record"] for rule in entries if "record" in rule}
    text = (deploy / "grafana" / "ticketsort-dashboard.json").read_text(encoding="utf-8")
    exprs: list[str] = re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', text)
    exprs += [rule["expr"] for rule in entries]
    used = {name for expr in exprs for name in re.findall(r"ticketsort:[a-z0-9_:]+", expr)}
    assert {"ticketsort:category_psi:1h", "ticketsort:confidence_cdf_gap:1h"} <= used
    assert used <= recorded, sorted(used - recorded)
    dashboard = " ".join(exprs)
    for name in (
        "ticketsort_category_predictions_total",
        "ticketsort_training_category_share",
        "ticketsort_confidence_bucket",
        "ticketsort_training_confidence_share",
        "ticketsort_training_review_share",
    ):
        assert name in dashboard, name
