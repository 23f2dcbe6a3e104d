"""Every loss or stall path of issue #12, against the real broker, each with its cause.

Each test sets up what was seen (outputs refused so the consumer pauses; a partition that
arrives, leaves or comes back meanwhile; one output that can never be delivered; a dead letter
too large for its topic) and then checks the promise: every consumed record ends in exactly
one output topic, and the committed offsets reach the end of the input.
"""

from __future__ import annotations

import base64
import os
import random
import string
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from confluent_kafka import Producer as RawProducer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from consumer.events import ClassifiedTicket, DeadLetter, RawTicket, ReviewRequest
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import Settings
from producer_tools.synthetic import generate_tickets
from tests.kafka_helpers import committed_offsets, end_offsets, read_topic
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REFUSING = 200  # max.message.bytes that no output fits: the topic refuses every write


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka.client_config())


def set_max_message_bytes(settings: Settings, topic: str, value: int) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin = _admin(settings)  # kept alive until the futures are done
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def fresh_raw_topic(settings: Settings, partitions: int) -> Settings:
    name = f"{settings.topics.raw}.{partitions}p"
    admin = _admin(settings)
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)
    return settings.model_copy(update={"topics": settings.topics.model_copy(update={"raw": name})})


def tickets(prefix: str, n: int, seed: int) -> list[tuple[str, bytes]]:
    out = []
    for i, t in enumerate(generate_tickets(n, seed=seed)):
        raw = RawTicket(id=f"{prefix}-{i}", subject=t.subject, body=t.body)
        out.append((raw.id, raw.to_bytes()))
    return out


def produce_to(
    settings: Settings,
    topic: str,
    partition: int,
    items: Iterable[tuple[str | bytes, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = RawProducer({**settings.kafka.client_config(), "message.max.bytes": 4_000_000})
    failures: list[str] = []

    def report(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in items:
        producer.produce(
            topic, value, key=key, partition=partition, headers=headers, on_delivery=report
        )
    assert producer.flush(30) == 0 and not failures, failures


def configured(settings: Settings, model_dir: Path, **consumer: object) -> Settings:
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                # notice a grown topic in seconds, not librdkafka's default 5 minutes
                update={"extra": {"topic.metadata.refresh.interval.ms": 1000}}
            ),
            "model": settings.model.model_copy(update={"path": model_dir}),
            # all classified: no confidence threshold, no novelty check
            "routing": settings.routing.model_copy(update={"threshold": 0.0, "novelty": False}),
            "batching": settings.batching.model_copy(update={"max_batch": 8}),
            # retries at most 2 s apart (30 s by default): the same rounds, less waiting
            "consumer": settings.consumer.model_copy(
                update={"retry_backoff_max_s": 2.0, **consumer}
            ),
        }
    )


class Running:
    """A service on a thread of the test process."""

    def __init__(self, settings: Settings, model_dir: Path) -> None:
        self.service = ClassifierService(settings, Predictor(load_model(model_dir)))
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.service.run()

    def stop(self) -> int | None:
        self.service.stop_event.set()
        self.thread.join(90)
        assert not self.thread.is_alive(), "the service did not stop"
        return self.code


def failures(service: ClassifierService, topic: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "ticketsort_delivery_failures_total", {"topic": topic}
    )
    return value or 0.0


def wait_for_retry_rounds(service: ClassifierService, topic: str, rounds: int = 2) -> None:
    """Let the paused consumer go through ``rounds`` more failed retries (and the keep-alive
    polls between them, where records of a partition assigned during the pause used to be
    dropped) before the outage ends."""
    for _ in range(rounds):
        seen = failures(service, topic)
        wait_until(lambda s=seen: failures(service, topic) > s, 120, "another failed retry")


def output_ids(settings: Settings) -> Counter[str]:
    ids: Counter[str] = Counter()
    topics = settings.topics
    for _, value, _ in read_topic(settings.kafka, topics.classified, idle=2.0):
        ids[ClassifiedTicket.model_validate_json(value or b"").ticket.id] += 1
    for _, value, _ in read_topic(settings.kafka, topics.review, idle=2.0):
        ids[ReviewRequest.model_validate_json(value or b"").ticket.id] += 1
    return ids


def dead_letters(settings: Settings) -> list[tuple[DeadLetter, dict[str, bytes]]]:
    # idle=5: a fresh reader's first fetch can take over a second on a busy machine
    records = read_topic(settings.kafka, settings.topics.dead_letter, idle=5.0)
    return [(DeadLetter.model_validate_json(v or b""), dict(h)) for _, v, h in records]


def assert_all_delivered_and_committed(
    settings: Settings, expected_ids: set[str], partitions: int, timeout: float = 120.0
) -> None:
    topic = settings.topics.raw
    ends = {p: end for p, end in end_offsets(settings.kafka, topic, partitions).items() if end}
    deadline = time.monotonic() + timeout
    ids: Counter[str] = Counter()
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        ids = output_ids(settings)
        offsets = committed_offsets(settings.kafka, settings.kafka.group_id, topic, partitions)
        committed = {p: offsets[p] for p in ends}  # partitions that received records
        if set(ids) >= expected_ids and committed == ends:
            break
        time.sleep(1)
    missing = expected_ids - set(ids)
    assert not missing, (
        f"{len(missing)} tickets never reached an output topic: {sorted(missing)[:5]}"
    )
    assert committed == ends, f"committed {committed}, end of input {ends}"


def test_a_partition_assigned_while_paused_loses_nothing_when_the_topic_grows(
    settings: Settings, trained_model_dir: Path
) -> None:
    cfg = configured(fresh_raw_topic(settings, 1), trained_model_dir)
    first, later = tickets("grow-a", 10, seed=31), tickets("grow-b", 10, seed=32)
    set_max_message_bytes(cfg, cfg.topics.classified, REFUSING)
    produce_to(cfg, cfg.topics.raw, 0, first)
    running = Running(cfg, trained_model_dir)
    try:
        wait_until(lambda: running.service.source.paused, what="the consumer to pause")
        admin = _admin(cfg)
        for future in admin.create_partitions([NewPartitions(cfg.topics.raw, 2)]).values():
            future.result(30)
        wait_until(lambda: (cfg.topics.raw, 1) in running.service.assigned, what="partition 1")
        assert running.service.source.paused
        produce_to(cfg, cfg.topics.raw, 1, later)
        wait_for_retry_rounds(running.service, cfg.topics.classified)
        set_max_message_bytes(cfg, cfg.topics.classified, cfg.topics.max_message_bytes)
        assert_all_delivered_and_committed(cfg, {k for k, _ in first + later}, 2)
    finally:
        assert running.stop() == 0


def test_a_partition_assigned_while_paused_loses_nothing_when_a_member_leaves(
    settings: Settings, trained_model_dir: Path
) -> None:
    cfg = configured(fresh_raw_topic(settings, 2), trained_model_dir)
    a = Running(cfg, trained_model_dir)
    b: Running | None = None
    try:
        wait_until(lambda: len(a.service.assigned) == 2, what="A to own both partitions")
        b = Running(cfg, trained_model_dir)
        wait_until(
            lambda: len(a.service.assigned) == 1 and len(b.service.assigned) == 1,
            what="one partition each",
        )
        (_, kept), (_, moved) = next(iter(a.service.assigned)), next(iter(b.service.assigned))
        set_max_message_bytes(cfg, cfg.topics.classified, REFUSING)
        first = tickets("leave-a", 10, seed=41)
        produce_to(cfg, cfg.topics.raw, kept, first)
        wait_until(lambda: a.service.source.paused, what="A to pause")
        assert b.stop() == 0
        b = None
        wait_until(lambda: len(a.service.assigned) == 2, what="A to get the partition back")
        later = tickets("leave-b", 10, seed=42)
        produce_to(cfg, cfg.topics.raw, moved, later)
        wait_for_retry_rounds(a.service, cfg.topics.classified)
        set_max_message_bytes(cfg, cfg.topics.classified, cfg.topics.max_message_bytes)
        assert_all_delivered_and_committed(cfg, {k for k, _ in first + later}, 2)
    finally:
        if b is not None:
            b.stop()
        assert a.stop() == 0


def test_a_partition_revoked_while_paused_and_assigned_back_is_consumed_again(
    settings: Settings, trained_model_dir: Path
) -> None:
    cfg = configured(fresh_raw_topic(settings, 2), trained_model_dir)
    set_max_message_bytes(cfg, cfg.topics.classified, REFUSING)
    first = tickets("back-a", 6, seed=51)
    produce_to(cfg, cfg.topics.raw, 0, first[:3])
    produce_to(cfg, cfg.topics.raw, 1, first[3:])
    a = Running(cfg, trained_model_dir)
    b: Running | None = None
    try:
        wait_until(lambda: len(a.service.assigned) == 2 and a.service.source.paused, what="pause")
        b = Running(cfg, trained_model_dir)  # takes one of A's paused partitions
        wait_until(lambda: len(b.service.assigned) == 1, what="B to get a partition")
        set_max_message_bytes(cfg, cfg.topics.classified, cfg.topics.max_message_bytes)
        assert_all_delivered_and_committed(cfg, {k for k, _ in first}, 2)
        assert b.stop() == 0  # the partition goes back to A, which is no longer paused
        b = None
        wait_until(lambda: len(a.service.assigned) == 2, what="A to get it back")
        later = tickets("back-b", 6, seed=52)
        produce_to(cfg, cfg.topics.raw, 0, later[:3])
        produce_to(cfg, cfg.topics.raw, 1, later[3:])
        assert_all_delivered_and_committed(cfg, {k for k, _ in first + later}, 2, timeout=60)
    finally:
        if b is not None:
            b.stop()
        assert a.stop() == 0


def test_one_output_too_large_for_its_topic_becomes_a_dead_letter_not_an_outage(
    settings: Settings, trained_model_dir: Path
) -> None:
    cfg = configured(settings, trained_model_dir, max_delivery_attempts=3)
    cfg = cfg.model_copy(
        update={"validation": cfg.validation.model_copy(update={"max_body_bytes": 400_000})}
    )
    set_max_message_bytes(cfg, cfg.topics.classified, 64 * 1024)
    rng = random.Random(3)
    huge_body = "".join(rng.choice(string.ascii_letters + " ") for _ in range(200_000))
    huge = RawTicket(id="poison-1", subject="long", body=huge_body)
    good = tickets("poison-ok", 40, seed=61)
    produce_to(cfg, cfg.topics.raw, 0, [*good[:20], (huge.id, huge.to_bytes()), *good[20:]])
    running = Running(cfg, trained_model_dir)
    try:
        assert_all_delivered_and_committed(cfg, {k for k, _ in good}, 3)
    finally:
        assert running.stop() == 0
    dead = [d for d, _ in dead_letters(cfg)]
    assert [(d.source_offset, d.error_type) for d in dead] == [(20, "undeliverable_output")]
    assert "refused 3 times" in dead[0].error_message
    assert "poison-1" not in output_ids(cfg)


def test_a_dead_letter_of_a_record_with_a_huge_random_key_fits_its_topic(
    settings: Settings, trained_model_dir: Path
) -> None:
    cfg = configured(settings, trained_model_dir)
    key = os.urandom(600_000)  # incompressible: compression cannot hide it
    good = tickets("bigkey-ok", 10, seed=71)
    produce_to(cfg, cfg.topics.raw, 0, [*good[:5], (key, b"{not json"), *good[5:]])
    running = Running(cfg, trained_model_dir)
    try:
        assert_all_delivered_and_committed(cfg, {k for k, _ in good}, 3)
    finally:
        assert running.stop() == 0
    [(dead, headers)] = dead_letters(cfg)
    assert dead.error_type == "invalid_json" and dead.source_offset == 5
    assert headers["ticketsort.original.key_size"] == b"600000"
    assert base64.b64decode(dead.original_key or "") == key[:1024]
