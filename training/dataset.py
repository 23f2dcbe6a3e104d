"""From source records to training examples: deduplicate, map labels, clean.

Every dropped record is counted by reason, and the counts go into the model's
``snapshot.json`` and report:

- ``duplicate``: an older label of a ticket that has a newer one. The label that
  wins is the reviewer's over the history's, then the latest ``labeled_at``,
  then the latest position (offset or line);
- ``deleted``: a ticket whose latest record is a tombstone;
- ``unknown_label``: a label the label map does not list;
- ``empty_after_cleaning``: nothing left once ``consumer.clean.clean_ticket``
  (the function serving runs) has cleaned it;
- ``rare_label``: a label with fewer examples than ``min_examples_per_label``;
- whatever the source could not read (``invalid_record``, ``malformed``...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumer.clean import clean_ticket
from training.records import Example, RawData, SourceRecord

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class Prepared:
    examples: list[Example]
    drops: Counter[str] = field(default_factory=Counter)
    records_in: int = 0

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.label for e in self.examples).items()))


def precedence(record: SourceRecord) -> tuple[int, datetime, tuple[int, int]]:
    """Sort key: the greatest record of a ticket is its label of record."""
    labeled_at = record.labeled_at or _EPOCH
    if labeled_at.tzinfo is None:
        labeled_at = labeled_at.replace(tzinfo=UTC)
    return (1 if record.label_source == "reviewer" else 0, labeled_at, record.position)


def latest_per_ticket(records: Iterable[SourceRecord]) -> tuple[list[SourceRecord], int]:
    """One record per ticket id (the winning label), in first-seen order.

    A tombstone deletes the ticket's records before it (by position); a record
    after the tombstone brings the ticket back. Returns the records and the
    number of labeled records that a tombstone deleted.
    """
    records = list(records)
    deleted_at: dict[str, tuple[int, int]] = {}
    for record in records:
        if record.deleted:
            previous = deleted_at.get(record.ticket_id)
            if previous is None or record.position > previous:
                deleted_at[record.ticket_id] = record.position
    best: dict[str, SourceRecord] = {}
    deleted = 0
    for record in records:
        if record.deleted:
            continue
        tomb = deleted_at.get(record.ticket_id)
        if tomb is not None and record.position < tomb:
            deleted += 1
            continue
        current = best.get(record.ticket_id)
        if current is None or precedence(record) > precedence(current):
            best[record.ticket_id] = record
    return list(best.values()), deleted


def prepare(
    raw: RawData,
    *,
    label_map: Mapping[str, str] | None = None,
    max_chars: int = 2000,
    min_examples_per_label: int = 1,
    allowed_labels: Iterable[str] | None = None,
) -> Prepared:
    """Deduplicate, map labels, clean; drop (and count) what cannot be used.

    ``allowed_labels`` (evaluation sets): labels outside it are dropped as
    ``label_not_in_model``.
    """
    drops: Counter[str] = Counter(raw.drops)
    labeled = sum(1 for r in raw.records if not r.deleted)
    kept, deleted = latest_per_ticket(raw.records)
    # Every labeled record is kept, superseded by a newer label, or of a deleted ticket.
    superseded = labeled - len(kept)
    drops["deleted"] += deleted
    drops["duplicate"] += superseded - deleted
    allowed = set(allowed_labels) if allowed_labels is not None else None
    examples: list[Example] = []
    for record in kept:
        label = record.label
        if label_map is not None:
            if label not in label_map:
                drops["unknown_label"] += 1
                continue
            label = label_map[label]
        if allowed is not None and label not in allowed:
            drops["label_not_in_model"] += 1
            continue
        text = clean_ticket(record.subject, record.body, max_chars=max_chars)
        if not text:  # the consumer dead-letters the same tickets
            drops["empty_after_cleaning"] += 1
            continue
        examples.append(
            Example(
                ticket_id=record.ticket_id,
                text=text,
                label=label,
            )
        )
    if min_examples_per_label > 1:
        counts = Counter(e.label for e in examples)
        rare = {label for label, n in counts.items() if n < min_examples_per_label}
        if rare:
            drops["rare_label"] += sum(counts[label] for label in rare)
            examples = [e for e in examples if e.label not in rare]
    return Prepared(
        examples=examples,
        drops=Counter({k: v for k, v in drops.items() if v}),
        records_in=labeled + sum(raw.drops.values()),
    )
