"""The learning loop's terminal half: review → labels in the archive; a broken version refused.

Training on the reviewers' labels, promotion and the hot reload are checked once, in
``tests/test_learning_loop_web.py`` (the same labeled events, written from the browser).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.events import LabeledTicket, RawTicket, ReviewRequest
from consumer.model_store import load_model, promote
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import Settings
from producer_tools.__main__ import run_cli
from producer_tools.review_session import parse_decision
from tests.kafka_helpers import committed_offsets, end_offsets, produce_values, read_topic
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tickets(prefix: str, n: int) -> list[tuple[str, bytes]]:
    bodies = [
        "I was charged twice for my subscription this month, please fix the invoice",
        "The export button crashes the app every time I click it",
        "Could you add a dark mode to the dashboard?",
        "I can't log in, the password reset email never arrives",
    ]
    return [
        (f"{prefix}-{i}", RawTicket(id=f"{prefix}-{i}", body=bodies[i % 4]).to_bytes())
        for i in range(n)
    ]


def test_parse_decision() -> None:
    cats = ["billing", "bug_report", "how_to"]
    assert parse_decision("1", ["bug_report", "how_to"], cats).label == "bug_report"  # type: ignore[union-attr]
    assert parse_decision("c billing", ["bug_report"], cats).label == "billing"  # type: ignore[union-attr]
    assert parse_decision("c 3", ["bug_report"], cats).label == "how_to"  # type: ignore[union-attr]
    assert parse_decision("s", [], cats).action == "skip"  # type: ignore[union-attr]
    assert isinstance(parse_decision("c nonsense", [], cats), str)
    assert isinstance(parse_decision("7", ["a"], cats), str)


def test_review_in_the_terminal_then_a_broken_version_is_refused(
    settings: Settings,
    model_store_factory: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = model_store_factory(promote=True)
    first_version = (store / "current").resolve().name
    cfg = settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"store": store, "reload_interval_s": 0.5}),
            # Everything goes to review at first, so the reviewers have work.
            "routing": settings.routing.model_copy(update={"threshold": 1.0}),
        }
    )
    service = ClassifierService(cfg, Predictor(load_model(store / "current")))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        # 1. Tickets go to review.
        produce_values(cfg.kafka, cfg.topics.raw, tickets("loop", 6))
        wait_until(lambda: service.totals["review"] >= 6, 120)

        # 2. A scripted reviewer answers them: accept, pick another, skip (comes back), accept...
        decisions = tmp_path / "decisions.txt"
        decisions.write_text("1\nc billing\ns\n1\n1\n1\n1\n", encoding="utf-8")
        code = run_cli(
            [
                "review",
                "--reviewer",
                "ana",
                "--decisions",
                str(decisions),
                "--idle-timeout",
                "3",
                "--categories",
                "billing,bug_report,feature_request,account_access",
            ],
            cfg,
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert "reviewed 6, skipped 1" in out
        labeled = [
            LabeledTicket.model_validate_json(v or b"")
            for _, v, _ in read_topic(cfg.kafka, cfg.topics.labeled, idle=1.0)
        ]
        assert len(labeled) == 6
        assert {t.ticket.id for t in labeled} == {f"loop-{i}" for i in range(6)}
        assert all(t.label_source == "reviewer" and t.labeled_by == "ana" for t in labeled)
        assert sum(t.label == "billing" for t in labeled) >= 1
        # The skipped one was re-queued with attempts=1, and the reviewers' offsets are at the end.
        requeued = [
            ReviewRequest.model_validate_json(v or b"")
            for _, v, _ in read_topic(cfg.kafka, cfg.topics.review, idle=1.0)
        ]
        # A skipped ticket keeps the reason it came with (v3); attempts counts the skips.
        first_reason = {r.ticket.id: r.reason for r in requeued if r.attempts == 0}
        assert any(r.attempts == 1 and r.reason == first_reason[r.ticket.id] for r in requeued)
        # The label says why its ticket was in review (online evaluation tells audits apart).
        assert all(t.review_reason == first_reason[t.ticket.id] for t in labeled)
        ends = end_offsets(cfg.kafka, cfg.topics.review, 3)
        committed = committed_offsets(cfg.kafka, "ticketsort-reviewers", cfg.topics.review, 3)
        assert {p: committed[p] for p in ends if ends[p]} == {p: e for p, e in ends.items() if e}

        # 3. Training on those labels, promotion and the hot reload to the new version:
        # tests/test_learning_loop_web.py (the same labeled events, from the browser).

        # 4. A broken version is refused; the old one keeps serving.
        broken = store / "v-broken"
        shutil.copytree(store / "current", broken)
        (broken / "head.safetensors").write_bytes(b"\x00corrupt")
        import json

        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["version"] = "v-broken"
        (broken / "manifest.json").write_text(json.dumps(manifest))
        promote(store, broken)
        registry = service.metrics.registry
        failure = {"result": "failure"}

        def refusals() -> float:
            return registry.get_sample_value("ticketsort_model_reloads_total", failure) or 0.0

        wait_until(lambda: refusals() >= 1, 60)
        produce_values(cfg.kafka, cfg.topics.raw, tickets("late", 2))
        wait_until(lambda: service.totals["consumed"] >= 8, 120)
        assert service.predictor.version == first_version
    finally:
        service.stop_event.set()
        thread.join(60)
    assert not thread.is_alive()
