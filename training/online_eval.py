"""Online evaluation: reviewers' labels as ground truth for the served and the shadow model.

    python -m training compare [--since 7d] [--basis auto|audit|reviewed] [--json]

A reviewer's label (``tickets.labeled``, ``label_source: reviewer``) is the truth for
whatever models scored that ticket: the served model's answer is in the label event
(``model_suggestion``), the shadow's in the ``ticket.shadow`` event of the same ticket
(``tickets.shadow``). Over the window this reads both topics, joins them by ticket id and
reports each model's accuracy (Wilson intervals) on

- every reviewed ticket: biased to the served model's hard cases (that is why they were
  in review), so the served model looks worse there than it is;
- the audit sample (``reason: audit``: a random share of auto-routed tickets also sent to
  review, ``routing.audit_share``): unbiased for what was auto-routed;

and the paired difference (shadow minus served accuracy on the same tickets, a bootstrap
interval from ``scipy.stats.bootstrap``). ``--basis auto`` decides on the audit sample when
it holds ``online_min_pairs`` tickets both models scored, else on every reviewed one (and
says so). ``promote --from-shadow`` promotes when the interval's lower bound is at least
``-online_margin`` (not worse, at the configured confidence), and writes the evidence into
the shadow's model folder.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from consumer.events import LabeledTicket, ShadowScore, ShadowSide
from consumer.kafka import Record
from consumer.settings import Settings
from training.window import scan_window

Basis = Literal["auto", "audit", "reviewed"]


@dataclass(frozen=True)
class Answer:
    """A reviewer's label and what the served model had said."""

    ticket_id: str
    label: str
    reason: str | None
    served_category: str | None
    served_version: str | None
    labeled_at: datetime


@dataclass(frozen=True)
class Pair:
    """A reviewed ticket that both models scored."""

    ticket_id: str
    label: str
    reason: str | None
    served: ShadowSide
    shadow: ShadowSide

    @property
    def served_correct(self) -> bool:
        return self.served.category == self.label

    @property
    def shadow_correct(self) -> bool:
        return self.shadow.category == self.label


@dataclass
class Window:
    since_ms: int
    until_ms: int = 0
    answers: dict[str, Answer] = field(default_factory=dict)
    scores: dict[tuple[str, str], ShadowScore] = field(default_factory=dict)  # (ticket, shadow v)
    unreadable: Counter[str] = field(default_factory=Counter)

    def add_label(self, event: LabeledTicket) -> None:
        if event.label_source != "reviewer":
            return
        known = self.answers.get(event.ticket.id)
        if known is not None and known.labeled_at > event.labeled_at:
            return  # the latest label of a ticket wins
        self.answers[event.ticket.id] = Answer(
            event.ticket.id,
            event.label,
            event.review_reason,
            event.model_suggestion,
            event.model_version,
            event.labeled_at,
        )

    def add_score(self, event: ShadowScore) -> None:
        key = (event.ticket_id, event.shadow.model_version)
        known = self.scores.get(key)
        if known is None or event.scored_at >= known.scored_at:
            self.scores[key] = event

    def shadow_versions(self) -> Counter[str]:
        return Counter(version for _, version in self.scores)

    def pairs(self, shadow_version: str) -> list[Pair]:
        out = []
        for ticket_id, answer in sorted(self.answers.items()):
            score = self.scores.get((ticket_id, shadow_version))
            if score is not None:
                out.append(Pair(ticket_id, answer.label, answer.reason, score.served, score.shadow))
        return out


def read_window(settings: Settings, since_ms: int, *, timeout_s: float = 60.0) -> Window:
    """Reviewers' labels and shadow scores with a timestamp at or after ``since_ms``."""
    topics = settings.topics
    window = Window(since_ms=since_ms)

    def add(rec: Record) -> None:
        try:
            if rec.topic == topics.labeled:
                window.add_label(LabeledTicket.model_validate_json(rec.value or b""))
            else:
                window.add_score(ShadowScore.model_validate_json(rec.value or b""))
        except (ValidationError, ValueError):
            window.unreadable[rec.topic] += 1

    window.until_ms = scan_window(
        settings, [topics.labeled, topics.shadow], since_ms, add, timeout_s=timeout_s,
        purpose="online-eval",
    )  # fmt: skip
    return window


@dataclass(frozen=True)
class Accuracy:
    n: int
    correct: int
    low: float
    high: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


def accuracy(flags: list[bool], confidence: float) -> Accuracy:
    """Accuracy with a Wilson score interval (``scipy.stats.binomtest``)."""
    from scipy.stats import binomtest

    n, k = len(flags), int(sum(flags))
    if n == 0:
        return Accuracy(0, 0, float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Accuracy(n, k, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Difference:
    """Shadow minus served accuracy on the same tickets, with a bootstrap interval."""

    n: int
    mean: float
    low: float
    high: float
    shadow_only_right: int  # discordant pairs
    served_only_right: int


def paired_difference(pairs: list[Pair], confidence: float, seed: int = 0) -> Difference:
    from scipy.stats import bootstrap

    diffs = np.array([int(p.shadow_correct) - int(p.served_correct) for p in pairs], dtype=float)
    shadow_only, served_only = int((diffs > 0).sum()), int((diffs < 0).sum())
    if len(diffs) == 0:
        return Difference(0, float("nan"), float("nan"), float("nan"), 0, 0)
    mean = float(diffs.mean())
    if len(diffs) < 2 or bool(np.all(diffs == diffs[0])):  # no spread: nothing to resample
        return Difference(len(diffs), mean, mean, mean, shadow_only, served_only)
    result = bootstrap(
        (diffs,),
        np.mean,
        confidence_level=confidence,
        n_resamples=4999,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Difference(len(diffs), mean, float(ci.low), float(ci.high), shadow_only, served_only)


@dataclass(frozen=True)
class Row:
    model: str  # "served" or "shadow"
    slice: str  # "reviewed" (all), "audit"
    versions: dict[str, int]
    result: Accuracy


@dataclass
class Comparison:
    shadow_version: str | None
    basis: str
    basis_note: str
    confidence: float
    min_pairs: int
    since_ms: int
    until_ms: int
    labels: int  # reviewer labels in the window
    rows: list[Row]
    difference: Difference | None
    verdict: str  # "better", "worse", "no difference", "not enough evidence", "no shadow"
    summary: str
    unreadable: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for row, data in zip(self.rows, out["rows"], strict=True):
            data["result"]["accuracy"] = row.result.accuracy
        return out


def _versions(sides: list[str | None]) -> dict[str, int]:
    return dict(Counter(v or "unknown" for v in sides))


def compare(
    window: Window,
    *,
    confidence: float,
    min_pairs: int,
    basis: Basis = "auto",
    shadow_version: str | None = None,
) -> Comparison:
    """Both models' online accuracy and the evidence on which is better."""
    answers = list(window.answers.values())
    audit = [a for a in answers if a.reason == "audit"]
    rows = [
        Row(
            "served", "reviewed", _versions([a.served_version for a in answers]),
            accuracy([a.served_category == a.label for a in answers], confidence),
        ),
        Row(
            "served", "audit", _versions([a.served_version for a in audit]),
            accuracy([a.served_category == a.label for a in audit], confidence),
        ),
    ]  # fmt: skip
    versions = window.shadow_versions()
    if shadow_version is None and versions:
        shadow_version = versions.most_common(1)[0][0]
    base: dict[str, Any] = {
        "confidence": confidence,
        "min_pairs": min_pairs,
        "since_ms": window.since_ms,
        "until_ms": window.until_ms,
        "labels": len(answers),
        "unreadable": dict(window.unreadable),
    }
    if shadow_version is None:
        return Comparison(
            None, basis, "", rows=rows, difference=None, verdict="no shadow",
            summary="no shadow scores in the window: install one with"
            " `python -m training promote --shadow VERSION` (or `make train ARGS=--shadow`)",
            **base,
        )  # fmt: skip
    pairs = window.pairs(shadow_version)
    audit_pairs = [p for p in pairs if p.reason == "audit"]
    for name, chosen in (("reviewed", pairs), ("audit", audit_pairs)):
        rows.append(
            Row(
                "shadow", name, {shadow_version: len(chosen)},
                accuracy([p.shadow_correct for p in chosen], confidence),
            )
        )  # fmt: skip
    if basis == "auto":
        if len(audit_pairs) >= min_pairs:
            basis, note = "audit", "the audit sample (unbiased for auto-routed tickets)"
        else:
            basis, note = (
                "reviewed",
                (
                    f"every reviewed ticket both models scored: the audit sample has"
                    f" {len(audit_pairs)} < {min_pairs}, and the rest are the served model's hard"
                    " cases (set routing.audit_share for an unbiased estimate)"
                ),
            )
    else:
        note = "the audit sample" if basis == "audit" else "every reviewed ticket"
    chosen = audit_pairs if basis == "audit" else pairs
    diff = paired_difference(chosen, confidence)
    points = f"{100 * diff.mean:+.1f} points" if diff.n else "n/a"
    interval = f"[{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]" if diff.n else ""
    level = f"{100 * confidence:g}%"
    if diff.n < min_pairs:
        verdict = "not enough evidence"
        summary = (
            f"not enough evidence: {diff.n} reviewed tickets both models scored"
            f" (at least {min_pairs}: training.online_min_pairs)"
        )
    elif diff.low > 0:
        verdict = "better"
        summary = f"the shadow is better: {points}, {level} interval {interval} above 0"
    elif diff.high < 0:
        verdict = "worse"
        summary = f"the shadow is worse: {points}, {level} interval {interval} below 0"
    else:
        verdict = "no difference"
        summary = f"no difference shown: {points}, {level} interval {interval} includes 0"
    return Comparison(
        shadow_version, basis, note, rows=rows, difference=diff, verdict=verdict,
        summary=f"{summary} (on {note}; {diff.shadow_only_right} tickets only the shadow got"
        f" right, {diff.served_only_right} only the served model)",
        **base,
    )  # fmt: skip


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def decide_promotion(comparison: Comparison, margin: float) -> PromotionDecision:
    """Promote when the shadow is not worse: the interval's lower bound >= -margin."""
    diff = comparison.difference
    if comparison.shadow_version is None or diff is None:
        return PromotionDecision(False, comparison.summary)
    if diff.n < comparison.min_pairs:
        return PromotionDecision(False, comparison.summary)
    level = f"{100 * comparison.confidence:g}%"
    if diff.low >= -margin:
        return PromotionDecision(
            True,
            f"not worse at {level}: shadow minus served accuracy >= {100 * diff.low:+.1f} points"
            f" (margin {100 * margin:.1f}) on {diff.n} tickets",
        )
    return PromotionDecision(
        False,
        f"may be worse: at {level} shadow minus served accuracy could be"
        f" {100 * diff.low:+.1f} points, beyond the margin of -{100 * margin:.1f}"
        f" ({diff.n} tickets)",
    )


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def render(comparison: Comparison) -> str:
    since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(comparison.since_ms / 1000))
    until = time.strftime("%Y-%m-%d %H:%M", time.gmtime(comparison.until_ms / 1000))
    level = f"{100 * comparison.confidence:g}%"
    lines = [
        f"online evaluation {since} .. {until} UTC: {comparison.labels} reviewer labels,"
        f" shadow {comparison.shadow_version or 'none'}",
        "",
        f"{'model':<7} {'tickets':<9} {'n':>6} {'accuracy':>9}  {level + ' interval':<18} versions",
    ]
    for row in comparison.rows:
        r = row.result
        interval = f"{_pct(r.low)} .. {_pct(r.high)}" if r.n else ""
        versions = ", ".join(f"{v} ({n})" for v, n in row.versions.items())
        lines.append(
            f"{row.model:<7} {row.slice:<9} {r.n:>6} {_pct(r.accuracy):>9}  {interval:<18}"
            f" {versions}"
        )
    diff = comparison.difference
    if diff is not None and diff.n:
        lines += [
            "",
            f"shadow - served, same {diff.n} tickets ({comparison.basis}):"
            f" {100 * diff.mean:+.1f} points, {level} interval"
            f" [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]",
        ]
    lines += ["", comparison.summary]
    if comparison.unreadable:
        lines.append(f"unreadable records skipped: {comparison.unreadable}")
    return "\n".join(lines)


def evidence(comparison: Comparison, decision: PromotionDecision, margin: float) -> str:
    """What ``promote --from-shadow`` writes into the shadow's model folder."""
    return (
        json.dumps(
            {
                "decision": asdict(decision),
                "margin": margin,
                "comparison": comparison.to_dict(),
                "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
