"""Producing scenario input and knowing where each record landed (partition, offset)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError

from consumer.kafka.config import producer_config
from consumer.settings import KafkaSettings


@dataclass(frozen=True)
class Landed:
    key: str
    partition: int
    offset: int


_QUIET = logging.getLogger("tests.chaos.quiet")
_QUIET.propagate = False
_QUIET.setLevel(logging.CRITICAL + 1)


class LandingProducer:
    """A producer that records where each (key, value) landed (partition, offset)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        # The plain client: broker outages are expected here, so its log goes to a quiet logger.
        self.client = confluent_kafka.Producer(
            producer_config(kafka, **{"message.max.bytes": 4 * 1024 * 1024, "logger": _QUIET})
        )
        self.landed: list[Landed] = []
        self.failures: list[str] = []

    def _report(self, key: str) -> Callable[[KafkaError | None, Any], None]:
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                self.failures.append(f"{key}: {err}")
            else:
                self.landed.append(Landed(key, int(msg.partition()), int(msg.offset())))

        return on_delivery

    def send(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        client = self.client
        for key, value in items:
            while True:
                try:
                    client.produce(self.topic, value=value, key=key, on_delivery=self._report(key))
                    break
                except BufferError:
                    client.poll(0.1)
            client.poll(0)

    def flush(self, timeout: float = 60.0) -> list[Landed]:
        remaining = self.client.flush(timeout)
        assert remaining == 0, f"{remaining} record(s) not delivered in {timeout}s"
        assert not self.failures, self.failures[:5]
        return self.landed


def produce_landed(
    kafka: KafkaSettings, topic: str, items: Iterable[tuple[str, bytes | None]]
) -> list[Landed]:
    """Produce (key, value) pairs and return where each landed (partition, offset)."""
    producer = LandingProducer(kafka, topic)
    producer.send(items)
    return producer.flush()


class StreamProducer:
    """Produces items in the background at a steady pace; ``hurry()`` sends the rest at once."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        items: Sequence[tuple[str, bytes]],
        duration_s: float,
    ) -> None:
        self.items = list(items)
        self.interval = duration_s / max(1, len(self.items))
        self.producer = LandingProducer(kafka, topic)
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-producer", daemon=True)
        self.error: BaseException | None = None

    @property
    def landed(self) -> list[Landed]:
        return self.producer.landed

    def start(self) -> StreamProducer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def hurry(self) -> None:
        self._hurry.set()

    def join(self, timeout: float = 120.0) -> list[Landed]:
        self._hurry.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream producer did not finish"
        if self.error is not None:
            raise self.error
        return self.landed

    def _run(self) -> None:
        try:
            chunk = max(1, round(0.05 / self.interval)) if self.interval < 0.05 else 1
            for start in range(0, len(self.items), chunk):
                self.producer.send(self.items[start : start + chunk])
                self.producer.client.flush(10)
                if not self._hurry.is_set():
                    self._hurry.wait(self.interval * chunk)
            self.producer.flush()
        except BaseException as exc:  # surfaced by join()
            self.error = exc
