"""A real Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium) and the
review page served by uvicorn in a thread, for the browser tests.

No browser is downloaded: the system's chromium and chromedriver are used, or the tests
skip (fail in CI, where ``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from consumer.settings import Settings
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def require_browser() -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    message = (
        "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI") or os.environ.get("KAFKA_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_review_page(
    settings: Settings, categories: list[str] | None = None
) -> Iterator[tuple[str, Any]]:
    """``(base_url, app)`` while uvicorn serves the review page on a free local port."""
    import httpx
    import uvicorn

    from producer_tools.web.app import create_app

    port = free_port()
    cfg = settings.model_copy(update={"review": settings.review.model_copy(update={"port": port})})
    app = create_app(cfg, categories=categories)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise RuntimeError("the review page did not start")
    try:
        yield base, app
    finally:
        server.should_exit = True
        thread.join(60)


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """``wait_until`` for a page: an element gone stale while it re-renders is a not yet."""
    return wait_until(predicate, timeout, what, interval=0.05, tolerate=(Exception,))


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


class ReviewPage:
    """The review page as a keyboard user sees it."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver = driver
        self.base = base

    def open(self, reviewer: str | None = None) -> None:
        from selenium.webdriver.common.by import By

        self.driver.get(self.base + "/")
        if reviewer is not None:
            field = wait_for(
                lambda: self.driver.find_element(By.ID, "reviewer-name"), what="the name form"
            )
            if field.is_displayed():
                self.type(reviewer + "\n")

    def type(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(keys).perform()

    def element(self, element_id: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def ticket_id(self, timeout: float = 30.0, other_than: str | None = None) -> str:
        """The id of the ticket on screen (waits for one, different from ``other_than``)."""

        def shown() -> str | None:
            if not self.element("ticket").is_displayed():
                return None
            text = str(self.element("meta-id").text)
            return text if text and text != other_than else None

        return str(wait_for(shown, timeout, "a ticket on the page"))

    def empty(self) -> bool:
        return bool(self.element("empty").is_displayed())

    def answered(self) -> int:
        return int(self.element("answered").text or 0)
