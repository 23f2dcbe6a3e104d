"""The naive peer: what a first attempt looks like.

One message at a time through a Hugging Face ``pipeline("text-classification")``
over the same encoder size, one produce + flush and one synchronous commit per
message. Measured like the real consumer: draining the same backlog.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Producer as RawProducer

from bench.end_to_end import bench_settings, produce
from consumer.events import RawTicket
from consumer.modeling import resolve_base_model
from consumer.settings import Settings


def naive_throughput(base: Settings, tickets: list[RawTicket], labels: int) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    settings = bench_settings(base, "naive")
    produce(settings, tickets)
    path = str(resolve_base_model(base.model.base_model))
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=labels)
    classify = pipeline(
        "text-classification",
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(path),
        device="cpu",
        truncation=True,
        max_length=128,
    )
    conf = settings.kafka.client_config()
    consumer = RawConsumer(
        {
            **conf,
            "group.id": f"naive-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = RawProducer(conf)
    # Connected before the clock starts, as the service's producer is (its first flush would
    # otherwise wait ~0.5 s for the connection and the topic's metadata).
    producer.list_topics(settings.topics.classified, timeout=10)
    consumer.subscribe([settings.topics.raw])
    done = 0
    started = None
    deadline = time.monotonic() + 1800
    while done < len(tickets) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        if started is None:
            started = time.perf_counter()
        event = json.loads(msg.value() or b"{}")
        result = classify(f"{event.get('subject') or ''} {event['body']}")[0]
        out = {"ticket": event, "category": result["label"], "confidence": result["score"]}
        producer.produce(settings.topics.classified, json.dumps(out).encode(), key=msg.key())
        producer.flush()
        consumer.commit(message=msg, asynchronous=False)
        done += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return {
        "tickets": done,
        "seconds": round(elapsed, 3),
        "tickets_per_s": round(done / elapsed, 1),
    }
