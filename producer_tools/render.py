"""One readable line per event (ids, labels, scores; never the ticket's text)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from consumer.events import (
    CONTRACTS,
    ClassifiedTicket,
    DeadLetter,
    LabeledTicket,
    RawTicket,
    ReviewRequest,
)
from consumer.kafka import Record

EVENT_TYPES: dict[str, type[BaseModel]] = {
    str(model.model_fields["event_type"].default): model for model in CONTRACTS.values()
}
MAX_DETAIL = 120


def parse_event(value: bytes) -> BaseModel:
    """The contract model for ``value``; ``ValueError`` with a short reason otherwise."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"JSON {type(data).__name__}, not an event object")
    event_type = data.get("event_type")
    model = EVENT_TYPES.get(str(event_type))
    if model is None:
        raise ValueError(f"unknown event_type {str(event_type)[:40]!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(
            f"invalid {event_type} ({exc.error_count()} error(s); {loc}: {first['msg']})"
        ) from None


def render_record(record: Record) -> str:
    """``time  partition@offset  kind  id=...  fields``."""
    when = (
        datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).strftime("%H:%M:%S")
        if record.timestamp_ms is not None
        else "--:--:--"
    )
    where = f"p{record.partition}@{record.offset}"
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    if record.value is None:
        return f"{when} {where:>10}  tombstone   key={key}"
    try:
        event = parse_event(record.value)
    except ValueError as exc:
        return f"{when} {where:>10}  UNREADABLE  key={key} bytes={len(record.value)} {exc}"
    return f"{when} {where:>10}  {render_event(event)}"


def _novelty(novelty: float | None, threshold: float | None, fine_label: str | None) -> str:
    out = "" if novelty is None else f" novelty={novelty:.4g}"
    out += "" if threshold is None else f"/{threshold:.4g}"
    return out + ("" if fine_label is None else f" fine={fine_label}")


def render_event(event: BaseModel) -> str:
    if isinstance(event, RawTicket):
        return "raw         " + _raw_fields(event)
    if isinstance(event, ReviewRequest):
        return (
            f"review      id={event.ticket.id} category={event.category}"
            f" confidence={event.confidence:.3f} threshold={event.threshold:.3f}"
            f" reason={event.reason} attempts={event.attempts} model={event.model_version}"
            + _novelty(event.novelty, event.novelty_threshold, event.fine_label)
        )
    if isinstance(event, ClassifiedTicket):
        runner_up = (
            f" next={event.scores[1].category}:{event.scores[1].score:.3f}"
            if len(event.scores) > 1
            else ""
        )
        return (
            f"classified  id={event.ticket.id} category={event.category}"
            f" confidence={event.confidence:.3f}{runner_up} model={event.model_version}"
            + _novelty(event.novelty, None, event.fine_label)
        )
    if isinstance(event, LabeledTicket):
        extra = "".join(
            f" {name}={value}"
            for name, value in (
                ("by", event.labeled_by),
                ("suggested", event.model_suggestion),
                ("model", event.model_version),
            )
            if value
        )
        return (
            f"labeled     id={event.ticket.id} label={event.label}"
            f" source={event.label_source}{extra}"
        )
    if isinstance(event, DeadLetter):
        return (
            f"dead-letter key={_b64_text(event.original_key)} from={event.source_topic}"
            f"/p{event.source_partition}@{event.source_offset} size={event.original_size}"
            f" error={event.error_type}: {_short(event.error_message)}"
        )
    return f"{type(event).__name__} {_short(event.model_dump_json())}"


def _raw_fields(ticket: RawTicket) -> str:
    parts = [f"id={ticket.id}", f"channel={ticket.channel}"]
    if ticket.language:
        parts.append(f"lang={ticket.language}")
    if ticket.customer_id:
        parts.append(f"customer={ticket.customer_id}")
    parts.append(f"chars={len(ticket.subject or '') + len(ticket.body)}")
    return " ".join(parts)


def _b64_text(value: str | None) -> str:
    if value is None:
        return "None"
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return f"<base64 {len(value)} chars>"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
