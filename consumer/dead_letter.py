"""Dead-letter events: the original bytes plus where they came from and why."""

from __future__ import annotations

import base64

from consumer.events import DeadLetter
from consumer.kafka import Record

MAX_ERROR_MESSAGE = 2000
# Room kept for the envelope's fields and the error text (in the JSON body, escaped, and in
# a header) when the original value has to be cut to fit the dead-letter topic.
ENVELOPE_RESERVE = 8 * MAX_ERROR_MESSAGE + 2048


def kept_value_bytes(record: Record, max_message_bytes: int | None) -> int | None:
    """How much of the original value fits a dead letter of ``max_message_bytes``; None: all.

    The value travels base64-encoded (4/3 larger) next to the key (raw and base64) and the
    original headers, so a record close to the raw topic's limit would otherwise make a dead
    letter the broker refuses, which would block its partition for good.
    """
    value = record.value or b""
    if max_message_bytes is None:
        return None
    key = len(record.key or b"")
    headers = sum(len(name) + len(v) + len("original.") for name, v in record.headers)
    room = max_message_bytes - ENVELOPE_RESERVE - key - (key * 4 // 3 + 4) - headers
    keep = max(0, room * 3 // 4 - 4)
    return None if len(value) <= keep else keep


def dead_letter_for(
    record: Record, error_type: str, message: str, *, max_message_bytes: int | None = None
) -> DeadLetter:
    value = record.value
    keep = kept_value_bytes(record, max_message_bytes)
    if value is not None and keep is not None:
        value = value[:keep]  # original_size still gives the full size
    return DeadLetter(
        original_key=base64.b64encode(record.key).decode("ascii") if record.key else None,
        original_value=base64.b64encode(value).decode("ascii") if value else None,
        original_size=len(record.value or b""),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        error_type=error_type,
        error_message=message[:MAX_ERROR_MESSAGE],
    )


def dead_letter_headers(
    record: Record, error_type: str, message: str, *, max_message_bytes: int | None = None
) -> list[tuple[str, bytes]]:
    headers = [
        ("ticketsort.source.topic", record.topic.encode()),
        ("ticketsort.source.partition", str(record.partition).encode()),
        ("ticketsort.source.offset", str(record.offset).encode()),
        ("ticketsort.error.type", error_type.encode()),
        ("ticketsort.error.message", message[:MAX_ERROR_MESSAGE].encode("utf-8", "replace")),
    ]
    keep = kept_value_bytes(record, max_message_bytes)
    if keep is not None:
        headers.append(("ticketsort.original.truncated", str(keep).encode()))
    # Keep the producer's own headers, prefixed, so nothing about the record is lost.
    headers.extend((f"original.{name}", value) for name, value in record.headers)
    return headers
