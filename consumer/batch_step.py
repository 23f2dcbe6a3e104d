"""The pure batch step: records in, exactly one output per record out. No Kafka in here.

validate → clean → predict → route, and every record that cannot be read becomes a dead
letter (errors as data). The step is split in two so that the service can run the model on
its own threads: ``prepare`` (validate, clean, tokenize: cheap, main thread) and ``finish``
(predict, route: the model). ``process`` does both.

Side outputs, after a record's one route: the audit copy of an auto-routed ticket
(``routing.audit_share``, reason ``audit``, on the review topic) and the shadow model's
score (``consumer.shadow``), both picked by ticket id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from consumer.clean import clean_ticket
from consumer.dead_letter import dead_letter_output
from consumer.events import ClassifiedTicket, RawTicket, ReviewRequest
from consumer.kafka import Record
from consumer.outputs import BatchResult, Output
from consumer.predictor import Predictor
from consumer.routing import Router
from consumer.sampling import AUDIT_SALT, picked
from consumer.settings import Settings
from consumer.shadow import Scored, ShadowScorer
from consumer.validate import Invalid, validate_record


@dataclass
class PreparedBatch:
    """A batch after validation and cleaning: what goes to the model, and the dead letters."""

    records: list[Record]
    tickets: list[tuple[int, RawTicket, str]] = field(default_factory=list)  # (index, ticket, text)
    dead: dict[int, Output] = field(default_factory=dict)  # index -> dead letter
    token_ids: list[list[int]] = field(default_factory=list)  # one row per ticket


class BatchStep:
    def __init__(self, settings: Settings, predictor: Predictor) -> None:
        self.settings = settings
        self.shadow: ShadowScorer | None = None
        self.use_model(predictor)

    def use_shadow(self, scorer: ShadowScorer | None) -> None:
        """Swap or drop the shadow model (between batches, like the served one)."""
        self.shadow = scorer

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
        batch.token_ids = self.predictor.tokenize([text for _, _, text in batch.tickets])
        return batch

    def finish(self, batch: PreparedBatch) -> BatchResult:
        topics = self.settings.topics
        routed: dict[int, Output] = dict(batch.dead)
        extras: dict[int, list[Output]] = {}
        scored: list[tuple[int, Scored]] = []
        shadow = self.shadow  # one model pair for the whole batch
        infer_s = 0.0
        if batch.tickets:
            started = time.perf_counter()
            predictions = self.predictor.predict_ids(
                batch.token_ids, top_k=self.settings.routing.top_k
            )
            infer_s = time.perf_counter() - started
            version = self.predictor.version
            for (index, ticket, text), prediction in zip(batch.tickets, predictions, strict=True):
                event = self.router.route(ticket, prediction, version)
                if isinstance(event, ClassifiedTicket):
                    topic, route = topics.classified, "classified"
                else:
                    topic, route = topics.review, "review"
                routed[index] = Output(
                    batch.records[index], topic, ticket.id.encode(), event.to_bytes(), [], route,
                    category=event.category, confidence=event.confidence,
                    novelty=event.novelty,
                )  # fmt: skip
                if isinstance(event, ClassifiedTicket) and self._audited(ticket.id):
                    extras.setdefault(index, []).append(
                        self._audit_copy(batch.records[index], event)
                    )
                if shadow is not None:
                    scored.append((index, Scored(batch.records[index], ticket, text, event)))
        if shadow is not None and scored:
            by_record = {id(s.record): index for index, s in scored}
            for output in shadow.score([s for _, s in scored], infer_s):
                extras.setdefault(by_record[id(output.record)], []).append(output)
        outputs = []
        for i in range(len(batch.records)):
            outputs.append(routed[i])
            outputs.extend(extras.get(i, ()))
        texts = {ticket.id: text for _, ticket, text in batch.tickets}
        return BatchResult(batch.records, outputs, infer_s, texts)

    def _audited(self, ticket_id: str) -> bool:
        return picked(ticket_id, self.settings.routing.audit_share, AUDIT_SALT)

    def _audit_copy(self, record: Record, event: ClassifiedTicket) -> Output:
        """The review request that puts an auto-routed ticket in front of a reviewer too."""
        request = ReviewRequest(
            ticket=event.ticket,
            category=event.category,
            confidence=event.confidence,
            scores=event.scores,
            model_version=event.model_version,
            threshold=self.router.threshold_for(event.category),
            reason="audit",
            novelty=event.novelty,
            novelty_threshold=self.router.thresholds.novelty,
            fine_label=event.fine_label,
        )
        return Output(
            record, self.settings.topics.review, event.ticket.id.encode(), request.to_bytes(), [],
            "audit", category=event.category, confidence=event.confidence, primary=False,
        )  # fmt: skip

    def process(self, records: list[Record]) -> BatchResult:
        return self.finish(self.prepare(records))
