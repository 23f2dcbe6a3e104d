"""What the batch step hands to a sink: one primary output per consumed record, and extras.

The primary output is the record's one route: classified, review or dead letter. A record
may also have side outputs (``primary=False``): the audit copy of an auto-routed ticket on
the review topic, the shadow model's score on the shadow topic. A record is done (its offset
committable) only once all of its outputs are delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer.events import ShadowScore
from consumer.kafka import Record

Route = str  # "classified" | "review" | "dead_letter"; side outputs: "audit" | "shadow"


@dataclass
class Output:
    """One record to write for one consumed ``record`` (kept whole for retries)."""

    record: Record
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    route: Route
    error_type: str | None = None  # dead letters: why
    attempts: int = 0
    failures: list[str] = field(default_factory=list)  # delivery errors seen, newest last
    isolated: bool = False  # the last attempt was produced alone (nothing else in flight)
    isolated_failures: int = 0
    # The prediction (classified and review outputs), for the drift metrics (consumer.drift).
    category: str | None = None
    confidence: float | None = None
    novelty: float | None = None
    primary: bool = True  # False: a side output (audit copy, shadow score)
    shadow: ShadowScore | None = None  # the event of a "shadow" side output (its metrics)

    @property
    def source(self) -> str:
        return f"{self.record.topic}[{self.record.partition}]@{self.record.offset}"

    @property
    def size(self) -> int:
        headers = sum(len(k) + len(v) for k, v in self.headers)
        return len(self.value) + len(self.key or b"") + headers


@dataclass
class BatchResult:
    """The batch step's answer: ``outputs`` in record order, and how long the model took."""

    records: list[Record]
    outputs: list[Output]
    inference_s: float = 0.0
    texts: dict[str, str] = field(default_factory=dict)  # ticket id -> cleaned text (debug log)

    @property
    def primaries(self) -> list[Output]:
        """One output per record, in record order: where each record went."""
        return [o for o in self.outputs if o.primary]

    def count(self, route: Route) -> int:
        return sum(1 for o in self.outputs if o.route == route)

    def dead_letter_flags(self) -> list[bool]:
        return [o.route == "dead_letter" for o in self.primaries]

    def outputs_per_record(self) -> dict[tuple[str, int, int], int]:
        out: dict[tuple[str, int, int], int] = {}
        for o in self.outputs:
            key = (o.record.topic, o.record.partition, o.record.offset)
            out[key] = out.get(key, 0) + 1
        return out
