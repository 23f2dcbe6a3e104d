"""File sources (CSV or JSONL): ``producer_tools.labeled_files`` rows as training records.

The file is read by the same reader ``producer_tools import`` uses (so a file
trained on directly and the same file imported into the archive give the same
ticket ids, hence the same splits). Rows become ``SourceRecord``s (label source
``history``, ordered by line) and then go through the archive's code path:
deduplication, label map, cleaning, split. The reader's row errors are counted
as drops; the label map is applied later, in ``training.dataset``, for every
source alike.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from producer_tools.labeled_files import (
    Columns,
    LabeledFileError,
    RowError,
    read_labeled_file,
)
from producer_tools.labeled_files import load_label_map as _load_label_map
from training.errors import BadInput
from training.records import RawData, SourceRecord

__all__ = ["Columns", "file_sha256", "load_label_map", "read_file"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_label_map(path: Path) -> dict[str, str]:
    """``{bucket: [label, ...]}`` -> ``{label: bucket}``; a bad map is bad input (exit 2)."""
    try:
        return _load_label_map(path)
    except LabeledFileError as exc:
        raise BadInput(str(exc)) from exc


def read_file(path: Path, columns: Columns) -> RawData:
    """Every row of a labeled file as a record; rejected rows are counted by reason."""
    try:
        rows = read_labeled_file(path, columns, None)
    except LabeledFileError as exc:
        raise BadInput(str(exc)) from exc
    records: list[SourceRecord] = []
    drops: Counter[str] = Counter()
    generated_ids = 0
    for row in rows:
        if isinstance(row, RowError):
            drops[str(row.reason)] += 1
            continue
        generated_ids += row.id_generated
        records.append(
            SourceRecord(
                ticket_id=row.ticket.id,
                subject=row.ticket.subject,
                body=row.ticket.body,
                label=row.label,
                label_source="history",
                labeled_at=None,
                position=(0, row.line),
            )
        )
    info = {
        "kind": "file",
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "rows": len(records) + sum(drops.values()),
        "generated_ids": generated_ids,
        "columns": {
            "text": columns.text,
            "label": columns.label,
            "subject": columns.subject,
            "body": columns.body,
            "id": columns.id,
        },
    }
    return RawData(records=records, drops=drops, info=info)
