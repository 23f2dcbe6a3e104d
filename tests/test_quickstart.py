"""The quick start's first run: no model → demo data → trained model → consumer → classified."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from consumer.events import ClassifiedTicket
from consumer.settings import Settings
from producer_tools.__main__ import run_cli
from tests.kafka_helpers import read_topic, service_env, start_service, wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_first_run_trains_a_demo_model_and_serves_it(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = settings.model.store
    assert not (store / "current").exists()
    code = run_cli(["quickstart", "--demo-tickets", "360", "--max-steps", "8"], settings)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "seeded" in out and "360 generated demo tickets" in out
    assert (store / "current" / "manifest.json").exists()
    metrics = json.loads((store / "current" / "metrics.json").read_text())
    # 12 buckets: chance is ~8%; the generated data must train a model far above it.
    assert metrics["test"]["accuracy"] > 0.5, metrics["test"]

    # A second run finds the model and does nothing else.
    assert run_cli(["quickstart"], settings) == 0
    assert "is being served" in capsys.readouterr().out

    # Everything auto-routed (no confidence threshold, no novelty check), so all five arrive
    # on the classified topic.
    env = service_env(
        settings, None, TICKETSORT_ROUTING__THRESHOLD="0.0", TICKETSORT_ROUTING__NOVELTY="false"
    )
    log = tmp_path / "consumer.log"
    proc = start_service(env, log)
    try:
        assert wait_for_log(log, "partitions_assigned", 120), log.read_text()[-2000:]
        assert run_cli(["generate", "--count", "5", "--seed", "77"], settings) == 0
        deadline = time.monotonic() + 60
        got: list[ClassifiedTicket] = []
        while len(got) < 5 and time.monotonic() < deadline:
            got = [
                ClassifiedTicket.model_validate_json(v or b"")
                for _, v, _ in read_topic(settings.kafka, settings.topics.classified, idle=1.0)
            ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(got) == 5
    version = (store / "current").resolve().name
    assert {t.model_version for t in got} == {version}
    assert all(t.ticket.id.startswith("syn-77-") for t in got)
