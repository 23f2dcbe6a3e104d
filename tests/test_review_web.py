"""The reviewers' web page in a real Chromium, against the real broker.

Tickets are put on the review topic, reviewers answer with the keyboard only, and the
archive, the committed offsets and the dead-letter topic are read back from the broker.
Screenshots of the review and model pages go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from consumer.events import LabeledTicket
from consumer.settings import Settings
from producer_tools.web.app import SECURITY_HEADERS, BindingError, check_binding
from tests.browser import ReviewPage, chromium, screenshot, serve_review_page, wait_for
from tests.kafka_helpers import committed_offsets, end_offsets, produce_values, read_topic
from tests.review_helpers import CATEGORIES, review_values

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def labeled(settings: Settings, expected: int | None = None) -> list[LabeledTicket]:
    return [
        LabeledTicket.model_validate_json(v or b"")
        for _, v, _ in read_topic(
            settings.kafka, settings.topics.labeled, expected=expected, idle=2.0
        )
    ]


def review_committed(settings: Settings) -> bool:
    ends = end_offsets(settings.kafka, settings.topics.review, 3)
    got = committed_offsets(settings.kafka, settings.review.group, settings.topics.review, 3)
    return all(got[p] == e for p, e in ends.items() if e)


@pytest.fixture
def web_settings(settings: Settings, unique: str) -> Settings:
    review = settings.review.model_copy(update={"group": f"reviewers-{unique}"})
    return settings.model_copy(update={"review": review})


def test_fifty_tickets_with_the_keyboard_alone(web_settings: Settings) -> None:
    cfg = web_settings
    produce_values(cfg.kafka, cfg.topics.review, review_values(50))
    shown: list[str] = []
    with serve_review_page(cfg, categories=CATEGORIES) as (base, _app), chromium() as driver:
        page = ReviewPage(driver, base)
        page.open(reviewer="ana")
        previous = None
        for i in range(50):
            ticket = page.ticket_id(other_than=previous)
            shown.append(ticket)
            if i == 0:
                page.type("o")  # the original, on demand
                wait_for(lambda: page.element("original").is_displayed(), what="the original")
                screenshot(driver, "review-page.png")
                page.type("o")
            if i == 10:
                # Reload mid-ticket: the same ticket comes back, nothing is lost.
                driver.refresh()
                assert page.ticket_id() == ticket
            if i % 5 == 4:
                page.type("c")  # pick from every category: by number, then Enter
                wait_for(lambda: page.element("filter").is_displayed(), what="the filter")
                page.type("3\n")
            else:
                page.type("1")
            previous = ticket
        wait_for(lambda: page.empty(), what="the empty queue")
        assert not page.element("ticket").is_displayed()  # no answered ticket left on screen
        assert page.answered() == 50
    got = labeled(cfg, expected=50)
    counts = Counter(t.ticket.id for t in got)
    assert counts == Counter(f"rv-{i}" for i in range(50))  # each exactly once
    assert len(set(shown)) == 50
    assert all(t.label_source == "reviewer" and t.labeled_by == "ana" for t in got)
    picked = {t.ticket.id: t.label for t in got}
    assert sum(label == CATEGORIES[2] for label in picked.values()) >= 10
    assert wait_for(lambda: review_committed(cfg), 10, "the review offsets")


def test_two_browser_sessions_never_see_the_same_ticket(web_settings: Settings) -> None:
    cfg = web_settings
    produce_values(cfg.kafka, cfg.topics.review, review_values(10))
    with (
        serve_review_page(cfg, categories=CATEGORIES) as (base, _app),
        chromium() as one,
        chromium() as two,
    ):
        ana, bo = ReviewPage(one, base), ReviewPage(two, base)
        ana.open(reviewer="ana")
        bo.open(reviewer="bo")
        seen: dict[str, list[str]] = {"ana": [], "bo": []}
        last = {"ana": "", "bo": ""}
        for _round in range(5):
            for name, page in (("ana", ana), ("bo", bo)):
                ticket = page.ticket_id(other_than=last[name])
                seen[name].append(ticket)
                last[name] = ticket
            # Both hold a ticket at once: they must differ.
            assert seen["ana"][-1] != seen["bo"][-1]
            ana.type("1")
            bo.type("2")
        wait_for(lambda: ana.empty() and bo.empty(), what="both queues empty")
    assert not set(seen["ana"]) & set(seen["bo"])
    got = labeled(cfg, expected=10)
    assert sorted(t.ticket.id for t in got) == sorted(f"rv-{i}" for i in range(10))
    assert {t.ticket.id: t.labeled_by for t in got} == {
        **dict.fromkeys(seen["ana"], "ana"),
        **dict.fromkeys(seen["bo"], "bo"),
    }
    assert wait_for(lambda: review_committed(cfg), 10, "the review offsets")


def test_closing_the_tab_right_after_answering_loses_nothing(web_settings: Settings) -> None:
    cfg = web_settings
    produce_values(cfg.kafka, cfg.topics.review, review_values(3))
    with serve_review_page(cfg, categories=CATEGORIES) as (base, _app):
        with chromium() as driver:
            page = ReviewPage(driver, base)
            page.open(reviewer="ana")
            first = page.ticket_id()
            page.type("1")
            driver.get("about:blank")  # the tab goes away at once
        with chromium() as driver:  # a new tab: it gets the other tickets, not the answered one
            page = ReviewPage(driver, base)
            page.open(reviewer="ana")
            seen = []
            previous = None
            for _ in range(2):
                ticket = page.ticket_id(other_than=previous)
                seen.append(ticket)
                page.type("1")
                previous = ticket
            wait_for(lambda: page.empty(), what="the empty queue")
    assert first not in seen
    got = labeled(cfg, expected=3)
    assert Counter(t.ticket.id for t in got) == Counter(f"rv-{i}" for i in range(3))
    assert wait_for(lambda: review_committed(cfg), 10, "the review offsets")


def test_without_the_token_the_page_refuses(
    web_settings: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cret-token-for-the-test"
    review = web_settings.review.model_copy(update={"token": SecretStr(secret)})
    cfg = web_settings.model_copy(update={"review": review})
    produce_values(cfg.kafka, cfg.topics.review, review_values(1))
    caplog.set_level(logging.DEBUG)
    with serve_review_page(cfg, categories=CATEGORIES) as (base, _app):
        # Without a credential: the API says 401, the pages send to the login form.
        assert httpx.get(f"{base}/api/next").status_code == 401
        page = httpx.get(f"{base}/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert (
            httpx.get(f"{base}/model", headers={"authorization": "Bearer nope"}).status_code == 401
        )
        wrong = httpx.post(f"{base}/login", data={"token": "nope"})
        assert wrong.status_code == 401
        # A bearer token, or basic auth with the token as password, gets in.
        assert httpx.get(f"{base}/model", headers={"authorization": f"Bearer {secret}"}).is_success
        basic = base64.b64encode(f"ana:{secret}".encode()).decode()
        ok = httpx.get(f"{base}/model", headers={"authorization": f"Basic {basic}"})
        assert ok.status_code == 200
        for name, value in SECURITY_HEADERS.items():
            assert ok.headers[name] == value
            assert page.headers[name] == value
        with chromium() as driver:
            review_page = ReviewPage(driver, base)
            driver.get(base + "/")
            wait_for(lambda: "/login" in driver.current_url, what="the login page")
            assert review_page.element("token").get_attribute("type") == "password"
            review_page.type(secret + "\n")
            review_page.open(reviewer="ana")
            assert review_page.ticket_id() == "rv-0"
            # The auth cookie is not the token itself.
            assert all(secret not in c["value"] for c in driver.get_cookies())
    logged = caplog.text + "".join(capfd.readouterr())
    assert secret not in logged


def test_binding_beyond_localhost_needs_a_token(settings: Settings) -> None:
    check_binding(settings, "127.0.0.1")
    check_binding(settings, "::1")
    with pytest.raises(BindingError, match="TICKETSORT_REVIEW__TOKEN"):
        check_binding(settings, "0.0.0.0")
    review = settings.review.model_copy(update={"token": SecretStr("x" * 20)})
    check_binding(settings.model_copy(update={"review": review}), "0.0.0.0")


def test_lease_expires_to_the_other_browser(web_settings: Settings) -> None:
    review = web_settings.review.model_copy(update={"lease_s": 6.0})
    cfg = web_settings.model_copy(update={"review": review})
    produce_values(cfg.kafka, cfg.topics.review, review_values(1))
    with (
        serve_review_page(cfg, categories=CATEGORIES) as (base, _app),
        chromium() as one,
        chromium() as two,
    ):
        ana, bo = ReviewPage(one, base), ReviewPage(two, base)
        ana.open(reviewer="ana")
        held = ana.ticket_id()
        bo.open(reviewer="bo")
        wait_for(lambda: bo.empty(), what="bo's empty page")  # ana holds the only ticket
        assert bo.ticket_id(timeout=20) == held  # ana walked away: it came back for bo
        bo.type("1")
        wait_for(lambda: bo.empty(), what="bo's empty queue")
        ana.type("2")  # ana comes back too late
        wait_for(lambda: "not recorded" in ana.element("status").text, what="ana's refusal")
    got = labeled(cfg, expected=1)
    assert [(t.ticket.id, t.labeled_by) for t in got] == [(held, "bo")]


def test_model_page(web_settings: Settings, model_store_factory: object, tmp_path: Path) -> None:
    from collections.abc import Callable

    assert callable(model_store_factory)
    make_store: Callable[..., Path] = model_store_factory
    store = make_store(promote=True)
    cfg = web_settings.model_copy(
        update={"model": web_settings.model.model_copy(update={"store": store})}
    )
    version = (store / "current").resolve().name
    with serve_review_page(cfg) as (base, _app), chromium(1280, 1400) as driver:
        driver.get(base + "/model")
        page = ReviewPage(driver, base)
        assert page.element("model-version").text == version
        assert "did not answer" in driver.page_source  # no consumer running in this test
        image = httpx.get(f"{base}/model/confusion.png")
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
        rows = driver.find_elements("css selector", ".perclass tbody tr")
        metrics = json.loads((store / "current" / "metrics.json").read_text(encoding="utf-8"))
        assert len(rows) == len(metrics["test"]["per_class"]) > 0
        screenshot(driver, "model-page-no-consumer.png")


def test_review_web_command_serves_and_refuses_an_open_binding(
    web_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from producer_tools.__main__ import run_cli
    from tests.browser import free_port

    assert run_cli(["review-web", "--host", "0.0.0.0"], web_settings) == 2
    assert "TICKETSORT_REVIEW__TOKEN" in capsys.readouterr().err
    port = free_port()
    topics = web_settings.topics
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": web_settings.kafka.bootstrap_servers,
        "TICKETSORT_TOPICS__REVIEW": topics.review,
        "TICKETSORT_TOPICS__LABELED": topics.labeled,
        "TICKETSORT_TOPICS__DEAD_LETTER": topics.dead_letter,
        "TICKETSORT_REVIEW__GROUP": web_settings.review.group,
    }
    command = [sys.executable, "-m", "producer_tools", "review-web", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1), 90, "the page"
        )
        assert health.json() == {"ok": True}
        assert health.headers["X-Frame-Options"] == "DENY"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert f"http://localhost:{port}/" in out.decode()
