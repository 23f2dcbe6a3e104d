"""What the batch step hands to a sink: one output record per consumed record."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer.kafka import Record

Route = str  # "classified" | "review" | "dead_letter"


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
    novelty: float | None = None  # hook: set it when the model scores novelty

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

    def count(self, route: Route) -> int:
        return sum(1 for o in self.outputs if o.route == route)

    def dead_letter_flags(self) -> list[bool]:
        return [o.route == "dead_letter" for o in self.outputs]
