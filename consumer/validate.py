"""Decode and validate raw ticket records; what cannot be read becomes data.

``validate_record`` never raises for bad input: it returns either the parsed
``RawTicket`` or an ``Invalid`` that names the error type and, for schema
violations, the offending fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from consumer.events import RawTicket
from consumer.kafka import Record

# The output events wrap the ticket one or two levels deeper; JSON readers stop at some depth
# (pydantic: 200), so a ticket just under that limit would make outputs nobody can read.
MAX_METADATA_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Invalid:
    error_type: str
    message: str


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        location = ".".join(str(x) for x in err.get("loc", ())) or "<root>"
        parts.append(f"{location}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def validate_record(record: Record, max_body_bytes: int) -> RawTicket | Invalid:
    value = record.value
    if value is None or len(value) == 0:
        return Invalid("empty_record", "record has no value (tombstone or empty payload)")
    if len(value) > max_body_bytes:
        return Invalid(
            "too_large", f"record is {len(value)} bytes, over the limit of {max_body_bytes} bytes"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Invalid("invalid_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        ticket = RawTicket.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            return Invalid("invalid_json", f"value is not JSON: {errors[0]['msg']}")
        return Invalid("schema_violation", describe_validation_error(exc))
    except (ValueError, RecursionError) as exc:  # e.g. nesting too deep for the parser
        return Invalid("invalid_json", f"value could not be parsed: {exc}")
    if _depth(ticket.metadata) > MAX_METADATA_DEPTH:
        return Invalid(
            "schema_violation", f"metadata: nested deeper than {MAX_METADATA_DEPTH} levels"
        )
    return ticket


def _depth(value: object) -> int:
    """Nesting depth of dicts and lists (iterative: never a RecursionError)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = list(item)
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
