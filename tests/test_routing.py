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


def npred(category: str, confidence: float, novelty: float | None) -> Prediction:
    top = [(category, confidence), ("other", 1 - confidence)]
    return Prediction(category, confidence, top, novelty=novelty, fine_label=f"{category}.fine")


def test_a_confident_but_novel_ticket_goes_to_review_saying_why() -> None:
    router = Router(Thresholds(0.8, novelty=5.0), RoutingSettings())
    usual = router.route(TICKET, npred("refund", 0.99, 1.0), "v2")
    novel = router.route(TICKET, npred("refund", 0.99, 9.0), "v2")
    unsure = router.route(TICKET, npred("refund", 0.5, 1.0), "v2")
    assert isinstance(usual, ClassifiedTicket)
    assert usual.novelty == 1.0 and usual.fine_label == "refund.fine"
    assert usual.schema_version == 2
    assert isinstance(novel, ReviewRequest) and novel.reason == "novel"
    assert novel.novelty == 9.0 and novel.novelty_threshold == 5.0
    assert isinstance(unsure, ReviewRequest) and unsure.reason == "low_confidence"
    # Both unsure and novel: the confidence is the first reason given.
    both = router.route(TICKET, npred("refund", 0.5, 9.0), "v2")
    assert isinstance(both, ReviewRequest) and both.reason == "low_confidence"


def test_novelty_routing_can_be_overridden_or_switched_off() -> None:
    saved = Thresholds(0.8, novelty=5.0)
    looser = Router(saved, RoutingSettings(novelty_threshold=10.0))
    assert isinstance(looser.route(TICKET, npred("refund", 0.99, 9.0), "v2"), ClassifiedTicket)
    off = Router(saved, RoutingSettings(novelty=False))
    routed = off.route(TICKET, npred("refund", 0.99, 99.0), "v2")
    assert isinstance(routed, ClassifiedTicket) and routed.novelty == 99.0
    # A model without novelty statistics (no score) or without a threshold routes as before.
    assert isinstance(
        Router(saved, RoutingSettings()).route(TICKET, pred("refund", 0.99), "v"), ClassifiedTicket
    )
    assert isinstance(
        Router(Thresholds(0.8), RoutingSettings()).route(TICKET, npred("refund", 0.99, 99.0), "v"),
        ClassifiedTicket,
    )


def test_thresholds_round_trip_with_and_without_novelty() -> None:
    with_novelty = Thresholds(0.7, {"a": 0.9}, novelty=3.25)
    assert Thresholds.from_dict(with_novelty.to_dict()) == with_novelty
    old = {"global": 0.7, "per_category": {"a": 0.9}}  # thresholds.json of older models
    assert Thresholds.from_dict(old) == Thresholds(0.7, {"a": 0.9})
    assert "novelty" not in Thresholds(0.7).to_dict()
