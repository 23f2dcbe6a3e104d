"""The learning loop driven from the web page: tickets → consumer → review topic → a reviewer
answers in a real Chromium with the keyboard → the archive → training → promotion → hot reload.

``tests/test_learning_loop.py`` drives the first half with the terminal reviewer; the
training half, which reads the same labeled events whichever tool wrote them, runs here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from consumer.events import ClassifiedTicket, LabeledTicket, ReviewRequest
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import Settings
from producer_tools.commands.quickstart import seed_archive
from tests.browser import ReviewPage, chromium, screenshot, serve_review_page, wait_for
from tests.kafka_helpers import committed_offsets, end_offsets, produce_values, read_topic
from tests.test_learning_loop import tickets
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]


def test_review_in_the_browser_then_train_promote_hot_reload(
    settings: Settings, model_store_factory: Callable[..., Path], unique: str
) -> None:
    store = model_store_factory(promote=True)
    first_version = (store / "current").resolve().name
    cfg = settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"store": store, "reload_interval_s": 0.5}),
            # Everything goes to review at first, so the reviewers have work.
            "routing": settings.routing.model_copy(update={"threshold": 1.0}),
            "review": settings.review.model_copy(update={"group": f"reviewers-{unique}"}),
        }
    )
    service = ClassifierService(cfg, Predictor(load_model(store / "current")))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        # 1. Tickets go through the consumer to review.
        produce_values(cfg.kafka, cfg.topics.raw, tickets("loop", 6))
        wait_until(lambda: service.totals["review"] >= 6, 120)
        wait_until(lambda: getattr(service, "health", None) is not None, 120)
        metrics_url = f"http://127.0.0.1:{service.health.port}/metrics"
        web = cfg.model_copy(
            update={"review": cfg.review.model_copy(update={"metrics_url": metrics_url})}
        )

        # 2. A reviewer answers them in the browser, keyboard only: skip one (it comes back),
        # pick a category by name from the list, accept suggestions.
        with serve_review_page(web) as (base, _app), chromium() as driver:
            page = ReviewPage(driver, base)
            page.open(reviewer="ana")
            previous = None
            actions = 0
            while page.answered() < 7 and actions < 12:
                ticket = page.ticket_id(other_than=previous)
                if actions == 0:
                    page.type("s")
                elif actions == 1:
                    page.type("c")
                    wait_for(lambda: page.element("filter").is_displayed(), what="the filter")
                    page.type("billing\n")
                else:
                    page.type("1")
                previous = ticket
                actions += 1
                wait_for(lambda a=actions: page.answered() >= a, what="the answer recorded")
            wait_for(lambda: page.empty(), what="the empty queue")
            # The model page with the consumer's live counts.
            driver.set_window_size(1280, 1500)
            driver.get(base + "/model")
            assert page.element("model-version").text == first_version
            assert int(page.element("live-review").text) >= 6
            screenshot(driver, "model-page.png")
            assert httpx.get(f"{base}/model/confusion.png").status_code == 200

        labeled = [
            LabeledTicket.model_validate_json(v or b"")
            for _, v, _ in read_topic(cfg.kafka, cfg.topics.labeled, expected=6, idle=1.0)
        ]
        assert sorted(t.ticket.id for t in labeled) == sorted(f"loop-{i}" for i in range(6))
        assert all(t.label_source == "reviewer" and t.labeled_by == "ana" for t in labeled)
        assert sum(t.label == "billing" for t in labeled) >= 1
        requeued = [
            ReviewRequest.model_validate_json(v or b"")
            for _, v, _ in read_topic(cfg.kafka, cfg.topics.review, idle=1.0)
        ]
        # A skipped ticket keeps the reason it came with (v3); attempts counts the skips.
        first_reason = {r.ticket.id: r.reason for r in requeued if r.attempts == 0}
        assert sum(r.attempts == 1 and r.reason == first_reason[r.ticket.id] for r in requeued) == 1
        ends = end_offsets(cfg.kafka, cfg.topics.review, 3)
        committed = committed_offsets(cfg.kafka, cfg.review.group, cfg.topics.review, 3)
        assert {p: committed[p] for p in ends if ends[p]} == {p: e for p, e in ends.items() if e}

        # 3. Training on the archive (history + the reviewer's labels) makes a new version.
        seeded = seed_archive(cfg, 240, seed=5)
        from training.args import TrainingArgs
        from training.pipeline import run_training

        args = TrainingArgs(
            max_steps=6, batch_size=16, epochs=1, baseline=False, per_category_min_support=10
        )
        result = run_training(cfg, args, source="archive", force=True, progress=False)
        assert result.promoted and result.version != first_version
        # It read the history and every label the reviewer gave in the browser, and a reviewed
        # ticket that made it into the data carries the reviewer's label (it wins over any
        # older one).
        assert result.metrics["data"]["records_in"] == seeded + len(labeled), result.metrics["data"]
        assert result.split is not None
        split = result.split
        trained = {e.ticket_id: e.label for e in (*split.train, *split.validation, *split.test)}
        by_reviewer = {t.ticket.id: t.label for t in labeled}
        kept = {i: trained[i] for i in by_reviewer if i in trained}
        assert kept, f"no reviewed ticket reached the training data: {result.metrics['data']}"
        assert kept == {i: by_reviewer[i] for i in kept}

        # 4. The running consumer swaps to it; later tickets carry the new version.
        wait_until(lambda: service.predictor.version == result.version, 120)
        produce_values(cfg.kafka, cfg.topics.raw, tickets("after", 4))
        wait_until(lambda: service.totals["consumed"] >= 10, 120)
        versions = {}
        for _, value, _ in read_topic(cfg.kafka, cfg.topics.review, idle=1.0):
            event = ReviewRequest.model_validate_json(value or b"")
            versions[event.ticket.id] = event.model_version
        for _, value, _ in read_topic(cfg.kafka, cfg.topics.classified, idle=0.5):
            event = ClassifiedTicket.model_validate_json(value or b"")
            versions[event.ticket.id] = event.model_version
        assert {versions[f"after-{i}"] for i in range(4)} == {result.version}
        assert versions["loop-0"] == first_version
    finally:
        service.stop_event.set()
        thread.join(60)
    assert not thread.is_alive()
