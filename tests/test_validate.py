from __future__ import annotations

import json

import pytest

from consumer.dead_letter import dead_letter_for, dead_letter_headers
from consumer.events import RawTicket
from consumer.kafka import Record
from consumer.validate import Invalid, validate_record


def record(value: bytes | None) -> Record:
    return Record("tickets.raw", 1, 42, b"k", value, (("trace", b"abc"),), 0)


@pytest.mark.parametrize(
    ("value", "error_type", "needle"),
    [
        (None, "empty_record", "no value"),
        (b"", "empty_record", "no value"),
        (b"\xff\xfe\x00garbage", "invalid_utf8", "not UTF-8"),
        (b"{not json", "invalid_json", "not JSON"),
        (b"[1, 2, 3]", "schema_violation", ""),
        (json.dumps({"id": "t", "body": None}).encode(), "schema_violation", "body"),
        (json.dumps({"id": "t", "body": "x" * 5000}).encode(), "too_large", "over the limit"),
        (b"[" * 100_000, "too_large", ""),
    ],
)
def test_invalid_records_become_data(value: bytes | None, error_type: str, needle: str) -> None:
    result = validate_record(record(value), max_body_bytes=4096)
    assert isinstance(result, Invalid)
    assert result.error_type == error_type
    assert needle in result.message


def test_deep_nesting_does_not_crash() -> None:
    payload = b'{"id": "t", "body": "x", "metadata": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    result = validate_record(record(payload), max_body_bytes=1_000_000)
    assert isinstance(result, (Invalid, RawTicket))


def test_valid_record_parses() -> None:
    result = validate_record(record(RawTicket(id="t-9", body="hello").to_bytes()), 4096)
    assert isinstance(result, RawTicket) and result.id == "t-9"


def test_dead_letter_keeps_original_bytes_and_source() -> None:
    rec = record(b"\x00\x01 broken")
    event = dead_letter_for(rec, "invalid_json", "value is not JSON")
    import base64

    assert base64.b64decode(event.original_value or "") == b"\x00\x01 broken"
    assert (event.source_topic, event.source_partition, event.source_offset) == (
        "tickets.raw",
        1,
        42,
    )
    headers = dict(dead_letter_headers(rec, "invalid_json", "value is not JSON"))
    assert headers["ticketsort.error.type"] == b"invalid_json"
    assert headers["ticketsort.source.offset"] == b"42"
    assert headers["original.trace"] == b"abc"
