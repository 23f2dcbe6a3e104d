"""End to end through the real broker: raw topic → consumer → classified/review, with commits."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import numpy as np
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import TopicPartition

from consumer.events import RawTicket
from consumer.kafka import Producer, ensure_topics
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import Settings, TopicSettings


def bench_settings(base: Settings, tag: str) -> Settings:
    unique = f"{tag}-{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(
        raw=f"bench-{unique}.raw",
        classified=f"bench-{unique}.classified",
        review=f"bench-{unique}.review",
        dead_letter=f"bench-{unique}.dead-letter",
        labeled=f"bench-{unique}.labeled",
        partitions=base.topics.partitions,
    )
    settings = base.model_copy(
        update={
            "topics": topics,
            "kafka": base.kafka.model_copy(update={"group_id": f"bench-{unique}"}),
            "consumer": base.consumer.model_copy(update={"metrics_port": 0}),
        }
    )
    ensure_topics(settings.kafka, settings.topics)
    return settings


def produce(
    settings: Settings,
    tickets: list[RawTicket],
    rate: float | None = None,
    producer: Producer | None = None,
) -> float:
    """Publish tickets (at ``rate`` per second, or as fast as possible); return seconds taken.

    A fresh producer stamps its first records before it has connected (and, idempotent, been
    given its producer id): pass one that has already sent when those first records are timed.
    """
    if producer is None:  # not `or`: a Producer with nothing queued has len() 0
        producer = Producer(settings.kafka)
    started = time.perf_counter()
    for i, ticket in enumerate(tickets):
        if rate:
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        producer.produce(settings.topics.raw, ticket.to_bytes(), key=ticket.id)
        producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - started


def key_timestamps(
    settings: Settings, topics: tuple[str, ...], expected: int, timeout: float = 120
) -> dict[str, int]:
    """ticket id -> create timestamp (ms) of its first record in ``topics``, from the start."""
    consumer = RawConsumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    parts = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts += [TopicPartition(topic, p, 0) for p in meta.partitions]
    consumer.assign(parts)
    out: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            key = msg.key()
            if msg.error() is None and key is not None:
                out.setdefault(key.decode(), msg.timestamp()[1])
    consumer.close()
    return out


def _run_service(
    settings: Settings, predictor: Predictor
) -> tuple[ClassifierService, threading.Thread]:
    service = ClassifierService(settings, predictor)
    thread = threading.Thread(target=service.run, name="bench-service", daemon=True)
    thread.start()
    return service, thread


def throughput(base: Settings, predictor: Predictor, tickets: list[RawTicket]) -> dict[str, Any]:
    """Drain a backlog: tickets/s from the first consumed record to the last commit."""
    settings = bench_settings(base, "e2e")
    produce(settings, tickets)
    service, thread = _run_service(settings, predictor)
    n = len(tickets)
    deadline = time.monotonic() + 1800
    while service.totals["consumed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.perf_counter()
    while time.monotonic() < deadline:
        if _routed(service) >= n and service.settled():
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    service.stop_event.set()
    thread.join(60)
    return {
        "tickets": n,
        "seconds": round(elapsed, 3),
        "tickets_per_s": round(n / elapsed, 1),
        "batch_size": settings.batching.max_batch,
        "max_wait_ms": settings.batching.max_wait_ms,
        "routed": dict(service.totals),
    }


def latency(
    base: Settings,
    predictor: Predictor,
    tickets: list[RawTicket],
    rate: float,
    *,
    warmup_s: float = 2.0,
) -> dict[str, Any]:
    """Produce→classified latency at a fixed offered load of ``rate`` tickets/s, in the steady
    state.

    The first ``warmup_s`` seconds of the stream (at least two batches) are a warm-up, produced
    and awaited before the measured stream, and reported apart (``warmup``): the service's
    start (its first fetches of a new topic, cold kernels), a figure of its own, not the latency
    at a load. Measured in one 30 s stream before this split, those first few hundred tickets
    were the whole p99 (1,384 ms against a p50 of 54 ms; 114 ms once they were left out); half
    a second of it was this bench's own new producer, which stamped its first records before it
    had connected (``Producer.connect`` now connects it first).
    """
    settings = bench_settings(base, "lat")
    service, thread = _run_service(settings, predictor)
    deadline = time.monotonic() + 60
    while not service.assigned and time.monotonic() < deadline:
        time.sleep(0.05)
    warm, timed = split_warmup(tickets, rate, settings.batching.max_batch, warmup_s)
    warm_n = len(warm)
    producer = Producer(settings.kafka)
    producer.connect([settings.topics.raw])  # the warm-up is the service's start, not this one's
    produce(settings, warm, rate=rate, producer=producer)
    deadline = time.monotonic() + 120
    while _routed(service) < warm_n and time.monotonic() < deadline:
        time.sleep(0.01)
    produce(settings, timed, rate=rate, producer=producer)
    outs = key_timestamps(
        settings, (settings.topics.classified, settings.topics.review), len(tickets)
    )
    service.stop_event.set()
    thread.join(60)
    ins = key_timestamps(settings, (settings.topics.raw,), len(tickets), timeout=60)

    def measured(sent: list[RawTicket]) -> dict[str, Any]:
        return percentiles([outs[t.id] - ins[t.id] for t in sent if t.id in outs and t.id in ins])

    out: dict[str, Any] = {"offered_per_s": round(rate, 1), "tickets": len(timed)}
    out.update(measured(timed))
    out["warmup"] = {"tickets": warm_n, **measured(warm)}
    return out


def split_warmup(
    tickets: list[RawTicket], rate: float, max_batch: int, warmup_s: float
) -> tuple[list[RawTicket], list[RawTicket]]:
    """The warm-up (``warmup_s`` at ``rate``, at least two batches, at most half the stream)
    and the measured rest."""
    warm_n = min(len(tickets) // 2, max(2 * max_batch, int(rate * warmup_s)))
    return tickets[:warm_n], tickets[warm_n:]


def _routed(service: ClassifierService) -> int:
    totals = service.totals
    return int(totals["classified"] + totals["review"] + totals["dead_letter"])


def percentiles(latencies_ms: list[int]) -> dict[str, Any]:
    lat = np.array(latencies_ms, dtype=np.float64)
    if not lat.size:
        return {"received": 0}
    return {
        "received": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
    }
