"""At-least-once delivery: produce, follow delivery reports, retry, commit contiguously.

Offsets are committed only up to records whose output was delivered, per partition,
contiguously (``OffsetTracker``). A failed delivery is retried with backoff while the source
is paused. An output refused again and again while other outputs to its topic go
through (too large for the topic, an invalid record) is a poison record, not an outage:
after ``max_delivery_attempts`` it becomes a dead letter that says so; a dead letter
that is itself refused is replaced by a minimal one (metadata only); if even that is refused
the service stops (``OutputUndeliverable``, exit 6) instead of stalling the partition. An
outage, where nothing reaches a topic, is retried for as long as it lasts (issue #12).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from consumer.dead_letter import dead_letter_output, minimal_dead_letter
from consumer.errors import ExitCode, TicketsortError
from consumer.kafka import KafkaFatal, is_fatal
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.offsets import OffsetTracker
from consumer.outputs import BatchResult, Output
from consumer.settings import Settings
from consumer.sinks.base import (
    CommitClient,
    Delivered,
    DeliveryCallback,
    PartitionKey,
    ProducerClient,
    kafka_error,
)

log = get_logger(__name__)

COMMIT_INTERVAL_S = 0.2
ISOLATION_WAIT_S = 5.0  # for the queue to empty around an output retried alone
# Refusals that belong to the record, not to the topic or the cluster.
RECORD_ERRORS = frozenset(
    {
        confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE,  # also the client's local refusal
        confluent_kafka.KafkaError.INVALID_MSG_SIZE,
        confluent_kafka.KafkaError.INVALID_RECORD,
        confluent_kafka.KafkaError.INVALID_MSG,
    }
)


class OutputUndeliverable(TicketsortError):
    """Not even a minimal dead letter (metadata only) could be written."""

    exit_code = ExitCode.OUTPUT_UNDELIVERABLE


@dataclass
class _Retry:
    output: Output
    due: float
    first_failed: float
    record_error: bool  # the last refusal named the record (too large, invalid)


class AtLeastOnceSink:
    def __init__(
        self,
        settings: Settings,
        producer: ProducerClient,
        committer: CommitClient,
        metrics: Metrics,
        on_delivered: Delivered,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.committer = committer
        self.metrics = metrics
        self.on_delivered = on_delivered
        self.tracker = OffsetTracker()
        self.retries: list[_Retry] = []
        self._last_delivered: dict[str, float] = {}  # topic -> when an output last landed
        self._first_failed: dict[int, float] = {}  # id(output) -> its first failure
        self._last_commit = 0.0
        self._now = clock  # monotonic seconds (a test moves it on instead of sleeping)

    # Sink interface ---------------------------------------------------------------------
    def start(self) -> None:
        return None

    def publish(self, result: BatchResult) -> bool:
        per_record = result.outputs_per_record()
        for record in result.records:
            key = (record.topic, record.partition, record.offset)
            self.tracker.add(record.topic, record.partition, record.offset, per_record.get(key, 1))
        for output in result.outputs:
            self._produce(output)
        self.producer.poll(0)
        return True

    def in_flight(self) -> int:
        return self.tracker.in_flight()

    def uncommitted(self) -> bool:
        return bool(self.tracker.committable())

    def blocked(self) -> bool:
        return bool(self.retries) or self.in_flight() >= self.settings.batching.max_in_flight

    def can_resume(self) -> bool:
        return not self.retries and self.in_flight() < max(
            1, self.settings.batching.max_in_flight // 2
        )

    def service(self) -> None:
        self.producer.poll(0)
        self._retry_due()
        self.commit()

    def partitions_revoked(self, keys: list[PartitionKey]) -> None:
        # Deliver what is in flight, then commit it, before the partitions go to another member.
        self.drain(timeout=10.0)
        self.commit(force=True, only=set(keys))
        self._forget(keys)

    def partitions_lost(self, keys: list[PartitionKey]) -> None:
        self._forget(keys)

    def close(self) -> None:
        self.drain(timeout=30.0)
        self.producer.poll(0)
        self.commit(force=True)

    # Delivery ---------------------------------------------------------------------------
    def _produce(self, output: Output) -> None:
        output.attempts += 1
        callback = self._callback(output)
        try:
            self.producer.produce(
                output.topic,
                output.value,
                key=output.key,
                headers=output.headers,
                on_delivery=callback,
            )
        except KafkaException as exc:
            # Refused before it was queued ("Unknown topic", a record over message.max.bytes):
            # a failed delivery like any other.
            error = kafka_error(exc)
            if is_fatal(error):
                raise KafkaFatal(f"produce: {error}") from exc
            callback(error, None)

    def _callback(self, output: Output) -> DeliveryCallback:
        def on_delivery(err: confluent_kafka.KafkaError | None, _msg: object) -> None:
            now = self._now()
            if err is None:
                self._last_delivered[output.topic] = now
                self._first_failed.pop(id(output), None)
                record = output.record
                self.tracker.mark_done(record.topic, record.partition, record.offset)
                self.on_delivered(output)
                return
            self.metrics.delivery_failures.labels(topic=output.topic).inc()
            output.failures.append(str(err))
            if output.isolated:
                output.isolated_failures += 1
            first = self._first_failed.setdefault(id(output), now)
            log.error(
                "delivery_failed",
                topic=output.topic,
                source=output.source,
                error=str(err),
                attempts=output.attempts,
            )
            backoff = min(
                self.settings.consumer.retry_backoff_max_s,
                0.5 * 2 ** min(output.attempts - 1, 6),
            )
            self.retries.append(_Retry(output, now + backoff, first, err.code() in RECORD_ERRORS))

        return on_delivery

    def _topic_works(self, retry: _Retry) -> bool:
        """Others to the same topic landed since this output first failed."""
        return self._last_delivered.get(retry.output.topic, -1.0) > retry.first_failed

    def _suspect(self, retry: _Retry) -> bool:
        """Worth retrying alone: its topic takes other outputs, or (a dead letter, which has
        no traffic to compare with) the broker named the record as the problem."""
        dead_letter = retry.output.route == "dead_letter"
        return self._topic_works(retry) or (dead_letter and retry.record_error)

    def _is_poison(self, retry: _Retry) -> bool:
        """Refused again and again, alone, while the topic works (or for being the record).

        When nothing lands on a topic it is an outage, retried for as long as it lasts.
        """
        output = retry.output
        return (
            output.attempts >= self.settings.consumer.max_delivery_attempts
            and output.isolated_failures > 0
            and self._suspect(retry)
        )

    def _retry_due(self) -> None:
        if not self.retries:
            return
        now = self._now()
        due = [r for r in self.retries if r.due <= now]
        if not due:
            return
        self.retries = [r for r in self.retries if r.due > now]
        log.warning("delivery_retry", count=len(due))
        for retry in due:
            output = retry.output
            if self._is_poison(retry):
                self._produce(self._replacement(output))
            elif self._suspect(retry):
                # Retried alone: a broker refuses a whole record batch for one bad record
                # (too large, invalid), so a retry batched with others would fail them too.
                self.drain(ISOLATION_WAIT_S)
                output.isolated = True
                self._produce(output)
                self.drain(ISOLATION_WAIT_S)
            else:
                output.isolated = False
                self._produce(output)

    def _replacement(self, poison: Output) -> Output:
        """The dead letter that stands in for an output that can never be delivered."""
        self._first_failed.pop(id(poison), None)
        record = poison.record
        reason = (
            f"output to {poison.topic} refused {poison.attempts} times:"
            f" {poison.failures[-1] if poison.failures else 'unknown error'}"
        )
        topics = self.settings.topics
        if poison.route != "dead_letter":
            replacement = dead_letter_output(
                record, "undeliverable_output", reason, topics.dead_letter, topics.max_message_bytes
            )
        elif not any(name == "ticketsort.minimal" for name, _ in poison.headers):
            replacement = minimal_dead_letter(
                record, poison.error_type or "undeliverable_output", reason, topics.dead_letter
            )
        else:
            raise OutputUndeliverable(
                f"not even a minimal dead letter for {poison.source} reached"
                f" {poison.topic}: {reason}"
            )
        self.metrics.dead_lettered.labels(error_type=replacement.error_type or "").inc()
        log.error(
            "poison_output",
            source=poison.source,
            topic=poison.topic,
            route=poison.route,
            replaced_by="minimal_dead_letter" if poison.route == "dead_letter" else "dead_letter",
            reason=reason,
        )
        return replacement

    def drain(self, timeout: float) -> None:
        deadline = self._now() + timeout
        while len(self.producer) and self._now() < deadline:
            self.producer.poll(0.05)

    # Commits ----------------------------------------------------------------------------
    def commit(self, *, force: bool = False, only: set[PartitionKey] | None = None) -> None:
        now = self._now()
        if not force and now - self._last_commit < COMMIT_INTERVAL_S:
            return
        self._last_commit = now
        offsets = self.tracker.committable()
        if only is not None:
            offsets = {k: v for k, v in offsets.items() if k in only}
        if not offsets:
            return
        try:
            self.committer.commit([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        except KafkaException as exc:
            if is_fatal(kafka_error(exc)):
                raise KafkaFatal(f"commit: {exc}") from exc
            log.warning("commit_failed", error=str(exc))
            return
        self.tracker.mark_committed(offsets)
        self.metrics.commits.inc()

    def _forget(self, keys: list[PartitionKey]) -> None:
        gone = set(keys)
        self.tracker.forget(keys)
        self.retries = [
            r
            for r in self.retries
            if (r.output.record.topic, r.output.record.partition) not in gone
        ]
