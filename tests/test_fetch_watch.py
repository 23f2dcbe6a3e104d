"""Assigned partitions that never start fetching are reported (``consumer.fetch_watch``).

The unit half drives ``FetchWatch`` and the statistics parsing directly; the broker half holds
a group's committed offsets in an open transaction (KIP-447: a read_committed consumer waits
for stable offsets) and checks that the exactly-once service says so, then recovers once the
transaction is aborted.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Producer as RawProducer
from confluent_kafka import TopicPartition

from consumer.events import RawTicket
from consumer.fetch_watch import FetchWatch
from consumer.kafka import Consumer
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.service import ClassifierService
from consumer.settings import Settings
from producer_tools.synthetic import generate_tickets
from tests.kafka_helpers import produce_values
from tests.waiting import wait_until

A, B = ("raw", 0), ("raw", 1)


def test_a_partition_waiting_past_the_limit_is_reported_once() -> None:
    watch = FetchWatch(stall_s=10)
    states = {A: "none", B: "active"}
    assert watch.observe({A, B}, False, states, now=0.0) == []
    assert watch.observe({A, B}, False, states, now=9.0) == []
    assert watch.observe({A, B}, False, states, now=10.0) == [A]
    assert watch.observe({A, B}, False, states, now=20.0) == []  # reported once
    assert watch.not_fetching == [A]
    # It starts fetching: cleared; a later wait counts from its own start.
    assert watch.observe({A, B}, False, {A: "active", B: "active"}, now=21.0) == []
    assert watch.not_fetching == []
    assert watch.observe({A, B}, False, states, now=30.0) == []
    assert watch.observe({A, B}, False, states, now=40.0) == [A]


def test_paused_revoked_or_unknown_partitions_are_not_stalls() -> None:
    watch = FetchWatch(stall_s=5)
    waiting = {A: "none", B: "offset-query"}
    assert watch.observe({A, B}, True, waiting, now=0.0) == []
    assert watch.observe({A, B}, True, waiting, now=60.0) == []  # paused on purpose
    assert watch.observe({A, B}, False, waiting, now=61.0) == []  # counts from the resume
    assert watch.observe({B}, False, waiting, now=70.0) == [B]  # A was revoked meanwhile
    assert watch.observe({A}, False, {}, now=80.0) == []  # no statistics yet: no verdict
    assert watch.not_fetching == []


def test_statistics_give_each_assigned_partition_its_fetch_state() -> None:
    payload = {
        "topics": {
            "raw": {
                "partitions": {
                    "0": {"desired": True, "fetch_state": "none"},
                    "1": {"desired": True, "fetch_state": "active"},
                    "2": {"desired": False, "fetch_state": "stopped"},  # not ours any more
                    "-1": {"desired": False, "fetch_state": "none"},  # librdkafka's UA
                }
            }
        }
    }
    consumer = Consumer(Settings(_env_file=None).kafka, "g")  # type: ignore[call-arg]
    consumer._on_statistics(json.dumps(payload))
    assert consumer.fetch_states == {("raw", 0): "none", ("raw", 1): "active"}
    consumer._on_statistics("not json")  # kept as it was
    assert consumer.fetch_states == {("raw", 0): "none", ("raw", 1): "active"}


@pytest.mark.integration
def test_offsets_held_by_an_open_transaction_are_reported_then_consumed(
    settings: Settings, trained_model_dir: Path
) -> None:
    kafka = settings.kafka
    raw = settings.topics.raw
    tickets = [
        RawTicket(id=t.ticket_id, subject=t.subject, body=t.body)
        for t in generate_tickets(5, seed=3)
    ]
    produce_values(kafka, raw, [(t.id, t.to_bytes()) for t in tickets])
    # An open transaction commits offsets for the service's group: until it ends, the offsets
    # are "unstable" and a read_committed consumer waits for them.
    joiner = RawConsumer({**kafka.client_config(), "group.id": kafka.group_id})
    joiner.subscribe([raw])
    deadline = time.monotonic() + 30
    while not joiner.assignment() and time.monotonic() < deadline:
        joiner.poll(0.2)
    assert joiner.assignment(), "the group formed"
    held = RawProducer(
        {
            **kafka.client_config(),
            "transactional.id": f"holder-{uuid.uuid4().hex[:8]}",
            "transaction.timeout.ms": 60000,
        }
    )
    held.init_transactions(30)
    held.begin_transaction()
    held.send_offsets_to_transaction(
        [TopicPartition(raw, p, 0) for p in range(3)], joiner.consumer_group_metadata(), 30
    )
    joiner.close()
    cfg = settings.model_copy(
        update={
            "model": settings.model.model_copy(
                update={"path": trained_model_dir, "precision": "fp32"}  # no warm-up
            ),
            "consumer": settings.consumer.model_copy(
                update={"processing": "exactly-once", "fetch_stall_s": 3.0}
            ),
        }
    )
    service = ClassifierService(cfg, Predictor(load_model(trained_model_dir), cfg.model))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: service.metrics.not_fetching._value.get(), 30, "a stall report")
        waiting = service.metrics.not_fetching._value.get()
        assert waiting >= 1, "the service said its partitions are not fetching"
        assert service.totals["consumed"] == 0
        held.abort_transaction(30)  # what an operator's `kafka-transactions.sh abort` does
        wait_until(lambda: service.totals["consumed"] >= len(tickets), 30, "every ticket")
        assert service.totals["consumed"] == len(tickets)
        wait_until(lambda: not service.metrics.not_fetching._value.get(), 15, "the all-clear")
        assert service.metrics.not_fetching._value.get() == 0
    finally:
        service.stop_event.set()
        thread.join(60)


def test_the_brokers_skipped_markers_line_is_recognised(tmp_path: Path) -> None:
    """The chaos test tells Kafka's hanging transaction from a consumer bug by this line
    (copied from a failed run's broker log)."""
    from tests.chaos.broker import PrivateBroker

    logs = tmp_path / "logs"
    logs.mkdir()
    line = (
        "[2026-12-01 13:38:14,370] INFO [Transaction Marker Channel Manager 1]: Couldn't find"
        " leader endpoint for partitions Set(be-7aefa060c7.classified-2, __consumer_offsets-0)"
        " while trying to send transaction markers for g-be-7aefa060c7-txn, these partitions"
        " are likely deleted already and hence can be skipped"
        " (kafka.coordinator.transaction.TransactionMarkerChannelManager)"
    )
    (logs / "server.log").write_text(f"[...] INFO other line\n{line}\n")
    broker = PrivateBroker(tmp_path)
    assert broker.skipped_markers("g-be-7aefa060c7-txn") == [line]
    assert broker.skipped_markers("g-be-7aefa060c7") == []  # another id's prefix
    assert broker.skipped_markers("g-ba-7aefa060c7-txn") == []
    assert broker.skipped_partitions("g-be-7aefa060c7-txn") == {
        "be-7aefa060c7.classified-2",
        "__consumer_offsets-0",
    }
    assert broker.skipped_partitions("g-ba-7aefa060c7-txn") == set()
