"""The records every data source yields, before cleaning and deduplication."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

LabelSource = Literal["history", "reviewer"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One labeled ticket as read, or the deletion of one (a tombstone).

    ``position`` orders records of one source: ``(partition, offset)`` for the
    archive topic, ``(0, row)`` for a file.
    """

    ticket_id: str
    subject: str | None
    body: str
    label: str
    label_source: LabelSource
    labeled_at: datetime | None
    position: tuple[int, int]
    deleted: bool = False


@dataclass
class RawData:
    """What a source produced: records, what it could not read, and where it came from."""

    records: list[SourceRecord]
    drops: Counter[str] = field(default_factory=Counter)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Example:
    """A cleaned, deduplicated, labeled text: what training and evaluation see."""

    ticket_id: str
    text: str
    label: str
