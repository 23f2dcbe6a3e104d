"""The reviewers' queue, free of any user interface: the terminal tool and the web page share it.

``ReviewQueue`` is one process's share of the review topic (its partitions in the
reviewers' consumer group), handed out to reviewers one ticket at a time:

* **Leases.** ``lease(holder)`` gives a reviewer (a terminal, a browser session)
  the next ticket nobody holds; asking again returns the same ticket (a reload
  loses nothing). A lease held past ``lease_s`` goes back to the front of the
  queue for the next reviewer; a late answer is still taken when nobody else
  got the ticket meanwhile, and refused with a clear message when someone did.
  Two holders never hold the same ticket; two processes never share a partition.
* **Answers.** A label becomes a ``LabeledTicket`` on the archive (source
  ``reviewer``, who, when); a skip re-queues the request to the review topic
  (``attempts`` + 1). The request's offset is committed only after that output
  is delivered, and only contiguously (``OffsetTracker``): nothing before an
  unanswered ticket is committed. An answer is recorded once: answering the same
  lease again (a browser retrying after a lost reply) returns the first outcome.
* **Keep-alive.** A background thread polls the consumer all the time (with the
  partitions paused once ``prefetch`` tickets are buffered), so a reviewer may
  think longer than ``max.poll.interval.ms`` without the group dropping the
  process and handing the ticket to someone else. Polled records are never
  thrown away.
* **Bad input.** A review record that is not a readable ``ReviewRequest`` goes to
  the dead-letter topic with the reason, then its offset is committed.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from pydantic import ValidationError

from consumer.clean import clean_ticket
from consumer.dead_letter import dead_letter_for, dead_letter_headers
from consumer.events import LabeledTicket, ReviewRequest
from consumer.kafka import Consumer, Producer, Record
from consumer.kafka.admin import is_transient
from consumer.offsets import OffsetTracker
from consumer.settings import Settings
from producer_tools.delivery import flush_all

DEFAULT_GROUP = "ticketsort-reviewers"
# The poll loop counts the tickets not yet read (broker round trips) at most this often; the
# progress a page shows after every answer reads that count and never waits for the client.
UNREAD_REFRESH_S = 1.0
# A commit refused while the group rebalances: retried on the poll loop's next turn.
COMMIT_RETRY_CODES = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
log = structlog.get_logger("producer_tools.review")


@dataclass(frozen=True)
class Decision:
    action: Literal["label", "skip", "quit"]
    label: str | None = None


@dataclass
class Progress:
    reviewed: int = 0
    skipped: int = 0
    invalid: int = 0


@dataclass
class Lease:
    """One ticket handed to one reviewer until ``expires_at`` (monotonic seconds)."""

    id: str
    record: Record
    request: ReviewRequest
    holder: str
    reviewer: str
    leased_at: float
    expires_at: float

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.record.topic, self.record.partition, self.record.offset)


OutcomeStatus = Literal["recorded", "skipped", "released", "taken", "gone", "invalid"]


@dataclass(frozen=True)
class Outcome:
    """What became of an answer. ``ok`` is True when it is on the topic (now or before)."""

    status: OutcomeStatus
    message: str
    label: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("recorded", "skipped", "released")


@dataclass(eq=False)
class _Item:
    record: Record
    request: ReviewRequest
    lease_id: str | None = None  # the expired lease that held it last
    last: Lease | None = None


def utc_age_seconds(request: ReviewRequest) -> float:
    """How long ago the ticket was created (seconds)."""
    created = request.ticket.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created).total_seconds())


def review_reason(request: ReviewRequest) -> str:
    """Why the ticket came to review; works with and without the ``reason`` field."""
    return str(getattr(request, "reason", None) or "low_confidence")


class ReviewQueue:
    """See the module docstring. Thread-safe: every public method may be called from any thread."""

    def __init__(
        self,
        settings: Settings,
        group: str = DEFAULT_GROUP,
        *,
        lease_s: float = 600.0,
        prefetch: int = 20,
        poll_interval_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.review
        self.lease_s = lease_s
        self.prefetch = max(1, prefetch)
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.consumer = Consumer(settings.kafka, group, auto_offset_reset="earliest")
        self.producer = Producer(settings.kafka)
        self.progress = Progress()
        self._lock = threading.RLock()  # queue state
        self._client_lock = threading.RLock()  # the consumer (poll, pause, commit)
        self._tracker = OffsetTracker()
        self._pending: deque[_Item] = deque()
        self._leases: dict[str, Lease] = {}
        self._by_holder: dict[str, str] = {}
        self._expired: dict[str, _Item] = {}  # expired lease id -> its item (late answers)
        self._superseded: set[str] = set()  # expired leases whose ticket went to someone else
        self._answering: dict[str, threading.Event] = {}
        self._answered: OrderedDict[str, Outcome] = OrderedDict()
        self._answered_by_holder: dict[str, int] = {}
        self._paused = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned = threading.Event()
        self._unread = 0  # tickets not yet read, as the poll loop last counted them
        self._unread_at = float("-inf")
        self.error: BaseException | None = None

    # Life cycle ------------------------------------------------------------------------
    def start(self) -> ReviewQueue:
        if self._thread is None:
            self.consumer.subscribe(
                [self.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            self._thread = threading.Thread(target=self._poll_loop, name="review-poll", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling, commit what was answered, leave the group. Leases are dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._client_lock, self._lock:
            self._commit_done()
            self.consumer.close()
        with contextlib.suppress(Exception):
            self.producer.flush(10)

    def __enter__(self) -> ReviewQueue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The poll thread -------------------------------------------------------------------
    def _poll_loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    self._expire_leases()
                    want = self.prefetch - len(self._pending)
                with self._client_lock:
                    self._set_paused(want <= 0)
                    records = self.consumer.consume(max(1, want), self.poll_interval_s)
                for record in records:
                    self._admit(record)
                if records or time.monotonic() - self._unread_at >= UNREAD_REFRESH_S:
                    with self._client_lock:
                        self._unread = self._count_unread()
                    self._unread_at = time.monotonic()
                if self._tracker.committable():
                    self._commit()
        except BaseException as exc:  # surfaced to callers by lease()/answer()
            log.error("review_poll_failed", error=str(exc))
            self.error = exc

    def _set_paused(self, paused: bool) -> None:
        assignment = self.consumer.assignment()
        if paused:
            # Also pauses partitions assigned since the last pause (pause is idempotent).
            self.consumer.pause(assignment)
        elif self._paused:
            self.consumer.resume(assignment)
        self._paused = paused

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        self._assigned.set()
        log.info("review_assigned", partitions=[p.partition for p in partitions])

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Commit what was answered on them; drop what is buffered or leased there."""
        keys = {(p.topic, p.partition) for p in partitions}
        with self._lock:
            with contextlib.suppress(Exception):
                self._commit_done()
            self._pending = deque(
                i for i in self._pending if (i.record.topic, i.record.partition) not in keys
            )
            for lease_id, lease in list(self._leases.items()):
                if (lease.record.topic, lease.record.partition) in keys:
                    self._drop_lease(lease_id)
            for lease_id, item in list(self._expired.items()):
                if (item.record.topic, item.record.partition) in keys:
                    del self._expired[lease_id]
            self._tracker.forget(list(keys))
        log.info("review_revoked", partitions=[p.partition for p in partitions])

    def _admit(self, record: Record) -> None:
        with self._lock:
            self._tracker.add(record.topic, record.partition, record.offset)
        try:
            request = ReviewRequest.model_validate_json(record.value or b"")
        except (ValidationError, ValueError) as exc:
            self._dead_letter(record, exc)
            return
        with self._lock:
            self._pending.append(_Item(record, request))

    def _dead_letter(self, record: Record, exc: Exception) -> None:
        """An unreadable request: to the dead-letter topic, then (only then) done."""
        error_type = "invalid_review_request"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        limit = self.settings.topics.max_message_bytes
        event = dead_letter_for(record, error_type, message, max_message_bytes=limit)
        headers = dead_letter_headers(record, error_type, message, max_message_bytes=limit)
        self.producer.produce(
            self.settings.topics.dead_letter, event.to_bytes(), key=record.key, headers=headers
        )
        flush_all(self.producer, "dead letter")
        log.warning(
            "review_request_dead_lettered",
            partition=record.partition,
            offset=record.offset,
            error=message,
        )
        with self._lock:
            self.progress.invalid += 1
            self._tracker.mark_done(record.topic, record.partition, record.offset)
        self._commit()

    # Leases ----------------------------------------------------------------------------
    def wait_assigned(self, timeout: float = 30.0) -> bool:
        """True once this process joined the group and got its partitions (some or none)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._raise_error()
            if self._assigned.wait(0.1):
                return True
        return False

    def lease(self, holder: str, reviewer: str, timeout: float = 0.0) -> Lease | None:
        """The holder's current ticket, else the next free one (waiting up to ``timeout``)."""
        deadline = self.clock() + timeout
        while True:
            self._raise_error()
            with self._lock:
                self._expire_leases()
                current = self._by_holder.get(holder)
                if current is not None and current in self._leases:
                    return self._leases[current]
                if self._pending:
                    item = self._pending.popleft()
                    now = self.clock()
                    lease = Lease(
                        id=uuid.uuid4().hex,
                        record=item.record,
                        request=item.request,
                        holder=holder,
                        reviewer=reviewer,
                        leased_at=now,
                        expires_at=now + self.lease_s,
                    )
                    if item.lease_id is not None:  # a late answer to the old lease is refused
                        self._expired.pop(item.lease_id, None)
                        self._superseded.add(item.lease_id)
                    self._leases[lease.id] = lease
                    self._by_holder[holder] = lease.id
                    return lease
            if self.clock() >= deadline:
                return None
            time.sleep(min(0.1, max(0.0, deadline - self.clock())))

    def release(self, lease_id: str) -> Outcome:
        """Give the ticket back (quit, close): it goes to the front of the queue."""
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None:
                return Outcome("gone", "this ticket is no longer held")
            self._drop_lease(lease_id)
            self._pending.appendleft(_Item(lease.record, lease.request))
            return Outcome("released", "ticket returned to the queue")

    def _drop_lease(self, lease_id: str) -> Lease | None:
        lease = self._leases.pop(lease_id, None)
        if lease is not None and self._by_holder.get(lease.holder) == lease_id:
            del self._by_holder[lease.holder]
        return lease

    def _expire_leases(self) -> None:
        now = self.clock()
        for lease_id, lease in list(self._leases.items()):
            if lease.expires_at <= now:
                self._drop_lease(lease_id)
                item = _Item(lease.record, lease.request, lease_id=lease_id, last=lease)
                self._expired[lease_id] = item
                self._pending.appendleft(item)
                log.info(
                    "review_lease_expired",
                    reviewer=lease.reviewer,
                    partition=lease.record.partition,
                    offset=lease.record.offset,
                )

    # Answers ---------------------------------------------------------------------------
    def answer(self, lease_id: str, decision: Decision, reviewer: str | None = None) -> Outcome:
        """Deliver the decision's output, then commit. Idempotent per lease id."""
        self._raise_error()
        while True:
            with self._lock:
                if lease_id in self._answered:
                    return self._answered[lease_id]
                waiting = self._answering.get(lease_id)
                if waiting is None:
                    claimed = self._claim(lease_id)
                    if isinstance(claimed, Outcome):
                        return claimed
                    lease = claimed
                    done = self._answering[lease_id] = threading.Event()
                    break
            waiting.wait(60)  # the same answer is being delivered by another request
        try:
            outcome = self._deliver(lease, decision, reviewer or lease.reviewer)
        except BaseException:
            with self._lock:  # not delivered: the ticket is still to answer
                self._pending.appendleft(_Item(lease.record, lease.request))
                self._answering.pop(lease_id, None)
            done.set()
            raise
        with self._lock:
            self._tracker.mark_done(*lease.key)
            self._answered[lease_id] = outcome
            while len(self._answered) > 10_000:
                self._answered.popitem(last=False)
            count = self._answered_by_holder.get(lease.holder, 0)
            self._answered_by_holder[lease.holder] = count + 1
            self._answering.pop(lease_id, None)
        done.set()
        # Not waiting for the poll thread's fetch (up to poll_interval_s): the answer is
        # delivered and tracked, and the poll loop commits it on its next turn.
        self._commit(wait=False)
        return outcome

    def _claim(self, lease_id: str) -> Lease | Outcome:
        """Take the lease (or an expired one nobody else took) out of the queue, under the lock."""
        self._expire_leases()
        lease = self._drop_lease(lease_id)
        if lease is not None:
            return lease
        item = self._expired.pop(lease_id, None)
        if item is not None and any(i is item for i in self._pending):
            self._pending = deque(i for i in self._pending if i is not item)
            assert item.last is not None  # late, but nobody else got it meanwhile: take it
            return item.last
        if lease_id in self._superseded:
            return Outcome(
                "taken",
                f"this ticket was held longer than {self.lease_s:.0f} s and went to another"
                " reviewer; your answer was not recorded",
            )
        return Outcome(
            "gone",
            "this ticket is no longer held here (its lease expired and it was answered by"
            " someone else, or the review topic's partitions moved to another process);"
            " your answer was not recorded",
        )

    def _deliver(self, lease: Lease, decision: Decision, reviewer: str) -> Outcome:
        request = lease.request
        if decision.action == "label" and decision.label:
            event = LabeledTicket(
                ticket=request.ticket,
                label=decision.label,
                label_source="reviewer",
                labeled_by=reviewer,
                model_suggestion=request.category,
                model_version=request.model_version,
                review_reason=request.reason,
            )
            self.producer.produce(
                self.settings.topics.labeled, event.to_bytes(), key=request.ticket.id
            )
            flush_all(self.producer, "label")
            with self._lock:
                self.progress.reviewed += 1
            return Outcome("recorded", f"labeled {decision.label}", decision.label)
        if decision.action == "skip":
            # It keeps its reason (an audit ticket stays one: online evaluation needs to
            # know); attempts says it was skipped.
            again = request.model_copy(update={"attempts": request.attempts + 1})
            self.producer.produce(self.topic, again.to_bytes(), key=request.ticket.id)
            flush_all(self.producer, "re-queue")
            with self._lock:
                self.progress.skipped += 1
            return Outcome("skipped", "skipped: it comes back later")
        raise ValueError(f"not an answer: {decision}")

    def _commit(self, *, wait: bool = True) -> None:
        """Commit what is answered; a commit refused during a rebalance is retried later.

        ``wait=False``: only if the consumer is free now, else the poll loop's next turn does.
        """
        if not self._client_lock.acquire(blocking=wait):
            return
        try:
            self._commit_locked()
        finally:
            self._client_lock.release()

    def _commit_locked(self) -> None:
        with self._lock:
            try:
                self._commit_done()
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                if code not in COMMIT_RETRY_CODES and not is_transient(exc):
                    raise
                # The answer is delivered and tracked: the poll loop (or the revoke
                # callback, before the partition moves) commits it on its next turn.
                log.warning("review_commit_deferred", error=str(exc))

    def _commit_done(self) -> None:
        due = self._tracker.committable()
        if not due:
            return
        self.consumer.commit([TopicPartition(t, p, o) for (t, p), o in due.items()])
        self._tracker.mark_committed(due)

    def _raise_error(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the review queue stopped: {self.error}") from self.error

    # Progress --------------------------------------------------------------------------
    def answered_by(self, holder: str) -> int:
        with self._lock:
            return self._answered_by_holder.get(holder, 0)

    def remaining(self) -> int:
        """Tickets left for this process: buffered, held, and not yet read (0 when unknown).

        The not-yet-read part is the poll loop's last count (at most ``UNREAD_REFRESH_S``
        old): taking the client here waited for the poll loop's fetch, up to
        ``poll_interval_s``, twice for every ticket a reviewer answered in the page.
        """
        with self._lock:
            local = len(self._pending) + len(self._leases)
        if self._thread is None:  # not polling: count now
            with self._client_lock:
                return local + self._count_unread()
        return local + self._unread

    def _count_unread(self) -> int:
        """Records of the assignment not yet read (the client lock held; 0 when unknown)."""
        unread = 0
        try:
            assignment = self.consumer.assignment()
            positions = self.consumer.position(assignment)
            unknown = [tp for tp in positions if tp.offset < 0]
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in (self.consumer.committed(unknown, 5.0) if unknown else [])
            }
            deadline = time.monotonic() + 2.0
            for tp in positions:
                low, high = self.consumer.watermarks_until(tp, deadline)
                start = tp.offset
                if start < 0:  # nothing read from it yet: from the commit, else the start
                    start = committed.get((tp.topic, tp.partition), -1)
                    start = start if start >= 0 else low
                unread += max(0, high - start)
        except Exception:
            unread = 0
        return unread


class ReviewSession:
    """One reviewer on a ``ReviewQueue`` of their own: what the terminal tool uses."""

    def __init__(
        self,
        settings: Settings,
        reviewer: str,
        group: str = DEFAULT_GROUP,
        *,
        lease_s: float = 600.0,
    ) -> None:
        self.settings = settings
        self.reviewer = reviewer
        self.holder = f"terminal-{uuid.uuid4().hex[:8]}"
        self.queue = ReviewQueue(settings, group, lease_s=lease_s, prefetch=5)
        self._current: Lease | None = None

    @property
    def progress(self) -> Progress:
        return self.queue.progress

    def next_request(self, timeout: float) -> tuple[Record, ReviewRequest] | None:
        """The next ticket; the first call also waits (up to 30 s) for the group to assign."""
        self.queue.start()
        self.queue.wait_assigned(30.0)
        lease = self.queue.lease(self.holder, self.reviewer, timeout)
        if lease is None:
            return None
        self._current = lease
        return lease.record, lease.request

    def lag(self) -> int:
        """Requests left in the topic for this group (0 when unknown), the current one excluded."""
        return max(0, self.queue.remaining() - (1 if self._current else 0))

    def apply(self, record: Record, request: ReviewRequest | None, decision: Decision) -> Outcome:
        """Deliver the decision's output, then commit the request's offset."""
        del request
        lease = self._current
        if lease is None or (lease.record.partition, lease.record.offset) != (
            record.partition,
            record.offset,
        ):
            return Outcome("gone", "no ticket is held")
        if decision.action == "quit":
            self._current = None
            return self.queue.release(lease.id)
        outcome = self.queue.answer(lease.id, decision, self.reviewer)
        self._current = None
        return outcome

    def close(self) -> None:
        self.queue.close()


def request_text(request: ReviewRequest) -> str:
    return clean_ticket(request.ticket.subject, request.ticket.body)


def parse_decision(line: str, suggestions: list[str], categories: list[str]) -> Decision | str:
    """A typed answer → a decision, or a message saying what was wrong.

    ``1``..``k`` accepts a suggestion; ``c NAME`` or ``c N`` picks a category from
    the list; ``s`` skips (re-queues); ``q`` quits.
    """
    text = line.strip()
    if not text:
        return "type a number, c, s or q"
    key, _, rest = text.partition(" ")
    key = key.lower()
    if key.isdigit():
        index = int(key) - 1
        if 0 <= index < len(suggestions):
            return Decision("label", suggestions[index])
        return f"no suggestion {key}"
    if key == "s":
        return Decision("skip")
    if key == "q":
        return Decision("quit")
    if key == "c":
        choice = rest.strip()
        if choice.isdigit() and 0 < int(choice) <= len(categories):
            return Decision("label", categories[int(choice) - 1])
        if choice in categories:
            return Decision("label", choice)
        return f"unknown category {choice!r}: pick one of {', '.join(categories)}"
    return f"unknown answer {text!r}"
