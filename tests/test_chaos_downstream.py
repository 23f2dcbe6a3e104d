"""Chaos: an output topic refuses writes, then is repaired.

``message-too-large``: the classified topic's max.message.bytes is cut to 200 bytes, so the
broker rejects every classified ticket; ``missing-topic``: the classified topic does not
exist. While it lasts, the failures must show in the logs (``delivery_failed``) and in the
metrics (``ticketsort_delivery_failures_total``), and the committed offsets must never pass
a record whose output was not delivered. Once the topic is repaired (config raised back,
or topic created) everything is delivered and committed. Dead letters keep flowing meanwhile
(their topic is fine), which is what makes the commit check meaningful: later records
succeed while earlier ones wait.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from consumer.settings import Settings
from tests.chaos.figures import record_figures, scaled
from tests.chaos.producing import produce_landed
from tests.chaos.reading import OutputReader, assert_commit_not_past_output, committed, tally
from tests.chaos.service import EventLog, ServiceThread
from tests.chaos.tickets import good_ticket

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

BROKEN_FOR_S = 2.0


def _set_max_message_bytes(admin: AdminClient, topic: str, value: int) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


@pytest.mark.parametrize(
    ("trouble", "processing"),
    [
        ("message-too-large", "at-least-once"),
        ("missing-topic", "at-least-once"),
        ("message-too-large", "exactly-once"),
    ],
)
def test_output_topic_refuses_writes_then_recovers(
    trouble: str,
    processing: str,
    settings: Settings,
    chaos_predictor: Any,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    exactly_once = processing == "exactly-once"
    admin = AdminClient(settings.kafka.client_config())
    topics = settings.topics
    if trouble == "missing-topic":
        topics = topics.model_copy(update={"classified": f"{topics.classified}-missing"})
    else:
        _set_max_message_bytes(admin, topics.classified, 200)
    cfg = settings.model_copy(
        update={
            "topics": topics,
            # all classified: no confidence threshold, no novelty check
            "routing": settings.routing.model_copy(update={"threshold": 0.0, "novelty": False}),
            "batching": settings.batching.model_copy(update={"max_batch": 8}),
            "consumer": settings.consumer.model_copy(update={"processing": processing}),
            # Unknown topics fail their messages after 1 s instead of 30 s.
            "kafka": settings.kafka.model_copy(
                update={"extra": {"topic.metadata.propagation.max.ms": 1000}}
            ),
        }
    )
    prefix = settings.kafka.group_id
    items: list[tuple[str, bytes | None]] = []
    for i in range(scaled(60)):
        if i % 3 == 0:
            items.append((f"{prefix}-bad-{i}", b"{not json"))  # -> dead-letter, delivered
        else:
            items.append(good_ticket(prefix, i))  # -> classified, refused
    landed = produce_landed(cfg.kafka, topics.raw, items)
    isolation = "read_committed" if exactly_once else "read_uncommitted"

    with EventLog() as events:
        svc = ServiceThread(cfg, chaos_predictor)
        try:
            deadline = time.monotonic() + 60
            while not events.named("delivery_failed") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert events.named("delivery_failed"), "no delivery_failed logged"
            failures = svc.metric("ticketsort_delivery_failures_total", topic=topics.classified)
            assert failures > 0, "delivery failures not in the metrics"
            # While the topic refuses writes, the commits must not pass undelivered output.
            checks = 0
            prefix_committed = 0
            reader = OutputReader(cfg, isolation)
            end = time.monotonic() + BROKEN_FOR_S
            while time.monotonic() < end:
                delivered = set(reader.drain().keys())
                offsets = committed(cfg.kafka, cfg.kafka.group_id, topics.raw, 3)
                prefix_committed = assert_commit_not_past_output(landed, delivered, offsets)
                checks += 1
                time.sleep(0.5)
            assert svc.alive(), "the service died on a refusing output topic"
            # Repair the topic.
            if trouble == "missing-topic":
                spec = NewTopic(topics.classified, num_partitions=3, replication_factor=1)
                for future in admin.create_topics([spec]).values():
                    future.result(30)
            else:
                _set_max_message_bytes(admin, topics.classified, topics.max_message_bytes)
            reader.refresh_assignment()
            out = reader.wait_for({x.key for x in landed}, timeout=120)
            reader.close()
            ends: dict[int, int] = {}
            for x in landed:
                ends[x.partition] = max(ends.get(x.partition, 0), x.offset + 1)
            deadline = time.monotonic() + 60
            offsets = committed(cfg.kafka, cfg.kafka.group_id, topics.raw, 3)
            while {p: offsets[p] for p in ends} != ends and time.monotonic() < deadline:
                time.sleep(0.5)
                offsets = committed(cfg.kafka, cfg.kafka.group_id, topics.raw, 3)
            final_failures = svc.metric(
                "ticketsort_delivery_failures_total", topic=topics.classified
            )
        finally:
            code = svc.stop()
    assert code == 0
    fig = record_figures(
        tally(
            f"downstream {trouble} ({processing})",
            landed,
            out,
            started,
            delivery_failures=int(final_failures),
            failed_logs=len(events.named("delivery_failed")),
            aborts=len(events.named("transaction_aborted")),
            commit_checks=checks,
            committed_while_broken=prefix_committed,
        )
    )
    assert not out.bad_values, out.bad_values[:5]
    assert fig.lost == 0
    if exactly_once:
        assert fig.duplicated == 0
    assert {p: offsets[p] for p in ends} == ends, "everything committed after the repair"
