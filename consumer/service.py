"""The classification service: the wiring of named parts.

    source (poll, pause, assignment) → batch step (validate, clean, predict, route)
        → sink (publish and commit: at-least-once or transactional)

Every consumed record ends in exactly one of classified, review or dead-letter. At-least-once
(default): offsets are committed only up to records whose output was delivered, per partition,
contiguously. Exactly-once (setting): outputs and offsets go in one Kafka transaction per
batch. The loop below only ties the parts together; each part is tested on its own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from consumer import inference_streams
from consumer.batch_step import BatchStep, PreparedBatch
from consumer.dead_letter_rate import DeadLetterRate
from consumer.drift import export_training, observe_output
from consumer.errors import ExitCode, TicketsortError
from consumer.fetch_watch import REMEDY as FETCH_STALL_REMEDY
from consumer.fetch_watch import FetchWatch
from consumer.inference import InferenceWorker
from consumer.kafka import Consumer, Producer, wait_for_broker
from consumer.logs import get_logger
from consumer.metrics import HealthServer, Metrics
from consumer.model_store import SHADOW, load_model, resolve_model_dir
from consumer.outputs import BatchResult, Output
from consumer.predictor import Predictor
from consumer.reload import ModelWatcher
from consumer.settings import Settings
from consumer.shadow import ShadowScorer, observe_shadow
from consumer.sinks import AtLeastOnceSink, Sink, TransactionalSink
from consumer.source import PartitionKey, RecordSource

log = get_logger(__name__)

DEAD_LETTER_SIZE_FACTOR = 4  # base64 plus envelope of an oversized original still fits
LAG_INTERVAL_S = 5.0


def load_predictor(settings: Settings) -> Predictor:
    """Load the configured model or raise ``ModelLoadError`` with what to do."""
    folder = resolve_model_dir(settings.model.store, settings.model.path)
    predictor = Predictor(load_model(folder, settings.model.base_model), settings.model)
    predictor.warm()
    return predictor


def transactional_id(settings: Settings) -> str:
    """The configured id, else one that stays the same across restarts of this host or pod."""
    configured = settings.consumer.transactional_id
    return configured or f"{settings.kafka.group_id}-{socket.gethostname()}"


class ClassifierService:
    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        *,
        stop_event: threading.Event | None = None,
        metrics: Metrics | None = None,
        consumer: Consumer | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.settings = settings
        self.stop_event = stop_event or threading.Event()
        self.metrics = metrics or Metrics()
        self.exactly_once = settings.consumer.processing == "exactly-once"
        self.consumer = (
            consumer
            if consumer is not None
            else Consumer(
                settings.kafka,
                settings.kafka.group_id,
                auto_offset_reset=settings.consumer.auto_offset_reset,
                extra={"isolation.level": "read_committed"},
            )
        )
        self.producer = (
            producer
            if producer is not None
            else Producer(
                settings.kafka,
                transactional_id=transactional_id(settings) if self.exactly_once else None,
                extra={
                    "message.max.bytes": settings.topics.max_message_bytes * DEAD_LETTER_SIZE_FACTOR
                },
            )
        )
        self.source = RecordSource(self.consumer, listener=self)
        self.step = BatchStep(settings, predictor)
        self.sink: Sink = (
            TransactionalSink(
                settings,
                self.producer,
                self.consumer,
                self.source,
                self.metrics,
                self._delivered,
                self.stop_event,
            )
            if self.exactly_once
            else AtLeastOnceSink(
                settings, self.producer, self.consumer, self.metrics, self._delivered
            )
        )
        self.rate = DeadLetterRate(
            settings.validation.dead_letter_window, settings.validation.dead_letter_max_ratio
        )
        self.worker: InferenceWorker[PreparedBatch, BatchResult] | None = None  # run() starts it
        self.generation = 0  # moves on after an exactly-once rewind: older results are void
        self.watcher: ModelWatcher | None = None
        self.shadow_watcher: ModelWatcher | None = None
        self.health: HealthServer | None = None
        self._last_lag = 0.0
        self.fetch_watch = FetchWatch(settings.consumer.fetch_stall_s)
        self.totals = {
            "consumed": 0, "classified": 0, "review": 0, "dead_letter": 0, "audit": 0, "shadow": 0,
        }  # fmt: skip
        self._set_model_metrics(predictor)

    @property
    def predictor(self) -> Predictor:
        return self.step.predictor

    @property
    def assigned(self) -> set[PartitionKey]:
        return self.source.assigned

    # Rebalances (called by the source) ---------------------------------------------------
    def partitions_assigned(self, keys: list[PartitionKey]) -> None:
        self.metrics.ready_assigned = bool(self.source.assigned)

    def partitions_revoked(self, keys: list[PartitionKey]) -> None:
        self._finish_in_flight()  # a revoked partition's batches are published before its commit
        self.sink.partitions_revoked(keys)
        self._drop_partitions(keys)

    def partitions_lost(self, keys: list[PartitionKey]) -> None:
        self._finish_in_flight()
        self.sink.partitions_lost(keys)
        self._drop_partitions(keys)

    def _drop_partitions(self, keys: list[PartitionKey]) -> None:
        for topic, partition in keys:
            with contextlib.suppress(KeyError):  # the new owner reports this partition's lag
                self.metrics.consumer_lag.remove(topic, str(partition))
        remaining = self.source.assigned.difference(keys)
        self.metrics.ready_assigned = bool(remaining)

    # The loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped; the ``ExitCode`` to exit with."""
        settings = self.settings
        wait_for_broker(settings.kafka, timeout=60)
        self.health = HealthServer(
            self.metrics, settings.consumer.metrics_host, settings.consumer.metrics_port
        ).start()
        if settings.model.path is None:
            self.watcher = ModelWatcher(settings.model, self.predictor.model.path, self.metrics)
            self.watcher.start()
        if settings.shadow.enabled:
            # Loaded before the first batch when there is one; followed like `current`.
            self.shadow_watcher = ModelWatcher(settings.model, None, self.metrics, link=SHADOW)
            self.shadow_watcher.check_once()
            self._maybe_swap_shadow()
            self.shadow_watcher.start()
        self._connect_producer()
        self.source.subscribe([settings.topics.raw])
        log.info(
            "service_started",
            **self.predictor.describe(),
            processing=settings.consumer.processing,
            topic=settings.topics.raw,
            group=settings.kafka.group_id,
        )
        code = ExitCode.OK
        try:
            self.sink.start()
            if settings.batching.pipeline_depth > 0:
                self.worker = self._start_workers()
            while not self.stop_event.is_set():
                self.metrics.last_loop = time.monotonic()
                self._maybe_swap_model()
                self._backpressure()
                if self.worker is None:
                    self._turn_inline()
                else:
                    self._turn_pipelined(self.worker)
                self.sink.service()
                self._update_lag()
            self._finish_in_flight()
        except TicketsortError as exc:
            log.error("service_failed", error_type=type(exc).__name__, error=str(exc))
            code = exc.exit_code
        finally:
            code = self._shutdown(code)
        return int(code)

    def _connect_producer(self) -> None:
        """Connect the producer to the output topics before taking partitions: its first
        outputs are not held while it connects, and a missing topic is named at start."""
        topics = self.settings.topics
        outputs = [topics.classified, topics.review, topics.dead_letter]
        if self.settings.shadow.enabled:
            outputs.append(topics.shadow)
        missing = self.producer.connect(outputs, timeout=10)
        if missing:
            log.warning(
                "output_topics_missing",
                topics=missing,
                hint="create them (python -m producer_tools topics); outputs to them wait",
            )

    def _choose_streams(self) -> inference_streams.Streams:
        batching = self.settings.batching
        streams = inference_streams.choose(
            self.predictor, batching.inference_workers, batching.max_batch
        )
        self.metrics.inference_workers.set(streams.workers)
        log.info(
            "inference_workers_chosen", model_version=self.predictor.version, **streams.to_dict()
        )
        return streams

    def _start_workers(
        self, streams: inference_streams.Streams | None = None
    ) -> InferenceWorker[PreparedBatch, BatchResult]:
        streams = streams or self._choose_streams()
        # pipeline_depth batches per worker: one that finishes ahead of an older batch
        # starts the next instead of idling until the older one is published.
        depth = self.settings.batching.pipeline_depth * streams.workers
        return InferenceWorker(
            self.step.finish, depth, workers=streams.workers, threads=streams.threads
        )

    def _rechoose_workers(self) -> None:
        """A swapped-in model may run best on another worker count (another precision, size
        or head): time it again, with the pipeline empty, and restart the pool if it moved."""
        if self.worker is None:
            return
        streams = self._choose_streams()
        if (streams.workers, streams.threads) == (self.worker.workers, self.worker.threads):
            return
        old, self.worker = self.worker, None
        old.stop()
        self.worker = self._start_workers(streams)

    def _turn_inline(self) -> None:
        batching = self.settings.batching
        records = self.source.poll(batching.max_batch, batching.max_wait_ms / 1000)
        if records:
            self._handle(self.step.process(records))

    def _turn_pipelined(self, worker: InferenceWorker[PreparedBatch, BatchResult]) -> None:
        """Publish what the model finished; poll and prepare the next batch meanwhile."""
        batching = self.settings.batching
        for generation, result in worker.take(
            0.0 if worker.has_room() else batching.max_wait_ms / 1000
        ):
            if generation == self.generation:
                self._handle(result)
        if not worker.has_room():
            return
        max_wait_s = batching.max_wait_ms / 1000
        if worker.pending:
            # The model is busy: the next batch builds up meanwhile (polled briefly, so that the
            # busy model's result is published soon). It goes to the model once full, or once
            # its oldest record has waited max_wait_ms: handing over every record or two as it
            # came made the model run many tiny batches under a moderate load, each at nearly
            # a full batch's cost, and the records queued behind them (issue #13: p99).
            self.source.fill(batching.max_batch, 0.002)
            full = self.source.buffered >= batching.max_batch
            if not full and self.source.oldest_wait() < max_wait_s:
                return
            records = self.source.poll(batching.max_batch, 0.0)
        else:
            records = self.source.poll(batching.max_batch, max_wait_s)
        if records:
            worker.submit(self.step.prepare(records), self.generation)

    def _finish_in_flight(self) -> None:
        """Wait for the model's batches in flight and publish them."""
        if self.worker is None:
            return
        for generation, result in self.worker.take_all():
            if generation == self.generation:
                self._handle(result)

    def _backpressure(self) -> None:
        """Pause the source while the sink has too much undelivered; resume once it drained."""
        in_flight = self.sink.in_flight()
        self.metrics.in_flight.set(in_flight)
        if not self.source.paused and self.sink.blocked():
            self.source.pause()
            self.metrics.paused.set(1)
            log.warning("paused", in_flight=in_flight)
        elif self.source.paused and self.sink.can_resume():
            self.source.resume()
            self.metrics.paused.set(0)
            log.info("resumed", in_flight=in_flight)

    def _handle(self, result: BatchResult) -> None:
        started = time.perf_counter()
        if not self.sink.publish(result):
            # Aborted and rewound: this batch and every one after it is read again and counted
            # then; what the model is working on belongs to the old positions.
            self.generation += 1
            return
        self._account(result, time.perf_counter() - started)

    def _account(self, result: BatchResult, publish_s: float) -> None:
        records = result.records
        self.metrics.consumed.labels(topic=self.settings.topics.raw).inc(len(records))
        self.metrics.batch_size.observe(len(records))
        if result.inference_s:
            self.metrics.inference_seconds.observe(result.inference_s)
        counts = {
            route: result.count(route)
            for route in ("classified", "review", "dead_letter", "audit", "shadow")
        }
        self.totals["consumed"] += len(records)
        for route, n in counts.items():
            self.totals[route] += n
        for output in result.outputs:
            if output.route == "dead_letter":
                self.metrics.dead_lettered.labels(error_type=output.error_type or "").inc()
        partitions: dict[str, list[int]] = {}
        for r in records:
            span = partitions.setdefault(f"{r.topic}[{r.partition}]", [r.offset, r.offset])
            span[0], span[1] = min(span[0], r.offset), max(span[1], r.offset)
        log.info(
            "batch",
            size=len(records),
            **counts,
            partitions=partitions,
            inference_ms=round(result.inference_s * 1000, 2),
            publish_ms=round(publish_s * 1000, 2),
            model_version=self.predictor.version,
        )
        if self.settings.consumer.log_ticket_text:
            for ticket_id, text in result.texts.items():
                log.debug("ticket_text", ticket_id=ticket_id, text=text)
        for dead in result.dead_letter_flags():
            self.rate.observe(dead)
        self.rate.check()

    def _delivered(self, output: Output) -> None:
        """Routing and end-to-end latency metrics for one delivered output."""
        self.metrics.routed.labels(route=output.route, model_version=self.predictor.version).inc()
        if output.shadow is not None:
            observe_shadow(self.metrics, output.shadow)
        if output.primary:  # drift: category mix and confidences (consumer.drift)
            observe_output(self.metrics, output, self.predictor.version)
        if output.record.timestamp_ms:
            self.metrics.end_to_end_seconds.observe(
                max(0.0, time.time() - output.record.timestamp_ms / 1000)
            )

    # Housekeeping -----------------------------------------------------------------------
    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_INTERVAL_S or not self.source.assigned:
            return
        self._last_lag = now
        self._watch_fetching(now)
        partitions = [TopicPartition(t, p) for t, p in sorted(self.source.assigned)]
        try:
            for tp in self.consumer.position(partitions):
                _low, high = self.consumer.watermarks(tp, timeout=1, cached=True)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.consumer_lag.labels(
                        topic=tp.topic, partition=str(tp.partition)
                    ).set(max(0, high - tp.offset))
        except KafkaException as exc:
            log.debug("lag_update_failed", error=str(exc))

    def _watch_fetching(self, now: float) -> None:
        """Report assigned partitions that never start fetching (``consumer.fetch_watch``)."""
        stalled = self.fetch_watch.observe(
            self.source.assigned, self.source.paused, self.consumer.fetch_states, now
        )
        if stalled:
            log.error(
                "partitions_not_fetching",
                partitions=[f"{t}[{p}]" for t, p in stalled],
                waited_s=self.settings.consumer.fetch_stall_s,
                processing=self.settings.consumer.processing,
                hint=FETCH_STALL_REMEDY,
            )
        self.metrics.not_fetching.set(len(self.fetch_watch.not_fetching))

    def _maybe_swap_model(self) -> None:
        watchers = [w for w in (self.watcher, self.shadow_watcher) if w is not None]
        if not any(w.has_news() for w in watchers):
            return
        # Models swap between batches: what the workers hold is published first. (Waiting
        # for a turn with none in flight could wait for ever under load, with two workers.)
        self._finish_in_flight()
        self._maybe_swap_shadow()
        if self.watcher is None:
            return
        fresh = self.watcher.take_ready()
        if fresh is None:
            return
        old = self.predictor.version
        self.step.use_model(fresh)  # between batches: no batch is split across two models
        self._rechoose_workers()
        self._set_model_metrics(fresh)
        self.metrics.model_reloads.labels(result="success").inc()
        log.info("model_swapped", old_version=old, new_version=fresh.version)

    def _maybe_swap_shadow(self) -> None:
        watcher = self.shadow_watcher
        if watcher is None:
            return
        if watcher.take_removed():
            old = self.step.shadow
            self.step.use_shadow(None)
            self.metrics.shadow_info.clear()
            log.info("shadow_removed", shadow_version=old.version if old else None)
        fresh = watcher.take_ready()
        if fresh is None:
            return
        self.step.use_shadow(ShadowScorer(self.settings, fresh, self.metrics))
        self.metrics.shadow_info.clear()
        self.metrics.shadow_info.labels(model_version=fresh.version).set(1)
        self.metrics.shadow_reloads.labels(result="success").inc()
        log.info(
            "shadow_loaded",
            shadow_version=fresh.version,
            served_version=self.predictor.version,
            share=self.settings.shadow.share,
            max_cpu_share=self.settings.shadow.max_cpu_share,
            precision=fresh.precision,
        )

    def _set_model_metrics(self, predictor: Predictor) -> None:
        self.metrics.set_model(predictor.version, predictor.device, predictor.precision)
        # drift: the training figures of distribution.json (consumer.drift)
        export_training(self.metrics, predictor.model.path, predictor.version)
        self.metrics.ready_model = True

    def _shutdown(self, code: ExitCode) -> ExitCode:
        log.info("service_stopping", **self.totals)
        for watcher in (self.watcher, self.shadow_watcher):
            if watcher is not None:
                watcher.stop()
        if self.worker is not None:
            worker, self.worker = self.worker, None  # what it still holds is read again
            worker.stop()
        try:
            self.sink.close()
        except TicketsortError as exc:
            log.error("shutdown_commit_failed", error=str(exc))
            code = code if code != ExitCode.OK else exc.exit_code
        except Exception as exc:  # still close the clients
            log.error("shutdown_commit_failed", error=str(exc))
        try:
            self.consumer.close()
        except TicketsortError as exc:  # a fatal error on the way out is still exit 5
            log.error("consumer_close_failed", error=str(exc))
            code = code if code != ExitCode.OK else exc.exit_code
        finally:
            if self.health is not None:
                self.health.stop()
        self.metrics.ready_model = False
        log.info("service_stopped", exit_code=int(code), **self.totals)
        return code

    def settled(self) -> bool:
        """True when nothing is in flight and every delivered offset is committed."""
        return self.sink.in_flight() == 0 and not self.sink.uncommitted()

    def describe(self) -> dict[str, Any]:
        return {**self.predictor.describe(), "totals": dict(self.totals)}
