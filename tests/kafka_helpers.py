"""Small helpers for integration tests: produce tickets, read topics back, offsets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import TopicPartition

from consumer.events import RawTicket
from consumer.kafka import Producer
from consumer.settings import KafkaSettings, Settings

REPO = Path(__file__).resolve().parent.parent


def produce_values(kafka: KafkaSettings, topic: str, items: Iterable[tuple[str, bytes]]) -> int:
    producer = Producer(kafka)
    count = 0
    for key, value in items:
        producer.produce(topic, value, key=key)
        count += 1
    producer.flush()
    return count


def raw_ticket_bytes(i: int, body: str) -> tuple[str, bytes]:
    ticket = RawTicket(id=f"tk-{i}", subject=f"ticket {i}", body=body)
    return ticket.id, ticket.to_bytes()


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    expected: int | None = None,
    timeout: float = 60.0,
    idle: float = 3.0,
    isolation: str = "read_uncommitted",
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """All records of a topic from the beginning: until ``expected`` arrive, or ``idle`` s pass."""
    consumer = RawConsumer(
        {
            **kafka.client_config(),
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign(
        [TopicPartition(topic, p, 0) for p in metadata.partitions]  # from the beginning
    )
    out: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(out) >= expected:
                # linger briefly to catch duplicates
                if time.monotonic() - last > 1.0:
                    break
            elif expected is None and time.monotonic() - last > idle:
                break
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                out.append((msg.key(), msg.value(), list(msg.headers() or [])))
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def committed_offsets(
    kafka: KafkaSettings, group: str, topic: str, partitions: int
) -> dict[int, int]:
    consumer = RawConsumer({**kafka.client_config(), "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
        return {tp.partition: tp.offset for tp in parts}
    finally:
        consumer.close()


def end_offsets(kafka: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    consumer = RawConsumer({**kafka.client_config(), "group.id": f"w-{uuid.uuid4().hex[:6]}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def service_env(settings: Settings, model_dir: Path | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "TICKETSORT_KAFKA__GROUP_ID": settings.kafka.group_id,
            "TICKETSORT_TOPICS__RAW": settings.topics.raw,
            "TICKETSORT_TOPICS__CLASSIFIED": settings.topics.classified,
            "TICKETSORT_TOPICS__REVIEW": settings.topics.review,
            "TICKETSORT_TOPICS__DEAD_LETTER": settings.topics.dead_letter,
            "TICKETSORT_TOPICS__LABELED": settings.topics.labeled,
            "TICKETSORT_TOPICS__SHADOW": settings.topics.shadow,
            "TICKETSORT_MODEL__STORE": str(settings.model.store),
            "TICKETSORT_CONSUMER__METRICS_PORT": "0",
            "TICKETSORT_LOGGING__FORMAT": "json",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if model_dir is not None:
        env["TICKETSORT_MODEL__PATH"] = str(model_dir)
    env.update(extra)
    return env


def start_service(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "consumer"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def wait_for_log(log_path: Path, needle: str, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.exists() and needle in log_path.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False
