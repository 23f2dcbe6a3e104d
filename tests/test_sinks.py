"""The sinks with honest fakes: contiguous commits, poison outputs, outages, EOS rewind."""

from __future__ import annotations

import threading

import confluent_kafka
import pytest
from confluent_kafka import KafkaError

from consumer.events import DeadLetter
from consumer.metrics import Metrics
from consumer.outputs import BatchResult, Output
from consumer.settings import Settings
from consumer.sinks import AtLeastOnceSink, OutputUndeliverable, TransactionalSink
from consumer.source import RecordSource
from tests.fakes import FakeConsumer, FakeProducer, FakeTransactionalProducer, record, size_error


def _settings(**consumer: object) -> Settings:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    return s.model_copy(
        update={"consumer": s.consumer.model_copy(update={"retry_backoff_max_s": 0.0, **consumer})}
    )


def _batch(n: int, topic: str = "classified", partition: int = 0, start: int = 0) -> BatchResult:
    records = [record(partition, start + i, f"v{start + i}".encode()) for i in range(n)]
    outputs = [Output(r, topic, r.key, r.value or b"", [], "classified") for r in records]
    return BatchResult(records, outputs)


def _sink(
    producer: FakeProducer, consumer: FakeConsumer, **consumer_settings: object
) -> tuple[AtLeastOnceSink, list[Output]]:
    delivered: list[Output] = []
    sink = AtLeastOnceSink(
        _settings(**consumer_settings),
        producer,
        consumer,
        Metrics(),
        delivered.append,
        clock=CLOCK,
    )
    return sink, delivered


class _Clock:
    """Monotonic time that a test moves on: backoffs pass without sleeping."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


CLOCK = _Clock()


def _run(sink: AtLeastOnceSink, producer: FakeProducer, turns: int = 40) -> None:
    for _ in range(turns):
        producer.poll()
        CLOCK.t += 60  # every backoff has passed
        sink.service()
        producer.poll()


def test_commits_only_past_contiguously_delivered_records() -> None:
    refused = {b"v1"}
    producer = FakeProducer(lambda t, v, k: size_error() if v in refused else None)
    consumer = FakeConsumer()
    sink, _ = _sink(producer, consumer, max_delivery_attempts=1000)
    sink.publish(_batch(4))
    producer.poll()
    sink.commit(force=True)
    assert consumer.committed_offsets[("raw", 0)] == 1, "stops before the undelivered record"
    refused.clear()
    _run(sink, producer, 3)
    sink.commit(force=True)
    assert consumer.committed_offsets[("raw", 0)] == 4


def test_one_output_refused_while_others_land_becomes_a_dead_letter() -> None:
    producer = FakeProducer(lambda t, v, k: size_error() if v == b"v2" else None)
    consumer = FakeConsumer()
    sink, delivered = _sink(producer, consumer, max_delivery_attempts=3)
    sink.publish(_batch(5))
    _run(sink, producer)
    sink.commit(force=True)
    assert consumer.committed_offsets[("raw", 0)] == 5
    dead = [
        DeadLetter.model_validate_json(v) for t, v, _, _ in producer.delivered if t != "classified"
    ]
    assert [(d.source_offset, d.error_type) for d in dead] == [(2, "undeliverable_output")]
    assert "refused 3 times" in dead[0].error_message
    assert sorted(o.record.offset for o in delivered) == [0, 1, 2, 3, 4]
    assert not sink.blocked()


def test_an_outage_is_retried_without_dead_letters_and_delivered_after_the_fix() -> None:
    broken = [True]
    producer = FakeProducer(lambda t, v, k: size_error() if broken[0] else None)
    consumer = FakeConsumer()
    sink, _ = _sink(producer, consumer, max_delivery_attempts=2)
    sink.publish(_batch(5))
    _run(sink, producer, 20)
    assert sink.blocked(), "an outage keeps the source paused"
    assert producer.delivered == []
    broken[0] = False
    _run(sink, producer, 3)
    assert sorted(t for t, *_ in producer.delivered) == ["classified"] * 5
    sink.commit(force=True)
    assert consumer.committed_offsets[("raw", 0)] == 5


def test_a_refused_record_batched_with_innocent_ones_does_not_take_them_along() -> None:
    """A broker refuses a whole batch for one bad record: the retries go out one by one."""
    producer = FakeProducer()
    bad = b"v3"

    def refuse(topic: str, value: bytes, key: bytes | None) -> KafkaError | None:
        batch = [v for _, v, _, _ in producer.queue] + [value]
        return size_error() if bad in batch or value == bad else None

    # a broker-like refusal: everything polled together with the bad record fails
    def poll(timeout: float = 0.0) -> int:
        queue, producer.queue = producer.queue, []
        together = any(v == bad for _, v, _, _ in queue)
        for topic, value, key, (callback, headers) in queue:
            error = size_error() if together else None
            if error is None:
                producer.delivered.append((topic, value, key, headers))
            callback(error, None)
        return len(queue)

    producer.poll = poll  # type: ignore[method-assign]
    consumer = FakeConsumer()
    sink, _ = _sink(producer, consumer, max_delivery_attempts=3)
    sink.publish(_batch(6))
    sink.publish(_batch(2, start=6))  # a later batch that lands: the topic works
    _run(sink, producer)
    classified = sorted(v for t, v, _, _ in producer.delivered if t == "classified")
    assert classified == [b"v0", b"v1", b"v2", b"v4", b"v5", b"v6", b"v7"]
    assert [t for t, *_ in producer.delivered].count("tickets.dead-letter") == 1


def test_a_refused_dead_letter_is_replaced_by_a_minimal_one_then_the_sink_gives_up() -> None:
    refuse_minimal = [False]

    def refuse(topic: str, value: bytes, key: bytes | None) -> KafkaError | None:
        if value == b"v1":
            return size_error()  # the classified output
        if topic == "tickets.dead-letter" and b'"source_offset":1' in value:
            minimal = b'"original_value":null' in value and key is None
            return size_error() if (not minimal or refuse_minimal[0]) else None
        return None

    producer = FakeProducer(refuse)
    consumer = FakeConsumer()
    sink, _ = _sink(producer, consumer, max_delivery_attempts=2)
    sink.publish(_batch(3))
    for i in range(3, 40):  # keep other outputs landing
        sink.publish(_batch(1, start=i))
        _run(sink, producer, 1)
    dead = [(k, dict(h)) for t, v, k, h in producer.delivered if t == "tickets.dead-letter"]
    assert len(dead) == 1 and dead[0][0] is None and dead[0][1]["ticketsort.minimal"] == b"1"

    refuse_minimal[0] = True
    producer2 = FakeProducer(refuse)
    sink2, _ = _sink(producer2, FakeConsumer(), max_delivery_attempts=2)
    sink2.publish(_batch(3))
    with pytest.raises(OutputUndeliverable):
        for i in range(3, 60):
            sink2.publish(_batch(1, start=i))
            _run(sink2, producer2, 1)
    assert OutputUndeliverable.exit_code == 6


def test_revoke_commits_delivered_work_of_the_revoked_partitions_only() -> None:
    producer = FakeProducer()
    consumer = FakeConsumer()
    sink, _ = _sink(producer, consumer)
    sink.publish(_batch(3, partition=0))
    sink.publish(_batch(2, partition=1))
    producer.poll()
    sink.partitions_revoked([("raw", 1)])
    assert consumer.committed_offsets == {("raw", 1): 2}
    assert sink.in_flight() == 0 and sink.uncommitted()


@pytest.mark.parametrize(("reset", "expected"), [("earliest", -2), ("latest", -1)])
def test_exactly_once_rewind_honours_auto_offset_reset_without_a_committed_offset(
    reset: str, expected: int
) -> None:
    consumer = FakeConsumer()
    source = RecordSource(consumer)
    source.subscribe(["raw"])
    consumer.assign_now(("raw", 0), ("raw", 1))
    consumer.committed_offsets[("raw", 1)] = 7
    producer = FakeTransactionalProducer(abort_times=1)
    delivered: list[Output] = []
    sink = TransactionalSink(
        _settings(auto_offset_reset=reset),
        producer,
        consumer,
        source,
        Metrics(),
        delivered.append,
        threading.Event(),
    )
    sink.stop_event.wait = lambda timeout=None: False  # type: ignore[method-assign]
    batch = _batch(3)
    assert sink.publish(batch) is False, "aborted: not accepted, read again"
    assert {(s.partition, s.offset) for s in consumer.seeks} == {(0, expected), (1, 7)}
    assert delivered == [], "an aborted try counts nothing"
    assert sink.publish(batch) is True
    assert len(delivered) == 3
    assert confluent_kafka.OFFSET_BEGINNING == -2 and confluent_kafka.OFFSET_END == -1
