"""Dead-letter events: the original bytes plus where they came from and why.

A dead letter must always fit its topic, whatever the original record looked like: the key and
the headers it copies are bounded (a 600 KB random key once made a dead letter the broker
refused forever, issue #12), the value is cut to what is left, and ``minimal_dead_letter`` keeps
only the metadata for when even a bounded one cannot be written.
"""

from __future__ import annotations

import base64

from consumer.events import DeadLetter
from consumer.kafka import Record
from consumer.outputs import Output

MAX_ERROR_MESSAGE = 2000
MAX_KEY_BYTES = 1024  # of the original key, as the dead letter's key and in its body
MAX_HEADER_BYTES = 16 * 1024  # of the original headers copied, names and values together
# Room kept for the envelope's fields and the error text (in the JSON body, escaped, and in
# a header) when the original value has to be cut to fit the dead-letter topic.
ENVELOPE_RESERVE = 8 * MAX_ERROR_MESSAGE + 2048
ORIGINAL_PREFIX = "original."


def bounded_key(record: Record) -> bytes | None:
    return record.key[:MAX_KEY_BYTES] if record.key is not None else None


def bounded_headers(record: Record) -> tuple[list[tuple[str, bytes]], int]:
    """The original headers that fit ``MAX_HEADER_BYTES`` (in order), and how many did not."""
    kept: list[tuple[str, bytes]] = []
    used = 0
    for name, value in record.headers:
        size = len(ORIGINAL_PREFIX) + len(name.encode("utf-8", "replace")) + len(value)
        if used + size > MAX_HEADER_BYTES:
            continue
        used += size
        kept.append((f"{ORIGINAL_PREFIX}{name}", value))
    return kept, len(record.headers) - len(kept)


def kept_value_bytes(record: Record, max_message_bytes: int | None) -> int | None:
    """How much of the original value fits a dead letter of ``max_message_bytes``; None: all.

    The value travels base64-encoded (4/3 larger) next to the bounded key (raw and base64) and
    the bounded original headers.
    """
    value = record.value or b""
    if max_message_bytes is None:
        return None
    key = len(bounded_key(record) or b"")
    headers = sum(len(n) + len(v) for n, v in bounded_headers(record)[0])
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
    key = bounded_key(record)
    return DeadLetter(
        original_key=base64.b64encode(key).decode("ascii") if key else None,
        original_value=base64.b64encode(value).decode("ascii") if value else None,
        original_size=len(record.value or b""),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        error_type=error_type,
        error_message=message[:MAX_ERROR_MESSAGE],
    )


def _source_headers(record: Record, error_type: str, message: str) -> list[tuple[str, bytes]]:
    return [
        ("ticketsort.source.topic", record.topic.encode()),
        ("ticketsort.source.partition", str(record.partition).encode()),
        ("ticketsort.source.offset", str(record.offset).encode()),
        ("ticketsort.error.type", error_type.encode()),
        ("ticketsort.error.message", message[:MAX_ERROR_MESSAGE].encode("utf-8", "replace")),
    ]


def dead_letter_headers(
    record: Record, error_type: str, message: str, *, max_message_bytes: int | None = None
) -> list[tuple[str, bytes]]:
    headers = _source_headers(record, error_type, message)
    keep = kept_value_bytes(record, max_message_bytes)
    if keep is not None:
        headers.append(("ticketsort.original.truncated", str(keep).encode()))
    if record.key is not None and len(record.key) > MAX_KEY_BYTES:
        headers.append(("ticketsort.original.key_size", str(len(record.key)).encode()))
    # Keep the producer's own headers, prefixed, so nothing about the record is lost.
    original, dropped = bounded_headers(record)
    if dropped:
        headers.append(("ticketsort.original.headers_dropped", str(dropped).encode()))
    headers.extend(original)
    return headers


def dead_letter_output(
    record: Record, error_type: str, message: str, topic: str, max_message_bytes: int
) -> Output:
    """The dead-letter output for ``record``: bounded to fit a topic of ``max_message_bytes``."""
    event = dead_letter_for(record, error_type, message, max_message_bytes=max_message_bytes)
    return Output(
        record,
        topic,
        bounded_key(record),
        event.to_bytes(),
        dead_letter_headers(record, error_type, message, max_message_bytes=max_message_bytes),
        "dead_letter",
        error_type=error_type,
    )


def minimal_dead_letter(record: Record, error_type: str, message: str, topic: str) -> Output:
    """Metadata only (no key, value or original headers): the last resort before stopping."""
    event = DeadLetter(
        original_key=None,
        original_value=None,
        original_size=len(record.value or b""),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        error_type=error_type,
        error_message=message[:MAX_ERROR_MESSAGE],
    )
    headers = [*_source_headers(record, error_type, message), ("ticketsort.minimal", b"1")]
    return Output(record, topic, None, event.to_bytes(), headers, "dead_letter", error_type)
