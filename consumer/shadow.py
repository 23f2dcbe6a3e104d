"""The shadow model: a second model scoring live traffic without serving it.

``<store>/shadow`` (a symlink like ``current``; ``python -m training promote --shadow V``)
is loaded and validated like the served model and hot-reloaded by the same watcher.
After the served model has scored a batch, on the same inference worker, the shadow
scores the share ``shadow.share`` of its tickets (picked by ticket id, so a replay picks
the same ones) and routes them as it would, with its own thresholds. Each becomes a
``ticket.shadow`` event on ``tickets.shadow`` with both answers; nothing a routing
service reads changes. The shadow's time is budgeted against the served model's
(``shadow.max_cpu_share``): when it has used its share, batches go unscored (counted).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from consumer.events import (
    ClassifiedTicket,
    RawTicket,
    ReviewRequest,
    ShadowScore,
    ShadowSide,
)
from consumer.kafka import Record
from consumer.metrics import Metrics
from consumer.outputs import Output
from consumer.predictor import Predictor
from consumer.routing import Router
from consumer.sampling import SHADOW_SALT, picked
from consumer.settings import Settings


def side(event: ClassifiedTicket | ReviewRequest) -> ShadowSide:
    """One model's answer, as the routed event says it."""
    review = isinstance(event, ReviewRequest)
    return ShadowSide(
        model_version=event.model_version,
        category=event.category,
        confidence=event.confidence,
        route="review" if review else "classified",
        reason=event.reason if isinstance(event, ReviewRequest) else None,
        novelty=event.novelty,
    )


@dataclass(frozen=True)
class Scored:
    """A ticket of the batch as the served model routed it."""

    record: Record
    ticket: RawTicket
    text: str
    served: ClassifiedTicket | ReviewRequest


class ShadowScorer:
    def __init__(self, settings: Settings, predictor: Predictor, metrics: Metrics) -> None:
        self.settings = settings
        self.predictor = predictor
        self.router = Router(predictor.model.thresholds, settings.routing)
        self.metrics = metrics
        self.served_s = 0.0  # since this shadow loaded
        self.shadow_s = 0.0
        self._lock = threading.Lock()  # one batch at a time: the budget sums stay whole

    @property
    def version(self) -> str:
        return self.predictor.version

    def picks(self, ticket_id: str) -> bool:
        return picked(ticket_id, self.settings.shadow.share, SHADOW_SALT)

    def within_budget(self) -> bool:
        return self.shadow_s <= self.settings.shadow.max_cpu_share * self.served_s

    def score(self, tickets: list[Scored], served_s: float) -> list[Output]:
        """Shadow outputs for the picked ``tickets`` of a batch the served model took
        ``served_s`` on (their order kept). Batches from several inference workers take turns."""
        with self._lock:
            return self._score(tickets, served_s)

    def _score(self, tickets: list[Scored], served_s: float) -> list[Output]:
        self.served_s += served_s
        chosen = [t for t in tickets if self.picks(t.ticket.id)]
        if not chosen:
            return []
        if not self.within_budget():
            self.metrics.shadow_skipped.labels(reason="cpu_budget").inc(len(chosen))
            self._export_share()
            return []
        started = time.perf_counter()
        predictions = self.predictor.predict(
            [t.text for t in chosen], top_k=self.settings.routing.top_k
        )
        took = time.perf_counter() - started
        self.shadow_s += took
        self.metrics.shadow_seconds.inc(took)
        self._export_share()
        topic = self.settings.topics.shadow
        outputs = []
        for t, prediction in zip(chosen, predictions, strict=True):
            shadow_event = self.router.route(t.ticket, prediction, self.version)
            event = ShadowScore(
                ticket_id=t.ticket.id,
                served=side(t.served),
                shadow=side(shadow_event),
                agree=shadow_event.category == t.served.category,
            )
            outputs.append(
                Output(
                    t.record,
                    topic,
                    t.ticket.id.encode(),
                    event.to_bytes(),
                    [],
                    "shadow",
                    primary=False,
                    shadow=event,
                )
            )
        return outputs

    def _export_share(self) -> None:
        if self.served_s > 0:
            self.metrics.shadow_cpu_share.set(self.shadow_s / self.served_s)


def observe_shadow(metrics: Metrics, event: ShadowScore) -> None:
    """Count one delivered ``ticket.shadow`` event in the shadow metrics."""
    labels = {
        "category": event.served.category,
        "served_version": event.served.model_version,
        "shadow_version": event.shadow.model_version,
    }
    metrics.shadow_scored.labels(**labels).inc()
    if event.agree:
        metrics.shadow_agreed.labels(**labels).inc()
    if event.shadow.route == "review":
        metrics.shadow_review.labels(**labels).inc()
    metrics.shadow_confidence.labels(
        category=event.served.category, shadow_version=event.shadow.model_version
    ).observe(event.shadow.confidence)
