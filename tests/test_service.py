"""The classification service end to end against the real broker, with a real model folder."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from consumer.events import ClassifiedTicket, DeadLetter, RawTicket, ReviewRequest
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import Settings
from producer_tools.synthetic import generate_tickets
from tests.chaos.service import ServiceProcess
from tests.chaos.zygote import Zygote
from tests.kafka_helpers import (
    committed_offsets,
    end_offsets,
    produce_values,
    read_topic,
    service_env,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MALFORMED: list[tuple[str, bytes]] = [
    ("bad-json", b"{this is not json"),
    ("bad-utf8", b"\xff\xfe\xfa not utf-8"),
    ("bad-schema", json.dumps({"id": "x1", "body": 17}).encode()),
    ("bad-missing", json.dumps({"subject": "no id, no body"}).encode()),
    ("bad-empty", b""),
    ("bad-huge", json.dumps({"id": "huge", "body": "a" * 200_000}).encode()),
    ("bad-blank-html", json.dumps({"id": "blank", "body": "<div>&nbsp;</div>"}).encode()),
]


def good_tickets(n: int, seed: int = 7) -> list[tuple[str, bytes, str]]:
    out = []
    for t in generate_tickets(n, seed=seed):
        raw = RawTicket(id=t.ticket_id, subject=t.subject, body=t.body, channel="email")
        out.append((raw.id, raw.to_bytes(), t.category))
    return out


def configured(
    settings: Settings, model_dir: Path, threshold: float | None, **batching: int
) -> Settings:
    return settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"path": model_dir}),
            "routing": settings.routing.model_copy(update={"threshold": threshold}),
            "batching": settings.batching.model_copy(update=batching),
        }
    )


def outputs_by_topic(settings: Settings, expected: int) -> dict[str, list[bytes]]:
    topics = settings.topics
    got: dict[str, list[bytes]] = {}
    deadline = time.monotonic() + 240  # generous: shared CI machines can be slow
    while time.monotonic() < deadline:
        got = {
            name: [v or b"" for _, v, _ in read_topic(settings.kafka, name, idle=1.0)]
            for name in (topics.classified, topics.review, topics.dead_letter)
        }
        if sum(len(v) for v in got.values()) >= expected:
            break
        time.sleep(1)
    return got


def ids_of(got: dict[str, list[bytes]], settings: Settings) -> Counter[str]:
    ids: Counter[str] = Counter()
    for value in got[settings.topics.classified]:
        ids[ClassifiedTicket.model_validate_json(value).ticket.id] += 1
    for value in got[settings.topics.review]:
        ids[ReviewRequest.model_validate_json(value).ticket.id] += 1
    return ids


def run_in_thread(service: ClassifierService) -> threading.Thread:
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return thread


def test_every_input_ends_in_exactly_one_output(
    settings: Settings, trained_model_dir: Path
) -> None:
    good = good_tickets(120)
    model = load_model(trained_model_dir)
    confidences = [
        p.confidence for p in Predictor(model).predict([b.decode() for _, b, _ in good[:40]])
    ]
    threshold = statistics.median(confidences)  # so that both routes are exercised
    cfg = configured(settings, trained_model_dir, threshold, max_batch=16)
    cfg = cfg.model_copy(
        update={"validation": cfg.validation.model_copy(update={"max_body_bytes": 100_000})}
    )
    values = [(k, v) for k, v, _ in good] + MALFORMED
    produce_values(cfg.kafka, cfg.topics.raw, values)

    service = ClassifierService(cfg, Predictor(load_model(trained_model_dir)))
    thread = run_in_thread(service)
    wait_until(lambda: service.health is not None)
    assert service.health is not None
    port = service.health.port
    wait_until(lambda: service.totals["consumed"] >= len(values), 120)
    ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").read())
    metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    service.stop_event.set()
    thread.join(60)
    assert not thread.is_alive()

    assert ready["ready"] is True
    assert "ticketsort_tickets_routed_total" in metrics_text
    got = outputs_by_topic(cfg, len(values))
    ids = ids_of(got, cfg)
    assert all(count == 1 for count in ids.values()), ids.most_common(3)
    assert set(ids) == {k for k, _, _ in good}
    assert got[cfg.topics.classified] and got[cfg.topics.review], "both routes used"
    dead = [DeadLetter.model_validate_json(v) for v in got[cfg.topics.dead_letter]]
    dead_keys = Counter(__import__("base64").b64decode(d.original_key or "").decode() for d in dead)
    assert dead_keys == Counter(k for k, _ in MALFORMED)
    reasons = {
        __import__("base64").b64decode(d.original_key or "").decode(): d.error_type for d in dead
    }
    assert reasons["bad-json"] == "invalid_json"
    assert reasons["bad-utf8"] == "invalid_utf8"
    assert reasons["bad-schema"] == "schema_violation"
    assert reasons["bad-huge"] == "too_large"
    assert reasons["bad-blank-html"] == "empty_after_cleaning"
    # Committed offsets are at the end of the input.
    assert committed_offsets(cfg.kafka, cfg.kafka.group_id, cfg.topics.raw, 3) == end_offsets(
        cfg.kafka, cfg.topics.raw, 3
    )
    # Outputs carry the model version.
    first = ClassifiedTicket.model_validate_json(got[cfg.topics.classified][0])
    assert first.model_version == model.version


def test_sigterm_mid_stream_then_restart_loses_nothing(
    settings: Settings, trained_model_dir: Path, tmp_path: Path, chaos_spawner: Zygote | None
) -> None:
    """``python -m consumer``, forked from the fork server that has the model's libraries
    imported already (``CHAOS_SPAWN=exec`` execs it instead), stopped by SIGTERM mid-stream."""
    good = good_tickets(600, seed=11)
    produce_values(settings.kafka, settings.topics.raw, [(k, v) for k, v, _ in good])
    env = service_env(
        settings,
        trained_model_dir,
        TICKETSORT_BATCHING__MAX_BATCH="8",
        TICKETSORT_ROUTING__THRESHOLD="0.5",
    )
    log = tmp_path / "service.log"
    proc = ServiceProcess(env, log, chaos_spawner)
    try:
        assert proc.wait_event("batch", 120), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    first_run = sum(len(v) for v in outputs_by_topic(settings, 1).values())
    assert 0 < first_run < len(good), "the stop must land mid-stream"
    proc = ServiceProcess(env, log, chaos_spawner)
    try:
        got = outputs_by_topic(settings, len(good))
        ids = ids_of(got, settings)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert set(ids) == {k for k, _, _ in good}, "nothing lost"
    duplicates = sum(c - 1 for c in ids.values())
    # A clean stop delivers and commits what is in flight before it exits: nothing repeats.
    assert duplicates == 0, f"{duplicates} outputs repeated after a clean SIGTERM"


def test_second_consumer_takes_over_partitions_without_loss(
    settings: Settings, trained_model_dir: Path
) -> None:
    good = good_tickets(400, seed=21)
    cfg = configured(settings, trained_model_dir, 0.5, max_batch=8)
    produce_values(cfg.kafka, cfg.topics.raw, [(k, v) for k, v, _ in good[:200]])
    first = ClassifierService(cfg, Predictor(load_model(trained_model_dir)))
    t1 = run_in_thread(first)
    wait_until(lambda: first.totals["consumed"] > 0, 120)
    second = ClassifierService(cfg, Predictor(load_model(trained_model_dir)))
    t2 = run_in_thread(second)
    wait_until(lambda: len(second.assigned) > 0, 120, "the second member to get partitions")
    produce_values(cfg.kafka, cfg.topics.raw, [(k, v) for k, v, _ in good[200:]])
    got = outputs_by_topic(cfg, len(good))
    for svc in (first, second):
        svc.stop_event.set()
    t1.join(60)
    t2.join(60)
    ids = ids_of(got, cfg)
    assert set(ids) == {k for k, _, _ in good}
    assert second.totals["consumed"] > 0 and first.totals["consumed"] > 0
    assert sum(c - 1 for c in ids.values()) <= 2 * 8
    assert committed_offsets(cfg.kafka, cfg.kafka.group_id, cfg.topics.raw, 3) == end_offsets(
        cfg.kafka, cfg.topics.raw, 3
    )


def test_start_without_a_model_exits_non_zero_having_consumed_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    produce_values(
        settings.kafka, settings.topics.raw, [("t-1", RawTicket(id="t-1", body="hi").to_bytes())]
    )
    env = service_env(settings, tmp_path / "no-such-model")
    result = subprocess.run(
        [__import__("sys").executable, "-m", "consumer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2
    assert "make train" in result.stderr
    offsets = committed_offsets(settings.kafka, settings.kafka.group_id, settings.topics.raw, 3)
    assert all(o < 0 for o in offsets.values()), offsets
    assert read_topic(settings.kafka, settings.topics.classified, idle=1.0) == []
