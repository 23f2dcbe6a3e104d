"""The quick start's demo stream is not the demo model's training data."""

from __future__ import annotations

import pytest

from consumer.clean import clean_ticket
from consumer.events import RawTicket
from consumer.settings import Settings
from producer_tools.__main__ import build_parser, run_cli
from producer_tools.commands.quickstart import DEMO_TICKETS
from producer_tools.synthetic import generate_tickets
from tests.kafka_helpers import read_topic


@pytest.mark.integration
def test_generate_streams_tickets_the_demo_model_has_not_seen(settings: Settings) -> None:
    # What `quickstart` seeds the archive with (its defaults), i.e. the demo model's data.
    quickstart = build_parser("quickstart").parse_args(["quickstart"])
    archive = list(generate_tickets(DEMO_TICKETS, seed=quickstart.seed))
    archive_ids = {t.ticket_id for t in archive}
    archive_texts = {clean_ticket(t.subject, t.body) for t in archive}
    # What a newcomer streams with the README's command (its defaults).
    assert run_cli(["generate", "--count", "300"], settings) == 0
    stream = [
        RawTicket.model_validate_json(v or b"")
        for _, v, _ in read_topic(settings.kafka, settings.topics.raw, expected=300)
    ]
    assert len(stream) == 300
    assert not {t.id for t in stream} & archive_ids
    seen = sum(clean_ticket(t.subject, t.body) in archive_texts for t in stream)
    # Short one-liners ("how to export a report?") recur, as in real mail: a few, not all.
    assert seen <= 0.1 * len(stream), f"{seen} of {len(stream)} streamed texts were trained on"
