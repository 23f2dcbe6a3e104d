"""Shadow scoring, the audit sample and online evaluation, without a broker.

The served model is an untrained model folder; the shadow is the same folder with two label
names swapped in labels.json, so the two disagree exactly on the tickets the served model
puts in either of those categories: a known subset to check the agreement figures against.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer.batch_step import BatchStep
from consumer.events import ClassifiedTicket, RawTicket, ReviewRequest, ShadowScore, ShadowSide
from consumer.metrics import Metrics
from consumer.model_store import SHADOW, load_model, promote, update_manifest
from consumer.offsets import OffsetTracker
from consumer.predictor import Predictor
from consumer.reload import ModelWatcher
from consumer.sampling import AUDIT_SALT, SHADOW_SALT, picked
from consumer.settings import Settings
from consumer.shadow import ShadowScorer, observe_shadow
from tests.chaos.models import write_untrained_model
from tests.fakes import record
from training.online_eval import Answer, Window, compare, decide_promotion, paired_difference

SWAP = {"billing": "technical", "technical": "billing"}
BODIES = [
    "I was charged twice on my invoice",
    "the app crashes when I log in",
    "please reset my password",
    "my parcel never arrived",
    "refund the duplicate payment",
    "error 500 on the settings page",
]


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_model(tmp_path_factory.mktemp("shadow") / "v-served", seed=3)


def swapped_copy(served: Path, folder: Path) -> Path:
    """The served model with two labels' names swapped: a shadow that disagrees on them."""
    shutil.copytree(served, folder)
    labels = json.loads((folder / "labels.json").read_text())
    (folder / "labels.json").write_text(json.dumps([SWAP.get(x, x) for x in labels]))
    update_manifest(folder, version=folder.name)
    return folder


def offline(**routing: object) -> Settings:
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    return base.model_copy(
        update={"routing": base.routing.model_copy(update={"threshold": 0.0, **routing})}
    )


def records(n: int, topic: str) -> list:  # type: ignore[type-arg]
    return [
        record(i % 3, i, RawTicket(id=f"s-{i}", body=f"{BODIES[i % 6]} ({i})").to_bytes(), topic)
        for i in range(n)
    ]


def test_a_record_with_two_outputs_is_committable_only_after_both() -> None:
    tracker = OffsetTracker()
    tracker.add("raw", 0, 5, outputs=2)
    tracker.add("raw", 0, 6)
    tracker.mark_done("raw", 0, 6)
    tracker.mark_done("raw", 0, 5)
    assert tracker.committable() == {("raw", 0): 5}  # 5 still has an output in flight
    tracker.mark_done("raw", 0, 5)
    assert tracker.committable() == {("raw", 0): 7}


def test_the_audit_share_sends_a_copy_of_picked_auto_routed_tickets_to_review(
    served_dir: Path,
) -> None:
    settings = offline(audit_share=0.3)
    step = BatchStep(settings, Predictor(load_model(served_dir)))
    batch = records(120, settings.topics.raw)
    result = step.process(batch)
    assert [o.route for o in result.primaries] == ["classified"] * 120
    audits = [o for o in result.outputs if o.route == "audit"]
    expected = {f"s-{i}" for i in range(120) if picked(f"s-{i}", 0.3, AUDIT_SALT)}
    assert {o.key.decode() for o in audits if o.key} == expected
    assert 0.15 < len(expected) / 120 < 0.45
    classified = {
        e.ticket.id: e
        for e in (ClassifiedTicket.model_validate_json(o.value) for o in result.primaries)
    }
    for output in audits:
        request = ReviewRequest.model_validate_json(output.value)
        assert output.topic == settings.topics.review and not output.primary
        assert request.reason == "audit" and request.schema_version == 3
        assert request.category == classified[request.ticket.id].category
    # Every record's outputs follow it, so the sink can wait for all of them.
    counts = result.outputs_per_record()
    assert sum(counts.values()) == 120 + len(audits)
    assert max(counts.values()) == 2


def test_no_audit_copies_by_default(served_dir: Path) -> None:
    settings = offline()
    result = BatchStep(settings, Predictor(load_model(served_dir))).process(
        records(40, settings.topics.raw)
    )
    assert len(result.outputs) == 40


def test_the_shadow_scores_its_share_and_agrees_except_on_the_swapped_labels(
    served_dir: Path, tmp_path: Path
) -> None:
    settings = offline().model_copy(
        update={"shadow": Settings().shadow.model_copy(update={"share": 0.5})}
    )
    metrics = Metrics()
    served = Predictor(load_model(served_dir))
    shadow = Predictor(load_model(swapped_copy(served_dir, tmp_path / "v-shadow")))
    step = BatchStep(settings, served)
    step.use_shadow(ShadowScorer(settings, shadow, metrics))
    result = step.process(records(90, settings.topics.raw))
    served_events = {
        e.ticket.id: e
        for e in (ClassifiedTicket.model_validate_json(o.value) for o in result.primaries)
    }
    scores = [o.shadow for o in result.outputs if o.route == "shadow"]
    assert all(s is not None for s in scores)
    events = [s for s in scores if s is not None]
    assert {e.ticket_id for e in events} == {
        t for t in served_events if picked(t, 0.5, SHADOW_SALT)
    }
    for event in events:
        served_event = served_events[event.ticket_id]
        assert event.served.category == served_event.category
        assert event.served.model_version == "v-served"
        assert event.shadow.model_version == "v-shadow"
        assert event.shadow.category == SWAP.get(served_event.category, served_event.category)
        assert event.agree == (served_event.category not in SWAP)
    # Nothing a routing service reads changed: the primaries are the served model's alone.
    alone = BatchStep(settings, served).process(records(90, settings.topics.raw))
    assert [o.value for o in alone.primaries] != []
    assert [(o.topic, o.category) for o in alone.primaries] == [
        (o.topic, o.category) for o in result.primaries
    ]
    for event in events:
        observe_shadow(metrics, event)
    registry = metrics.registry
    scored = sum(
        registry.get_sample_value(
            "ticketsort_shadow_scored_total",
            {"category": c, "served_version": "v-served", "shadow_version": "v-shadow"},
        )
        or 0
        for c in {e.served.category for e in events}
    )
    agreed = sum(
        registry.get_sample_value(
            "ticketsort_shadow_agreed_total",
            {"category": c, "served_version": "v-served", "shadow_version": "v-shadow"},
        )
        or 0
        for c in {e.served.category for e in events}
    )
    assert scored == len(events)
    assert agreed == sum(e.served.category not in SWAP for e in events)
    assert agreed < scored  # the subset is not empty: the check above can fail


def test_the_shadow_stops_scoring_when_its_cpu_budget_is_spent(
    served_dir: Path, tmp_path: Path
) -> None:
    base = offline()
    settings = base.model_copy(
        update={"shadow": base.shadow.model_copy(update={"share": 1.0, "max_cpu_share": 0.01})}
    )
    metrics = Metrics()
    step = BatchStep(settings, Predictor(load_model(served_dir)))
    step.use_shadow(
        ShadowScorer(
            settings, Predictor(load_model(swapped_copy(served_dir, tmp_path / "v2"))), metrics
        )
    )
    first = step.process(records(16, settings.topics.raw))
    second = step.process(records(16, settings.topics.raw))
    assert sum(o.route == "shadow" for o in first.outputs) == 16  # within budget at first
    assert sum(o.route == "shadow" for o in second.outputs) == 0
    assert (
        metrics.registry.get_sample_value(
            "ticketsort_shadow_skipped_total", {"reason": "cpu_budget"}
        )
        == 16
    )
    assert len(second.primaries) == 16


def test_the_shadow_watcher_loads_the_link_and_reports_its_removal(
    served_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    folder = swapped_copy(served_dir, store / "v-shadow")
    settings = Settings(_env_file=None).model.model_copy(update={"store": store})  # type: ignore[call-arg]
    watcher = ModelWatcher(settings, None, Metrics(), link=SHADOW)
    watcher.check_once()
    assert watcher.take_ready() is None and not watcher.take_removed()
    promote(store, folder, SHADOW)
    watcher.check_once()
    ready = watcher.take_ready()
    assert ready is not None and ready.version == "v-shadow"
    (store / SHADOW).unlink()
    watcher.check_once()
    assert watcher.take_removed()
    assert not watcher.take_removed()  # reported once


def _side(version: str, category: str) -> ShadowSide:
    return ShadowSide(model_version=version, category=category, confidence=0.9, route="classified")


def controlled_window(
    n: int, served_right: int, shadow_right: int, reason: str = "audit"
) -> Window:
    """``n`` reviewed tickets both models scored; the first ``served_right`` the served model
    got right, the last ``shadow_right`` the shadow did."""
    window = Window(since_ms=0, until_ms=1)
    now = datetime.now(UTC)
    for i in range(n):
        truth = "billing"
        served = truth if i < served_right else "technical"
        shadow = truth if i >= n - shadow_right else "account"
        ticket_id = f"c-{i}"
        window.answers[ticket_id] = Answer(ticket_id, truth, reason, served, "v1", now)
        window.add_score(
            ShadowScore(
                ticket_id=ticket_id,
                served=_side("v1", served),
                shadow=_side("v2", shadow),
                agree=served == shadow,
                scored_at=now - timedelta(seconds=1),
            )
        )
    return window


def test_compare_finds_a_better_shadow_and_promotion_follows() -> None:
    result = compare(controlled_window(200, 150, 190), confidence=0.95, min_pairs=30)
    assert result.basis == "audit" and result.verdict == "better"
    served_audit = next(r for r in result.rows if r.model == "served" and r.slice == "audit")
    shadow_audit = next(r for r in result.rows if r.model == "shadow" and r.slice == "audit")
    assert served_audit.result.accuracy == 0.75 and shadow_audit.result.accuracy == 0.95
    assert served_audit.result.low < 0.75 < served_audit.result.high
    assert result.difference is not None and result.difference.mean == pytest.approx(0.2)
    assert result.difference.low > 0
    assert decide_promotion(result, margin=0.01).promote


def test_compare_finds_a_worse_shadow_and_promotion_is_refused() -> None:
    result = compare(controlled_window(200, 190, 150), confidence=0.95, min_pairs=30)
    assert result.verdict == "worse"
    decision = decide_promotion(result, margin=0.01)
    assert not decision.promote and "may be worse" in decision.reason


def test_too_few_pairs_is_not_evidence() -> None:
    result = compare(controlled_window(10, 2, 10), confidence=0.95, min_pairs=30)
    assert result.verdict == "not enough evidence"
    assert not decide_promotion(result, margin=0.5).promote


def test_without_enough_audits_auto_decides_on_every_reviewed_ticket_and_says_so() -> None:
    result = compare(
        controlled_window(100, 60, 90, reason="low_confidence"), confidence=0.95, min_pairs=30
    )
    assert result.basis == "reviewed" and "hard" in result.basis_note
    assert result.verdict == "better"


def test_identical_answers_have_a_zero_width_difference() -> None:
    window = controlled_window(50, 40, 10)  # different tickets right: discordant both ways
    assert paired_difference(window.pairs("v2"), 0.95).low < 0
    same = controlled_window(50, 50, 50)
    diff = paired_difference(same.pairs("v2"), 0.95)
    assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0)
