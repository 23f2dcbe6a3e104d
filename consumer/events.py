"""Event contracts: one pydantic model per topic value.

These models are the public API of ticketsort: routing services read
``ClassifiedTicket`` and ``ReviewRequest``, reviewers write ``LabeledTicket``.
Each carries ``event_type`` and ``schema_version``; a change that removes or
retypes a field, or adds one, bumps the version. Added fields are optional and
the current model still reads every older version of its event; the older
contracts stay here (``*V1``) and stay exported, so a reader pinned to one can
keep validating what it was written against. What a v1 reader can do with a
v2 event is stated per event below. ``python -m consumer schemas`` exports them
as JSON Schema into ``consumer/schemas/`` so services in other languages can
validate what they read. Message keys are always the ticket id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

TicketId = str
Channel = Literal["email", "web_form", "chat", "api", "phone", "social", "other"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode("utf-8")


class RawTicket(_Event):
    """A ticket as the help desk sends it to ``tickets.raw``."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"title": "ticketsort raw ticket v1"}
    )

    event_type: Literal["ticket.raw"] = "ticket.raw"
    schema_version: Literal[1] = 1
    id: TicketId = Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")
    subject: str | None = Field(default=None, max_length=2000)
    body: str
    channel: Channel = "email"
    created_at: datetime = Field(default_factory=utcnow)
    customer_id: str | None = Field(default=None, max_length=200)
    account_id: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=35)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("body")
    @classmethod
    def _body_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("body is empty")
        return value


class CategoryScore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    score: float = Field(ge=0, le=1)


class _Classification(_Event):
    ticket: RawTicket
    category: str
    confidence: float = Field(ge=0, le=1)
    scores: list[CategoryScore] = Field(description="Top-k categories, best first.")
    model_version: str
    classified_at: datetime = Field(default_factory=utcnow)


class ClassifiedTicketV1(_Classification):
    """A confidently classified ticket on ``tickets.classified``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ClassifiedTicket")

    event_type: Literal["ticket.classified"] = "ticket.classified"
    schema_version: Literal[1] = 1


class ReviewRequestV1(_Classification):
    """A ticket the model is not sure about, on ``tickets.review``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ReviewRequest")

    event_type: Literal["ticket.review"] = "ticket.review"
    schema_version: Literal[1] = 1
    reason: Literal["low_confidence", "requeued"] = "low_confidence"
    threshold: float = Field(ge=0, le=1)
    attempts: int = Field(default=0, ge=0, description="Times a reviewer skipped it.")


_NOVELTY = Field(
    default=None,
    ge=0,
    description=(
        "Distance of the ticket's embedding to the model's training data (higher: less like"
        " anything it was trained on); null when the model has no novelty statistics."
    ),
)
_FINE_LABEL = Field(
    default=None,
    description="A grouped head's most probable fine label inside `category`; null otherwise.",
)


class ClassifiedTicket(_Classification):
    """A confidently classified ticket on ``tickets.classified``.

    v2 adds the optional ``novelty`` and ``fine_label``; every v1 field keeps its
    name, type and meaning, so a v1 reader that ignores unknown fields and does
    not pin ``schema_version`` reads v2 unchanged. v1 events still parse.
    """

    event_type: Literal["ticket.classified"] = "ticket.classified"
    schema_version: Literal[1, 2] = 2
    novelty: float | None = _NOVELTY
    fine_label: str | None = _FINE_LABEL


class ReviewRequestV2(_Classification):
    """A ticket for a reviewer, on ``tickets.review``, with why it is there.

    ``reason``: ``low_confidence`` (confidence under ``threshold``), ``novel``
    (confident, but unlike the training data: ``novelty`` over
    ``novelty_threshold``), ``requeued`` (a reviewer skipped it). v2 adds
    ``novel`` and the optional ``novelty``, ``novelty_threshold`` and
    ``fine_label``; a v1 reader that ignores unknown fields reads v2 events
    except those whose reason is the new ``novel``. v1 events still parse.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="ReviewRequest")

    event_type: Literal["ticket.review"] = "ticket.review"
    schema_version: Literal[1, 2] = 2
    reason: Literal["low_confidence", "novel", "requeued"] = "low_confidence"
    threshold: float = Field(ge=0, le=1, description="The confidence threshold that applied.")
    attempts: int = Field(default=0, ge=0, description="Times a reviewer skipped it.")
    novelty: float | None = _NOVELTY
    novelty_threshold: float | None = Field(
        default=None, ge=0, description="The novelty threshold that applied; null: none did."
    )
    fine_label: str | None = _FINE_LABEL


class ReviewRequest(_Classification):
    """A ticket for a reviewer, on ``tickets.review``, with why it is there.

    ``reason``: ``low_confidence`` (confidence under ``threshold``), ``novel``
    (confident, but unlike the training data: ``novelty`` over
    ``novelty_threshold``), ``audit`` (auto-routed as usual *and* sent here too, a
    random share ``routing.audit_share`` of the classified tickets, so that
    reviewers' labels estimate the model's accuracy without the bias of only
    seeing its hard cases). ``requeued`` was written by v1/v2 review tools for a
    skipped ticket; since v3 a skipped ticket keeps its reason and counts
    ``attempts``. v3 adds ``audit``; a v2 reader that ignores unknown fields reads
    v3 events except audit ones. v1 and v2 events still parse.
    """

    event_type: Literal["ticket.review"] = "ticket.review"
    schema_version: Literal[1, 2, 3] = 3
    reason: Literal["low_confidence", "novel", "audit", "requeued"] = "low_confidence"
    threshold: float = Field(ge=0, le=1, description="The confidence threshold that applied.")
    attempts: int = Field(default=0, ge=0, description="Times a reviewer skipped it.")
    novelty: float | None = _NOVELTY
    novelty_threshold: float | None = Field(
        default=None, ge=0, description="The novelty threshold that applied; null: none did."
    )
    fine_label: str | None = _FINE_LABEL


ReviewReason = Literal["low_confidence", "novel", "audit", "requeued"]


class LabeledTicketV1(_Event):
    """A ticket with a trusted label, on the archive topic ``tickets.labeled``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="LabeledTicket")

    event_type: Literal["ticket.labeled"] = "ticket.labeled"
    schema_version: Literal[1] = 1
    ticket: RawTicket
    label: str = Field(min_length=1, max_length=200)
    label_source: Literal["history", "reviewer"]
    labeled_by: str | None = None
    labeled_at: datetime = Field(default_factory=utcnow)
    model_suggestion: str | None = None
    model_version: str | None = None


class LabeledTicket(_Event):
    """A ticket with a trusted label, on the archive topic ``tickets.labeled``.

    v2 adds the optional ``review_reason``: why a reviewer saw the ticket (the
    review request's ``reason``), so that online evaluation can tell the random
    audit sample from the hard cases. v1 readers that ignore unknown fields read
    v2 unchanged; v1 events still parse.
    """

    event_type: Literal["ticket.labeled"] = "ticket.labeled"
    schema_version: Literal[1, 2] = 2
    ticket: RawTicket
    label: str = Field(min_length=1, max_length=200)
    label_source: Literal["history", "reviewer"]
    labeled_by: str | None = None
    labeled_at: datetime = Field(default_factory=utcnow)
    model_suggestion: str | None = None
    model_version: str | None = None
    review_reason: ReviewReason | None = Field(
        default=None, description="Why the ticket was in review (reviewer labels only)."
    )


class ShadowSide(BaseModel):
    """One model's answer for a ticket, as it routed it (or would have)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str
    category: str
    confidence: float = Field(ge=0, le=1)
    route: Literal["classified", "review"]
    reason: ReviewReason | None = Field(default=None, description="Why review, when review.")
    novelty: float | None = Field(default=None, ge=0)


class ShadowScore(_Event):
    """Both models' answers for one ticket, on ``tickets.shadow``.

    Written for the share ``shadow.share`` of tickets that a shadow model
    (``models/shadow``) also scored. Nothing a routing service reads depends on
    it: the served answer went to classified/review as usual. ``agree``: the same
    category.
    """

    event_type: Literal["ticket.shadow"] = "ticket.shadow"
    schema_version: Literal[1] = 1
    ticket_id: TicketId
    served: ShadowSide
    shadow: ShadowSide
    agree: bool
    scored_at: datetime = Field(default_factory=utcnow)


class DeadLetter(_Event):
    """A record that could not be read, on ``tickets.dead-letter``.

    ``original_value`` holds the record's bytes as base64; the same source and
    error fields are also set as message headers.
    """

    event_type: Literal["ticket.dead_letter"] = "ticket.dead_letter"
    schema_version: Literal[1] = 1
    original_key: str | None = Field(description="base64 of the original key")
    original_value: str | None = Field(description="base64 of the original value")
    original_size: int = Field(ge=0)
    source_topic: str
    source_partition: int
    source_offset: int
    error_type: str
    error_message: str
    failed_at: datetime = Field(default_factory=utcnow)


CONTRACTS: dict[str, type[_Event]] = {
    "raw_ticket": RawTicket,
    "classified_ticket": ClassifiedTicket,
    "review_request": ReviewRequest,
    "labeled_ticket": LabeledTicket,
    "dead_letter": DeadLetter,
    "shadow_score": ShadowScore,
}

# Older versions still exported, so readers pinned to them keep validating.
PREVIOUS_CONTRACTS: list[tuple[str, type[_Event]]] = [
    ("classified_ticket", ClassifiedTicketV1),
    ("review_request", ReviewRequestV1),
    ("review_request", ReviewRequestV2),
    ("labeled_ticket", LabeledTicketV1),
]


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text for every contract."""
    out: dict[str, str] = {}
    contracts = [*PREVIOUS_CONTRACTS, *CONTRACTS.items()]
    for name, model in contracts:
        version = model.model_fields["schema_version"].default
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://ticketsort.local/schemas/{name}.v{version}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{name}.v{version}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in json_schemas().items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
