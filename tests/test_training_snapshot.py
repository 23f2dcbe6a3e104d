"""Snapshots of a real archive topic (needs the broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from consumer.events import LabeledTicket, RawTicket
from consumer.kafka import Producer
from consumer.settings import Settings
from training import snapshot as snapshot_module
from training.args import TrainingArgs
from training.dataset import prepare
from training.pipeline import run_training
from training.snapshot import end_offsets, snapshot_archive

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def labeled(
    ticket_id: str, label: str, *, body: str, source: str = "history", hours: int = 0
) -> bytes:
    event = LabeledTicket(
        ticket=RawTicket(id=ticket_id, subject=None, body=body),
        label=label,
        label_source=source,  # type: ignore[arg-type]
        labeled_at=T0 + timedelta(hours=hours),
    )
    return event.to_bytes()


def produce(settings: Settings, items: list[tuple[str, bytes | None]]) -> None:
    producer = Producer(settings.kafka)
    for key, value in items:
        producer.client.produce(settings.topics.labeled, value=value, key=key)
    producer.flush()


def test_snapshot_stops_at_the_end_offsets_taken_at_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first: list[tuple[str, bytes | None]] = [
        (f"tk-{i}", labeled(f"tk-{i}", "billing" if i % 2 else "refund", body=f"ticket number {i}"))
        for i in range(40)
    ]
    first += [
        # a reviewer's correction of tk-1, then a later history re-import of the old label
        ("tk-1", labeled("tk-1", "security", body="ticket number 1", source="reviewer", hours=1)),
        ("tk-1", labeled("tk-1", "billing", body="ticket number 1", hours=5)),
        ("tk-2", None),  # tombstone: forget tk-2
        ("junk", b"{not json"),
    ]
    produce(settings, first)
    late = [(f"late-{i}", labeled(f"late-{i}", "billing", body=f"late {i}")) for i in range(30)]
    marks_seen: dict[int, tuple[int, int]] = {}

    def offsets_then_more_arrive(*args: Any, **kwargs: Any) -> dict[int, tuple[int, int]]:
        marks = end_offsets(*args, **kwargs)
        marks_seen.update(marks)
        produce(settings, late)  # these arrive while the snapshot reads
        return marks

    monkeypatch.setattr(snapshot_module, "end_offsets", offsets_then_more_arrive)
    raw = snapshot_archive(settings, timeout_s=30)

    ids = {r.ticket_id for r in raw.records}
    assert not any(i.startswith("late-") for i in ids), "read past the end offsets"
    assert len(raw.records) == len(first) - 1  # the junk record is a drop
    assert raw.drops["invalid_record"] == 1
    parts = raw.info["partitions"]
    assert {int(p): (v["start"], v["end"]) for p, v in parts.items()} == marks_seen
    assert sum(v["end"] - v["start"] for v in parts.values()) == len(first)
    assert raw.info["records"] == len(first)

    # the late records are really there: a new snapshot reads them
    again = snapshot_archive(settings, timeout_s=30)
    assert len(again.records) == len(first) - 1 + len(late)

    prepared = prepare(raw)
    labels = {e.ticket_id: e.label for e in prepared.examples}
    assert labels["tk-1"] == "security", "the reviewer's label must win"
    assert "tk-2" not in labels
    assert prepared.drops["deleted"] == 1


def test_snapshot_of_a_missing_topic_is_bad_input(settings: Settings) -> None:
    from training.errors import BadInput

    missing = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"labeled": "no-such-topic-xyz"})}
    )
    with pytest.raises(BadInput):
        snapshot_archive(missing, timeout_s=10)


@pytest.mark.slow
def test_train_from_the_archive_topic(settings: Settings, synthetic_file: Path) -> None:
    items: list[tuple[str, bytes | None]] = []
    for line in synthetic_file.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        ticket = RawTicket(id=row["ticket_id"], subject=row["subject"], body=row["body"])
        event = LabeledTicket(ticket=ticket, label=row["category"], label_source="history")
        items.append((ticket.id, event.to_bytes()))
    produce(settings, items)
    args = TrainingArgs(max_steps=2, batch_size=16, baseline=False, gap_sample=32)
    result = run_training(settings, args, source="archive", progress=False)
    assert result.promoted and result.model_dir.parent == settings.model.store
    snap = json.loads((result.model_dir / "snapshot.json").read_text())
    assert snap["source"]["kind"] == "kafka"
    assert snap["source"]["topic"] == settings.topics.labeled
    client = confluent_kafka.Consumer(
        {**settings.kafka.client_config(), "group.id": "offsets-check"}
    )
    try:
        for partition, span in snap["source"]["partitions"].items():
            tp = confluent_kafka.TopicPartition(settings.topics.labeled, int(partition))
            assert client.get_watermark_offsets(tp, timeout=10)[1] == span["end"]
    finally:
        client.close()
    assert snap["records_in"] == len(items)
