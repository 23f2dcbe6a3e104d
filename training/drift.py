"""``python -m training drift``: has the live mix moved away from the served model's training?

Reads the classified and review topics over a time window (``--since 24h``, ``--hours N``):
every partition from the first offset at or after the window's start (``offsets_for_times``)
up to its end offset taken at start, without a consumer group's commits. The predicted
categories and confidences found there are compared with the model folder's
``distribution.json`` (``training.distribution``):

- category mix: PSI and Pearson's chi-square of the live predicted-category counts against
  the validation slice's predicted-category shares (the same quantity: model bias cancels);
  the training slice's label shares are shown beside them;
- confidences: the largest gap between the live and validation cumulative confidence shares
  (binned Kolmogorov-Smirnov), and the review shares.

Prints a table, writes a PNG. The verdict is "shift" when PSI > 0.25 or the confidence gap
> 0.15 (the alert rules' thresholds), "too few tickets" below ``--min-tickets``. Exit code 0,
or 1 with ``--fail-on-drift`` when there is a shift; 2 for bad input (no model, no
distribution.json, a missing topic), 3 when no broker answers.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from consumer.drift import ConfidenceHistogram, TrainingDistribution, read_distribution
from consumer.errors import ExitCode
from consumer.events import ClassifiedTicket, ReviewRequest
from consumer.kafka import Record, wait_for_broker
from consumer.logs import get_logger
from consumer.settings import Settings
from training.distribution import (
    PSI_SIGNIFICANT,
    ChiSquare,
    chi_square,
    confidence_histogram,
    max_cdf_gap,
    ordered,
    psi_terms,
)
from training.errors import BadInput, exit_code_of
from training.window import scan_window

log = get_logger("training.drift")

CONFIDENCE_GAP = 0.15  # as TicketsortConfidenceShift in deploy/prometheus/rules.yml
MIN_TICKETS = 100
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 3600}


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``24h``, ``7d``, ``1w``, ``90s`` (a bare number is hours)."""
    match = DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise BadInput(f"not a duration: {text!r} (e.g. 30m, 24h, 7d)")
    return float(match.group(1)) * UNIT_S[match.group(2)]


@dataclass
class LiveSample:
    """What the window held: predicted categories, confidences and routes."""

    since_ms: int
    until_ms: int
    categories: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    confidences: list[float] = field(default_factory=list)
    unreadable: int = 0

    @property
    def count(self) -> int:
        return sum(self.routes.values())

    def add(self, event: ClassifiedTicket | ReviewRequest, route: str) -> None:
        self.categories[event.category] += 1
        self.routes[route] += 1
        self.versions[event.model_version] += 1
        self.confidences.append(event.confidence)


def read_window(
    settings: Settings, since_ms: int, *, timeout_s: float = 60.0, group: str | None = None
) -> LiveSample:
    """The classified and review events with a timestamp at or after ``since_ms``."""
    routes = {settings.topics.classified: "classified", settings.topics.review: "review"}
    sample = LiveSample(since_ms=since_ms, until_ms=int(time.time() * 1000))

    def add(rec: Record) -> None:
        model = ClassifiedTicket if routes[rec.topic] == "classified" else ReviewRequest
        try:
            event = model.model_validate_json(rec.value or b"")
        except (ValidationError, ValueError):
            sample.unreadable += 1
            return
        if isinstance(event, ReviewRequest) and event.reason == "audit":
            return  # an auto-routed ticket's audit copy: already counted as classified
        sample.add(event, routes[rec.topic])

    sample.until_ms = scan_window(
        settings, list(routes), since_ms, add, timeout_s=timeout_s, group=group, purpose="drift"
    )
    return sample


@dataclass
class CategoryRow:
    category: str
    train_share: float
    validation_share: float
    live_count: int
    live_share: float
    psi_term: float


@dataclass
class DriftReport:
    model_version: str
    sample: LiveSample
    rows: list[CategoryRow]
    psi: float
    chi_square: ChiSquare
    confidence_gap: float
    live_confidence: ConfidenceHistogram
    training_confidence: ConfidenceHistogram
    live_review_share: float
    validation_review_share: float
    min_tickets: int

    @property
    def enough(self) -> bool:
        return self.sample.count >= self.min_tickets

    @property
    def category_shift(self) -> bool:
        return self.enough and self.psi > PSI_SIGNIFICANT

    @property
    def confidence_shift(self) -> bool:
        return self.enough and self.confidence_gap > CONFIDENCE_GAP

    @property
    def shifted(self) -> bool:
        return self.category_shift or self.confidence_shift

    @property
    def verdict(self) -> str:
        if not self.enough:
            return f"too few tickets ({self.sample.count} < {self.min_tickets})"
        parts = []
        if self.category_shift:
            parts.append(f"category mix (PSI {self.psi:.3f} > {PSI_SIGNIFICANT})")
        if self.confidence_shift:
            parts.append(f"confidences (gap {self.confidence_gap:.3f} > {CONFIDENCE_GAP})")
        return "shift: " + ", ".join(parts) if parts else "no shift"


def compare(
    dist: TrainingDistribution, sample: LiveSample, model_version: str, min_tickets: int
) -> DriftReport:
    labels = list(dist.labels)
    # A category the model folder does not know (another model's events) still counts.
    labels += sorted(set(sample.categories) - set(labels))
    counts = [sample.categories.get(c, 0) for c in labels]
    total = sum(counts)
    live = [n / total if total else 0.0 for n in counts]
    expected = ordered(dist.validation.category_shares, labels)
    terms = psi_terms(expected, live)
    rows = [
        CategoryRow(c, dist.train.category_shares.get(c, 0.0), e, n, s, float(t))
        for c, e, n, s, t in zip(labels, expected, counts, live, terms, strict=True)
    ]
    training_hist = dist.validation.confidence
    live_hist = confidence_histogram(sample.confidences, training_hist.upper_bounds)
    return DriftReport(
        model_version=model_version,
        sample=sample,
        rows=rows,
        psi=float(terms.sum()) if total else 0.0,
        chi_square=chi_square(expected, counts),
        confidence_gap=max_cdf_gap(training_hist, live_hist) if total else 0.0,
        live_confidence=live_hist,
        training_confidence=training_hist,
        live_review_share=sample.routes.get("review", 0) / total if total else 0.0,
        validation_review_share=dist.validation.review_share,
        min_tickets=min_tickets,
    )


def render_table(report: DriftReport) -> str:
    sample = report.sample
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sample.since_ms / 1000))
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sample.until_ms / 1000))
    lines = [
        f"model {report.model_version}; window {since} .. {until} UTC;"
        f" {sample.count} tickets ({dict(sample.routes)}), unreadable {sample.unreadable};"
        f" versions {dict(sample.versions)}",
        "",
        f"{'category':<28} {'train':>7} {'valid':>7} {'live':>7} {'Δ':>7} {'n':>7} {'psi':>7}",
    ]
    for row in sorted(report.rows, key=lambda r: -abs(r.psi_term)):
        lines.append(
            f"{row.category[:28]:<28} {row.train_share:7.3f} {row.validation_share:7.3f}"
            f" {row.live_share:7.3f} {row.live_share - row.validation_share:+7.3f}"
            f" {row.live_count:7d} {row.psi_term:7.4f}"
        )
    chi = report.chi_square
    lines += [
        "",
        f"category PSI {report.psi:.4f} (live vs validation predictions; > {PSI_SIGNIFICANT}:"
        " shift)",
        f"chi-square {chi.statistic:.2f}, dof {chi.dof}, p = {chi.p_value:.3g}",
        f"confidence: max gap of cumulative shares {report.confidence_gap:.4f}"
        f" (> {CONFIDENCE_GAP}: shift)",
        f"review share: live {report.live_review_share:.3f},"
        f" validation {report.validation_review_share:.3f}",
        f"verdict: {report.verdict}",
    ]
    return "\n".join(lines)


def drift_png(report: DriftReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(report.rows, key=lambda r: -r.validation_share)
    fig, (mix, conf) = plt.subplots(
        1, 2, figsize=(max(10.0, 0.45 * len(rows) + 6), 4.8), width_ratios=(2, 1)
    )
    x = range(len(rows))
    width = 0.28
    mix.bar([i - width for i in x], [r.train_share for r in rows], width, label="train (labels)")
    mix.bar(list(x), [r.validation_share for r in rows], width, label="validation (predicted)")
    mix.bar([i + width for i in x], [r.live_share for r in rows], width, label="live (predicted)")
    mix.set_xticks(list(x), [r.category for r in rows], rotation=60, ha="right", fontsize=8)
    mix.set_ylabel("share")
    mix.set_title(f"category mix: PSI {report.psi:.3f}")
    mix.legend(fontsize=8)
    bounds = report.training_confidence.upper_bounds
    names = [f"≤{b:g}" for b in bounds]
    y = range(len(bounds))
    conf.bar([i - 0.2 for i in y], report.training_confidence.shares(), 0.4, label="validation")
    conf.bar([i + 0.2 for i in y], report.live_confidence.shares(), 0.4, label="live")
    conf.set_xticks(list(y), names, rotation=60, ha="right", fontsize=8)
    conf.set_title(f"confidence: max CDF gap {report.confidence_gap:.3f}")
    conf.legend(fontsize=8)
    fig.suptitle(f"{report.model_version}: {report.verdict}; {report.sample.count} tickets")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_drift(
    settings: Settings,
    *,
    window_s: float,
    model_dir: Path | None = None,
    png: Path | None = None,
    min_tickets: int = MIN_TICKETS,
    timeout_s: float = 60.0,
) -> DriftReport:
    """Read the window, compare it with the model folder's distribution, write the PNG."""
    from consumer.model_store import read_manifest, resolve_model_dir

    folder = resolve_model_dir(settings.model.store, model_dir or settings.model.path)
    dist = read_distribution(folder)
    if dist is None:
        raise BadInput(
            f"{folder} has no readable distribution.json (trained before drift monitoring):"
            " retrain with `make train` to get one"
        )
    version = str(read_manifest(folder).get("version", folder.name))
    since_ms = int((time.time() - window_s) * 1000)
    sample = read_window(settings, since_ms, timeout_s=timeout_s)
    report = compare(dist, sample, version, min_tickets)
    if png is not None:
        drift_png(report, png)
    log.info(
        "drift_report",
        model_version=version,
        tickets=sample.count,
        psi=round(report.psi, 4),
        confidence_gap=round(report.confidence_gap, 4),
        shifted=report.shifted,
    )
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training drift",
        description="Compare the classified and review topics over a time window with the"
        " served model's training distribution (distribution.json): PSI, chi-square,"
        " confidence shift; a table and a PNG.",
    )
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--since", default="24h", help="window length: 30m, 24h, 7d (24h)")
    window.add_argument("--hours", type=float, help="window length in hours")
    parser.add_argument("--model", type=Path, help="model folder (default: <store>/current)")
    parser.add_argument("--png", type=Path, default=Path("drift.png"), help="drift.png")
    parser.add_argument("--min-tickets", type=int, default=MIN_TICKETS)
    parser.add_argument("--timeout", type=float, default=60.0, help="read timeout, seconds")
    parser.add_argument("--fail-on-drift", action="store_true", help="exit 1 on a shift")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    from consumer.logs import configure_logging

    settings = Settings()
    configure_logging(settings.logging.level, settings.logging.format)

    def command() -> int:
        window_s = ns.hours * 3600 if ns.hours is not None else parse_duration(ns.since)
        if window_s <= 0:
            raise BadInput("the window must be positive")
        wait_for_broker(settings.kafka, timeout=15)
        report = run_drift(
            settings,
            window_s=window_s,
            model_dir=ns.model,
            png=ns.png,
            min_tickets=ns.min_tickets,
            timeout_s=ns.timeout,
        )
        print(render_table(report))
        print(f"png: {ns.png}")
        return ExitCode.FAILED if ns.fail_on_drift and report.shifted else ExitCode.OK

    return exit_code_of(command)
