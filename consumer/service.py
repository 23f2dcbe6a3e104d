"""The classification service: validate → clean → micro-batch → classify → route → publish → commit.

Every consumed record ends in exactly one of: classified, review, dead-letter.
At-least-once (default): offsets are committed only up to records whose output
was delivered, per partition, contiguously. Exactly-once (setting): outputs and
offsets go in one Kafka transaction per batch.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from consumer.clean import clean_ticket
from consumer.dead_letter import dead_letter_for, dead_letter_headers
from consumer.dead_letter_rate import DeadLetterRate, DeadLetterRateExceeded
from consumer.events import ClassifiedTicket, RawTicket
from consumer.kafka import Consumer, KafkaFatal, Producer, Record, wait_for_broker
from consumer.logs import get_logger
from consumer.metrics import HealthServer, Metrics
from consumer.model_store import load_model, resolve_model_dir
from consumer.offsets import OffsetTracker
from consumer.predictor import Predictor
from consumer.reload import ModelWatcher
from consumer.routing import Router
from consumer.settings import Settings
from consumer.validate import Invalid, validate_record

log = get_logger(__name__)

DEAD_LETTER_SIZE_FACTOR = 4  # base64 plus envelope of an oversized original still fits


SEND_OFFSETS_TIMEOUT_S = 10.0


def _bounded(name: str, call: Callable[[], object], deadline_s: float) -> Callable[[], None]:
    """``call`` on a helper thread; ``KafkaFatal`` if it has not returned after ``deadline_s``.

    librdkafka's send_offsets_to_transaction() can block forever, past its own timeout, when
    the group coordinator went away (librdkafka issues #5456, #5511: seen here after a broker
    restart). A blocked C call cannot be interrupted, so the service exits (code 5) and its
    restart resumes from the committed offsets; the open transaction is aborted by the
    broker, or fenced at once when the transactional id is stable.
    """

    def run_bounded() -> None:
        outcome: list[BaseException | None] = []
        done = threading.Event()

        def target() -> None:
            try:
                call()
                outcome.append(None)
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, name=f"txn-{name}", daemon=True).start()
        if not done.wait(deadline_s):
            raise KafkaFatal(
                f"{name} did not return within {deadline_s:.0f} s (librdkafka hang); exiting"
                " so that a restart resumes from the committed offsets"
            )
        if outcome[0] is not None:
            raise outcome[0]

    return run_bounded


class _TransactionAborted(Exception):
    """An abortable transaction error: abort, rewind, process the batch again."""


class _Stopping(Exception):
    """A stop was requested while a transactional call kept failing."""


@dataclass
class _Output:
    """One output waiting for delivery (kept for retries)."""

    record: Record
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    route: str
    attempts: int = 0


@dataclass
class BatchStats:
    size: int = 0
    classified: int = 0
    review: int = 0
    dead_letter: int = 0
    partitions: dict[str, list[int]] = field(default_factory=dict)


def load_predictor(settings: Settings) -> Predictor:
    """Load the configured model or raise ``ModelLoadError`` with what to do."""
    folder = resolve_model_dir(settings.model.store, settings.model.path)
    return Predictor(load_model(folder, settings.model.base_model), settings.model)


class ClassifierService:
    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        *,
        stop_event: threading.Event | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.router = Router(predictor.model.thresholds, settings.routing)
        self.stop_event = stop_event or threading.Event()
        self.metrics = metrics or Metrics()
        self.metrics.set_model(predictor.version, predictor.device, predictor.precision)
        self.metrics.ready_model = True
        self.exactly_once = settings.consumer.processing == "exactly-once"
        topics = settings.topics
        self.consumer = Consumer(
            settings.kafka,
            settings.kafka.group_id,
            auto_offset_reset=settings.consumer.auto_offset_reset,
            extra={"isolation.level": "read_committed"},
        )
        dlq_bytes = topics.max_message_bytes * DEAD_LETTER_SIZE_FACTOR
        txn_id = None
        if self.exactly_once:
            txn_id = settings.consumer.transactional_id or f"ticketsort-{uuid.uuid4().hex[:12]}"
        self.producer = Producer(
            settings.kafka, transactional_id=txn_id, extra={"message.max.bytes": dlq_bytes}
        )
        self.tracker = OffsetTracker()
        self.rate = DeadLetterRate(
            settings.validation.dead_letter_window, settings.validation.dead_letter_max_ratio
        )
        self.assigned: set[tuple[str, int]] = set()
        self.retry: list[_Output] = []
        self.paused = False
        self.watcher: ModelWatcher | None = None
        self.health: HealthServer | None = None
        self._last_commit = 0.0
        self._last_lag = 0.0
        self._txn_failures = 0
        self.totals = {"consumed": 0, "classified": 0, "review": 0, "dead_letter": 0}

    # Rebalance callbacks ---------------------------------------------------------------
    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned.update((p.topic, p.partition) for p in partitions)
        self.metrics.ready_assigned = bool(self.assigned)
        log.info(
            "partitions_assigned", partitions=[f"{p.topic}[{p.partition}]" for p in partitions]
        )

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        if not self.exactly_once:
            # Deliver what is in flight, then commit it, before giving the partitions away.
            self._drain(timeout=10.0)
            self._commit(force=True, only=set(keys))
        self.tracker.forget(keys)
        self.retry = [o for o in self.retry if (o.record.topic, o.record.partition) not in keys]
        self.assigned.difference_update(keys)
        self.metrics.ready_assigned = bool(self.assigned)
        log.info("partitions_revoked", partitions=[f"{t}[{p}]" for t, p in keys])

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.tracker.forget(keys)
        self.assigned.difference_update(keys)
        self.metrics.ready_assigned = bool(self.assigned)
        log.warning("partitions_lost", partitions=[f"{t}[{p}]" for t, p in keys])

    # Main loop -------------------------------------------------------------------------
    def run(self) -> int:
        settings = self.settings
        wait_for_broker(settings.kafka, timeout=60)
        self.health = HealthServer(
            self.metrics, settings.consumer.metrics_host, settings.consumer.metrics_port
        ).start()
        if settings.model.path is None:
            self.watcher = ModelWatcher(settings.model, self.predictor.model.path, self.metrics)
            self.watcher.start()
        self.consumer.subscribe(
            [settings.topics.raw],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info(
            "service_started",
            **self.predictor.describe(),
            processing=settings.consumer.processing,
            topic=settings.topics.raw,
            group=settings.kafka.group_id,
        )
        code = 0
        try:
            if self.exactly_once:
                try:
                    self._txn_call("init_transactions", self.producer.init_transactions)
                except (_TransactionAborted, _Stopping) as exc:
                    raise KafkaFatal(f"init_transactions failed: {exc}") from exc
            while not self.stop_event.is_set():
                self.metrics.last_loop = time.monotonic()
                self._maybe_swap_model()
                if self._backpressure():
                    continue
                records = self._collect()
                if records:
                    self._process(records)
                self._housekeeping()
        except DeadLetterRateExceeded as exc:
            log.error("dead_letter_rate_exceeded", error=str(exc))
            code = 4
        except KafkaFatal as exc:
            log.error("kafka_fatal", error=str(exc))
            code = 5
        finally:
            self._shutdown()
        return code

    def _collect(self) -> list[Record]:
        batching = self.settings.batching
        records = self.consumer.consume(batching.max_batch, batching.max_wait_ms / 1000)
        for err in self.consumer.errors:
            log.warning("consumer_error", error=str(err))
        self.consumer.errors.clear()
        # Records of partitions revoked during this poll are re-read by their new owner.
        return [r for r in records if (r.topic, r.partition) in self.assigned]

    def _process(self, records: list[Record]) -> None:
        started = time.perf_counter()
        stats = BatchStats(size=len(records))
        self.metrics.consumed.labels(topic=self.settings.topics.raw).inc(len(records))
        self.totals["consumed"] += len(records)
        if not self.exactly_once:
            for r in records:
                self.tracker.add(r.topic, r.partition, r.offset)
        tickets: list[tuple[Record, RawTicket, str]] = []
        outputs: list[_Output] = []
        max_chars = self.settings.validation.max_clean_chars
        for record in records:
            stats.partitions.setdefault(f"{record.topic}[{record.partition}]", []).append(
                record.offset
            )
            result = validate_record(record, self.settings.validation.max_body_bytes)
            if isinstance(result, RawTicket):
                text = clean_ticket(result.subject, result.body, max_chars=max_chars)
                if text:
                    tickets.append((record, result, text))
                    self.rate.observe(False)
                    continue
                result = Invalid("empty_after_cleaning", "no text left after cleaning")
            self.rate.observe(True)
            outputs.append(self._dead_letter_output(record, result))
            stats.dead_letter += 1
        infer_s = 0.0
        if tickets:
            t0 = time.perf_counter()
            predictions = self.predictor.predict(
                [text for _, _, text in tickets], top_k=self.settings.routing.top_k
            )
            infer_s = time.perf_counter() - t0
            self.metrics.inference_seconds.observe(infer_s)
            version = self.predictor.version
            for (record, ticket, _), prediction in zip(tickets, predictions, strict=True):
                event = self.router.route(ticket, prediction, version)
                if isinstance(event, ClassifiedTicket):
                    topic, route = self.settings.topics.classified, "classified"
                    stats.classified += 1
                else:
                    topic, route = self.settings.topics.review, "review"
                    stats.review += 1
                outputs.append(
                    _Output(record, topic, ticket.id.encode(), event.to_bytes(), [], route)
                )
        self.metrics.batch_size.observe(len(records))
        if self.exactly_once:
            self._publish_transaction(records, outputs)
        else:
            for output in outputs:
                self._produce(output)
            self.producer.poll(0)
        for key in ("classified", "review", "dead_letter"):
            self.totals[key] += getattr(stats, key)
        log.info(
            "batch",
            size=stats.size,
            classified=stats.classified,
            review=stats.review,
            dead_letter=stats.dead_letter,
            partitions={k: [min(v), max(v)] for k, v in stats.partitions.items()},
            inference_ms=round(infer_s * 1000, 2),
            total_ms=round((time.perf_counter() - started) * 1000, 2),
            model_version=self.predictor.version,
        )
        if self.settings.consumer.log_ticket_text:
            for _, ticket, text in tickets:
                log.debug("ticket_text", ticket_id=ticket.id, text=text)
        self.rate.check()

    def _dead_letter_output(self, record: Record, invalid: Invalid) -> _Output:
        self.metrics.dead_lettered.labels(error_type=invalid.error_type).inc()
        limit = self.settings.topics.max_message_bytes  # the dead-letter topic's limit
        event = dead_letter_for(
            record, invalid.error_type, invalid.message, max_message_bytes=limit
        )
        return _Output(
            record,
            self.settings.topics.dead_letter,
            record.key,
            event.to_bytes(),
            dead_letter_headers(
                record, invalid.error_type, invalid.message, max_message_bytes=limit
            ),
            "dead_letter",
        )

    # At-least-once delivery ------------------------------------------------------------
    def _produce(self, output: _Output) -> None:
        output.attempts += 1
        on_delivery = self._delivery_callback(output)
        try:
            self.producer.produce(
                output.topic,
                output.value,
                key=output.key,
                headers=output.headers,
                on_delivery=on_delivery,
            )
        except KafkaException as exc:
            # Refused before it was queued (e.g. "Unknown topic" once librdkafka knows the
            # topic is missing): a failed delivery like any other, retried with backoff.
            error = exc.args[0] if exc.args else None
            if not isinstance(error, confluent_kafka.KafkaError):
                error = confluent_kafka.KafkaError(confluent_kafka.KafkaError._FAIL, str(exc))
            if error.fatal():
                raise KafkaFatal(f"produce: {error}") from exc
            on_delivery(error, None)

    def _delivery_callback(
        self, output: _Output
    ) -> Callable[[confluent_kafka.KafkaError | None, confluent_kafka.Message | None], None]:
        def on_delivery(
            err: confluent_kafka.KafkaError | None, _msg: confluent_kafka.Message | None
        ) -> None:
            record = output.record
            if err is not None:
                self.metrics.delivery_failures.labels(topic=output.topic).inc()
                log.error(
                    "delivery_failed",
                    topic=output.topic,
                    source=f"{record.topic}[{record.partition}]@{record.offset}",
                    error=str(err),
                    attempts=output.attempts,
                )
                self.retry.append(output)
                return
            self.tracker.mark_done(record.topic, record.partition, record.offset)
            self._count_delivered(output)

        return on_delivery

    def _count_delivered(self, output: _Output) -> None:
        """Routing and end-to-end latency metrics for one delivered output."""
        self.metrics.routed.labels(route=output.route, model_version=self.predictor.version).inc()
        if output.record.timestamp_ms:
            self.metrics.end_to_end_seconds.observe(
                max(0.0, time.time() - output.record.timestamp_ms / 1000)
            )

    def _retry_failed(self) -> None:
        if not self.retry:
            return
        due, self.retry = self.retry, []
        backoff = min(30.0, 0.5 * 2 ** min(max(o.attempts for o in due), 6))
        log.warning("delivery_retry", count=len(due), backoff_s=backoff)
        if self.stop_event.wait(backoff):
            self.retry = due + self.retry
            return
        for output in due:
            if (output.record.topic, output.record.partition) in self.assigned:
                self._produce(output)

    def _backpressure(self) -> bool:
        """Pause consumption while too much output is undelivered; True while paused."""
        limit = self.settings.batching.max_in_flight
        in_flight = self.tracker.in_flight() if not self.exactly_once else len(self.producer)
        self.metrics.in_flight.set(in_flight)
        blocked = in_flight >= limit or bool(self.retry)
        if blocked and not self.paused:
            self.consumer.pause(self._assigned_partitions())
            self.paused = True
            self.metrics.paused.set(1)
            log.warning("paused", in_flight=in_flight, retries=len(self.retry))
        elif not blocked and self.paused and in_flight < limit // 2:
            self.consumer.resume(self._assigned_partitions())
            self.paused = False
            self.metrics.paused.set(0)
            log.info("resumed", in_flight=in_flight)
        if self.paused:
            self.producer.poll(0.05)
            # keep the group membership alive while paused
            self.consumer.consume(1, 0.0)
            self._retry_failed()
            self._housekeeping()
        return self.paused

    def _assigned_partitions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.assigned)]

    def _commit(self, *, force: bool = False, only: set[tuple[str, int]] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < 0.2:
            return
        self._last_commit = now
        offsets = self.tracker.committable()
        if only is not None:
            offsets = {k: v for k, v in offsets.items() if k in only}
        if not offsets:
            return
        try:
            self.consumer.commit([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        except KafkaException as exc:
            log.warning("commit_failed", error=str(exc))
            return
        self.tracker.mark_committed(offsets)
        self.metrics.commits.inc()

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.producer) and time.monotonic() < deadline:
            self.producer.poll(0.05)

    # Exactly-once ----------------------------------------------------------------------
    def _publish_transaction(self, records: list[Record], outputs: list[_Output]) -> None:
        """Outputs and the batch's next offsets in one transaction (librdkafka's EOS recipe).

        Retriable errors retry the failed call; abortable ones abort the transaction and
        rewind the consumer to the committed offsets (the batch is read again, after a
        backoff); fatal ones raise ``KafkaFatal`` so the process exits and restarts.
        """
        next_offsets: dict[tuple[str, int], int] = {}
        for r in records:
            next_offsets[(r.topic, r.partition)] = max(
                next_offsets.get((r.topic, r.partition), 0), r.offset + 1
            )
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._txn_call("begin_transaction", self.producer.begin_transaction)
            for o in outputs:
                try:
                    self.producer.produce(
                        o.topic,
                        o.value,
                        key=o.key,
                        headers=o.headers,
                        on_delivery=self._txn_delivery(o),
                    )
                except KafkaException as exc:  # refused before queueing, e.g. unknown topic
                    error = exc.args[0] if exc.args else None
                    if isinstance(error, confluent_kafka.KafkaError) and error.fatal():
                        raise KafkaFatal(f"produce: {error}") from exc
                    self.metrics.delivery_failures.labels(topic=o.topic).inc()
                    log.error("delivery_failed", topic=o.topic, error=str(exc))
                    raise _TransactionAborted(f"produce: {exc}") from exc
            self._txn_call(
                "send_offsets_to_transaction",
                _bounded(
                    "send_offsets_to_transaction",
                    lambda: self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.group_metadata(), SEND_OFFSETS_TIMEOUT_S
                    ),
                    SEND_OFFSETS_TIMEOUT_S + 5.0,
                ),
            )
            self._txn_call("commit_transaction", self.producer.commit_transaction)
        except _TransactionAborted as exc:
            self._abort_and_rewind(str(exc))
            return
        except _Stopping:
            # Left open on purpose: the broker aborts it (or the next instance with the same
            # transactional id fences it); the batch's offsets were not committed.
            log.warning("transaction_left_open", reason="stop requested")
            return
        self._txn_failures = 0
        self.metrics.commits.inc()

    def _txn_call(self, name: str, call: Callable[[], object]) -> None:
        """Run one transactional call: retry retriable errors, sort the others."""
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not isinstance(error, confluent_kafka.KafkaError):
                    raise KafkaFatal(f"{name}: {exc}") from exc
                if error.fatal():
                    raise KafkaFatal(f"{name}: {error}") from exc
                if error.txn_requires_abort():
                    raise _TransactionAborted(f"{name}: {error}") from exc
                if not error.retriable():
                    # librdkafka's transactions example: every other error is fatal.
                    raise KafkaFatal(f"{name}: {error}") from exc
                log.warning("transaction_retry", call=name, error=str(error))
                if self.stop_event.wait(0.5):
                    raise _Stopping() from exc

    def _abort_and_rewind(self, reason: str) -> None:
        self._txn_failures += 1
        backoff = min(30.0, 0.5 * 2 ** min(self._txn_failures - 1, 6))
        log.warning("transaction_aborted", error=reason, backoff_s=backoff)
        try:
            self._txn_call("abort_transaction", self.producer.abort_transaction)
        except _Stopping:
            log.warning("transaction_left_open", reason="stop requested")
            return
        except _TransactionAborted as exc:
            raise KafkaFatal(f"abort_transaction failed: {exc}") from exc
        try:
            self._rewind()
        except KafkaException as exc:  # a restart resumes from the committed offsets too
            raise KafkaFatal(f"rewind after abort failed: {exc}") from exc
        self.stop_event.wait(backoff)

    def _txn_delivery(
        self, output: _Output
    ) -> Callable[[confluent_kafka.KafkaError | None, confluent_kafka.Message], None]:
        def on_delivery(
            err: confluent_kafka.KafkaError | None, _msg: confluent_kafka.Message
        ) -> None:
            if err is not None:
                self.metrics.delivery_failures.labels(topic=output.topic).inc()
                log.error("delivery_failed", topic=output.topic, error=str(err))
                return
            self._count_delivered(output)

        return on_delivery

    def _rewind(self) -> None:
        """After an aborted transaction, go back to the last committed offsets."""
        partitions = self._assigned_partitions()
        if not partitions:
            return
        for tp in self.consumer.committed(partitions):
            offset = tp.offset if tp.offset >= 0 else confluent_kafka.OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    # Housekeeping ----------------------------------------------------------------------
    def _housekeeping(self) -> None:
        if not self.exactly_once:
            self.producer.poll(0)
            for topic, reason in self.producer.take_failures():
                log.error("delivery_failed", topic=topic, error=reason)
            self._commit()
        now = time.monotonic()
        if now - self._last_lag > 5.0:
            self._last_lag = now
            self._update_lag()

    def _update_lag(self) -> None:
        partitions = self._assigned_partitions()
        if not partitions:
            return
        try:
            positions = self.consumer.position(partitions)
            for tp in positions:
                _low, high = self.consumer.client.get_watermark_offsets(tp, timeout=1, cached=True)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.consumer_lag.labels(
                        topic=tp.topic, partition=str(tp.partition)
                    ).set(max(0, high - tp.offset))
        except KafkaException as exc:
            log.debug("lag_update_failed", error=str(exc))

    def _maybe_swap_model(self) -> None:
        if self.watcher is None:
            return
        fresh = self.watcher.take_ready()
        if fresh is None:
            return
        old = self.predictor.version
        self.predictor = fresh
        self.router = Router(fresh.model.thresholds, self.settings.routing)
        self.metrics.set_model(fresh.version, fresh.device, fresh.precision)
        self.metrics.model_reloads.labels(result="success").inc()
        log.info("model_swapped", old_version=old, new_version=fresh.version)

    def _shutdown(self) -> None:
        log.info("service_stopping", **self.totals)
        if self.watcher is not None:
            self.watcher.stop()
        try:
            if not self.exactly_once:
                self._drain(timeout=30.0)
                self.producer.poll(0)
                self._commit(force=True)
        except Exception as exc:  # still close the clients
            log.error("shutdown_commit_failed", error=str(exc))
        finally:
            self.consumer.close()
            if self.health is not None:
                self.health.stop()
        self.metrics.ready_model = False
        log.info("service_stopped", **self.totals)

    def describe(self) -> dict[str, Any]:
        return {**self.predictor.describe(), "totals": dict(self.totals)}
