"""Unit tests of producer_tools without a broker: file reader, label maps, pacing, rendering."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.events import (
    CategoryScore,
    ClassifiedTicket,
    DeadLetter,
    LabeledTicket,
    RawTicket,
    ReviewRequest,
)
from consumer.kafka import Record
from producer_tools.__main__ import run_cli
from producer_tools.labeled_files import (
    Columns,
    LabeledFileError,
    Reason,
    Row,
    RowError,
    load_label_map,
    read_labeled_file,
    stable_ticket_id,
)
from producer_tools.pacing import Pacer
from producer_tools.render import render_record

REPO = Path(__file__).resolve().parent.parent


def _verdicts(items: list[Row | RowError]) -> list[tuple[int, str]]:
    return [(i.line, "ok" if isinstance(i, Row) else i.reason.value) for i in items]


def test_csv_reader_reports_each_bad_row_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_bytes(
        b"id,text,category\n"  # 1
        b"a1,my card is lost,cards\n"  # 2 ok
        b'a2,"two\nlines",billing\n'  # 3-4 ok (starts on 3)
        b"a3,,cards\n"  # 5 missing text
        b"a4,no label here,\n"  # 6 empty label
        b"\n"  # 7 blank
        b"bad id,text,cards\n"  # 8 invalid id
        b"a5,too,many,fields\n"  # 9 malformed
        b"a6,\xff\xfe broken,cards\n"  # 10 invalid utf-8
        b"a7," + b"x" * 200 + b",cards\n"  # 11 too large (limit 100 below)
        b"a8,fine again,refunds\n"  # 12 ok
    )
    items = list(read_labeled_file(path, Columns(), max_text_bytes=100))
    assert _verdicts(items) == [
        (2, "ok"),
        (3, "ok"),
        (5, "missing_text"),
        (6, "empty_label"),
        (7, "blank_line"),
        (8, "invalid_id"),
        (9, "malformed"),
        (10, "invalid_utf8"),
        (11, "row_too_large"),
        (12, "ok"),
    ]
    rows = [i for i in items if isinstance(i, Row)]
    assert [r.ticket.id for r in rows] == ["a1", "a2", "a8"]
    assert rows[1].ticket.body == "two\nlines"
    assert [r.label for r in rows] == ["cards", "billing", "refunds"]
    assert all(not r.id_generated for r in rows)


def test_label_map_maps_and_rejects_unknown_labels(tmp_path: Path) -> None:
    map_path = tmp_path / "map.json"
    map_path.write_text(json.dumps({"cards": ["card_arrival", "lost_card"], "fees": ["fee"]}))
    path = tmp_path / "t.csv"
    path.write_text("text,category\nwhere is it,card_arrival\nhm,nope\ncharged,fee\n")
    items = list(read_labeled_file(path, label_map=load_label_map(map_path)))
    assert _verdicts(items) == [(2, "ok"), (3, "unknown_label"), (4, "ok")]
    rows = [i for i in items if isinstance(i, Row)]
    assert [(r.source_label, r.label) for r in rows] == [("card_arrival", "cards"), ("fee", "fees")]
    assert all(r.id_generated and r.ticket.id.startswith("imp-") for r in rows)


def test_jsonl_reader_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        json.dumps({"text": "ok", "category": "a", "id": 7}),  # 1 ok, numeric id
        "{not json",  # 2
        json.dumps(["a", "list"]),  # 3
        json.dumps({"category": "a"}),  # 4 missing text
        "",  # 5 blank
        json.dumps({"text": ["x"], "category": "a"}),  # 6 malformed value
        json.dumps({"text": "t", "category": "a", "channel": "pigeon"}),  # 7 invalid ticket
        json.dumps({"text": "t", "category": "a", "channel": "chat", "language": "de"}),  # 8 ok
    ]
    path.write_text("\n".join(lines) + "\n")
    items = list(read_labeled_file(path))
    assert _verdicts(items) == [
        (1, "ok"),
        (2, "malformed"),
        (3, "malformed"),
        (4, "missing_text"),
        (5, "blank_line"),
        (6, "malformed"),
        (7, "invalid_ticket"),
        (8, "ok"),
    ]
    first, last = items[0], items[-1]
    assert isinstance(first, Row) and first.ticket.id == "7" and not first.id_generated
    assert isinstance(last, Row) and last.ticket.channel == "chat" and last.ticket.language == "de"
    assert last.id_generated


def test_error_details_never_echo_ticket_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    secret = "SECRET-CUSTOMER-TEXT"
    path.write_text(json.dumps({"text": secret, "category": "a", "subject": "s" * 3000}) + "\n")
    (item,) = read_labeled_file(path, Columns(subject="subject"))
    assert isinstance(item, RowError) and item.reason is Reason.INVALID_TICKET
    assert "subject" in item.detail and secret not in item.detail


def test_subject_and_body_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("subject,body,label\nRefund?,I was charged twice,billing\n")
    (row,) = read_labeled_file(path, Columns(subject="subject", body="body", label="label"))
    assert isinstance(row, Row)
    assert (row.ticket.subject, row.ticket.body) == ("Refund?", "I was charged twice")
    assert row.ticket.id == stable_ticket_id("Refund?", "I was charged twice", "billing")


def test_generated_ids_depend_on_content_not_on_the_file(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("text,category\nhello there,x\nhello there,y\n")
    jsonl_path = tmp_path / "b.jsonl"
    jsonl_path.write_text(json.dumps({"text": "hello there", "category": "x"}) + "\n")
    a1, a2 = read_labeled_file(csv_path)
    (b1,) = read_labeled_file(jsonl_path)
    assert isinstance(a1, Row) and isinstance(a2, Row) and isinstance(b1, Row)
    assert a1.ticket.id == b1.ticket.id != a2.ticket.id
    assert a1.ticket.id == stable_ticket_id(None, "hello there", "x")


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("t.txt", "text,category\n", {}, "suffix"),
        ("t.csv", "", {}, "empty file"),
        ("t.csv", "body,category\nx,y\n", {}, "'text' not in the header"),
        ("t.csv", "text,category\nx,y\n", {"columns": Columns(id="ticket")}, "'ticket'"),
        ("t.csv", "text,category\n", {"fmt": "xml"}, "unknown format"),
    ],
)
def test_unreadable_files_raise_before_any_row(
    tmp_path: Path, name: str, content: str, kwargs: dict[str, object], message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LabeledFileError, match=message):
        read_labeled_file(path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": ["x"], "b": ["x"]}', "in both"),
        ('["x"]', "non-empty object"),
        ('{"a": "x"}', "list of strings"),
        ("{nope", "not readable JSON"),
    ],
)
def test_bad_label_maps(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(LabeledFileError, match=message):
        load_label_map(path)


def test_coarse11_label_map_covers_banking77(datasets_dir: Path) -> None:
    mapping = load_label_map(datasets_dir / "banking77" / "coarse11.json")
    assert len(set(mapping.values())) == 11
    with (datasets_dir / "banking77" / "test.csv").open(encoding="utf-8") as handle:
        labels = {row["category"] for row in csv.DictReader(handle)}
    assert len(labels) == 77
    assert labels <= set(mapping)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\x00"), min_size=1
    ).filter(lambda s: s.strip()),
    label=st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
)
def test_csv_round_trip(tmp_path: Path, text: str, label: str) -> None:
    path = tmp_path / "rt.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerow([text, label])
    (row,) = read_labeled_file(path)
    assert isinstance(row, Row)
    assert (row.ticket.body, row.label) == (text, label)


def test_pacer_spaces_messages_at_the_rate() -> None:
    now = [100.0]
    waits: list[float] = []

    def idle(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = Pacer(4.0, idle=idle, clock=lambda: now[0])
    for sent in range(9):
        pacer.wait(sent)
    assert pacer.elapsed() == pytest.approx(2.0)
    assert pacer.rate_of(9) == pytest.approx(4.5)
    assert sum(waits) == pytest.approx(2.0)
    unpaced = Pacer(None, idle=idle, clock=lambda: now[0])
    waits.clear()
    for sent in range(100):
        unpaced.wait(sent)
    assert waits == []
    stopping = Pacer(1.0, idle=idle, clock=lambda: now[0], stopped=lambda: sum(waits) >= 0.5)
    assert stopping.wait(0) is True
    assert stopping.wait(5) is False  # gave up after 0.5 s instead of waiting 5 s
    assert sum(waits) == pytest.approx(0.5)


def _record(value: bytes | None, key: bytes | None = b"t-1") -> Record:
    return Record("topic", 1, 42, key, value, (), 1_700_000_000_000)


def test_render_one_line_per_event_without_ticket_text() -> None:
    body = "please help SECRET-BODY"
    ticket = RawTicket(id="t-1", subject="SECRET-SUBJECT", body=body, language="en")
    scores = [CategoryScore(category="billing", score=0.9), CategoryScore(category="x", score=0.1)]
    classified = ClassifiedTicket(
        ticket=ticket, category="billing", confidence=0.9, scores=scores, model_version="v7"
    )
    review = ReviewRequest(
        ticket=ticket,
        category="x",
        confidence=0.4,
        scores=scores,
        model_version="v7",
        threshold=0.6,
    )
    labeled = LabeledTicket(
        ticket=ticket, label="billing", label_source="reviewer", labeled_by="ann"
    )
    dead = DeadLetter(
        original_key="dC0x",
        original_value=None,
        original_size=3,
        source_topic="raw",
        source_partition=0,
        source_offset=5,
        error_type="ValidationError",
        error_message="bad",
    )
    lines = {
        "raw": render_record(_record(ticket.to_bytes())),
        "classified": render_record(_record(classified.to_bytes())),
        "review": render_record(_record(review.to_bytes())),
        "labeled": render_record(_record(labeled.to_bytes())),
        "dead": render_record(_record(dead.to_bytes())),
        "junk": render_record(_record(b"\xffnot json")),
        "tombstone": render_record(_record(None)),
    }
    for line in lines.values():
        assert "\n" not in line and "SECRET" not in line and "p1@42" in line
    assert "id=t-1" in lines["raw"] and "lang=en" in lines["raw"]
    for part in ("category=billing", "confidence=0.900", "model=v7", "next=x:0.100"):
        assert part in lines["classified"]
    for part in ("reason=low_confidence", "threshold=0.600", "category=x"):
        assert part in lines["review"]
    assert "novelty" not in lines["classified"] and "novelty" not in lines["review"]
    novel = review.model_copy(
        update={"reason": "novel", "novelty": 812.5, "novelty_threshold": 700.0, "fine_label": "f"}
    )
    rendered = render_record(_record(novel.to_bytes()))
    assert "reason=novel" in rendered and "novelty=812.5/700" in rendered and "fine=f" in rendered
    assert "label=billing source=reviewer by=ann" in lines["labeled"]
    assert "key=t-1" in lines["dead"] and "ValidationError: bad" in lines["dead"]
    assert "UNREADABLE" in lines["junk"] and "tombstone" in lines["tombstone"]


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["generate", "--count", "0"]) == 2
    assert "needs --rate" in capsys.readouterr().err
    assert run_cli(["import", str(tmp_path / "missing.csv"), "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run_cli(["replay", "x.csv", "--rate", "-3"])
    assert exc.value.code == 2
    assert "positive" in capsys.readouterr().err


def test_dry_run_import_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,category\na,x\na,x\n,x\nb,\n")
    assert run_cli(["import", str(path), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "read 4 row(s)" in out and "valid (dry run): 1" in out
    assert "duplicate in file: 1" in out
    assert "rejected: 2 (empty_label 1, missing_text 1)" in out
    assert "t.csv:3: duplicate" in err and "t.csv:4: missing_text" in err
    assert "t.csv:5: empty_label" in err


def test_unreachable_broker_exits_3() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "producer_tools", "tail", "raw", "--broker-timeout", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "no Kafka broker answered at 127.0.0.1:1" in proc.stderr
