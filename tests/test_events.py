"""Event contracts: validation errors name the field; exported schemas are current."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from consumer.__main__ import check_schemas
from consumer.events import (
    CONTRACTS,
    SCHEMA_DIR,
    ClassifiedTicket,
    LabeledTicket,
    RawTicket,
    json_schemas,
)


def test_raw_ticket_round_trips_through_json() -> None:
    ticket = RawTicket(id="t-1", subject="Invoice", body="I was charged twice", customer_id="c9")
    again = RawTicket.model_validate_json(ticket.to_bytes())
    assert again == ticket
    assert again.event_type == "ticket.raw" and again.schema_version == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"id": "t-1"}, "body"),
        ({"id": "t-1", "body": 42}, "body"),
        ({"id": "t-1", "body": "   "}, "body"),
        ({"body": "hello"}, "id"),
        ({"id": "has space", "body": "hello"}, "id"),
        ({"id": "t-1", "body": "x", "channel": "carrier-pigeon"}, "channel"),
        ({"id": "t-1", "body": "x", "created_at": "yesterday"}, "created_at"),
        ({"id": "t-1", "body": "x", "schema_version": 2}, "schema_version"),
        ({"id": "t-1", "body": "x", "unexpected": True}, "unexpected"),
    ],
)
def test_malformed_payload_is_rejected_naming_the_field(
    payload: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        RawTicket.model_validate_json(json.dumps(payload))
    fields = {".".join(str(p) for p in err["loc"]) for err in info.value.errors()}
    assert field in fields, fields


def test_exported_schemas_are_current() -> None:
    expected = json_schemas()
    assert set(expected) == {p.name for p in SCHEMA_DIR.glob("*.json")}
    for name, text in expected.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run `python -m consumer schemas`"
        )
    assert check_schemas() == 0


def test_exported_schemas_validate_real_events() -> None:
    raw = RawTicket(id="t-2", body="the export button does nothing")
    classified = ClassifiedTicket(
        ticket=raw, category="bug_report", confidence=0.97, scores=[], model_version="v1"
    )
    labeled = LabeledTicket(
        ticket=raw, label="bug_report", label_source="reviewer", labeled_by="ana"
    )
    for name, event in (
        ("raw_ticket", raw),
        ("classified_ticket", classified),
        ("labeled_ticket", labeled),
    ):
        version = event.schema_version
        schema = json.loads((SCHEMA_DIR / f"{name}.v{version}.json").read_text())
        jsonschema.validate(json.loads(event.to_bytes()), schema)
    bad = json.loads(classified.to_bytes())
    bad["confidence"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads((SCHEMA_DIR / "classified_ticket.v2.json").read_text()))


def test_every_contract_is_versioned() -> None:
    for model in CONTRACTS.values():
        assert model.model_fields["schema_version"].default >= 1
        assert model.model_fields["event_type"].default.startswith("ticket.")


def test_env_example_lists_every_setting() -> None:
    from consumer.settings_doc import env_example, settings_rows
    from tests.conftest import REPO

    text = (REPO / ".env.example").read_text(encoding="utf-8")
    assert text == env_example(), "stale: run `python -m consumer env-example > .env.example`"
    assert len(settings_rows()) > 30


def _tolerant(schema: dict[str, object]) -> dict[str, object]:
    """A v1 reader that ignores unknown fields and does not pin ``schema_version``."""
    relaxed = json.loads(json.dumps(schema))
    relaxed["additionalProperties"] = True
    relaxed["properties"]["schema_version"] = {"type": "integer"}
    return relaxed


def test_v1_events_still_parse_and_v2_keeps_every_v1_field() -> None:
    from consumer.events import ClassifiedTicketV1, ReviewRequest, ReviewRequestV1

    raw = RawTicket(id="t-3", body="where is my new card")
    v1 = ClassifiedTicketV1(
        ticket=raw, category="cards", confidence=0.9, scores=[], model_version="v"
    )
    again = ClassifiedTicket.model_validate_json(v1.to_bytes())
    assert again.schema_version == 1 and again.novelty is None and again.fine_label is None
    old_review = ReviewRequestV1(
        ticket=raw, category="cards", confidence=0.4, scores=[], model_version="v", threshold=0.8
    )
    review = ReviewRequest.model_validate_json(old_review.to_bytes())
    assert review.schema_version == 1 and review.reason == "low_confidence"

    v2 = ClassifiedTicket(
        ticket=raw,
        category="cards",
        confidence=0.9,
        scores=[],
        model_version="v",
        novelty=3.5,
        fine_label="card_arrival",
    )
    assert v2.schema_version == 2
    data = json.loads(v2.to_bytes())
    strict_v1 = json.loads((SCHEMA_DIR / "classified_ticket.v1.json").read_text())
    jsonschema.validate(data, _tolerant(strict_v1))  # every v1 field: same name and type
    with pytest.raises(jsonschema.ValidationError):  # a strict v1 validator must move to v2
        jsonschema.validate(data, strict_v1)
    jsonschema.validate(data, json.loads((SCHEMA_DIR / "classified_ticket.v2.json").read_text()))
    # Pydantic's tolerant reader of v1, the way a Python routing service would read.
    lenient = ClassifiedTicketV1.model_validate(
        {**{k: data[k] for k in data if k in ClassifiedTicketV1.model_fields}, "schema_version": 1}
    )
    assert lenient.category == "cards" and lenient.confidence == 0.9

    review_v1 = json.loads((SCHEMA_DIR / "review_request.v1.json").read_text())
    review_v2 = json.loads((SCHEMA_DIR / "review_request.v2.json").read_text())
    # (reason, a tolerant v1 reader reads it, a tolerant v2 reader reads it)
    for reason, readable, readable_v2 in (
        ("low_confidence", True, True),
        ("novel", False, True),
        ("audit", False, False),
    ):
        event = ReviewRequest(
            ticket=raw,
            category="cards",
            confidence=0.99,
            scores=[],
            model_version="v",
            threshold=0.8,
            reason=reason,
            novelty=9.0,
            novelty_threshold=4.0,  # type: ignore[arg-type]
        )
        payload = json.loads(event.to_bytes())
        assert payload["schema_version"] == 3
        jsonschema.validate(
            payload, json.loads((SCHEMA_DIR / "review_request.v3.json").read_text())
        )
        if readable_v2:
            jsonschema.validate(payload, _tolerant(review_v2))
        else:  # v3's new reason is what a v2 reader cannot know
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(payload, _tolerant(review_v2))
        if readable:
            jsonschema.validate(payload, _tolerant(review_v1))
        else:  # the new reason is what a v1 reader cannot know
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(payload, _tolerant(review_v1))


def test_labeled_v1_still_parses_and_shadow_events_match_their_schema() -> None:
    from consumer.events import LabeledTicket, LabeledTicketV1, ShadowScore, ShadowSide

    raw = RawTicket(id="t-9", body="refund please")
    old = LabeledTicketV1(ticket=raw, label="billing", label_source="reviewer")
    again = LabeledTicket.model_validate_json(old.to_bytes())
    assert again.schema_version == 1 and again.review_reason is None
    new = LabeledTicket(ticket=raw, label="billing", label_source="reviewer", review_reason="audit")
    data = json.loads(new.to_bytes())
    assert data["schema_version"] == 2
    jsonschema.validate(data, json.loads((SCHEMA_DIR / "labeled_ticket.v2.json").read_text()))
    jsonschema.validate(
        data, _tolerant(json.loads((SCHEMA_DIR / "labeled_ticket.v1.json").read_text()))
    )
    side = {"confidence": 0.9, "route": "classified"}
    shadow = ShadowScore(
        ticket_id="t-9",
        served=ShadowSide(model_version="v1", category="billing", **side),  # type: ignore[arg-type]
        shadow=ShadowSide(model_version="v2", category="refunds", **side),  # type: ignore[arg-type]
        agree=False,
    )
    jsonschema.validate(
        json.loads(shadow.to_bytes()),
        json.loads((SCHEMA_DIR / "shadow_score.v1.json").read_text()),
    )
