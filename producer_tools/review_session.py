"""The reviewers' loop, free of terminal details: one review request in, one decision out.

A decision becomes a ``LabeledTicket`` on the archive (source ``reviewer``); a
skip re-queues the request to the review topic (``attempts`` + 1). The review
record's offset is committed only after that output is delivered, so a reviewer
who quits or crashes loses nothing and never sees an answered ticket again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confluent_kafka import TopicPartition

from consumer.clean import clean_ticket
from consumer.events import LabeledTicket, ReviewRequest
from consumer.kafka import Consumer, Producer, Record
from consumer.settings import Settings
from producer_tools.delivery import flush_all

DEFAULT_GROUP = "ticketsort-reviewers"


@dataclass(frozen=True)
class Decision:
    action: Literal["label", "skip", "quit"]
    label: str | None = None


@dataclass
class Progress:
    reviewed: int = 0
    skipped: int = 0
    invalid: int = 0


class ReviewSession:
    def __init__(self, settings: Settings, reviewer: str, group: str = DEFAULT_GROUP) -> None:
        self.settings = settings
        self.reviewer = reviewer
        self.consumer = Consumer(settings.kafka, group, auto_offset_reset="earliest")
        self.producer = Producer(settings.kafka)
        self.progress = Progress()
        self._subscribed = False

    def next_request(self, timeout: float) -> tuple[Record, ReviewRequest | None] | None:
        if not self._subscribed:
            self.consumer.subscribe([self.settings.topics.review])
            self._subscribed = True
        records = self.consumer.consume(1, timeout)
        if not records:
            return None
        record = records[0]
        try:
            return record, ReviewRequest.model_validate_json(record.value or b"")
        except ValueError:
            return record, None

    def lag(self) -> int:
        """Requests left in the topic for this group (0 when unknown)."""
        total = 0
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                _low, high = self.consumer.client.get_watermark_offsets(tp, timeout=2, cached=False)
                if tp.offset >= 0:
                    total += max(0, high - tp.offset)
        except Exception:
            return 0
        return total

    def apply(self, record: Record, request: ReviewRequest | None, decision: Decision) -> None:
        """Deliver the decision's output, then commit the request's offset."""
        if request is None:
            self.progress.invalid += 1  # unreadable request: nothing to answer, move on
        elif decision.action == "label" and decision.label:
            event = LabeledTicket(
                ticket=request.ticket,
                label=decision.label,
                label_source="reviewer",
                labeled_by=self.reviewer,
                model_suggestion=request.category,
                model_version=request.model_version,
            )
            self.producer.produce(
                self.settings.topics.labeled, event.to_bytes(), key=request.ticket.id
            )
            flush_all(self.producer, "label")
            self.progress.reviewed += 1
        elif decision.action == "skip":
            again = request.model_copy(
                update={"reason": "requeued", "attempts": request.attempts + 1}
            )
            self.producer.produce(
                self.settings.topics.review, again.to_bytes(), key=request.ticket.id
            )
            flush_all(self.producer, "re-queue")
            self.progress.skipped += 1
        else:
            return  # quit: nothing delivered, nothing committed
        self.consumer.commit([TopicPartition(record.topic, record.partition, record.offset + 1)])

    def close(self) -> None:
        self.consumer.close()


def request_text(request: ReviewRequest) -> str:
    return clean_ticket(request.ticket.subject, request.ticket.body)


def parse_decision(line: str, suggestions: list[str], categories: list[str]) -> Decision | str:
    """A typed answer → a decision, or a message saying what was wrong.

    ``1``..``k`` accepts a suggestion; ``c NAME`` or ``c N`` picks a category from
    the list; ``s`` skips (re-queues); ``q`` quits.
    """
    text = line.strip()
    if not text:
        return "type a number, c, s or q"
    key, _, rest = text.partition(" ")
    key = key.lower()
    if key.isdigit():
        index = int(key) - 1
        if 0 <= index < len(suggestions):
            return Decision("label", suggestions[index])
        return f"no suggestion {key}"
    if key == "s":
        return Decision("skip")
    if key == "q":
        return Decision("quit")
    if key == "c":
        choice = rest.strip()
        if choice.isdigit() and 0 < int(choice) <= len(categories):
            return Decision("label", categories[int(choice) - 1])
        if choice in categories:
            return Decision("label", choice)
        return f"unknown category {choice!r}: pick one of {', '.join(categories)}"
    return f"unknown answer {text!r}"
