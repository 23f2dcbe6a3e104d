"""The service loop with injected clients: exit codes, lag gauges, counting, stable ids.

The broker is real (``run`` waits for it and serves /metrics); the consumer or producer is a
fake where the behaviour under test is one a broker cannot be made to show on demand (a fatal
client error, an abortable transaction).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from consumer import inference_streams
from consumer.batch_step import BatchStep
from consumer.errors import ExitCode
from consumer.events import RawTicket
from consumer.inference_streams import Streams
from consumer.kafka import KafkaFatal
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.service import ClassifierService, transactional_id
from consumer.settings import Settings
from tests.chaos.models import write_untrained_model
from tests.fakes import FakeConsumer, FakeProducer, FakeTransactionalProducer, record
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    folder = write_untrained_model(tmp_path_factory.mktemp("parts") / "v-parts")
    return Predictor(load_model(folder))


def _ticket(i: int) -> bytes:
    return RawTicket(id=f"p-{i}", body=f"my invoice {i} was charged twice").to_bytes()


def _run(service: ClassifierService) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(service.run()), daemon=True)
    thread.start()
    return thread, codes


def test_a_fatal_consumer_error_ends_the_service_with_exit_5(
    settings: Settings, predictor: Predictor
) -> None:
    consumer = FakeConsumer()
    service = ClassifierService(settings, predictor, consumer=consumer, producer=FakeProducer())  # type: ignore[arg-type]
    thread, codes = _run(service)
    wait_until(lambda: "on_assign" in consumer.callbacks)
    consumer.assign_now((settings.topics.raw, 0))
    # As librdkafka hands it over: code _FATAL, fatal() False (tests/test_kafka_roundtrip.py).
    consumer.pending_errors.append(KafkaError(KafkaError._FATAL, "fenced"))
    thread.join(30)
    assert codes == [ExitCode.KAFKA_FATAL]
    assert consumer.closed


def test_the_producer_is_connected_to_the_outputs_before_partitions_are_taken(
    settings: Settings, predictor: Predictor
) -> None:
    consumer, producer = FakeConsumer(), FakeProducer()
    service = ClassifierService(settings, predictor, consumer=consumer, producer=producer)  # type: ignore[arg-type]
    thread, codes = _run(service)
    wait_until(lambda: "on_assign" in consumer.callbacks)
    topics = settings.topics
    outputs = [topics.classified, topics.review, topics.dead_letter]
    assert producer.connected == outputs + ([topics.shadow] if settings.shadow.enabled else [])
    service.stop_event.set()
    thread.join(30)
    assert codes == [ExitCode.OK]


def test_a_fatal_error_while_closing_is_exit_5_not_1(
    settings: Settings, predictor: Predictor
) -> None:
    consumer = FakeConsumer()
    consumer.close_error = KafkaFatal("consumer close: fatal")  # what the wrapper raises
    service = ClassifierService(settings, predictor, consumer=consumer, producer=FakeProducer())  # type: ignore[arg-type]
    thread, codes = _run(service)
    wait_until(lambda: "on_assign" in consumer.callbacks)
    service.stop_event.set()
    thread.join(30)
    assert codes == [ExitCode.KAFKA_FATAL]


def test_the_lag_gauge_of_a_revoked_partition_is_removed(
    settings: Settings, predictor: Predictor
) -> None:
    consumer = FakeConsumer()
    service = ClassifierService(settings, predictor, consumer=consumer, producer=FakeProducer())  # type: ignore[arg-type]
    service.source.subscribe([settings.topics.raw])
    raw = settings.topics.raw
    consumer.assign_now((raw, 0), (raw, 1))
    for p in (0, 1):
        service.metrics.consumer_lag.labels(topic=raw, partition=str(p)).set(5)
    consumer.revoke_now((raw, 1))
    text = service.metrics.render().decode()
    assert f'ticketsort_consumer_lag{{partition="0",topic="{raw}"}} 5.0' in text
    assert f'partition="1",topic="{raw}"' not in text
    assert "consumer's position" in text  # the help says what it measures


def test_an_aborted_and_replayed_batch_is_counted_once(
    settings: Settings, predictor: Predictor
) -> None:
    cfg = settings.model_copy(
        update={"consumer": settings.consumer.model_copy(update={"processing": "exactly-once"})}
    )
    consumer = FakeConsumer()
    producer = FakeTransactionalProducer(abort_times=1)
    service = ClassifierService(cfg, predictor, consumer=consumer, producer=producer)  # type: ignore[arg-type]
    raw = cfg.topics.raw
    records = [record(0, i, _ticket(i), topic=raw) for i in range(4)]
    records.append(record(0, 4, b"{not json", topic=raw))
    thread, codes = _run(service)
    wait_until(lambda: "on_assign" in consumer.callbacks)
    consumer.assign_now((raw, 0))
    consumer.add(*records)
    wait_until(lambda: consumer.seeks, 30)  # aborted once and rewound...
    consumer.add(*records)  # ...so the broker hands the batch over again
    wait_until(lambda: service.totals["consumed"] >= 5, 30)
    time.sleep(0.5)
    service.stop_event.set()
    thread.join(30)
    assert codes == [ExitCode.OK]
    assert service.totals["consumed"] == 5 and service.totals["dead_letter"] == 1
    text = service.metrics.render().decode()
    assert f'ticketsort_records_consumed_total{{topic="{raw}"}} 5.0' in text
    assert 'ticketsort_dead_letters_total{error_type="invalid_json"} 1.0' in text
    assert service.rate.ratio == pytest.approx(1 / 5)


def test_the_default_transactional_id_is_stable_across_restarts(settings: Settings) -> None:
    first, second = transactional_id(settings), transactional_id(settings)
    assert first == second == f"{settings.kafka.group_id}-{socket.gethostname()}"
    pinned = settings.model_copy(
        update={"consumer": settings.consumer.model_copy(update={"transactional_id": "pod-0"})}
    )
    assert transactional_id(pinned) == "pod-0"


def test_the_batch_step_gives_one_output_per_record_in_order(
    settings: Settings, predictor: Predictor, tmp_path: Path
) -> None:
    step = BatchStep(settings, predictor)
    raw = settings.topics.raw
    records = [record(0, 0, _ticket(0), raw), record(0, 1, b"", raw), record(0, 2, _ticket(2), raw)]
    result = step.process(records)
    assert [o.record.offset for o in result.outputs] == [0, 1, 2]
    assert [o.route for o in result.outputs][1] == "dead_letter"
    assert result.outputs[1].error_type == "empty_record"
    assert {o.route for o in (result.outputs[0], result.outputs[2])} <= {"classified", "review"}


class _StubWorker:
    """An inference worker that is busy (or idle) on demand and keeps what it is given."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.submitted: list[list[int]] = []

    def has_room(self) -> bool:
        return True

    def take(self, wait_s: float = 0.0) -> list[object]:
        return []

    def submit(self, batch: object, generation: int) -> None:
        self.submitted.append([r.offset for r in batch.records])  # type: ignore[attr-defined]


def test_while_the_model_is_busy_the_next_batch_builds_up(
    settings: Settings, predictor: Predictor
) -> None:
    """Records that trickle in while a batch is with the model go to it as one batch (when
    full, or when the oldest has waited max_wait_ms), not one tiny batch each (issue #13)."""
    cfg = settings.model_copy(
        update={
            "batching": settings.batching.model_copy(update={"max_batch": 8, "max_wait_ms": 200})
        }
    )
    consumer = FakeConsumer()
    service = ClassifierService(cfg, predictor, consumer=consumer, producer=FakeProducer())  # type: ignore[arg-type]
    service.source.subscribe([cfg.topics.raw])
    raw = cfg.topics.raw
    consumer.assign_now((raw, 0))
    busy = _StubWorker(pending=1)
    turn = service._turn_pipelined
    offset = 0

    def arrive(n: int) -> None:
        nonlocal offset
        consumer.add(*[record(0, offset + i, _ticket(offset + i), topic=raw) for i in range(n)])
        offset += n

    arrive(1)
    turn(busy)  # type: ignore[arg-type]
    arrive(3)
    turn(busy)  # type: ignore[arg-type]
    assert busy.submitted == []  # 4 records, none has waited 200 ms: still building up
    arrive(4)
    turn(busy)  # type: ignore[arg-type]
    assert busy.submitted == [list(range(8))]  # full: one batch of max_batch
    arrive(2)
    turn(busy)  # type: ignore[arg-type]
    assert len(busy.submitted) == 1
    time.sleep(0.25)
    turn(busy)  # type: ignore[arg-type]
    assert busy.submitted[1:] == [[8, 9]]  # the oldest waited max_wait_ms: sent as it is
    idle = _StubWorker(pending=0)
    arrive(1)
    turn(idle)  # type: ignore[arg-type]
    assert idle.submitted == [[10]]  # an idle model gets what there is after max_wait_ms


class _ReadyWatcher:
    """A model watcher with a fresh model ready."""

    def __init__(self, fresh: Predictor) -> None:
        self.fresh: Predictor | None = fresh

    def has_news(self) -> bool:
        return self.fresh is not None

    def take_ready(self) -> Predictor | None:
        fresh, self.fresh = self.fresh, None
        return fresh

    def stop(self) -> None:
        pass


def test_a_fresh_model_is_swapped_in_while_the_workers_are_busy(
    settings: Settings, predictor: Predictor
) -> None:
    """Under steady load some batch is always with a worker; the swap must not wait for a
    moment with none in flight (it may never come): the in-flight batches are published
    first, then the fresh model serves."""
    consumer = FakeConsumer()
    service = ClassifierService(settings, predictor, consumer=consumer, producer=FakeProducer())  # type: ignore[arg-type]
    service.source.subscribe([settings.topics.raw])
    raw = settings.topics.raw
    consumer.assign_now((raw, 0))
    fresh = Predictor(predictor.model)
    service.watcher = _ReadyWatcher(fresh)  # type: ignore[assignment]
    service.worker = service._start_workers()
    try:
        batch = service.step.prepare([record(0, i, _ticket(i), topic=raw) for i in range(3)])
        service.worker.submit(batch, service.generation)
        service._maybe_swap_model()
        assert service.step.predictor is fresh
        assert service.worker.pending == 0 and service.totals["consumed"] == 3
    finally:
        service.worker.stop()


def test_a_swapped_in_model_gets_its_own_worker_count(
    settings: Settings, predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker count is timed on the served model: a fresh model (another precision or
    size) is timed again at the swap and the pool restarted when its best count differs."""
    fresh = Predictor(predictor.model)
    chosen = {id(predictor): Streams(2, 1, "measured"), id(fresh): Streams(1, None, "measured")}
    monkeypatch.setattr(inference_streams, "choose", lambda p, configured, batch: chosen[id(p)])
    service = ClassifierService(
        settings, predictor, consumer=FakeConsumer(), producer=FakeProducer()
    )  # type: ignore[arg-type]
    service.watcher = _ReadyWatcher(fresh)  # type: ignore[assignment]
    service.worker = first = service._start_workers()
    try:
        assert first.workers == 2
        service._maybe_swap_model()
        assert service.step.predictor is fresh
        assert service.worker is not first and service.worker.workers == 1
        assert all(not t.is_alive() for t in first._threads)
        assert "ticketsort_inference_workers 1.0" in service.metrics.render().decode()
        service.worker.submit(service.step.prepare([record(0, 0, _ticket(0))]), 0)
        [(_, result)] = service.worker.take_all()
        assert [o.route for o in result.primaries] in (["classified"], ["review"])
    finally:
        service.worker.stop()


def test_each_worker_may_run_pipeline_depth_batches_ahead(
    settings: Settings, predictor: Predictor
) -> None:
    """With depth shared by the workers (2 for 2), a worker that finished ahead of an older
    batch idled until that one was published; per worker, it starts the next one."""
    service = ClassifierService(
        settings, predictor, consumer=FakeConsumer(), producer=FakeProducer()
    )  # type: ignore[arg-type]
    worker = service._start_workers()
    try:
        assert (worker.workers, settings.batching.pipeline_depth) == (2, 2)
        for i in range(3):
            worker.submit(service.step.prepare([record(0, i, _ticket(i))]), 0)
        assert worker.has_room()  # three in flight, a fourth may go
        worker.submit(service.step.prepare([record(0, 3, _ticket(3))]), 0)
        assert not worker.has_room()
        assert "ticketsort_inference_workers 2.0" in service.metrics.render().decode()
    finally:
        worker.take_all()
        worker.stop()
