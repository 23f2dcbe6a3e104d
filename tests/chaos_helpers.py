"""Shared machinery of the failure suite (``tests/test_chaos_*.py``, ``make chaos``).

* ``SCALE`` / ``scaled``: the CI sizes are small; ``CHAOS_SCALE=10 make chaos`` multiplies them.
* ``Figures`` / ``record_figures``: each scenario's in / out-per-topic / lost / duplicated,
  printed at once, written to ``.chaos-results.json`` (``CHAOS_RESULTS`` overrides the path)
  and printed as one table at the end of the session by a plugin that the autouse
  ``chaos_summary`` fixture registers (no conftest hook needed).
* ``chaos_model_dir``: the training fixture's tiny trained model when it exists, else an
  untrained but complete model folder written by ``consumer.model_store.write_model``.
* Tickets (good, marked, hostile), a producer that reports where each record landed, an
  output reader that counts by message key, and ``PrivateBroker``: a second JVM broker on
  free ports with its own state dir, so restart scenarios never touch the shared broker.
* ``ServiceProcess``: ``python -m consumer`` as a child process, forked from a fork server
  (``chaos_spawner``, see the end of this file: ~1 s per start instead of ~20 s) or exec'd
  with CHAOS_SPAWN=exec. ``ServiceThread`` + ``EventLog``: a service in this process, with
  its metrics endpoint and its structlog events at hand.
* Knobs: CHAOS_SCALE (sizes), CHAOS_SEED (replay), CHAOS_MODEL=untrained (skip training),
  CHAOS_SPAWN=exec, CHAOS_TRAIN=1 / CHAOS_BENCH=1 (the long-only tests).
"""

from __future__ import annotations

import base64
import contextlib
import faulthandler
import importlib.util
import json
import logging
import os
import random
import select
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import KafkaError, TopicPartition

from consumer.events import ClassifiedTicket, DeadLetter, RawTicket, ReviewRequest
from consumer.kafka import Producer
from consumer.settings import KafkaSettings, Settings

REPO = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO / "deploy" / "kafka" / "kafka_local.py"

SCALE = max(1.0, float(os.environ.get("CHAOS_SCALE", "1") or "1"))
RESULTS_PATH = Path(os.environ.get("CHAOS_RESULTS", str(REPO / ".chaos-results.json")))
LABELS = ["billing", "technical", "account", "shipping"]


def scaled(n: int) -> int:
    return max(1, round(n * SCALE))


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    scenario: str
    inputs: int
    classified: int = 0
    review: int = 0
    dead_letter: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        return self.classified + self.review + self.dead_letter


_RESULTS: list[Figures] = []
_PLUGIN_NAME = "ticketsort-chaos-summary"

_COLUMNS = ("scenario", "in", "classified", "review", "dead-letter", "lost", "dup", "s", "notes")


def _row(f: Figures) -> tuple[str, ...]:
    notes = " ".join(f"{k}={v}" for k, v in f.notes.items())
    return (
        f.scenario,
        str(f.inputs),
        str(f.classified),
        str(f.review),
        str(f.dead_letter),
        str(f.lost),
        str(f.duplicated),
        f"{f.seconds:.1f}",
        notes,
    )


def format_table(rows: Sequence[Figures]) -> list[str]:
    cells = [_COLUMNS, *(_row(f) for f in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for n, r in enumerate(cells):
        fixed = "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        )
        lines.append(f"{fixed}  {r[-1]}".rstrip())
        if n == 0:
            lines.append("-" * max(len(lines[0]), 40))
    return lines


def record_figures(fig: Figures) -> Figures:
    """Print one scenario's figures now, keep them for the session table and the JSON file."""
    _RESULTS.append(fig)
    print(f"\n[chaos] {fig.scenario}: " + " ".join(format_table([fig])[2:]), flush=True)
    with contextlib.suppress(OSError):
        RESULTS_PATH.write_text(
            json.dumps(
                {
                    "scale": SCALE,
                    "results": [{**asdict(f), "outputs": f.outputs} for f in _RESULTS],
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return fig


class _SummaryPlugin:
    """Prints the figures of every scenario that ran, after pytest's own summary."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not _RESULTS:
            return
        terminalreporter.section(f"chaos figures (CHAOS_SCALE={SCALE:g})")
        for line in format_table(_RESULTS):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(also in {RESULTS_PATH})")


@pytest.fixture(scope="session", autouse=True)
def chaos_summary(request: pytest.FixtureRequest) -> None:
    """Import into each chaos module: registers the end-of-session table once."""
    manager = request.config.pluginmanager
    if manager.get_plugin(_PLUGIN_NAME) is None:
        manager.register(_SummaryPlugin(), _PLUGIN_NAME)


# --------------------------------------------------------------------------- model


def write_untrained_model(folder: Path, labels: Sequence[str] = LABELS, seed: int = 0) -> Path:
    """A complete, servable model folder (LoRA adapter + head + tokenizer), never trained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    from consumer.model_store import Thresholds, write_model
    from consumer.modeling import HeadConfig, resolve_base_model

    base = resolve_base_model(None)
    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(str(base), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    hidden = int(encoder.config.hidden_size)
    encoder = get_peft_model(encoder, LoraConfig(r=4, lora_alpha=8, target_modules=["query"]))
    head = torch.nn.Linear(hidden, len(labels))
    write_model(
        folder,
        encoder=encoder,
        head=head,
        tokenizer=tokenizer,
        labels=list(labels),
        head_config=HeadConfig(),
        max_length=64,
        base_model_path=base,
        thresholds=Thresholds(0.5),
    )
    return folder


_MODEL_CACHE: dict[str, Path] = {}


@pytest.fixture(scope="session")
def chaos_model_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The training fixture's model if it exists (CHAOS_MODEL=untrained skips it), else ours."""
    if "dir" in _MODEL_CACHE:
        return _MODEL_CACHE["dir"]
    folder: Path | None = None
    if os.environ.get("CHAOS_MODEL", "") != "untrained":
        try:
            folder = Path(request.getfixturevalue("trained_model_dir"))
        except pytest.FixtureLookupError:
            folder = None
    if folder is None:
        folder = write_untrained_model(tmp_path_factory.mktemp("chaos-model") / "v-chaos")
    _MODEL_CACHE["dir"] = folder
    return folder


_PREDICTORS: dict[Path, Any] = {}


@pytest.fixture(scope="session")
def chaos_predictor(chaos_model_dir: Path) -> Any:
    """A ``Predictor`` for ``chaos_model_dir`` in this process (for in-process services)."""
    if chaos_model_dir not in _PREDICTORS:
        from consumer.model_store import load_model
        from consumer.predictor import Predictor
        from consumer.settings import ModelSettings

        settings = ModelSettings(device="cpu")
        _PREDICTORS[chaos_model_dir] = Predictor(load_model(chaos_model_dir), settings)
    return _PREDICTORS[chaos_model_dir]


class EventLog(logging.Handler):
    """Collects the service's structlog events (dicts) from the root logger, in process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(dict(record.msg))
        try:
            self.lines.append(self.format(record) if self.formatter else record.getMessage())
        except Exception:  # never break the service's logging
            self.lines.append(repr(record.msg))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == name]

    def __enter__(self) -> EventLog:
        from consumer.logs import get_logger

        get_logger(__name__)  # configures logging once (it replaces the root handlers)
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger().removeHandler(self)


class ServiceThread:
    """A ``ClassifierService`` running on a thread of the test process."""

    def __init__(self, settings: Settings, predictor: Any) -> None:
        from consumer.service import ClassifierService

        self.service = ClassifierService(settings, predictor)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="service", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.service.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def alive(self) -> bool:
        return self.thread.is_alive()

    def metrics_text(self) -> str:
        import urllib.request

        deadline = time.monotonic() + 30
        while self.service.health is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.service.health is not None
        url = f"http://127.0.0.1:{self.service.health.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (via /metrics)."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, timeout: float = 60.0) -> int | None:
        self.service.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the service did not stop"
        if self.error is not None:
            raise self.error
        return self.code


# --------------------------------------------------------------------------- tickets

_SUBJECTS = [
    "Invoice charged twice",
    "App crashes on login",
    "Cannot reset my password",
    "Parcel never arrived",
    "Refund for order",
    "Error 500 when saving",
    "Change the account email",
    "Tracking number does not work",
]
_BODIES = [
    "Hello, my card was charged twice for invoice {n}. Please refund one of the payments.",
    "Since the update the app closes every time I try to log in on my phone (build {n}).",
    "The reset link you sent expired before I could use it. Account number {n}.",
    "Order {n} was shipped two weeks ago and the parcel still has not arrived.",
    "I returned the item last month and I am still waiting for the refund of order {n}.",
    "Saving the form gives an internal server error, request id {n}. Can you check?",
    "Please change the email on my account to the new address, customer {n}.",
    "The tracking page says the number {n} is unknown. Where is my delivery?",
]


def good_ticket(prefix: str, i: int, marker: str = "") -> tuple[str, bytes]:
    """(key, value) of a valid ticket; ``marker`` is placed in the body when given."""
    k = i % len(_SUBJECTS)
    body = _BODIES[k].format(n=1000 + i)
    if marker:
        body = f"{body} Reference {marker}."
    ticket = RawTicket(id=f"{prefix}-{i}", subject=_SUBJECTS[k], body=body, channel="email")
    return ticket.id, ticket.to_bytes()


def good_tickets(prefix: str, n: int, marker: str = "") -> list[tuple[str, bytes]]:
    return [good_ticket(prefix, i, marker) for i in range(n)]


# Hostile payloads for the end-to-end runs (the in-process fuzzer uses hypothesis instead).
HOSTILE_KINDS = (
    "not_json",
    "invalid_utf8",
    "huge",
    "deep_nesting",
    "nulls",
    "control_chars",
    "wrong_types",
    "missing_fields",
    "empty",
    "truncated_json",
    "extra_fields",
    "unicode_text",
)
# The dead-letter reason each hostile kind must get (unicode_text is a valid ticket).
EXPECTED_REASON: dict[str, set[str | None]] = {
    "not_json": {"invalid_json", "invalid_utf8", "schema_violation"},
    "invalid_utf8": {"invalid_utf8"},
    "huge": {"too_large"},
    "deep_nesting": {"invalid_json", "schema_violation", "too_large", None},
    "nulls": {"schema_violation", "invalid_json", "empty_record", None},
    "control_chars": {"empty_after_cleaning", "schema_violation", None},
    "wrong_types": {"schema_violation"},
    "missing_fields": {"schema_violation"},
    "empty": {"empty_record"},
    "truncated_json": {"invalid_json"},
    "extra_fields": {"schema_violation"},
    "unicode_text": {None, "empty_after_cleaning"},
}
_UNICODE_SNIPPETS = [
    "Mein Paket ist nicht angekommen 📦😡",
    "לא קיבלתי את ההחזר עבור ההזמנה",  # Hebrew (RTL)
    "لم أستلم المبلغ المسترد",  # Arabic (RTL)
    "\u202eevil override\u202c text",
    "我的账户无法登录，请帮忙",
    "ログインできません",
    "비밀번호를 재설정할 수 없습니다",
    "Z̷̢̛a̵l̸g̶o̴ ̷t̵e̶x̶t̸",
    "👩‍👩‍👧‍👦 family emoji and 🏳️‍🌈 flag",
    "𝕱𝖆𝖓𝖈𝖞 𝖒𝖆𝖙𝖍 𝖑𝖊𝖙𝖙𝖊𝖗𝖘",
]


def hostile_payload(rng: random.Random, kind: str, key: str, huge_bytes: int) -> bytes | None:
    """One malformed (or merely strange) payload of the given kind; None is a tombstone."""
    base = {"id": key, "subject": "s", "body": "my invoice is wrong"}
    if kind == "not_json":
        choice = rng.randrange(3)
        if choice == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        if choice == 1:
            return "".join(
                rng.choice(string.printable) for _ in range(rng.randrange(1, 80))
            ).encode()
        return b"{'id': 'single quotes', body: unquoted}"
    if kind == "invalid_utf8":
        good = json.dumps(base).encode()
        cut = rng.randrange(1, len(good))
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80"])
        return good[:cut] + bad + good[cut:]
    if kind == "huge":
        # Incompressible (random base64), so lz4 cannot shrink it under a size limit.
        body = base64.b64encode(rng.randbytes(huge_bytes * 3 // 4)).decode()
        return json.dumps({**base, "body": body}).encode()
    if kind == "deep_nesting":
        depth = rng.choice([50, 300, 3000, 20000])
        if rng.random() < 0.5:
            return ("[" * depth + "]" * depth).encode()
        return (
            json.dumps(base)[:-1] + ', "metadata": ' + '{"a":' * depth + "1" + "}" * depth + "}"
        ).encode()
    if kind == "nulls":
        return rng.choice(
            [
                b"null",
                json.dumps({**base, "body": None}).encode(),
                json.dumps({**base, "id": None}).encode(),
                b"\x00" * rng.randrange(1, 64),
                json.dumps({**base, "subject": "nul\u0000subject"}).encode(),
            ]
        )
    if kind == "control_chars":
        junk = "".join(chr(rng.choice([*range(0, 32), 127, *range(0x80, 0xA0)])) for _ in range(40))
        body = junk if rng.random() < 0.5 else f"printer broken {junk} help"
        return json.dumps({**base, "body": body}).encode()
    if kind == "wrong_types":
        field_name, value = rng.choice(
            [
                ("id", 12345),
                ("body", 17),
                ("body", ["a", "b"]),
                ("subject", {"x": 1}),
                ("channel", "carrier-pigeon"),
                ("created_at", "yesterday-ish"),
                ("metadata", [1, 2]),
                ("schema_version", 99),
                ("event_type", "ticket.other"),
                ("id", "has space"),
            ]
        )
        return json.dumps({**base, field_name: value}).encode()
    if kind == "missing_fields":
        drop = rng.choice(["id", "body"])
        return json.dumps({k: v for k, v in base.items() if k != drop}).encode()
    if kind == "empty":
        return rng.choice([None, b""])
    if kind == "truncated_json":
        good = json.dumps(base).encode()
        return good[: rng.randrange(1, len(good) - 1)]
    if kind == "extra_fields":
        return json.dumps({**base, "priority": "urgent", "__proto__": {}}).encode()
    if kind == "unicode_text":
        text = " ".join(rng.sample(_UNICODE_SNIPPETS, 3))
        return json.dumps(
            {**base, "subject": text[:30], "body": text}, ensure_ascii=rng.random() < 0.5
        ).encode()
    raise ValueError(kind)


# --------------------------------------------------------------------------- producing


@dataclass(frozen=True)
class Landed:
    key: str
    partition: int
    offset: int


_QUIET = logging.getLogger("tests.chaos.quiet")
_QUIET.propagate = False
_QUIET.setLevel(logging.CRITICAL + 1)


class LandingProducer:
    """A producer that records where each (key, value) landed (partition, offset)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self.producer = Producer(kafka, extra={"message.max.bytes": 4 * 1024 * 1024})
        self.producer._conf["logger"] = _QUIET  # broker outages are expected here
        self.landed: list[Landed] = []
        self.failures: list[str] = []

    def _report(self, key: str) -> Callable[[KafkaError | None, Any], None]:
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                self.failures.append(f"{key}: {err}")
            else:
                self.landed.append(Landed(key, int(msg.partition()), int(msg.offset())))

        return on_delivery

    def send(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        client = self.producer.client
        for key, value in items:
            while True:
                try:
                    client.produce(self.topic, value=value, key=key, on_delivery=self._report(key))
                    break
                except BufferError:
                    client.poll(0.1)
            client.poll(0)

    def flush(self, timeout: float = 60.0) -> list[Landed]:
        remaining = self.producer.client.flush(timeout)
        assert remaining == 0, f"{remaining} record(s) not delivered in {timeout}s"
        assert not self.failures, self.failures[:5]
        return self.landed


def produce_landed(
    kafka: KafkaSettings, topic: str, items: Iterable[tuple[str, bytes | None]]
) -> list[Landed]:
    """Produce (key, value) pairs and return where each landed (partition, offset)."""
    producer = LandingProducer(kafka, topic)
    producer.send(items)
    return producer.flush()


class StreamProducer:
    """Produces items in the background at a steady pace; ``hurry()`` sends the rest at once."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        items: Sequence[tuple[str, bytes]],
        duration_s: float,
    ) -> None:
        self.items = list(items)
        self.interval = duration_s / max(1, len(self.items))
        self.producer = LandingProducer(kafka, topic)
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-producer", daemon=True)
        self.error: BaseException | None = None

    @property
    def landed(self) -> list[Landed]:
        return self.producer.landed

    def start(self) -> StreamProducer:
        self._thread.start()
        return self

    def hurry(self) -> None:
        self._hurry.set()

    def join(self, timeout: float = 120.0) -> list[Landed]:
        self._hurry.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream producer did not finish"
        if self.error is not None:
            raise self.error
        return self.landed

    def _run(self) -> None:
        try:
            chunk = max(1, round(0.05 / self.interval)) if self.interval < 0.05 else 1
            for start in range(0, len(self.items), chunk):
                self.producer.send(self.items[start : start + chunk])
                self.producer.producer.client.flush(10)
                if not self._hurry.is_set():
                    self._hurry.wait(self.interval * chunk)
            self.producer.flush()
        except BaseException as exc:  # surfaced by join()
            self.error = exc


# --------------------------------------------------------------------------- reading outputs


@dataclass
class Outputs:
    """Everything on the three output topics, counted by message key."""

    by_topic: dict[str, Counter[str]]
    reasons: dict[str, str] = field(default_factory=dict)  # dead-letter key -> error_type
    source_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    bad_values: list[str] = field(default_factory=list)

    def keys(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_topic.values():
            total.update(counts)
        return total

    def count(self, topic: str) -> int:
        return sum(self.by_topic.get(topic, Counter()).values())


class OutputReader:
    """Reads the classified / review / dead-letter topics from the beginning, incrementally."""

    def __init__(self, settings: Settings, isolation: str = "read_uncommitted") -> None:
        t = settings.topics
        self.names = {"classified": t.classified, "review": t.review, "dead_letter": t.dead_letter}
        self.consumer = RawConsumer(
            {
                **settings.kafka.client_config(),
                "group.id": f"chaos-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "isolation.level": isolation,
                "fetch.message.max.bytes": 8 * 1024 * 1024,
                "fetch.wait.max.ms": 50,
            }
        )
        self.out = Outputs({name: Counter() for name in self.names})
        self.isolation = isolation
        self.at_end: set[tuple[str, int]] = set()  # partitions that reported end-of-partition
        self.next_offset: dict[tuple[str, int], int] = {}
        self.partitions: list[TopicPartition] = []
        for topic in self.names.values():
            meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue  # created later (missing-topic scenario): call refresh()
            self.partitions += [TopicPartition(topic, p, 0) for p in meta.partitions]
        self.consumer.assign(self.partitions)

    def refresh_assignment(self) -> None:
        known = {(tp.topic, tp.partition) for tp in self.partitions}
        added = []
        for topic in self.names.values():
            meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            added += [
                TopicPartition(topic, p, 0) for p in meta.partitions if (topic, p) not in known
            ]
        if added:
            self.partitions += added
            self.consumer.incremental_assign(added)

    def drain(self, timeout: float = 20.0) -> Outputs:
        """Read what the output topics hold now.

        read_uncommitted: up to the high watermarks taken at the call. read_committed: until
        every partition reported end-of-partition (its last stable offset), as the high
        watermark may lie behind an open or aborted transaction.
        """
        route_of = {v: k for k, v in self.names.items()}
        targets: dict[tuple[str, int], int] = {}
        if self.isolation == "read_uncommitted":
            for tp in self.partitions:
                high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                targets[(tp.topic, tp.partition)] = high
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.consumer.consume(500, 0.2)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        key = (msg.topic(), msg.partition())
                        self.at_end.add(key)
                        # The end may lie past a transaction marker (never delivered).
                        self.next_offset[key] = max(self.next_offset.get(key, 0), msg.offset())
                    continue
                self.at_end.discard((msg.topic(), msg.partition()))
                self.next_offset[(msg.topic(), msg.partition())] = msg.offset() + 1
                self._take(route_of[msg.topic()], msg.key(), msg.value())
            if batch:
                continue
            if targets:
                if all(self.next_offset.get(k, 0) >= hi for k, hi in targets.items()):
                    break
            elif self.at_end >= {(tp.topic, tp.partition) for tp in self.partitions}:
                break
        return self.out

    def _take(self, route: str, key: bytes | None, value: bytes | None) -> None:
        name = (key or b"").decode("utf-8", "replace")
        self.out.by_topic[route][name] += 1
        try:
            if route == "dead_letter":
                event = DeadLetter.model_validate_json(value or b"")
                self.out.reasons[name] = event.error_type
                self.out.source_offsets[name] = (event.source_partition, event.source_offset)
            else:
                model = ClassifiedTicket if route == "classified" else ReviewRequest
                ticket = model.model_validate_json(value or b"").ticket
                if ticket.id != name:
                    self.out.bad_values.append(f"{route}: key {name!r} holds ticket {ticket.id!r}")
        except ValueError as exc:
            self.out.bad_values.append(f"{route}: {name!r}: {exc}"[:300])

    def wait_for(self, expected: set[str], timeout: float = 90.0, linger: float = 1.5) -> Outputs:
        """Drain until every expected key is seen, then once more after ``linger`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain(timeout=max(1.0, deadline - time.monotonic()))
            if expected <= set(self.out.keys()):
                break
            time.sleep(0.5)
        time.sleep(linger)
        return self.drain()

    def close(self) -> None:
        self.consumer.close()


def tally(
    scenario: str, landed: Sequence[Landed], out: Outputs, started: float, **notes: Any
) -> Figures:
    """Lost (input keys without output) and duplicated (extra outputs) for one run."""
    keys = out.keys()
    expected = [x.key for x in landed]
    lost = sum(1 for k in set(expected) if keys[k] == 0)
    duplicated = sum(c - 1 for k, c in keys.items() if c > 1)
    strangers = set(keys) - set(expected)
    if strangers:
        notes["unexpected_keys"] = len(strangers)
    return Figures(
        scenario=scenario,
        inputs=len(landed),
        classified=out.count("classified"),
        review=out.count("review"),
        dead_letter=out.count("dead_letter"),
        lost=lost,
        duplicated=duplicated,
        seconds=time.monotonic() - started,
        notes=notes,
    )


def committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = RawConsumer({**kafka.client_config(), "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
        return {tp.partition: tp.offset for tp in parts}
    finally:
        consumer.close()


def assert_commit_not_past_output(
    landed: Sequence[Landed], delivered: set[str], offsets: dict[int, int]
) -> int:
    """Every raw record below the committed offset of its partition has its output.

    Returns how many records lie below the committed offsets (the committed prefix).
    """
    below = [x for x in landed if x.offset < offsets.get(x.partition, -1)]
    missing = [x for x in below if x.key not in delivered]
    assert not missing, (
        f"committed offsets {offsets} are past {len(missing)} record(s) without output,"
        f" e.g. {missing[:3]}"
    )
    return len(below)


# --------------------------------------------------------------------------- the service


def chaos_env(settings: Settings, model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``python -m consumer`` against ``settings``' broker and topics."""
    from tests.kafka_helpers import service_env

    env = service_env(settings, model_dir)
    env.update(
        {
            # One thread: the test machine's cores are shared with the broker and the test.
            "TICKETSORT_MODEL__THREADS": "1",
            "TICKETSORT_MODEL__DEVICE": "cpu",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
        }
    )
    env.update(extra)
    return env


def kafka_extra(**values: str | int) -> str:
    return json.dumps(values)


def zygote_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TICKETSORT_MODEL__THREADS": "1",
            "TICKETSORT_MODEL__DEVICE": "cpu",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class Zygote:
    """Client of the fork server at the end of this file (one per session and model)."""

    def __init__(self, model_dir: Path, log_path: Path, timeout: float = 300.0) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos_helpers", "zygote", str(model_dir)],
            cwd=REPO,
            env=zygote_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.exits: dict[int, int] = {}
        self._pids: list[int] = []
        self._ready = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start: {self._tail()}")

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                with self._changed:
                    if "ready" in message:
                        self._ready.set()
                    elif "exit" in message:
                        self.exits[int(message["exit"])] = int(message["code"])
                    elif "pid" in message:
                        self._pids.append(int(message["pid"]))
                    self._changed.notify_all()

    def spawn(self, env: dict[str, str], log_path: Path) -> int:
        assert self.proc.stdin is not None and self.proc.poll() is None, self._tail()
        with self._changed:
            before = len(self._pids)
            self.proc.stdin.write(json.dumps({"env": env, "log": str(log_path)}).encode() + b"\n")
            self.proc.stdin.flush()
            if not self._changed.wait_for(lambda: len(self._pids) > before, timeout=30):
                raise RuntimeError(f"the fork server did not fork: {self._tail()}")
            return self._pids[before]

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self.exits, timeout=timeout)
            return self.exits.get(pid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


_ZYGOTES: dict[Path, Zygote] = {}


@pytest.fixture(scope="session")
def chaos_spawner(
    request: pytest.FixtureRequest,
    chaos_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Zygote | None:
    """The fork server for ``chaos_model_dir``; None with CHAOS_SPAWN=exec (real exec each time)."""
    if os.environ.get("CHAOS_SPAWN", "") == "exec":
        return None
    if chaos_model_dir not in _ZYGOTES:
        zygote = Zygote(chaos_model_dir, tmp_path_factory.mktemp("zygote") / "zygote.log")
        _ZYGOTES[chaos_model_dir] = zygote

        def close() -> None:
            _ZYGOTES.pop(chaos_model_dir, None)
            zygote.close()

        request.config.add_cleanup(close)
    return _ZYGOTES[chaos_model_dir]


class ServiceProcess:
    """``python -m consumer`` as a child process with its own JSON log file.

    Forked from the fork server when one is given (``chaos_spawner``), else exec'd.
    """

    def __init__(self, env: dict[str, str], log_path: Path, spawner: Zygote | None = None) -> None:
        self.env, self.log_path, self.spawner = env, log_path, spawner
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._popen: subprocess.Popen[bytes] | None = None
        if spawner is not None:
            log_path.touch()
            self.pid = spawner.spawn(env, log_path)
        else:
            with log_path.open("ab") as log:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", "consumer"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.pid = self._popen.pid

    def poll(self) -> int | None:
        if self._popen is not None:
            return self._popen.poll()
        assert self.spawner is not None
        return self.spawner.exits.get(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            return self._popen.wait(timeout)
        assert self.spawner is not None
        code = self.spawner.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired("python -m consumer", timeout or 0)
        return code

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            if f'"{name}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def wait_event(self, name: str, timeout: float = 120.0, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events(name)) >= count:
                return True
            if self.poll() is not None:
                return len(self.events(name)) >= count
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.send_signal(sig)
        return self.wait(60)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (SIGKILL after ``timeout``); the exit code."""
        if self.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                return self.wait(10)
        code = self.poll()
        assert code is not None
        return code

    def tail(self, chars: int = 4000) -> str:
        return self.text()[-chars:]

    def stacks(self) -> str:
        """The Python stacks of every thread (forked children only), for a stuck service."""
        if self.spawner is None or self.poll() is not None:
            return self.tail()
        before = len(self.text())
        self.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        return self.text()[before:][-6000:] or self.tail()


# --------------------------------------------------------------------------- private broker


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class PrivateBroker:
    """A second local broker (own state dir, own ports) for scenarios that restart it.

    ``deploy/kafka/kafka_local.py`` reads TICKETSORT_KAFKA_HOME / _PORT / _CONTROLLER_PORT
    from ``os.environ`` on every call, so a private copy of the module is loaded and each call
    runs with those variables set to this broker's values, then restored: the shared broker
    (``.kafka/`` on 19092) is never addressed.
    """

    def __init__(self, home: Path) -> None:
        port, controller = free_ports(2)
        self.env = {
            "TICKETSORT_KAFKA_HOME": str(home),
            "TICKETSORT_KAFKA_PORT": str(port),
            "TICKETSORT_KAFKA_CONTROLLER_PORT": str(controller),
        }
        name = f"kafka_local_private_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(name, KAFKA_LOCAL)
        assert spec is not None and spec.loader is not None
        self.module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.address = f"127.0.0.1:{port}"

    @contextlib.contextmanager
    def _scoped_env(self) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._scoped_env():
            result = getattr(self.module, name)(*args, **kwargs)
            assert self.module.bootstrap_address() == self.address
            return result

    def up(self, timeout: float = 120.0) -> str:
        return str(self.call("ensure_up", timeout=timeout))

    def kill(self, sig: int) -> int | None:
        pid = self.call("kill", sig)
        return int(pid) if pid is not None else None

    def wait_down(self, pid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.call("_alive", pid):
                return
            time.sleep(0.2)
        raise AssertionError(f"private broker pid {pid} still alive after {timeout}s")

    def start_again(self, timeout: float = 120.0) -> str:
        return str(self.call("start_again", timeout=timeout))

    def stop(self) -> None:
        self.call("stop")


# --------------------------------------------------------------------------- fork server
# A fork server for the failure suite: ``python -m consumer`` without the 20 s start each time.
#
# Importing torch/transformers/peft and loading the model takes ~20 s on the shared 2-core test
# machine, so a scenario that kills and restarts the consumer a few times would spend minutes
# starting Python. This process imports ``consumer.__main__`` and loads the model once, then
# forks one child per request; the child runs ``consumer.__main__.main([])`` (the very code
# path of ``python -m consumer``: settings from the environment, signal handlers, the service,
# its exit code) with its stdout/stderr on a log file. Only ``load_predictor`` is short-cut to
# the preloaded predictor, and only for the preloaded model folder; any other folder takes the
# real loading path in the child.
#
# Protocol (JSON lines): the parent writes ``{"env": {...}, "log": "/path"}`` and reads
# ``{"pid": N}``; whenever a child ends it reads ``{"exit": N, "code": C}`` (``-9`` after
# SIGKILL). ``{"ready": true}`` is the first line, once the model is loaded. No Kafka client
# exists in this process before a fork (librdkafka threads do not survive fork), and
# OMP_NUM_THREADS=1 keeps torch from starting a thread pool here.
#
# Usage: ``python -m tests.chaos_zygote MODEL_DIR``.


def _zygote_child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m consumer`` with the requested environment."""
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # ServiceProcess.stacks()
    os.environ.clear()
    os.environ.update(request["env"])
    code = 1
    try:
        import consumer.settings

        consumer.settings.get_settings.cache_clear()
        from consumer.__main__ import main

        code = main([])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def zygote_main(model_dir: Path) -> int:
    """The fork server (see ``Zygote``); runs as ``python -m tests.chaos_helpers zygote DIR``."""
    model_dir = model_dir.resolve()
    import consumer.__main__
    import consumer.service
    from consumer.settings import Settings

    settings = Settings()
    preloaded = consumer.service.load_predictor(
        settings.model_copy(update={"model": settings.model.model_copy(update={"path": model_dir})})
    )
    real_load = consumer.service.load_predictor

    def load_predictor(settings: Settings) -> Any:
        from consumer.model_store import resolve_model_dir

        folder = resolve_model_dir(settings.model.store, settings.model.path)
        return preloaded if folder == model_dir else real_load(settings)

    consumer.service.load_predictor = load_predictor  # type: ignore[assignment]

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    stdin = sys.stdin.fileno()
    buffer = b""
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.1)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            out.write(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")
            out.flush()
        if not readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if not line.strip():
                continue
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _zygote_child(request)
            children.add(pid)
            out.write(json.dumps({"pid": pid}) + "\n")
            out.flush()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["zygote"]:
    sys.exit(zygote_main(Path(sys.argv[2])))
