from __future__ import annotations

from consumer.events import ClassifiedTicket, RawTicket, ReviewRequest
from consumer.model_store import Thresholds
from consumer.predictor import Prediction
from consumer.routing import Router
from consumer.settings import RoutingSettings

TICKET = RawTicket(id="t-1", body="refund please")


def pred(category: str, confidence: float) -> Prediction:
    return Prediction(category, confidence, [(category, confidence), ("other", 1 - confidence)])


def test_confident_goes_to_classified_and_unsure_to_review() -> None:
    router = Router(Thresholds(0.8), RoutingSettings())
    sure = router.route(TICKET, pred("refund", 0.9), "v1")
    unsure = router.route(TICKET, pred("refund", 0.5), "v1")
    assert isinstance(sure, ClassifiedTicket) and sure.model_version == "v1"
    assert isinstance(unsure, ReviewRequest)
    assert unsure.threshold == 0.8 and [s.category for s in unsure.scores] == ["refund", "other"]


def test_per_category_thresholds_and_overrides() -> None:
    saved = Thresholds(0.8, {"security": 0.95})
    router = Router(saved, RoutingSettings())
    assert isinstance(router.route(TICKET, pred("security", 0.9), "v1"), ReviewRequest)
    assert isinstance(router.route(TICKET, pred("billing", 0.9), "v1"), ClassifiedTicket)
    overridden = Router(saved, RoutingSettings(threshold=0.3, per_category={"billing": 0.99}))
    assert isinstance(overridden.route(TICKET, pred("security", 0.4), "v1"), ClassifiedTicket)
    assert isinstance(overridden.route(TICKET, pred("billing", 0.9), "v1"), ReviewRequest)
