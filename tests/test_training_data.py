"""Training data: deduplication, drops, the id-hash split, file sources (no model, no broker)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from training.dataset import latest_per_ticket, prepare
from training.errors import BadInput
from training.files import Columns, load_label_map, read_file
from training.records import Example, RawData, SourceRecord
from training.split import assign_split, split_examples

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SALT = "test-salt"


def rec(
    ticket_id: str,
    label: str,
    *,
    source: str = "history",
    at: datetime | None = T0,
    offset: int = 0,
    body: str = "my invoice is wrong",
    deleted: bool = False,
) -> SourceRecord:
    return SourceRecord(
        ticket_id=ticket_id,
        subject=None,
        body=body,
        label=label,
        label_source=source,  # type: ignore[arg-type]
        labeled_at=at,
        position=(0, offset),
        deleted=deleted,
    )


def split_of(ticket_id: str, holdout: bool = True) -> str:
    return assign_split(
        ticket_id, salt=SALT, validation_fraction=0.1, test_fraction=0.1, holdout_test=holdout
    )


# --- deduplication -------------------------------------------------------------------


def test_reviewer_label_beats_a_later_history_label() -> None:
    records = [
        rec("t1", "billing", offset=0),
        rec("t1", "refund", source="reviewer", at=T0 + timedelta(hours=1), offset=1),
        # a history re-import, later in time and in the topic, must not undo the correction
        rec("t1", "billing", at=T0 + timedelta(days=3), offset=2),
    ]
    kept, deleted = latest_per_ticket(records)
    assert [(r.ticket_id, r.label) for r in kept] == [("t1", "refund")]
    assert deleted == 0


def test_latest_labeled_at_then_offset_wins_within_a_source() -> None:
    records = [
        rec("t1", "a", source="reviewer", at=T0 + timedelta(hours=2), offset=0),
        rec("t1", "b", source="reviewer", at=T0 + timedelta(hours=1), offset=1),
        rec("t2", "a", at=T0, offset=2),
        rec("t2", "b", at=T0, offset=3),
    ]
    kept = {r.ticket_id: r.label for r in latest_per_ticket(records)[0]}
    assert kept == {"t1": "a", "t2": "b"}


def test_tombstone_deletes_earlier_labels_only() -> None:
    records = [
        rec("gone", "a", offset=0),
        rec("gone", "", offset=1, deleted=True),
        rec("back", "a", offset=2),
        rec("back", "", offset=3, deleted=True),
        rec("back", "b", offset=4),
    ]
    kept, deleted = latest_per_ticket(records)
    assert {r.ticket_id: r.label for r in kept} == {"back": "b"}
    assert deleted == 2


def test_prepare_counts_every_drop_by_reason() -> None:
    records = [
        rec("ok-1", "billing", body="I was charged twice this month"),
        rec("ok-2", "billing", body="refund my second charge please"),
        rec("dup", "billing", offset=1),
        rec("dup", "refund", offset=2),
        rec("unk", "astrology", body="what is my horoscope"),
        rec("empty", "billing", body="<div>\u200b</div>\n-----"),  # nothing after cleaning
        rec("rare", "shipping", body="where is my parcel"),
    ]
    raw = RawData(records=records, drops=Counter({"invalid_record": 3}))
    label_map = {"billing": "money", "refund": "money", "shipping": "logistics"}
    prepared = prepare(raw, label_map=label_map, min_examples_per_label=2)
    assert prepared.drops == Counter(
        {
            "invalid_record": 3,
            "duplicate": 1,
            "unknown_label": 1,
            "empty_after_cleaning": 1,
            "rare_label": 1,
        }
    )
    assert sorted(e.ticket_id for e in prepared.examples) == ["dup", "ok-1", "ok-2"]
    assert {e.label for e in prepared.examples} == {"money"}
    assert prepared.records_in == len(records) + 3


def test_prepare_cleans_with_the_serving_cleaner() -> None:
    from consumer.clean import clean_ticket

    body = (
        "Hi team,\n\nMy invoice shows the wrong VAT number.\n\nThanks,\nJane\n\n> old quoted text"
    )
    prepared = prepare(RawData(records=[rec("t1", "billing", body=body)]))
    assert prepared.examples[0].text == clean_ticket(None, body, max_chars=2000)
    assert "quoted" not in prepared.examples[0].text


# --- split ---------------------------------------------------------------------------


def examples(n: int, labels: tuple[str, ...] = ("a", "b", "c"), prefix: str = "t") -> list[Example]:
    return [Example(f"{prefix}{i}", f"text {i}", labels[i % len(labels)]) for i in range(n)]


def test_split_is_a_function_of_the_id_alone() -> None:
    first = split_examples(examples(600), salt=SALT, validation_fraction=0.1, test_fraction=0.1)
    # New records arrive, some old ones are relabeled, and the order changes.
    grown = examples(900, labels=("c", "a", "b"))[::-1]
    second = split_examples(grown, salt=SALT, validation_fraction=0.1, test_fraction=0.1)
    for name in ("train", "validation", "test"):
        before = first.ids(name)  # type: ignore[arg-type]
        after = second.ids(name)  # type: ignore[arg-type]
        assert before <= after, f"{name}: a ticket changed slice"
    assert first.ids("train").isdisjoint(first.ids("test"))
    assert first.ids("validation").isdisjoint(first.ids("test"))


def test_split_is_stratified_by_label() -> None:
    labels = ("big", "big", "big", "big", "small")
    split = split_examples(
        examples(5000, labels=labels), salt=SALT, validation_fraction=0.1, test_fraction=0.1
    )
    for label, counts in split.per_label_counts().items():
        total = sum(counts.values())
        assert 0.07 < counts["validation"] / total < 0.13, (label, counts)
        assert 0.07 < counts["test"] / total < 0.13, (label, counts)


def test_a_test_file_replaces_the_test_slice_and_validation_stays() -> None:
    data = examples(500)
    held_out = [Example("x1", "held out", "a")]
    with_file = split_examples(
        data,
        salt=SALT,
        validation_fraction=0.1,
        test_fraction=0.1,
        test_file_examples=held_out,
        test_file_name="test.csv",
    )
    plain = split_examples(data, salt=SALT, validation_fraction=0.1, test_fraction=0.1)
    assert with_file.test == tuple(held_out)
    assert with_file.test_source == "file:test.csv"
    assert with_file.ids("validation") == plain.ids("validation")
    assert with_file.ids("train") == plain.ids("train") | plain.ids("test")
    assert all(split_of(e.ticket_id, holdout=False) != "test" for e in data)


# --- file sources --------------------------------------------------------------------


def test_csv_without_ids_gets_stable_ids_and_the_same_splits(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "text,category\nmy card never arrived,card\nI want a refund,refund\n,card\n",
        encoding="utf-8",
    )
    first = read_file(path, Columns())
    second = read_file(path, Columns())
    assert [r.ticket_id for r in first.records] == [r.ticket_id for r in second.records]
    assert len({r.ticket_id for r in first.records}) == 2
    assert first.drops == Counter({"missing_text": 1})
    assert first.info["sha256"] and first.info["kind"] == "file"


def test_jsonl_with_id_column_and_label_map(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [
        {"ticket_id": "a1", "subject": "Invoice", "body": "wrong amount", "intent": "fee"},
        {"ticket_id": "a2", "subject": None, "body": "card lost", "intent": "lost_card"},
        {"ticket_id": "a3", "subject": None, "body": "hello", "intent": "weather"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    map_path = tmp_path / "map.json"
    map_path.write_text(json.dumps({"money": ["fee"], "cards": ["lost_card"]}), encoding="utf-8")
    columns = Columns(text="body", label="intent", subject="subject", id="ticket_id")
    prepared = prepare(read_file(path, columns), label_map=load_label_map(map_path))
    assert [(e.ticket_id, e.label) for e in prepared.examples] == [
        ("a1", "money"),
        ("a2", "cards"),
    ]
    assert prepared.examples[0].text.startswith("Invoice")
    assert prepared.drops == Counter({"unknown_label": 1})


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"bucket": "not-a-list"}', '{"a": ["x"], "b": ["x"]}']
)
def test_a_bad_label_map_is_bad_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput):
        load_label_map(path)


def test_missing_file_and_missing_column_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        read_file(tmp_path / "nope.csv", Columns())
    path = tmp_path / "data.csv"
    path.write_text("body,label\nhello,x\n", encoding="utf-8")
    with pytest.raises(BadInput):
        read_file(path, Columns())
