"""Exactly-once delivery: a batch's outputs and its next offsets in one Kafka transaction.

librdkafka's transactions recipe: retriable errors retry the failed call; abortable ones abort
the transaction and rewind the consumer to the committed offsets (the batch is read again,
after a backoff, and ``publish`` says it was not accepted so that nothing is counted twice);
fatal ones raise ``KafkaFatal`` so the process exits and restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from consumer.kafka import KafkaFatal, is_fatal
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.outputs import BatchResult, Output
from consumer.settings import Settings
from consumer.sinks.base import Delivered, DeliveryCallback, PartitionKey, ProducerClient

log = get_logger(__name__)

SEND_OFFSETS_TIMEOUT_S = 10.0


class TransactionalProducer(ProducerClient, Protocol):
    def init_transactions(self, timeout: float = 30.0) -> None: ...

    def begin_transaction(self) -> None: ...

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], group_metadata: Any, timeout: float = 30.0
    ) -> None: ...

    def commit_transaction(self, timeout: float = 30.0) -> None: ...

    def abort_transaction(self, timeout: float = 30.0) -> None: ...


class OffsetsClient(Protocol):
    """The consumer calls a transaction needs: its group, and rewinding after an abort."""

    def group_metadata(self) -> Any: ...

    def committed(
        self, partitions: list[TopicPartition], timeout: float = 10.0
    ) -> list[TopicPartition]: ...

    def seek(self, partition: TopicPartition) -> None: ...


class RewindTarget(Protocol):
    """The source, as a rewind sees it: what is assigned, and a buffer to drop."""

    assigned: set[PartitionKey]

    def discard_buffered(self) -> None: ...


class TransactionAborted(Exception):
    """An abortable transaction error: abort, rewind, process the batch again."""


class Stopping(Exception):
    """A stop was requested while a transactional call kept failing."""


def bounded(name: str, call: Callable[[], object], deadline_s: float) -> Callable[[], None]:
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


class TransactionalSink:
    def __init__(
        self,
        settings: Settings,
        producer: TransactionalProducer,
        consumer: OffsetsClient,
        source: RewindTarget,
        metrics: Metrics,
        on_delivered: Delivered,
        stop_event: threading.Event,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.consumer = consumer
        self.source = source
        self.metrics = metrics
        self.on_delivered = on_delivered
        self.stop_event = stop_event
        self.failures = 0

    # Sink interface ---------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._call("init_transactions", self.producer.init_transactions)
        except (TransactionAborted, Stopping) as exc:
            raise KafkaFatal(f"init_transactions failed: {exc}") from exc

    def publish(self, result: BatchResult) -> bool:
        next_offsets: dict[PartitionKey, int] = {}
        for r in result.records:
            key = (r.topic, r.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), r.offset + 1)
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._call("begin_transaction", self.producer.begin_transaction)
            for output in result.outputs:
                self._produce(output)
            self._call(
                "send_offsets_to_transaction",
                bounded(
                    "send_offsets_to_transaction",
                    lambda: self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.group_metadata(), SEND_OFFSETS_TIMEOUT_S
                    ),
                    SEND_OFFSETS_TIMEOUT_S + 5.0,
                ),
            )
            self._call("commit_transaction", self.producer.commit_transaction)
        except TransactionAborted as exc:
            self._abort_and_rewind(str(exc))
            return False
        except Stopping:
            # Left open on purpose: the broker aborts it (or the next instance with the same
            # transactional id fences it); the batch's offsets were not committed.
            log.warning("transaction_left_open", reason="stop requested")
            return False
        self.failures = 0
        self.metrics.commits.inc()
        for output in result.outputs:  # counted once committed: an aborted try counts nothing
            self.on_delivered(output)
        return True

    def in_flight(self) -> int:
        return len(self.producer)

    def uncommitted(self) -> bool:
        return False  # committed with each batch's transaction

    def blocked(self) -> bool:
        return self.in_flight() >= self.settings.batching.max_in_flight

    def can_resume(self) -> bool:
        return self.in_flight() < max(1, self.settings.batching.max_in_flight // 2)

    def service(self) -> None:
        return None  # every batch is delivered and committed inside publish()

    def partitions_revoked(self, keys: list[PartitionKey]) -> None:
        return None  # nothing is in flight between batches

    def partitions_lost(self, keys: list[PartitionKey]) -> None:
        return None

    def close(self) -> None:
        return None

    # The recipe -------------------------------------------------------------------------
    def _produce(self, output: Output) -> None:
        try:
            self.producer.produce(
                output.topic,
                output.value,
                key=output.key,
                headers=output.headers,
                on_delivery=self._delivery(output),
            )
        except KafkaException as exc:  # refused before queueing, e.g. unknown topic
            error = exc.args[0] if exc.args else None
            if is_fatal(error):
                raise KafkaFatal(f"produce: {error}") from exc
            self.metrics.delivery_failures.labels(topic=output.topic).inc()
            log.error("delivery_failed", topic=output.topic, error=str(exc))
            raise TransactionAborted(f"produce: {exc}") from exc

    def _delivery(self, output: Output) -> DeliveryCallback:
        def on_delivery(err: confluent_kafka.KafkaError | None, _msg: object) -> None:
            if err is not None:  # the transaction's commit fails and aborts: counted there
                self.metrics.delivery_failures.labels(topic=output.topic).inc()
                log.error("delivery_failed", topic=output.topic, error=str(err))

        return on_delivery

    def _call(self, name: str, call: Callable[[], object]) -> None:
        """Run one transactional call: retry retriable errors, sort the others."""
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not isinstance(error, confluent_kafka.KafkaError):
                    raise KafkaFatal(f"{name}: {exc}") from exc
                if is_fatal(error):
                    raise KafkaFatal(f"{name}: {error}") from exc
                if error.txn_requires_abort():
                    raise TransactionAborted(f"{name}: {error}") from exc
                if not error.retriable():
                    # librdkafka's transactions example: every other error is fatal.
                    raise KafkaFatal(f"{name}: {error}") from exc
                log.warning("transaction_retry", call=name, error=str(error))
                if self.stop_event.wait(0.5):
                    raise Stopping() from exc

    def _abort_and_rewind(self, reason: str) -> None:
        self.failures += 1
        backoff = min(30.0, 0.5 * 2 ** min(self.failures - 1, 6))
        log.warning("transaction_aborted", error=reason, backoff_s=backoff)
        try:
            self._call("abort_transaction", self.producer.abort_transaction)
        except Stopping:
            log.warning("transaction_left_open", reason="stop requested")
            return
        except TransactionAborted as exc:
            raise KafkaFatal(f"abort_transaction failed: {exc}") from exc
        try:
            self.rewind()
        except KafkaException as exc:  # a restart resumes from the committed offsets too
            raise KafkaFatal(f"rewind after abort failed: {exc}") from exc
        self.stop_event.wait(backoff)

    def rewind(self) -> None:
        """After an aborted transaction, go back to the committed offsets.

        A partition with no committed offset goes where ``auto_offset_reset`` says, as a fresh
        consumer would (issue #12: it always went to the beginning).
        """
        self.source.discard_buffered()  # read again from the rewound positions
        partitions = [TopicPartition(t, p) for t, p in sorted(self.source.assigned)]
        if not partitions:
            return
        reset = (
            confluent_kafka.OFFSET_END
            if self.settings.consumer.auto_offset_reset == "latest"
            else confluent_kafka.OFFSET_BEGINNING
        )
        for tp in self.consumer.committed(partitions):
            offset = tp.offset if tp.offset >= 0 else reset
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
