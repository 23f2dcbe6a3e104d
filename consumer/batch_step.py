"""The pure batch step: records in, exactly one output per record out. No Kafka in here.

validate → clean → predict → route, and every record that cannot be read becomes a dead
letter (errors as data). The step is split in two so that the service can run the model on
its own thread: ``prepare`` (validate, clean: cheap, main thread) and ``finish`` (predict,
route: the model). ``process`` does both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from consumer.clean import clean_ticket
from consumer.dead_letter import dead_letter_output
from consumer.events import ClassifiedTicket, RawTicket
from consumer.kafka import Record
from consumer.outputs import BatchResult, Output
from consumer.predictor import Predictor
from consumer.routing import Router
from consumer.settings import Settings
from consumer.validate import Invalid, validate_record


@dataclass
class PreparedBatch:
    """A batch after validation and cleaning: what goes to the model, and the dead letters."""

    records: list[Record]
    tickets: list[tuple[int, RawTicket, str]] = field(default_factory=list)  # (index, ticket, text)
    dead: dict[int, Output] = field(default_factory=dict)  # index -> dead letter


class BatchStep:
    def __init__(self, settings: Settings, predictor: Predictor) -> None:
        self.settings = settings
        self.use_model(predictor)

    def use_model(self, predictor: Predictor) -> None:
        """Swap the model (between batches: a batch is never split across two models)."""
        self.predictor = predictor
        self.router = Router(predictor.model.thresholds, self.settings.routing)

    def prepare(self, records: list[Record]) -> PreparedBatch:
        validation = self.settings.validation
        topics = self.settings.topics
        batch = PreparedBatch(records)
        for index, record in enumerate(records):
            result = validate_record(record, validation.max_body_bytes)
            if isinstance(result, RawTicket):
                text = clean_ticket(
                    result.subject, result.body, max_chars=validation.max_clean_chars
                )
                if text:
                    batch.tickets.append((index, result, text))
                    continue
                result = Invalid("empty_after_cleaning", "no text left after cleaning")
            batch.dead[index] = dead_letter_output(
                record,
                result.error_type,
                result.message,
                topics.dead_letter,
                topics.max_message_bytes,
            )
        return batch

    def finish(self, batch: PreparedBatch) -> BatchResult:
        topics = self.settings.topics
        routed: dict[int, Output] = dict(batch.dead)
        infer_s = 0.0
        if batch.tickets:
            started = time.perf_counter()
            predictions = self.predictor.predict(
                [text for _, _, text in batch.tickets], top_k=self.settings.routing.top_k
            )
            infer_s = time.perf_counter() - started
            version = self.predictor.version
            for (index, ticket, _), prediction in zip(batch.tickets, predictions, strict=True):
                event = self.router.route(ticket, prediction, version)
                if isinstance(event, ClassifiedTicket):
                    topic, route = topics.classified, "classified"
                else:
                    topic, route = topics.review, "review"
                routed[index] = Output(
                    batch.records[index], topic, ticket.id.encode(), event.to_bytes(), [], route,
                    category=event.category, confidence=event.confidence,
                )  # fmt: skip
        outputs = [routed[i] for i in range(len(batch.records))]
        texts = {ticket.id: text for _, ticket, text in batch.tickets}
        return BatchResult(batch.records, outputs, infer_s, texts)

    def process(self, records: list[Record]) -> BatchResult:
        return self.finish(self.prepare(records))
