"""Chaos: hostile input. Every record ends classified, in review, or dead-lettered with its reason.

* ``test_fuzz_*`` (no broker): hypothesis generates 10,000+ malformed payloads (not JSON,
  invalid UTF-8, huge, deeply nested, nulls, control characters, emoji/RTL/CJK text, wrong
  types, missing or extra fields) mixed with good tickets, and feeds them in batches through
  the public parts: ``BatchStep.process`` (validation, cleaning, routing, dead-letter
  envelopes, serialisation; the real tokenizer and a stand-in model) must give exactly one
  output of the right kind per record, and an ``AtLeastOnceSink`` whose (fake) producer fails
  a random subset of deliveries, a few times or for ever, must still deliver exactly one
  output per record (a dead letter for one refused for ever) and never commit past an
  undelivered one.
* ``test_hostile_stream_end_to_end``: a few thousand of them with good tickets through the
  real broker and a real ``python -m consumer``: it never dies, and each record gets exactly
  one output, dead letters with the reason its kind calls for.
* ``test_garbage_stream_trips_the_dead_letter_rate_limit``: a stream that is mostly garbage
  stops the service cleanly (exit code 4) with the commit not past undelivered output.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import secrets
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.batch_step import BatchStep
from consumer.dead_letter import MAX_ERROR_MESSAGE
from consumer.events import ClassifiedTicket, DeadLetter, RawTicket, ReviewRequest
from consumer.kafka import Record
from consumer.metrics import Metrics
from consumer.model_store import Thresholds
from consumer.outputs import BatchResult, Output
from consumer.predictor import Prediction
from consumer.settings import Settings
from consumer.sinks import AtLeastOnceSink
from tests.chaos.figures import SCALE, Figures, record_figures, scaled
from tests.chaos.producing import produce_landed
from tests.chaos.reading import OutputReader, assert_commit_not_past_output, committed, tally
from tests.chaos.service import ServiceProcess, chaos_env
from tests.chaos.tickets import EXPECTED_REASON, HOSTILE_KINDS, good_ticket, hostile_payload
from tests.chaos.zygote import Zygote
from tests.fakes import FakeConsumer, FakeProducer, size_error

pytestmark = [pytest.mark.chaos]

REASONS = {
    "empty_record",
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "schema_violation",
    "empty_after_cleaning",
}
FUZZ_EXAMPLES = scaled(4_000)  # batches of 1-4 payloads: 10,000+ payloads at scale 1
FUZZ_MAX_BODY = 4096  # smaller than the default 64 KiB so that "too large" is cheap to hit


# --------------------------------------------------------------------------- in process


class StandInPredictor:
    """The real tokenizer (hostile text goes through it) and a deterministic fake model."""

    version = "fuzz"
    device = "cpu"
    precision = "fp32"
    labels: ClassVar[list[str]] = ["billing", "technical", "account", "shipping"]

    def __init__(self) -> None:
        from transformers import AutoTokenizer

        from consumer.modeling import resolve_base_model

        self.tokenizer = AutoTokenizer.from_pretrained(str(resolve_base_model(None)))
        self.model = type("M", (), {"thresholds": Thresholds(0.5), "path": Path(".")})()

    def describe(self) -> dict[str, Any]:
        return {"model_version": self.version}

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        from consumer.predictor import tokenize  # the serving tokenization

        ids = tokenize(self.tokenizer, texts, 64)
        for text, row in zip(texts, ids, strict=True):
            assert row and isinstance(text, str) and text
        return ids

    def predict(self, texts: list[str], top_k: int = 3) -> list[Prediction]:
        return self.predict_ids(self.tokenize(texts), top_k)

    def predict_ids(self, token_ids: list[list[int]], top_k: int = 3) -> list[Prediction]:
        out = []
        for row in token_ids:
            h = zlib.crc32(",".join(map(str, row)).encode())
            scores = sorted(
                ((c, ((h >> (4 * i)) % 97) / 96) for i, c in enumerate(self.labels)),
                key=lambda x: -x[1],
            )
            out.append(Prediction(scores[0][0], scores[0][1], scores[:top_k]))
        return out


Payload = tuple[str, bytes | None, set[str | None]]  # (kind, value, reasons allowed)
Fault = int  # how many times an output's delivery fails before it lands; NEVER: every time
NEVER = -1
RAW = "fuzz.raw"


def _fuzz_settings() -> Settings:
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    return base.model_copy(
        update={
            "topics": base.topics.model_copy(update={"raw": RAW}),
            "validation": base.validation.model_copy(
                update={"max_body_bytes": FUZZ_MAX_BODY, "dead_letter_max_ratio": 1.0}
            ),
            # A retry is due at once (the backoff is a microsecond): no clock to patch.
            "consumer": base.consumer.model_copy(
                update={"metrics_port": 0, "retry_backoff_max_s": 1e-6}
            ),
        }
    )


class FaultPlan:
    """Decides each delivery attempt: an output fails its first ``fault`` attempts, or all.

    Keyed by the output's bytes (identical outputs share a plan). A NEVER output is refused
    as too large, as a broker refuses a poison record; transient faults are timeouts.
    """

    def __init__(self) -> None:
        self.faults: dict[tuple[str, bytes, bytes | None], Fault] = {}
        self.attempts: Counter[tuple[str, bytes, bytes | None]] = Counter()
        self.injected = 0

    def refuse(self, topic: str, value: bytes, key: bytes | None) -> KafkaError | None:
        content = (topic, value, key)
        fault = self.faults.get(content, 0)
        self.attempts[content] += 1
        if fault == NEVER:
            self.injected += 1
            return size_error()
        if self.attempts[content] <= fault:
            self.injected += 1
            return KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out")
        return None


class Harness:
    """The public parts on batches of records: ``BatchStep.process``, then an
    ``AtLeastOnceSink`` whose producer fails deliveries as the fuzzer says."""

    def __init__(self, predictor: StandInPredictor) -> None:
        self.settings = _fuzz_settings()
        self.step = BatchStep(self.settings, predictor)  # type: ignore[arg-type]
        self.metrics = Metrics()
        self.offset = 0
        self.inputs = 0
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.lost = 0
        self.duplicated = 0
        self.failures_injected = 0
        self.poison_dead_lettered = 0
        # One good ticket the stand-in model classifies, one it sends to review, one garbage
        # record: they follow every batch, so each output topic takes traffic after the
        # batch's own first failures (what tells a poison output from an outage).
        self.companions = self._companions()

    def _companions(self) -> list[bytes]:
        found: dict[str, bytes] = {"dead_letter": b"{"}
        for i in range(200):
            value = json.dumps({"id": f"companion-{i}", "body": f"order {i} broke"}).encode()
            (output,) = self.step.process([self._record(value, 0)]).outputs
            found.setdefault(output.route, value)
            if len(found) == 3:
                return list(found.values())
        raise AssertionError(f"no companion tickets for every route: {sorted(found)}")

    def _record(self, value: bytes | None, offset: int) -> Record:
        key = f"k{offset}".encode()
        return Record(RAW, 0, offset, key, value, (("trace", b"\xff\x00"),), 1_700_000_000_000)

    def run(self, batch: list[Payload], faults: list[Fault]) -> None:
        """``faults[i]``: how often the output of ``batch[i]`` fails to be delivered."""
        records = []
        for _, value, _ in batch:
            records.append(self._record(value, self.offset))
            self.offset += 1
        # 1. The batch step: exactly one output per record, in record order, of the right kind.
        result = self.step.process(records)
        assert len(result.outputs) == len(records), (len(result.outputs), len(records))
        for record, output, (_, value, expected) in zip(
            records, result.outputs, batch, strict=True
        ):
            assert output.record is record, (output.source, record)
            self._check(record, value, expected, output)
        # 2. Delivery with faults: exactly one delivered output per record, and the commit
        #    never past a record whose output is not delivered yet.
        companions = [self._record(v, self.offset + i) for i, v in enumerate(self.companions)]
        self.offset += len(companions)
        companion_result = self.step.process(companions)
        plan = FaultPlan()
        for output, fault in zip(result.outputs, faults, strict=True):
            plan.faults.setdefault((output.topic, output.value, output.key), fault)
        for output in companion_result.outputs:  # fail once, land on the retry
            plan.faults[(output.topic, output.value, output.key)] = 1
        self._deliver(result, companion_result, plan)
        self.failures_injected += plan.injected

    def _deliver(self, result: BatchResult, companions: BatchResult, plan: FaultPlan) -> None:
        producer = FakeProducer(plan.refuse)
        consumer = FakeConsumer()
        delivered: list[Output] = []
        sink = AtLeastOnceSink(self.settings, producer, consumer, self.metrics, delivered.append)
        records = result.records + companions.records
        sink.publish(result)
        sink.publish(companions)
        for _turn in range(200):
            sink.service()
            self._check_commit(records, delivered, consumer)
            if sink.in_flight() == 0 and not sink.uncommitted():
                break
        sink.close()
        self._check_commit(records, delivered, consumer)
        # What the producer reports delivered is what the sink saw delivered, nothing else.
        assert Counter((t, v, k) for t, v, k, _ in producer.delivered) == Counter(
            (o.topic, o.value, o.key) for o in delivered
        )
        per_record: dict[int, list[Output]] = {}
        for output in delivered:
            per_record.setdefault(output.record.offset, []).append(output)
        for record, original in zip(result.records, result.outputs, strict=True):
            outs = per_record.get(record.offset, [])
            if not outs:
                self.lost += 1
                continue
            self.duplicated += len(outs) - 1
            final = outs[-1]
            if plan.faults[(original.topic, original.value, original.key)] == NEVER:
                # Refused every time while its topic took others: a dead letter says so.
                assert final.topic == self.settings.topics.dead_letter, (final.topic, original)
                event = DeadLetter.model_validate_json(final.value)
                assert event.source_offset == record.offset
                assert "refused" in event.error_message, event.error_message
                self.poison_dead_lettered += 1
            else:
                assert final is original, (final.source, final.topic, original.topic)
            self.counts[final.route] += 1
        committed = consumer.committed_offsets.get((RAW, 0))
        assert committed == records[-1].offset + 1, (committed, records[-1].offset)
        assert self.lost == 0 and self.duplicated == 0, (self.lost, self.duplicated)
        self.inputs += len(result.records)

    @staticmethod
    def _check_commit(
        records: list[Record], delivered: list[Output], consumer: FakeConsumer
    ) -> None:
        done = {o.record.offset for o in delivered}
        committed = consumer.committed_offsets.get((RAW, 0), -1)
        undelivered = [r.offset for r in records if r.offset not in done]
        if undelivered:
            assert committed <= min(undelivered), (
                f"committed {committed}, past undelivered offset {min(undelivered)}"
            )

    def _check(
        self, record: Record, value: bytes | None, expected: set[str | None], out: Output
    ) -> None:
        topics = self.settings.topics
        limit = topics.max_message_bytes
        size = len(out.value) + len(out.key or b"") + sum(len(k) + len(v) for k, v in out.headers)
        assert size <= limit, f"{out.topic} message of {size} bytes, over {limit}"
        if out.topic == topics.dead_letter:
            assert out.route == "dead_letter"
            json.loads(out.value, parse_constant=_not_json)
            event = DeadLetter.model_validate_json(out.value)
            assert event.error_type in REASONS, event.error_type
            assert event.error_type in expected, (
                event.error_type,
                expected,
                value[:80] if value else value,
            )
            assert event.source_offset == record.offset
            assert event.original_size == len(value or b"")
            original = base64.b64decode(event.original_value or "")
            assert (value or b"").startswith(original)
            assert len(event.error_message) <= MAX_ERROR_MESSAGE
            headers = dict(out.headers)
            assert headers["ticketsort.error.type"] == event.error_type.encode()
            assert headers["original.trace"] == b"\xff\x00"
            self.reasons[event.error_type] += 1
            return
        assert None in expected, f"expected a dead letter {expected}, got {out.topic}"
        model = ClassifiedTicket if out.topic == topics.classified else ReviewRequest
        assert out.topic in (topics.classified, topics.review), out.topic
        assert out.route == ("classified" if model is ClassifiedTicket else "review")
        event = model.model_validate_json(out.value)
        assert out.key == event.ticket.id.encode()  # outputs are keyed by the ticket id
        json.loads(out.value, parse_constant=_not_json)  # strict JSON for any reader
        # The ticket travels unchanged, as its canonical JSON (pydantic accepts the
        # non-standard Infinity/NaN in metadata and writes them back as null).
        parsed = RawTicket.model_validate_json(value or b"")
        canonical = RawTicket.model_validate_json(parsed.model_dump_json())
        assert event.ticket.model_dump(exclude={"created_at"}) == canonical.model_dump(
            exclude={"created_at"}
        )


def _not_json(constant: str) -> None:
    raise AssertionError(f"output holds {constant}, which is not JSON")


# Hypothesis strategies: (kind, payload bytes or None, reasons allowed; None = routed).

GOOD_BASE = {"id": "fz-1", "subject": "Refund", "body": "Please refund order 1234, it broke."}
_weird_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),  # Hebrew, Arabic (RTL)
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji
        st.sampled_from(["\u200d", "\u202e", "\u200f", "\ufe0f", "\u0301", "\u00a0"]),
        st.characters(codec="utf-8"),
    ),
    min_size=1,
    max_size=120,
)
_controls = st.text(
    alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), min_size=1, max_size=60
)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_subnormal=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "id",
    "subject",
    "body",
    "channel",
    "created_at",
    "customer_id",
    "metadata",
    "schema_version",
    "event_type",
    "language",
]


def _dumps(obj: Any, ascii_only: bool) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, bytes | None, set[str | None]]:
    kind = draw(
        st.sampled_from(
            [
                "good",
                "weird_text",
                "random_bytes",
                "random_text",
                "invalid_utf8",
                "huge",
                "deep_nesting",
                "nulls",
                "control_chars",
                "surrogates",
                "wrong_types",
                "missing_fields",
                "extra_fields",
                "truncated",
                "empty",
            ]
        )
    )
    ascii_only = draw(st.booleans())
    routed: set[str | None] = {None, "empty_after_cleaning"}
    if kind == "good":
        return kind, _dumps(GOOD_BASE, ascii_only), {None}
    if kind == "weird_text":
        body = draw(_weird_text)
        subject = draw(st.none() | _weird_text)
        ticket = {"id": "fz-2", "body": body, "subject": subject}
        return kind, _dumps(ticket, ascii_only), routed | {"schema_violation", "too_large"}
    if kind == "random_bytes":
        data = draw(st.binary(min_size=1, max_size=300))
        return kind, data, {"invalid_utf8", "invalid_json", "schema_violation"}
    if kind == "random_text":
        data = draw(st.text(min_size=1, max_size=200)).encode("utf-8", "surrogatepass")
        return kind, data, {"invalid_utf8", "invalid_json", "schema_violation"}
    if kind == "invalid_utf8":
        good = _dumps(GOOD_BASE, ascii_only)
        cut = draw(st.integers(0, len(good)))
        bad = draw(
            st.sampled_from(
                [
                    b"\xff",
                    b"\xc3\x28",
                    b"\xc0\xaf",
                    b"\xed\xa0\x80",
                    b"\xf8\x88\x80\x80",
                    b"\x80",
                    b"\xe2\x82",
                ]
            )
        )
        return kind, good[:cut] + bad + good[cut:], {"invalid_utf8"}
    if kind == "huge":
        size = draw(st.integers(FUZZ_MAX_BODY - 200, FUZZ_MAX_BODY * 3))
        value = _dumps({**GOOD_BASE, "body": "B" * size}, ascii_only)
        return kind, value, {"too_large"} if len(value) > FUZZ_MAX_BODY else {None}
    if kind == "deep_nesting":
        depth = draw(st.integers(1, 3000))
        where = draw(st.sampled_from(["top", "metadata", "body"]))
        if where == "top":
            value = ("[" * depth + "]" * depth).encode()
            return kind, value, {"invalid_json", "schema_violation", "too_large"}
        inner = '{"a":' * depth + "1" + "}" * depth
        if where == "body":
            value = (_dumps(GOOD_BASE, True)[:-1].decode() + ', "metadata": {}}').encode()
            value = value.replace(
                b'"Please', b'"' + inner.replace('"', '\\"').encode() + b" Please"
            )
            return kind, value, routed | {"too_large"}
        value = (_dumps(GOOD_BASE, True)[:-1].decode() + f', "metadata": {inner}}}').encode()
        return kind, value, {None, "invalid_json", "too_large", "schema_violation"}
    if kind == "nulls":
        choice = draw(st.sampled_from(["literal", "field", "nul_bytes", "nul_in_text"]))
        if choice == "literal":
            return kind, b"null", {"schema_violation"}
        if choice == "field":
            field = draw(st.sampled_from(FIELDS))
            ticket = {**GOOD_BASE, field: None}
            allowed = {None} if field in ("subject", "customer_id", "language") else set()
            return kind, _dumps(ticket, ascii_only), allowed | {"schema_violation"}
        if choice == "nul_bytes":
            return kind, b"\x00" * draw(st.integers(1, 64)), {"invalid_json"}
        text = draw(st.text(alphabet="\x00ab ", min_size=1, max_size=30))
        return kind, _dumps({**GOOD_BASE, "body": text}, ascii_only), routed | {"schema_violation"}
    if kind == "control_chars":
        text = draw(_controls)
        body = draw(st.sampled_from([text, f"printer broken {text} help me"]))
        return kind, _dumps({**GOOD_BASE, "body": body}, ascii_only), routed | {"schema_violation"}
    if kind == "surrogates":
        lone = draw(st.sampled_from(["\ud800", "\udfff", "\udbff\ud7ff"]))
        value = _dumps({**GOOD_BASE, "body": f"x{lone}y"}, ascii_only)
        return kind, value, {"invalid_json", "invalid_utf8"}
    if kind == "wrong_types":
        field = draw(st.sampled_from(FIELDS))
        bad_value = draw(_json_values)
        # Some draws are valid after all (a str id, a dict for metadata, None for subject).
        allowed: set[str | None] = {"schema_violation", "invalid_json"} | routed
        return kind, _dumps({**GOOD_BASE, field: bad_value}, ascii_only), allowed
    if kind == "missing_fields":
        drop = draw(st.sets(st.sampled_from(["id", "body"]), min_size=1))
        ticket = {k: v for k, v in GOOD_BASE.items() if k not in drop}
        return kind, _dumps(ticket, ascii_only), {"schema_violation"}
    if kind == "extra_fields":
        name = draw(st.text(min_size=1, max_size=10).filter(lambda n: n not in FIELDS))
        return kind, _dumps({**GOOD_BASE, name: 1}, ascii_only), {"schema_violation"}
    if kind == "truncated":
        good = _dumps(GOOD_BASE, ascii_only)
        return kind, good[: draw(st.integers(1, len(good) - 1))], {"invalid_json"}
    return kind, draw(st.sampled_from([None, b""])), {"empty_record"}


QUIET_LOGGERS = ("consumer.service", "consumer.batch_step", "consumer.sinks.at_least_once")
_faults = st.sampled_from([0, 0, 0, 1, 2, 3, NEVER])


@pytest.mark.slow  # a minute or two: not in `make test-fast`
def test_fuzz_every_payload_gets_exactly_one_output_under_delivery_failures() -> None:
    """4,000 hypothesis batches (10,000+ payloads) through the batch step and the
    at-least-once sink, with deliveries that fail a few times or for ever; then the run's
    figures (counted)."""
    started = time.monotonic()
    harness = Harness(StandInPredictor())
    seen: Counter[str] = Counter()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(batch=st.lists(payloads(), min_size=1, max_size=4), data=st.data())
    def fuzz(batch: list[Payload], data: st.DataObject) -> None:
        # Drawn first: hypothesis drops an example whose draws overrun its buffer, and the
        # harness counts only what it checked.
        faults = data.draw(st.lists(_faults, min_size=len(batch), max_size=len(batch)))
        harness.run(batch, faults)
        seen.update(kind for kind, _, _ in batch)

    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:  # thousands of "batch" and "delivery_failed" lines
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        fuzz()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    total = sum(seen.values())
    fig = record_figures(
        Figures(
            scenario="fuzz in-process (hypothesis), deliveries failing",
            inputs=harness.inputs,
            classified=harness.counts["classified"],
            review=harness.counts["review"],
            dead_letter=harness.counts["dead_letter"],
            lost=harness.lost,
            duplicated=harness.duplicated,
            seconds=time.monotonic() - started,
            notes={
                "malformed": total - seen["good"],
                "failed_deliveries": harness.failures_injected,
                "poison_dead_lettered": harness.poison_dead_lettered,
                **dict(harness.reasons),
            },
        )
    )
    assert fig.lost == 0 and fig.duplicated == 0
    assert harness.inputs == total  # every payload the fuzzer drew was checked
    assert fig.outputs == total
    assert total - seen["good"] >= 10_000 * min(SCALE, 1) * 0.8, seen
    assert harness.failures_injected > 0 and harness.poison_dead_lettered > 0


def test_oversized_record_dead_letter_fits_the_topic() -> None:
    """A record near the raw topic's 1 MB limit must still fit the dead-letter topic."""
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    step = BatchStep(base, StandInPredictor())  # type: ignore[arg-type]
    size = base.topics.max_message_bytes - 1000
    value = json.dumps({**GOOD_BASE, "body": "Z" * size}).encode()[:size]
    (sent,) = step.process([Record(base.topics.raw, 0, 7, b"big", value, (), None)]).outputs
    assert sent.topic == base.topics.dead_letter
    assert sent.size <= base.topics.max_message_bytes, f"dead letter of {sent.size} bytes"
    event = DeadLetter.model_validate_json(sent.value)
    assert event.error_type == "too_large" and event.original_size == len(value)
    kept = base64.b64decode(event.original_value or "")
    assert value.startswith(kept) and 0 < len(kept) < len(value)
    assert dict(sent.headers)["ticketsort.original.truncated"] == str(len(kept)).encode()


@pytest.mark.parametrize("depth", [1, 64, 65, 150, 199, 400])
def test_deep_metadata_never_makes_an_unreadable_output(depth: int) -> None:
    """Found by the fuzzer: metadata just under the JSON parser's depth limit was accepted,
    and the classified event (the ticket wrapped one level deeper) could not be read back."""
    from consumer.validate import validate_record

    inner = '{"a":' * depth + "1" + "}" * depth
    value = f'{{"id": "deep", "body": "my invoice is wrong", "metadata": {inner}}}'.encode()
    result = validate_record(Record("raw", 0, 0, b"deep", value, (), None), 1_000_000)
    if isinstance(result, RawTicket):
        event = ReviewRequest(
            ticket=result,
            category="billing",
            confidence=0.1,
            scores=[],
            model_version="v",
            threshold=0.5,
        )
        assert ReviewRequest.model_validate_json(event.to_bytes()).ticket == result
    else:
        assert depth > 64 and result.error_type in ("schema_violation", "invalid_json")


# --------------------------------------------------------------------------- end to end


def _hostile_items(
    prefix: str, n_bad: int, n_good: int, rng: random.Random, huge: int = 2
) -> tuple[list[tuple[str, bytes | None]], dict[str, str]]:
    items: list[tuple[str, bytes | None]] = []
    kinds: dict[str, str] = {}
    for i in range(n_good):
        items.append(good_ticket(f"{prefix}-good", i))
        kinds[items[-1][0]] = "good"
    for i in range(n_bad):
        kind = HOSTILE_KINDS[i % len(HOSTILE_KINDS)]
        key = f"{prefix}-{kind}-{i}"
        size = 2 * 64 * 1024 if kind == "huge" else 0
        if kind == "huge" and i < huge * len(HOSTILE_KINDS):
            size = 900_000  # near the raw topic's 1 MB limit: its dead letter must still fit
        items.append((key, hostile_payload(rng, kind, key, size)))
        kinds[key] = kind
    rng.shuffle(items)
    return items, kinds


@pytest.mark.integration
def test_hostile_stream_end_to_end(
    settings: Settings,
    chaos_model_dir: Path,
    chaos_spawner: Zygote | None,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    seed = int(os.environ.get("CHAOS_SEED", secrets.randbelow(1 << 30)))
    rng = random.Random(seed)
    items, kinds = _hostile_items(settings.kafka.group_id, scaled(2000), scaled(1000), rng)
    landed = produce_landed(settings.kafka, settings.topics.raw, items)
    env = chaos_env(
        settings,
        chaos_model_dir,
        TICKETSORT_ROUTING__THRESHOLD="0.3",
        TICKETSORT_BATCHING__MAX_BATCH="64",
        # Two thirds of this stream are garbage on purpose: the limit has its own test below.
        TICKETSORT_VALIDATION__DEAD_LETTER_MAX_RATIO="0.95",
    )
    service = ServiceProcess(env, tmp_path / "hostile.log", chaos_spawner)
    reader = OutputReader(settings)
    try:
        expected = {x.key for x in landed}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and service.alive():
            if expected <= set(reader.drain().keys()):
                break
            time.sleep(0.5)
        out = reader.wait_for(expected, timeout=5)
        assert service.alive(), f"the consumer died:\n{service.tail()}"
    finally:
        reader.close()
        code = service.stop()
    assert code == 0, service.tail()
    fig = record_figures(
        tally(
            "hostile stream end-to-end",
            landed,
            out,
            started,
            seed=seed,
            malformed=sum(1 for k in kinds.values() if k != "good"),
        )
    )
    assert not out.bad_values, out.bad_values[:5]
    assert fig.lost == 0 and fig.duplicated == 0
    wrong = []
    for key, kind in kinds.items():
        reason = out.reasons.get(key)
        routed = out.by_topic["classified"][key] + out.by_topic["review"][key]
        if kind == "good":
            ok = routed == 1 and reason is None
        else:
            ok = (reason in EXPECTED_REASON[kind]) if reason else (None in EXPECTED_REASON[kind])
        if not ok:
            wrong.append((key, kind, reason))
    assert not wrong, wrong[:10]
    offsets = committed(settings.kafka, settings.kafka.group_id, settings.topics.raw, 3)
    assert_commit_not_past_output(landed, set(out.keys()), offsets)


@pytest.mark.integration
def test_garbage_stream_trips_the_dead_letter_rate_limit(
    settings: Settings,
    chaos_model_dir: Path,
    chaos_spawner: Zygote | None,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "7")))
    window = 200
    items, _ = _hostile_items(settings.kafka.group_id, scaled(450), scaled(50), rng, huge=0)
    landed = produce_landed(settings.kafka, settings.topics.raw, items)
    env = chaos_env(
        settings,
        chaos_model_dir,
        TICKETSORT_ROUTING__THRESHOLD="0.3",
        TICKETSORT_VALIDATION__DEAD_LETTER_WINDOW=str(window),
    )
    service = ServiceProcess(env, tmp_path / "garbage.log", chaos_spawner)
    try:
        code = service.wait(180)
    finally:
        service.stop()
    assert code == 4, service.tail()
    failed = [e.get("error_type") for e in service.events("service_failed")]
    assert failed == ["DeadLetterRateExceeded"], service.tail()
    assert service.events("service_stopped"), "a clean stop: totals logged, clients closed"
    reader = OutputReader(settings)
    try:
        out = reader.drain()
    finally:
        reader.close()
    offsets = committed(settings.kafka, settings.kafka.group_id, settings.topics.raw, 3)
    delivered = set(out.keys())
    consumed = sum(int(e["size"]) for e in service.events("batch"))
    fig = tally("garbage stream -> exit 4", landed, out, started)
    # Records past the commit were never consumed (the stop came first): they wait in the
    # topic for the next start, so they are not lost. Lost = below the commit without output.
    below = [x for x in landed if x.offset < offsets.get(x.partition, -1)]
    fig.lost = sum(1 for x in below if x.key not in delivered)
    fig.notes = {
        "exit_code": code,
        "consumed": consumed,
        "committed_prefix": len(below),
        "left_unconsumed": sum(1 for x in landed if x not in below and x.key not in delivered),
    }
    record_figures(fig)
    assert fig.lost == 0, (
        f"committed offsets {offsets} are past {fig.lost} record(s) without output"
    )
    assert fig.duplicated == 0
    assert window <= consumed < len(landed), "stopped after one window, not at the end"
    assert len(below) >= window // 2, "the delivered prefix was committed before stopping"
