"""Integration tests of ``python -m producer_tools`` against the real broker (conftest)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import confluent_kafka
import pytest

from consumer.events import CategoryScore, ClassifiedTicket, LabeledTicket, RawTicket
from consumer.kafka import Producer
from consumer.settings import KafkaSettings, Settings, TopicSettings
from producer_tools.__main__ import run_cli
from producer_tools.labeled_files import stable_ticket_id

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def read_topic(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> list[tuple[str, bytes]]:
    """(key, value) of every record now in ``topic``, read independently of producer_tools."""
    client = confluent_kafka.Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"test-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = client.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = _watermarks(client, confluent_kafka.TopicPartition(topic, p))
            if high > low:
                ends[p] = high
        client.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in ends
            ]
        )
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while ends:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for msg in client.consume(500, 0.5):
                assert msg.error() is None, msg.error()
                key, value, offset = msg.key(), msg.value(), msg.offset()
                assert key is not None and value is not None and offset is not None
                out.append((key.decode(), value))
                if offset + 1 >= ends.get(int(msg.partition() or 0), 1 << 62):
                    del ends[int(msg.partition() or 0)]
        return out
    finally:
        client.close()


def _watermarks(
    client: confluent_kafka.Consumer, tp: confluent_kafka.TopicPartition
) -> tuple[int, int]:
    for _ in range(50):  # a fresh topic's leader may still be elected
        try:
            low, high = client.get_watermark_offsets(tp, 10)
            return int(low), int(high)
        except confluent_kafka.KafkaException:
            time.sleep(0.2)
    raise AssertionError(f"no watermarks for {tp}")


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


MIXED_ROWS = [
    ["text", "category"],  # line 1
    ["My card never arrived", "cards"],  # 2
    ["I was charged twice", "billing"],  # 3
    ["", "billing"],  # 4 missing text
    ["Where is my refund?", ""],  # 5 empty label
    ["How do I reset my PIN", "security"],  # 6
    ["My card never arrived", "cards"],  # 7 duplicate of line 2
    ["Top up failed", "top_up"],  # 8
]
MIXED_GOOD = 4  # distinct good tickets


def test_topics_command_is_idempotent(
    kafka_settings: KafkaSettings, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = TopicSettings(
        raw=f"tt-{unique}.raw",
        classified=f"tt-{unique}.classified",
        review=f"tt-{unique}.review",
        dead_letter=f"tt-{unique}.dead-letter",
        labeled=f"tt-{unique}.labeled",
        shadow=f"tt-{unique}.shadow",
    )
    settings = Settings(_env_file=None, kafka=kafka_settings, topics=names)
    assert run_cli(["topics"], settings) == 0
    out = capsys.readouterr().out
    assert "6 created, 0 already existed" in out and f"created  tt-{unique}.labeled" in out
    assert f"created  tt-{unique}.shadow" in out
    assert run_cli(["topics"], settings) == 0
    out = capsys.readouterr().out
    assert "0 created, 6 already existed" in out and f"exists   tt-{unique}.raw" in out
    topics = (
        confluent_kafka.admin.AdminClient(kafka_settings.client_config())
        .list_topics(timeout=10)
        .topics
    )
    assert f"tt-{unique}.dead-letter" in topics


def test_import_reports_bad_rows_and_reimport_adds_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "history.csv", MIXED_ROWS)
    assert run_cli(["import", str(path)], settings) == 0
    out, err = capsys.readouterr()
    assert "read 7 row(s)" in out
    assert f"imported: {MIXED_GOOD}" in out and "already archived: 0" in out
    assert "duplicate in file: 1" in out
    assert "rejected: 2 (empty_label 1, missing_text 1)" in out
    assert "history.csv:4: missing_text" in err
    assert "history.csv:5: empty_label" in err
    assert "history.csv:7: duplicate" in err and "already on line 2" in err

    archive = read_topic(settings.kafka, settings.topics.labeled)
    assert len(archive) == MIXED_GOOD
    events = [LabeledTicket.model_validate_json(value) for _, value in archive]
    assert all(e.label_source == "history" for e in events)
    assert {k for k, _ in archive} == {e.ticket.id for e in events}
    expected_id = stable_ticket_id(None, "I was charged twice", "billing")
    by_id = {e.ticket.id: e for e in events}
    assert by_id[expected_id].label == "billing"
    assert by_id[expected_id].ticket.body == "I was charged twice"

    # Same tickets again, from a differently named file with a reordered header: nothing new.
    again = write_csv(tmp_path / "again.csv", [[r[1], r[0]] for r in MIXED_ROWS])
    assert run_cli(["import", str(again)], settings) == 0
    out = capsys.readouterr().out
    assert "imported: 0" in out and f"already archived: {MIXED_GOOD}" in out
    assert len(read_topic(settings.kafka, settings.topics.labeled)) == MIXED_GOOD


def test_import_with_label_map(
    settings: Settings,
    datasets_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bank = datasets_dir / "banking77"
    with (bank / "train.csv").open(encoding="utf-8") as handle:
        sample = list(csv.reader(handle))[:41]  # header + 40 rows (in tmp_path only)
    sample.append(["what is this label", "not_a_banking_intent"])  # line 42
    path = write_csv(tmp_path / "bank.csv", sample)
    code = run_cli(["import", str(path), "--label-map", str(bank / "coarse11.json")], settings)
    assert code == 0
    out, err = capsys.readouterr()
    distinct = len({(t, c) for t, c in sample[1:41]})
    assert f"imported: {distinct}" in out
    assert "rejected: 1 (unknown_label 1)" in out
    assert "bank.csv:42: unknown_label" in err

    buckets = set(json.loads((bank / "coarse11.json").read_text()))
    events = [
        LabeledTicket.model_validate_json(v)
        for _, v in read_topic(settings.kafka, settings.topics.labeled)
    ]
    assert len(events) == distinct
    assert {e.label for e in events} <= buckets
    # The id comes from the source label, so re-mapping later cannot duplicate tickets.
    text, label = sample[1]
    assert any(e.ticket.id == stable_ticket_id(None, text, label) for e in events)


def test_replay_publishes_every_good_row(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "replay.csv", MIXED_ROWS)
    assert run_cli(["replay", str(path)], settings) == 0
    out, err = capsys.readouterr()
    good = MIXED_GOOD + 1  # replay publishes the repeated row too: it is a good row
    assert f"published {good} ticket(s) to {settings.topics.raw}" in out
    assert "rejected: 2" in out and "replay.csv:4: missing_text" in err
    raw = read_topic(settings.kafka, settings.topics.raw)
    assert len(raw) == good
    tickets = [RawTicket.model_validate_json(v) for _, v in raw]
    assert sorted(t.body for t in tickets) == sorted(r[0] for r in MIXED_ROWS[1:] if r[0] and r[1])
    assert all(key == t.id for (key, _), t in zip(raw, tickets, strict=True))

    started = time.monotonic()
    assert run_cli(["replay", str(path), "--limit", "3", "--rate", "10"], settings) == 0
    assert time.monotonic() - started >= 0.2  # 3 tickets at 10/s: 0.2 s at least
    assert "published 3 ticket(s)" in capsys.readouterr().out
    assert len(read_topic(settings.kafka, settings.topics.raw)) == good + 3


def _generated_rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_generate_is_reproducible_and_publishes_the_count(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for path, seed in ((first, "7"), (second, "7"), (other, "8")):
        args = ["generate", "--labeled", "--out", str(path), "--count", "15", "--seed", seed]
        assert run_cli(args, settings) == 0
    rows_a, rows_b, rows_c = map(_generated_rows, (first, second, other))
    assert len(rows_a) == 15
    assert [(r["id"], r["body"]) for r in rows_a] == [(r["id"], r["body"]) for r in rows_b]
    assert [r["body"] for r in rows_a] != [r["body"] for r in rows_c]
    assert all({"id", "text", "subject", "body", "label"} <= set(r) for r in rows_a)
    capsys.readouterr()

    assert run_cli(["generate", "--count", "15", "--seed", "7"], settings) == 0
    assert (
        f"published 15 raw ticket(s) (seed 7) to {settings.topics.raw}" in capsys.readouterr().out
    )
    raw = [
        RawTicket.model_validate_json(v) for _, v in read_topic(settings.kafka, settings.topics.raw)
    ]
    assert sorted((t.id, t.body) for t in raw) == sorted((r["id"], r["body"]) for r in rows_a)

    assert run_cli(["generate", "--labeled", "--count", "15", "--seed", "7"], settings) == 0
    labeled = [
        LabeledTicket.model_validate_json(v)
        for _, v in read_topic(settings.kafka, settings.topics.labeled)
    ]
    assert sorted((e.ticket.id, e.label) for e in labeled) == sorted(
        (r["id"], r["label"]) for r in rows_a
    )
    capsys.readouterr()
    # The JSONL file is importable, and its tickets are the ones already archived.
    assert run_cli(["import", str(first), "--label-column", "label"], settings) == 0
    out = capsys.readouterr().out
    assert "imported: 0" in out and "already archived: 15" in out and "rejected: 0" in out


def test_tail_prints_what_was_published(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "t.csv", MIXED_ROWS[:4])  # 2 good rows
    assert run_cli(["replay", str(path)], settings) == 0
    ticket = RawTicket(id="tail-1", body="SECRET-BODY text")
    classified = ClassifiedTicket(
        ticket=ticket,
        category="billing",
        confidence=0.91,
        scores=[CategoryScore(category="billing", score=0.91)],
        model_version="m-42",
    )
    producer = Producer(settings.kafka)
    producer.produce(settings.topics.classified, classified.to_bytes(), key=ticket.id)
    producer.produce(settings.topics.classified, b"not json at all", key=b"junk")
    producer.flush()
    capsys.readouterr()

    args = ["tail", "raw", "--from-beginning", "--max", "2", "--timeout", "15"]
    assert run_cli(args, settings) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and all(" raw " in line for line in lines)
    ids = {stable_ticket_id(None, r[0], r[1]) for r in MIXED_ROWS[1:3]}
    assert {line.split("id=")[1].split()[0] for line in lines} == ids
    assert f"2 record(s) from {settings.topics.raw}" in err

    args = ["tail", "classified", "--from-beginning", "--timeout", "3"]
    assert run_cli(args, settings) == 0
    out = capsys.readouterr().out
    assert "id=tail-1 category=billing confidence=0.910 model=m-42" in out
    assert "UNREADABLE" in out and "key=junk" in out
    assert "SECRET" not in out

    args = ["tail", settings.topics.classified, "--from-beginning", "--json", "--max", "2"]
    assert run_cli([*args, "--timeout", "15"], settings) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [ClassifiedTicket.model_validate(e) for e in events] == [classified]
    assert "skipped non-JSON record" in err


def test_missing_topic_is_bad_input(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["tail", f"no-such-topic-{uuid.uuid4().hex}", "--timeout", "1"], settings) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generate_until_ctrl_c_through_the_environment(
    settings: Settings, kafka_bootstrap: str
) -> None:
    """``python -m producer_tools``: KAFKA_BOOTSTRAP_SERVERS honoured; --count 0 until SIGINT."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKETSORT_TOPICS__RAW": settings.topics.raw,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "producer_tools", "generate", "--count", "0", "--rate", "40"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not read_topic(settings.kafka, settings.topics.raw):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "generate published nothing"
            time.sleep(0.5)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    published = int(out.split("published ")[1].split()[0])
    assert published >= 40
    assert len(read_topic(settings.kafka, settings.topics.raw)) == published
