"""Turn a prediction into exactly one output event: classified or review.

Review when the confidence is under the category's threshold (reason
``low_confidence``), or else when the ticket is unlike the training data: its
novelty score over the model's novelty threshold (reason ``novel``), however
confident the softmax is.
"""

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
        novelty = (
            settings.novelty_threshold
            if settings.novelty_threshold is not None
            else thresholds.novelty
        )
        self.thresholds = Thresholds(
            global_threshold, per_category, novelty if settings.novelty else None
        )

    def threshold_for(self, category: str) -> float:
        return self.thresholds.for_category(category)

    def is_novel(self, prediction: Prediction) -> bool:
        limit = self.thresholds.novelty
        return limit is not None and prediction.novelty is not None and prediction.novelty > limit

    def route(
        self, ticket: RawTicket, prediction: Prediction, model_version: str
    ) -> ClassifiedTicket | ReviewRequest:
        scores = [CategoryScore(category=c, score=min(1.0, max(0.0, s))) for c, s in prediction.top]
        confidence = min(1.0, max(0.0, prediction.confidence))
        threshold = self.threshold_for(prediction.category)
        novelty = None if prediction.novelty is None else max(0.0, prediction.novelty)
        confident = confidence >= threshold
        if confident and not self.is_novel(prediction):
            return ClassifiedTicket(
                ticket=ticket,
                category=prediction.category,
                confidence=confidence,
                scores=scores,
                model_version=model_version,
                novelty=novelty,
                fine_label=prediction.fine_label,
            )
        return ReviewRequest(
            ticket=ticket,
            category=prediction.category,
            confidence=confidence,
            scores=scores,
            model_version=model_version,
            threshold=threshold,
            reason="low_confidence" if not confident else "novel",
            novelty=novelty,
            novelty_threshold=self.thresholds.novelty,
            fine_label=prediction.fine_label,
        )
