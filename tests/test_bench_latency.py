"""The latency row's warm-up and its producer (fast, no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import end_to_end
from bench.report import speed_section
from consumer.events import RawTicket
from consumer.settings import Settings


class _QuietProducer:
    """Like ``consumer.kafka.Producer``: ``len()`` is what is queued, 0 once flushed."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def produce(self, topic: str, value: bytes, key: str | None = None) -> None:
        self.sent.append(str(key))

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def _tickets(n: int) -> list[RawTicket]:
    return [RawTicket(id=f"t{i}", body=f"ticket {i}") for i in range(n)]


def test_produce_sends_through_the_producer_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_new_producer(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a new producer was made: its first records wait for it to connect")

    monkeypatch.setattr(end_to_end, "Producer", no_new_producer)
    given = _QuietProducer()
    settings = Settings()
    end_to_end.produce(settings, _tickets(3), producer=given)  # type: ignore[arg-type]
    end_to_end.produce(settings, _tickets(5)[3:], producer=given)  # type: ignore[arg-type]
    assert given.sent == ["t0", "t1", "t2", "t3", "t4"]


def test_the_warm_up_is_the_first_seconds_and_at_least_two_batches() -> None:
    tickets = _tickets(3000)
    warm, timed = end_to_end.split_warmup(tickets, rate=200.0, max_batch=32, warmup_s=2.0)
    assert (len(warm), len(timed)) == (400, 2600)
    assert warm + timed == tickets
    warm, _ = end_to_end.split_warmup(tickets, rate=10.0, max_batch=32, warmup_s=2.0)
    assert len(warm) == 64, "two batches even at a slow rate"
    warm, timed = end_to_end.split_warmup(_tickets(100), rate=200.0, max_batch=32, warmup_s=2.0)
    assert (len(warm), len(timed)) == (50, 50), "never more than half the stream"


def test_percentiles_and_an_empty_sample() -> None:
    got = end_to_end.percentiles(list(range(1, 101)))
    assert got["received"] == 100 and got["p50_ms"] == 50.5 and got["max_ms"] == 100.0
    assert got["p99_ms"] == 99.0  # 99.01, rounded to 0.1 ms
    assert end_to_end.percentiles([]) == {"received": 0}


def test_benchmarks_md_shows_the_warm_up_apart_from_the_measured_latency() -> None:
    from tests.test_bench_load import _speed

    speed = _speed(loaded_fp32=False)
    speed["latency"]["warmup"] = {
        "tickets": 400, "received": 400, "p50_ms": 90.0, "p99_ms": 754.0, "max_ms": 803.0
    }  # fmt: skip
    text = "\n".join(speed_section(speed, {"gpu": None, "cpu_flags": []}))
    assert "p99 250 ms" in text
    assert "a warm-up of 400 tickets" in text and "p99 754.0 ms" in text
    del speed["latency"]["warmup"]
    assert "a warm-up of" not in "\n".join(speed_section(speed, {"gpu": None, "cpu_flags": []}))
