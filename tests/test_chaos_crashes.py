"""Chaos: the consumer process is SIGKILLed at random moments while a stream flows in.

At-least-once: nothing is lost; the duplicates are bounded by what had been delivered but
not yet committed when each kill landed (measured right after the kill) plus one batch.
Exactly-once (outputs read with isolation.level=read_committed): nothing lost, nothing
duplicated. ``CHAOS_SCALE`` multiplies the tickets and the number of kills; ``CHAOS_SEED``
replays a run's kill moments.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import secrets
import time
from pathlib import Path

import pytest

from consumer.kafka import ensure_topics
from consumer.settings import Settings
from tests.chaos.figures import SCALE, Figures, record_figures, scaled
from tests.chaos.producing import Landed, StreamProducer, produce_landed
from tests.chaos.reading import OutputReader, committed, tally
from tests.chaos.service import ServiceProcess, chaos_env, kafka_extra
from tests.chaos.tickets import good_ticket, hostile_payload
from tests.chaos.zygote import Zygote

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

MAX_BATCH = 8


def _mixed_stream(prefix: str, n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """Mostly good tickets, one in ten malformed (so the dead-letter path crashes too)."""
    items = []
    for i in range(n):
        if i % 10 == 9:
            value = hostile_payload(
                rng, rng.choice(["not_json", "wrong_types"]), f"{prefix}-{i}", 0
            )
            items.append((f"{prefix}-{i}", value or b"x"))
        else:
            items.append(good_ticket(prefix, i))
    return items


def _throughput(service: ServiceProcess) -> float | None:
    """Records per second over the batches of one run (first to last batch log line)."""
    batches = service.events("batch")
    if len(batches) < 3:
        return None
    stamps = [dt.datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")) for b in batches]
    span = (stamps[-1] - stamps[0]).total_seconds()
    size = sum(int(b["size"]) for b in batches[1:])
    return round(size / span, 1) if span > 0 else None


@pytest.mark.parametrize("processing", ["at-least-once", "exactly-once"])
def test_sigkill_at_random_moments_then_restart(
    processing: str,
    settings: Settings,
    chaos_model_dir: Path,
    chaos_spawner: Zygote | None,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    exactly_once = processing == "exactly-once"
    n, kills = scaled(300), max(2, round(2 * SCALE))
    seed = int(os.environ.get("CHAOS_SEED", secrets.randbelow(1 << 30)))
    rng = random.Random(seed)
    print(f"\n[chaos] {processing}: {n} tickets, {kills} SIGKILLs, CHAOS_SEED={seed}")
    group = settings.kafka.group_id
    env = chaos_env(
        settings,
        chaos_model_dir,
        TICKETSORT_CONSUMER__PROCESSING=processing,
        TICKETSORT_BATCHING__MAX_BATCH=str(MAX_BATCH),
        TICKETSORT_ROUTING__THRESHOLD="0.3",
        # Static membership (a stable instance id, as a StatefulSet pod name would give):
        # the restarted process takes its partitions back at once instead of waiting for the
        # killed member's session to expire.
        TICKETSORT_KAFKA__EXTRA=kafka_extra(
            **{"group.instance.id": f"{group}-0", "session.timeout.ms": 10000}
        ),
        # Exactly-once: a stable transactional id fences the killed producer at restart and
        # aborts its open transaction (a random id would leave it open until it times out).
        TICKETSORT_CONSUMER__TRANSACTIONAL_ID=f"{group}-txn-0",
    )
    stream = StreamProducer(
        settings.kafka, settings.topics.raw, _mixed_stream(group, n, rng), duration_s=8.0 * kills
    ).start()
    reader = OutputReader(settings, "read_committed" if exactly_once else "read_uncommitted")
    at_risk: list[int] = []
    try:
        for crash in range(kills):
            service = ServiceProcess(env, tmp_path / f"run-{crash}.log", chaos_spawner)
            try:
                assert service.wait_event("batch", 180), service.tail()
                time.sleep(rng.uniform(0.0, 1.5))
                assert service.alive(), service.tail()
                service.kill()
            finally:
                service.stop()
            if not exactly_once:
                # What the restart will process again: delivered, but at or past the commit.
                time.sleep(0.5)
                seen = set(reader.drain().keys())
                offsets = committed(settings.kafka, group, settings.topics.raw, 3)
                landed: list[Landed] = list(stream.landed)
                at_risk.append(
                    sum(
                        1
                        for x in landed
                        if x.key in seen and x.offset >= max(0, offsets[x.partition])
                    )
                )
        stream.hurry()
        final = ServiceProcess(env, tmp_path / "run-final.log", chaos_spawner)
        try:
            landed = stream.join()
            out = reader.wait_for({x.key for x in landed}, timeout=180)
            assert final.alive(), final.tail()
        finally:
            code = final.stop()
        notes: dict[str, object] = {"seed": seed}
        if exactly_once:
            # Outputs of the transactions the kills cut short: written, then aborted.
            everything = OutputReader(settings, "read_uncommitted")
            try:
                notes["aborted"] = sum(everything.drain().keys().values()) - sum(
                    out.keys().values()
                )
            finally:
                everything.close()
        else:
            notes["at_risk"] = at_risk
        notes["tput"] = _throughput(final)
    finally:
        reader.close()
    assert code == 0, final.tail()
    fig = record_figures(
        tally(
            f"consumer SIGKILL x{kills} ({processing})",
            landed,
            out,
            started,
            **notes,
        )
    )
    assert not out.bad_values, out.bad_values[:5]
    assert fig.lost == 0, "records lost"
    if exactly_once:
        assert fig.duplicated == 0, "exactly-once produced duplicates"
    else:
        bound = sum(at_risk) + kills * MAX_BATCH
        assert fig.duplicated <= bound, (
            f"{fig.duplicated} duplicates, more than the {sum(at_risk)} delivered-but-uncommitted"
            f" at the kills plus one batch per kill"
        )
    offsets = committed(settings.kafka, group, settings.topics.raw, 3)
    ends: dict[int, int] = {}
    for x in landed:
        ends[x.partition] = max(ends.get(x.partition, 0), x.offset + 1)
    assert {p: offsets[p] for p in ends} == ends, "final commit is at the end of the input"


@pytest.mark.skipif(
    SCALE <= 1 and os.environ.get("CHAOS_BENCH") != "1",
    reason="a measurement, not a check: runs with CHAOS_SCALE > 1 or CHAOS_BENCH=1",
)
def test_throughput_cost_of_exactly_once(
    settings: Settings,
    chaos_model_dir: Path,
    chaos_spawner: Zygote | None,
    tmp_path: Path,
) -> None:
    """The same backlog through each mode (default batching); records per second."""
    n = scaled(1000)
    rates: dict[str, float] = {}
    for processing in ("at-least-once", "exactly-once"):
        started = time.monotonic()
        group = f"{settings.kafka.group_id}-{processing}"
        topics = settings.topics.model_copy(update={"raw": f"{settings.topics.raw}-{processing}"})
        ensure_topics(settings.kafka, topics)
        run = settings.model_copy(
            update={
                "topics": topics,
                "kafka": settings.kafka.model_copy(update={"group_id": group}),
            }
        )
        items = [good_ticket(group, i) for i in range(n)]
        landed = produce_landed(settings.kafka, topics.raw, items)
        env = chaos_env(run, chaos_model_dir, TICKETSORT_CONSUMER__PROCESSING=processing)
        service = ServiceProcess(env, tmp_path / f"{processing}.log", chaos_spawner)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if sum(int(e["size"]) for e in service.events("batch")) >= n:
                    break
                time.sleep(0.5)
        finally:
            assert service.stop() == 0, service.tail()
        rate = _throughput(service)
        assert rate is not None
        rates[processing] = rate
        record_figures(
            Figures(
                scenario=f"throughput ({processing})",
                inputs=len(landed),
                seconds=time.monotonic() - started,
                notes={"records_per_s": rate, "max_batch": 32},
            )
        )
    cost = 1 - rates["exactly-once"] / rates["at-least-once"]
    print(f"\n[chaos] exactly-once costs {cost:.0%} of at-least-once throughput: {rates}")
