"""The reviewers' queue shared by the terminal tool and the web page, against the real broker."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from consumer.events import DeadLetter, LabeledTicket
from consumer.kafka.admin import admin_client
from consumer.settings import Settings, TopicSettings
from producer_tools.__main__ import run_cli
from producer_tools.review_session import Decision, ReviewQueue, ReviewSession
from tests.browser import wait_for
from tests.kafka_helpers import committed_offsets, end_offsets, produce_values, read_topic
from tests.review_helpers import review_values

pytestmark = [pytest.mark.integration]


def labeled(settings: Settings) -> list[LabeledTicket]:
    return [
        LabeledTicket.model_validate_json(v or b"")
        for _, v, _ in read_topic(settings.kafka, settings.topics.labeled, idle=1.5)
    ]


def all_committed(settings: Settings, group: str) -> bool:
    ends = end_offsets(settings.kafka, settings.topics.review, 3)
    committed = committed_offsets(settings.kafka, group, settings.topics.review, 3)
    return all(committed[p] == e for p, e in ends.items() if e)


def test_unreadable_review_request_goes_to_dead_letter(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = b'{"event_type": "ticket.review", "ticket": 12}'
    produce_values(settings.kafka, settings.topics.review, [("bad-1", garbage)])
    produce_values(settings.kafka, settings.topics.review, review_values(1))
    decisions = tmp_path / "answers.txt"
    decisions.write_text("1\n", encoding="utf-8")
    group = "reviewers-dl"
    argv = ["review", "--reviewer", "ana", "--group", group, "--decisions", str(decisions)]
    code = run_cli([*argv, "--idle-timeout", "3", "--categories", "billing,bug_report"], settings)
    out = capsys.readouterr().out
    assert code == 0, out
    letters = [
        DeadLetter.model_validate_json(v or b"")
        for _, v, _ in read_topic(settings.kafka, settings.topics.dead_letter, idle=1.5)
    ]
    assert len(letters) == 1, out
    assert letters[0].source_topic == settings.topics.review
    assert letters[0].error_type == "invalid_review_request"
    assert base64.b64decode(letters[0].original_value or "") == garbage
    assert "1 unreadable review request(s)" in out
    assert [t.ticket.id for t in labeled(settings)] == ["rv-0"]
    assert all_committed(settings, group)


def test_reviewer_thinking_past_max_poll_interval_keeps_the_ticket(settings: Settings) -> None:
    # The group drops a member that does not poll for max.poll.interval.ms (6 s here).
    kafka = settings.kafka.model_copy(
        update={"extra": {"session.timeout.ms": 6000, "max.poll.interval.ms": 6000}}
    )
    cfg = settings.model_copy(update={"kafka": kafka})
    produce_values(cfg.kafka, cfg.topics.review, review_values(1))
    group = "reviewers-slow"
    session = ReviewSession(cfg, "slow", group)
    try:
        got = session.next_request(timeout=30)
        assert got is not None
        record, request = got
        time.sleep(10)  # the person thinks
        outcome = session.apply(record, request, Decision("label", "billing"))
        assert outcome.ok, outcome.message
    finally:
        session.close()
    other = ReviewSession(cfg, "other", group)
    try:
        assert other.next_request(timeout=5) is None  # not handed out again
    finally:
        other.close()
    assert [(t.ticket.id, t.labeled_by) for t in labeled(cfg)] == [("rv-0", "slow")]
    assert all_committed(cfg, group)


def test_leases_expire_to_the_next_reviewer_and_answers_count_once(settings: Settings) -> None:
    produce_values(settings.kafka, settings.topics.review, review_values(2))
    queue = ReviewQueue(settings, "reviewers-lease", lease_s=1.5).start()
    try:
        a = queue.lease("tab-a", "ana", timeout=30)
        b = queue.lease("tab-b", "bo", timeout=30)
        assert a is not None and b is not None
        assert a.request.ticket.id != b.request.ticket.id  # never the same ticket twice
        assert queue.lease("tab-a", "ana").id == a.id  # type: ignore[union-attr]  # a reload
        time.sleep(2.0)  # both walk away: the leases expire
        c = queue.lease("tab-c", "cy", timeout=5)
        assert c is not None and c.request.ticket.id in {a.request.ticket.id, b.request.ticket.id}
        stale = a if c.request.ticket.id == a.request.ticket.id else b
        late = b if stale is a else a
        refused = queue.answer(stale.id, Decision("label", "billing"))
        assert refused.status == "taken" and "not recorded" in refused.message
        first = queue.answer(c.id, Decision("label", "bug_report"))
        again = queue.answer(c.id, Decision("label", "bug_report"))  # a browser retrying
        assert first.ok and again == first
        # A late answer nobody else took is still recorded (the ticket was only waiting).
        assert queue.answer(late.id, Decision("label", "feature_request")).ok
        assert queue.lease("tab-d", "di", timeout=1) is None
    finally:
        queue.close()
    got = sorted((t.ticket.id, t.labeled_by) for t in labeled(settings))
    assert [who for _, who in got] == sorted(["cy", late.reviewer])
    assert sorted(i for i, _ in got) == ["rv-0", "rv-1"]
    assert all_committed(settings, "reviewers-lease")


def test_two_processes_never_get_the_same_ticket(settings: Settings) -> None:
    produce_values(settings.kafka, settings.topics.review, review_values(12))
    seen: dict[str, list[str]] = {"p1": [], "p2": []}
    errors: list[BaseException] = []
    deadline = time.monotonic() + 120

    def drain(name: str) -> None:
        queue = ReviewQueue(settings, "reviewers-two", prefetch=2).start()
        try:
            # Slowly, so that the second process joins (a rebalance) while the first answers.
            while sum(map(len, seen.values())) < 12 and time.monotonic() < deadline:
                lease = queue.lease(name, name, timeout=1)
                if lease is None:
                    continue
                seen[name].append(lease.request.ticket.id)
                assert queue.answer(lease.id, Decision("label", "billing")).ok
                time.sleep(1.0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            queue.close()

    threads = [threading.Thread(target=drain, args=(n,)) for n in seen]
    for thread in threads:
        thread.start()
        time.sleep(2)
    for thread in threads:
        thread.join(150)
    assert not errors, errors
    assert sorted(seen["p1"] + seen["p2"]) == sorted(f"rv-{i}" for i in range(12)), seen
    assert seen["p1"] and seen["p2"], seen  # both got work
    ids = [t.ticket.id for t in labeled(settings)]
    assert sorted(ids) == sorted(f"rv-{i}" for i in range(12))  # each exactly once
    assert all_committed(settings, "reviewers-two")


def test_topics_creates_the_review_topic_with_a_long_retention(
    settings: Settings, unique: str
) -> None:
    names = {k: f"r-{unique}.{k}" for k in ("raw", "classified", "review", "dead", "labeled")}
    topics = TopicSettings(
        raw=names["raw"],
        classified=names["classified"],
        review=names["review"],
        dead_letter=names["dead"],
        labeled=names["labeled"],
        review_retention_ms=1234567890,
    )
    assert run_cli(["topics"], settings.model_copy(update={"topics": topics})) == 0
    admin = admin_client(settings.kafka)
    resource = ConfigResource(ConfigResource.Type.TOPIC, names["review"])
    configs = next(iter(admin.describe_configs([resource]).values())).result(10)
    assert configs["retention.ms"].value == "1234567890"
    assert TopicSettings().review_retention_ms >= 30 * 24 * 3600 * 1000  # long by default
    json.dumps(names)  # names are plain strings (topics refuse anything else)


def test_an_answer_does_not_wait_for_the_poll_threads_fetch(settings: Settings) -> None:
    """The answer is delivered at once and its commit left to the poll loop's next turn: a
    reviewer never waits for a fetch (each answer waited up to ``poll_interval_s`` for the
    consumer, 0.2 s by default, before it returned)."""
    produce_values(settings.kafka, settings.topics.review, review_values(2))
    queue = ReviewQueue(settings, "reviewers-fast-answer", prefetch=2, poll_interval_s=4.0)
    try:
        queue.start()
        lease = queue.lease("tab", "ana", timeout=30)
        assert lease is not None
        time.sleep(0.5)  # the poll thread is in its next fetch (nothing more to read)
        started = time.monotonic()
        assert queue.answer(lease.id, Decision("label", "billing")).ok
        took = time.monotonic() - started
        assert took < 2.0, f"the answer waited {took:.1f} s for the poll thread's fetch"
        partition = lease.record.partition

        def committed() -> bool:  # the poll loop commits it on its next turn
            done = committed_offsets(
                settings.kafka, "reviewers-fast-answer", settings.topics.review, 3
            )
            return bool(done[partition] == lease.record.offset + 1)

        wait_for(committed, 20, "the answer's commit")
    finally:
        queue.close()


def test_the_progress_count_does_not_wait_for_the_poll_threads_fetch(settings: Settings) -> None:
    """``remaining`` (the page's progress, asked after every answer and every next ticket)
    reads the poll loop's count: it took the client and waited for the poll thread's fetch,
    up to ``poll_interval_s``, twice a ticket (0.4-0.8 s between tickets in the page)."""
    produce_values(settings.kafka, settings.topics.review, review_values(5))
    queue = ReviewQueue(settings, "reviewers-fast-progress", prefetch=2, poll_interval_s=4.0)
    try:
        queue.start()
        lease = queue.lease("tab", "ana", timeout=30)
        assert lease is not None
        wait_for(lambda: queue.remaining() == 5, 20, "all five counted")
        time.sleep(0.5)  # the poll thread is in its next fetch (paused: the buffer is full)
        started = time.monotonic()
        left = queue.remaining()
        took = time.monotonic() - started
        assert took < 1.0, f"the count waited {took:.1f} s for the poll thread's fetch"
        assert left == 5
        assert queue.answer(lease.id, Decision("label", "billing")).ok
        assert queue.remaining() == 4, "the answered ticket leaves the count at once"
    finally:
        queue.close()
