"""Shadow, audit and online evaluation against the real broker (issue 16).

One stream goes through the service with a shadow model that disagrees with the served one
on a known subset (tests.test_shadow.swapped_copy) and an audit share; reviewers answer the
audit requests through the reviewers' queue; ``compare`` then reads both topics back, and
``promote --from-shadow`` decides both ways on controlled label streams.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.events import (
    ClassifiedTicket,
    LabeledTicket,
    RawTicket,
    ReviewRequest,
    ShadowScore,
    ShadowSide,
)
from consumer.model_store import SHADOW, current_version, load_model, promote
from consumer.predictor import Predictor
from consumer.sampling import AUDIT_SALT, SHADOW_SALT, picked
from consumer.service import ClassifierService
from consumer.settings import Settings
from producer_tools.review_session import Decision, ReviewSession
from tests.chaos.models import write_untrained_model
from tests.kafka_helpers import produce_values, read_topic
from tests.test_shadow import BODIES, SWAP, swapped_copy
from tests.waiting import wait_until
from training.cli import main as training_main
from training.online_eval import compare, read_window

pytestmark = [pytest.mark.integration]

N = 60


def _configured(settings: Settings, store: Path) -> Settings:
    return settings.model_copy(
        update={
            "model": settings.model.model_copy(update={"store": store, "reload_interval_s": 0.5}),
            "routing": settings.routing.model_copy(update={"threshold": 0.0, "audit_share": 0.25}),
            "shadow": settings.shadow.model_copy(update={"share": 0.5}),
        }
    )


def test_shadow_scores_its_share_audits_reach_review_and_reviews_give_online_accuracy(
    settings: Settings, tmp_path: Path
) -> None:
    store = tmp_path / "models"
    store.mkdir()
    served_dir = write_untrained_model(store / "v-served", seed=3)
    promote(store, served_dir)
    promote(store, swapped_copy(served_dir, store / "v-shadow"), SHADOW)
    cfg = _configured(settings, store)
    service = ClassifierService(cfg, Predictor(load_model(served_dir), cfg.model))
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(service.run()), daemon=True)
    thread.start()
    ids = [f"sh-{i}" for i in range(N)]
    produce_values(
        cfg.kafka,
        cfg.topics.raw,
        [(t, RawTicket(id=t, body=f"{BODIES[i % 6]} ({i})").to_bytes()) for i, t in enumerate(ids)],
    )
    expected_shadow = {t for t in ids if picked(t, 0.5, SHADOW_SALT)}
    expected_audit = {t for t in ids if picked(t, 0.25, AUDIT_SALT)}
    try:
        wait_until(lambda: service.totals["consumed"] >= N and service.settled())
    finally:
        service.stop_event.set()
        thread.join(60)
    assert codes == [0]

    classified = [
        ClassifiedTicket.model_validate_json(v or b"")
        for _, v, _ in read_topic(cfg.kafka, cfg.topics.classified, expected=N)
    ]
    # Routing services see the served model only, every ticket once.
    assert sorted(e.ticket.id for e in classified) == sorted(ids)
    assert {e.model_version for e in classified} == {"v-served"}
    served_category = {e.ticket.id: e.category for e in classified}

    shadow = [
        ShadowScore.model_validate_json(v or b"")
        for _, v, _ in read_topic(cfg.kafka, cfg.topics.shadow, expected=len(expected_shadow))
    ]
    assert {e.ticket_id for e in shadow} == expected_shadow and len(shadow) == len(expected_shadow)
    disagree = {t for t in expected_shadow if served_category[t] in SWAP}
    assert {e.ticket_id for e in shadow if not e.agree} == disagree
    text = service.metrics.render().decode()
    agreed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ticketsort_shadow_agreed_total{")
    )
    scored = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ticketsort_shadow_scored_total{")
    )
    assert (scored, agreed) == (len(expected_shadow), len(expected_shadow) - len(disagree))
    assert 0 < len(disagree) < len(expected_shadow)

    requests = [
        ReviewRequest.model_validate_json(v or b"")
        for _, v, _ in read_topic(cfg.kafka, cfg.topics.review, expected=len(expected_audit))
    ]
    assert {r.ticket.id for r in requests} == expected_audit
    assert {r.reason for r in requests} == {"audit"}

    # Reviewers answer every audit request; the truth is "billing" for all of them.
    session = ReviewSession(cfg, "ana", "reviewers-shadow")
    try:
        for _ in expected_audit:
            got = session.next_request(timeout=30)
            assert got is not None
            assert session.apply(got[0], got[1], Decision("label", "billing")).ok
    finally:
        session.close()
    labels = [
        LabeledTicket.model_validate_json(v or b"")
        for _, v, _ in read_topic(cfg.kafka, cfg.topics.labeled, expected=len(expected_audit))
    ]
    assert {x.review_reason for x in labels} == {"audit"}

    result = compare(read_window(cfg, 0), confidence=0.95, min_pairs=1)
    rows = {(r.model, r.slice): r.result for r in result.rows}
    served_right = sum(served_category[t] == "billing" for t in expected_audit)
    assert rows[("served", "audit")].n == len(expected_audit)
    assert rows[("served", "audit")].correct == served_right
    both = expected_audit & expected_shadow
    shadow_right = sum(SWAP.get(served_category[t], served_category[t]) == "billing" for t in both)
    assert rows[("shadow", "audit")].n == len(both)
    assert rows[("shadow", "audit")].correct == shadow_right
    assert result.shadow_version == "v-shadow" and result.basis == "audit"


def _controlled(cfg: Settings, n: int, served_right: int, shadow_right: int, shadow: str) -> None:
    """Reviewers' labels on audited tickets and both models' answers for them."""
    now = datetime.now(UTC)
    labels, scores = [], []
    for i in range(n):
        ticket = RawTicket(id=f"ctl-{i}", body="where is my refund")
        served = "billing" if i < served_right else "technical"
        other = "billing" if i >= n - shadow_right else "account"
        labels.append(
            (
                ticket.id,
                LabeledTicket(
                    ticket=ticket, label="billing", label_source="reviewer", labeled_by="ana",
                    model_suggestion=served, model_version="v-served", review_reason="audit",
                    labeled_at=now,
                ).to_bytes(),
            )
        )  # fmt: skip
        side = {"confidence": 0.9, "route": "classified"}
        scores.append(
            (
                ticket.id,
                ShadowScore(
                    ticket_id=ticket.id,
                    served=ShadowSide(model_version="v-served", category=served, **side),
                    shadow=ShadowSide(model_version=shadow, category=other, **side),
                    agree=served == other,
                ).to_bytes(),
            )
        )
    produce_values(cfg.kafka, cfg.topics.labeled, labels)
    produce_values(cfg.kafka, cfg.topics.shadow, scores)


def _env(monkeypatch: pytest.MonkeyPatch, cfg: Settings, store: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", cfg.kafka.bootstrap_servers)
    monkeypatch.setenv("TICKETSORT_TOPICS__LABELED", cfg.topics.labeled)
    monkeypatch.setenv("TICKETSORT_TOPICS__SHADOW", cfg.topics.shadow)
    monkeypatch.setenv("TICKETSORT_MODEL__STORE", str(store))


@pytest.mark.parametrize(
    ("served_right", "shadow_right", "promoted"), [(60, 76, True), (76, 55, False)]
)
def test_promote_from_shadow_decides_on_online_evidence_both_ways(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served_right: int,
    shadow_right: int,
    promoted: bool,
) -> None:
    store = tmp_path / "models"
    store.mkdir()
    served_dir = write_untrained_model(store / "v-served", seed=3)
    promote(store, served_dir)
    shadow_dir = swapped_copy(served_dir, store / "v-shadow")
    _env(monkeypatch, settings, store)
    assert training_main(["promote", "--shadow", "v-shadow"]) == 0
    assert current_version(store, SHADOW) == "v-shadow"
    _controlled(settings, 80, served_right, shadow_right, "v-shadow")
    capsys.readouterr()

    assert training_main(["compare", "--since", "1h"]) == 0
    table = capsys.readouterr().out
    assert ("the shadow is better" in table) == promoted
    assert ("the shadow is worse" in table) == (not promoted)

    assert training_main(["promote", "--from-shadow", "--since", "1h"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["promoted"] is promoted
    evidence = json.loads((shadow_dir / "online_promotion.json").read_text())
    assert evidence["decision"]["promote"] is promoted
    assert evidence["comparison"]["difference"]["n"] == 80
    if promoted:
        assert current_version(store) == "v-shadow" and current_version(store, SHADOW) is None
    else:
        assert current_version(store) == "v-served" and current_version(store, SHADOW) == "v-shadow"


def test_promote_refuses_an_unknown_version(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, settings, tmp_path)
    assert training_main(["promote", "--shadow", "v-nope"]) == 2
    assert training_main(["promote", "--from-shadow"]) == 2  # no shadow installed
