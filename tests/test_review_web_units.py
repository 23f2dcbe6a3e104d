"""Review page pieces that need no broker or browser."""

from __future__ import annotations

import base64

from prometheus_client import generate_latest
from pydantic import SecretStr
from starlette.requests import Request

from consumer.metrics import Metrics
from consumer.settings import Settings
from producer_tools.web.app import authorized, is_loopback
from producer_tools.web.model_info import parse_counts


def test_live_counts_read_the_consumers_own_metrics() -> None:
    metrics = Metrics()
    metrics.consumed.labels(topic="tickets.raw").inc(10)
    metrics.routed.labels(route="classified", model_version="v1").inc(6)
    metrics.routed.labels(route="review", model_version="v1").inc(2)
    metrics.routed.labels(route="review", model_version="v2").inc(1)
    metrics.routed.labels(route="dead_letter", model_version="v1").inc(1)
    metrics.dead_lettered.labels(error_type="invalid_json").inc(1)
    counts = parse_counts(generate_latest(metrics.registry).decode())
    assert counts["consumed"] == 10
    assert counts["classified"] == 6
    assert counts["review"] == 3
    assert counts["dead_letter"] == 1  # counted once, not also from the routed counter


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


def test_credentials() -> None:
    token = "t0ken-with-enough-length"
    assert authorized(_request({"Authorization": f"Bearer {token}"}), token)
    assert not authorized(_request({"Authorization": "Bearer wrong"}), token)
    basic = base64.b64encode(f"lead:{token}".encode()).decode()
    assert authorized(_request({"Authorization": f"Basic {basic}"}), token)
    assert not authorized(_request({"Authorization": "Basic !!notbase64"}), token)
    assert not authorized(_request({"Cookie": f"ts_auth={token}"}), token)  # not the raw token
    assert not authorized(_request({}), token)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("review.internal")


def test_token_is_a_secret_setting() -> None:
    settings = Settings(_env_file=None, review={"token": "abc-secret-123"})  # type: ignore[call-arg]
    assert isinstance(settings.review.token, SecretStr)
    assert "abc-secret-123" not in repr(settings) and "abc-secret-123" not in str(settings.review)


def test_the_review_tools_find_the_served_model_without_torch() -> None:
    import subprocess
    import sys

    from consumer.model_store import CURRENT
    from producer_tools.web import model_info

    assert model_info.CURRENT == CURRENT
    code = (
        "import sys, producer_tools.web.app, producer_tools.commands.review;"
        " print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
