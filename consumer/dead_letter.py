"""Dead-letter events: the original bytes plus where they came from and why."""

from __future__ import annotations

import base64

from consumer.events import DeadLetter
from consumer.kafka import Record

MAX_ERROR_MESSAGE = 2000


def dead_letter_for(record: Record, error_type: str, message: str) -> DeadLetter:
    return DeadLetter(
        original_key=base64.b64encode(record.key).decode("ascii") if record.key else None,
        original_value=base64.b64encode(record.value).decode("ascii") if record.value else None,
        original_size=len(record.value or b""),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        error_type=error_type,
        error_message=message[:MAX_ERROR_MESSAGE],
    )


def dead_letter_headers(record: Record, error_type: str, message: str) -> list[tuple[str, bytes]]:
    headers = [
        ("ticketsort.source.topic", record.topic.encode()),
        ("ticketsort.source.partition", str(record.partition).encode()),
        ("ticketsort.source.offset", str(record.offset).encode()),
        ("ticketsort.error.type", error_type.encode()),
        ("ticketsort.error.message", message[:MAX_ERROR_MESSAGE].encode("utf-8", "replace")),
    ]
    # Keep the producer's own headers, prefixed, so nothing about the record is lost.
    headers.extend((f"original.{name}", value) for name, value in record.headers)
    return headers
