"""Turn a prediction into exactly one output event: classified or review."""

from __future__ import annotations

from consumer.events import CategoryScore, ClassifiedTicket, RawTicket, ReviewRequest
from consumer.model_store import Thresholds
from consumer.predictor import Prediction
from consumer.settings import RoutingSettings


class Router:
    def __init__(self, thresholds: Thresholds, settings: RoutingSettings) -> None:
        global_threshold = (
            settings.threshold if settings.threshold is not None else thresholds.global_threshold
        )
        per_category = {**thresholds.per_category, **settings.per_category}
        if settings.threshold is not None:
            # An explicit global override wins over saved per-category values,
            # but explicit per-category settings win over it.
            per_category = dict(settings.per_category)
        self.thresholds = Thresholds(global_threshold, per_category)

    def threshold_for(self, category: str) -> float:
        return self.thresholds.for_category(category)

    def route(
        self, ticket: RawTicket, prediction: Prediction, model_version: str
    ) -> ClassifiedTicket | ReviewRequest:
        scores = [CategoryScore(category=c, score=min(1.0, max(0.0, s))) for c, s in prediction.top]
        confidence = min(1.0, max(0.0, prediction.confidence))
        threshold = self.threshold_for(prediction.category)
        if confidence >= threshold:
            return ClassifiedTicket(
                ticket=ticket,
                category=prediction.category,
                confidence=confidence,
                scores=scores,
                model_version=model_version,
            )
        return ReviewRequest(
            ticket=ticket,
            category=prediction.category,
            confidence=confidence,
            scores=scores,
            model_version=model_version,
            threshold=threshold,
        )
