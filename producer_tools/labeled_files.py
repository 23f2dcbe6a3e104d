"""Read labeled ticket files (CSV or JSON lines) into validated rows, one verdict per row.

Used by ``python -m producer_tools import`` / ``replay`` and by training's ``--from-file``::

    label_map = load_label_map(Path("coarse11.json"))  # {bucket: [label, ...]} -> label -> bucket
    for item in read_labeled_file(path, Columns(text="text", label="category"), label_map):
        if isinstance(item, RowError):
            print(f"line {item.line}: {item.reason}: {item.detail}")
        else:
            use(item.ticket, item.label)

Every data row yields exactly one :class:`Row` or :class:`RowError` (nothing is skipped
silently, blank lines included); ``line`` is the 1-based line the row starts on. Problems with
the file as a whole (missing, unknown format, a named column absent from the CSV header) raise
:class:`LabeledFileError` when :func:`read_labeled_file` is called, before any row is read.

Columns: the ticket body comes from ``body`` when that column is named, else from ``text``;
``subject`` is optional. ``channel``, ``language`` and ``customer_id`` columns are used when
present. Ids come from the ``id`` column (auto-detected when not named); without one, each row
gets a deterministic id from its content (:func:`stable_ticket_id`), so re-reading the same
tickets from any file gives the same ids.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from consumer.errors import TicketsortError
from consumer.events import Channel, RawTicket

FileFormat = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = get_args(FileFormat)
SUFFIXES: dict[str, FileFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# Same default as the consumer's settings.validation.max_body_bytes.
DEFAULT_MAX_TEXT_BYTES = 64 * 1024
MAX_LABEL_CHARS = 200  # LabeledTicket.label
MAX_ID_CHARS = 200  # RawTicket.id
GENERATED_ID_PREFIX = "imp-"
OPTIONAL_COLUMNS = ("channel", "language", "customer_id")
CHANNELS: frozenset[str] = frozenset(get_args(Channel))
_CSV_FIELD_LIMIT = 16 * 1024 * 1024  # read huge fields whole, then reject them as too large


class Reason(StrEnum):
    """Why a row was rejected (stable codes, used in summaries)."""

    BLANK_LINE = "blank_line"
    MALFORMED = "malformed"
    INVALID_UTF8 = "invalid_utf8"
    ROW_TOO_LARGE = "row_too_large"
    MISSING_TEXT = "missing_text"
    EMPTY_LABEL = "empty_label"
    INVALID_LABEL = "invalid_label"
    UNKNOWN_LABEL = "unknown_label"
    INVALID_ID = "invalid_id"
    INVALID_TICKET = "invalid_ticket"


class LabeledFileError(TicketsortError):
    """The file (or label map) cannot be read at all."""


@dataclass(frozen=True, slots=True)
class Columns:
    """Column names. ``id=None`` means: the ``id`` column when present, else generated ids."""

    text: str = "text"
    label: str = "category"
    subject: str | None = None
    body: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    ticket: RawTicket
    label: str  # after the label map
    source_label: str  # as written in the file
    id_generated: bool


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: Reason
    detail: str


class _Reject(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def stable_ticket_id(subject: str | None, body: str, label: str) -> str:
    """``imp-<16 hex>``: sha1 of the ticket's subject, body and (source) label."""
    payload = json.dumps([subject or "", body, label], ensure_ascii=False)
    return GENERATED_ID_PREFIX + hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def detect_format(path: Path, fmt: str | None = None) -> FileFormat:
    if fmt is not None:
        if fmt not in FORMATS:
            raise LabeledFileError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
        return fmt  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LabeledFileError(
            f"cannot tell the format of {path.name} from its suffix"
            f" ({', '.join(SUFFIXES)}); pass --format csv|jsonl"
        )
    return SUFFIXES[suffix]


def load_label_map(path: Path) -> dict[str, str]:
    """Read ``{bucket: [label, ...]}`` and return ``{label: bucket}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LabeledFileError(f"label map {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabeledFileError(f"label map {path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise LabeledFileError(f"label map {path} must be a non-empty object {{bucket: [label]}}")
    mapping: dict[str, str] = {}
    for bucket, labels in data.items():
        if not bucket.strip() or len(bucket) > MAX_LABEL_CHARS:
            raise LabeledFileError(f"label map {path}: invalid bucket name {bucket!r}")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise LabeledFileError(f"label map {path}: {bucket!r} must map to a list of strings")
        for label in labels:
            if label in mapping and mapping[label] != bucket:
                raise LabeledFileError(
                    f"label map {path}: {label!r} is in both {mapping[label]!r} and {bucket!r}"
                )
            mapping[label] = bucket
    return mapping


def read_labeled_file(
    path: Path,
    columns: Columns = Columns(),
    label_map: Mapping[str, str] | None = None,
    *,
    fmt: str | None = None,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> Iterator[Row | RowError]:
    """Check the file, then return an iterator of one ``Row`` or ``RowError`` per row."""
    fmt_ = detect_format(path, fmt)
    if not path.is_file():
        raise LabeledFileError(f"{path} does not exist or is not a file")
    builder = _RowBuilder(columns, label_map, max_text_bytes)
    if fmt_ == "jsonl":
        return _read_jsonl(path, builder)
    header = _csv_header(path)
    needed = [columns.label, columns.body or columns.text, columns.subject, columns.id]
    missing = [c for c in dict.fromkeys(needed) if c is not None and c not in header]
    if missing:
        raise LabeledFileError(
            f"{path.name}: column(s) {', '.join(map(repr, missing))} not in the header"
            f" (columns: {', '.join(header)})"
        )
    id_column = columns.id or ("id" if "id" in header else None)
    return _read_csv(path, header, builder, id_column)


def _open_text(path: Path) -> Any:
    # surrogateescape: undecodable bytes become lone surrogates, rejected per row.
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_header(path: Path) -> list[str]:
    _raise_csv_field_limit()
    try:
        with _open_text(path) as handle:
            header = next(csv.reader(handle), None)
    except (OSError, csv.Error) as exc:
        raise LabeledFileError(f"{path.name}: cannot read the CSV header: {exc}") from exc
    if not header or not any(h.strip() for h in header):
        raise LabeledFileError(f"{path.name}: empty file (a CSV file needs a header line)")
    return [h.strip() for h in header]


def _raise_csv_field_limit() -> None:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)


def _read_csv(
    path: Path, header: list[str], builder: _RowBuilder, id_column: str | None
) -> Iterator[Row | RowError]:
    _raise_csv_field_limit()
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        next(reader, None)  # header
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RowError(line, Reason.MALFORMED, f"CSV: {exc}")
                continue
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                yield RowError(line, Reason.BLANK_LINE, "blank line")
                continue
            if len(fields) != len(header):
                yield RowError(
                    line,
                    Reason.MALFORMED,
                    f"{len(fields)} field(s), the header has {len(header)}",
                )
                continue
            yield builder.build(line, dict(zip(header, fields, strict=True)), id_column)


def _read_jsonl(path: Path, builder: _RowBuilder) -> Iterator[Row | RowError]:
    max_line = builder.max_text_bytes * 4 + 4096
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                yield RowError(line, Reason.BLANK_LINE, "blank line")
                continue
            if len(raw) > max_line:
                yield RowError(
                    line, Reason.ROW_TOO_LARGE, f"line is {len(raw)} bytes (max {max_line})"
                )
                continue
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield RowError(line, Reason.INVALID_UTF8, f"not UTF-8 at byte {exc.start}")
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RowError(line, Reason.MALFORMED, f"invalid JSON: {exc.msg} (col {exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield RowError(
                    line, Reason.MALFORMED, f"a JSON object is needed, got {type(obj).__name__}"
                )
                continue
            id_column = builder.columns.id or ("id" if obj.get("id") is not None else None)
            yield builder.build(line, obj, id_column)


class _RowBuilder:
    """Turns one record (column -> value) into a validated ``Row`` or a ``RowError``."""

    def __init__(
        self, columns: Columns, label_map: Mapping[str, str] | None, max_text_bytes: int
    ) -> None:
        self.columns = columns
        self.label_map = label_map
        self.max_text_bytes = max_text_bytes

    def build(self, line: int, record: Mapping[str, Any], id_column: str | None) -> Row | RowError:
        try:
            return self._build(line, record, id_column)
        except _Reject as reject:
            return RowError(line, reject.reason, reject.detail)

    def _build(self, line: int, record: Mapping[str, Any], id_column: str | None) -> Row:
        cols = self.columns
        body_column = cols.body or cols.text
        body = _cell(record, body_column)
        subject = _cell(record, cols.subject) if cols.subject else None
        if body is None or not body.strip():
            raise _Reject(Reason.MISSING_TEXT, f"column {body_column!r} is missing or empty")
        size = _utf8_size(body, body_column) + (_utf8_size(subject, cols.subject) if subject else 0)
        if size > self.max_text_bytes:
            raise _Reject(
                Reason.ROW_TOO_LARGE, f"ticket text is {size} bytes (max {self.max_text_bytes})"
            )
        source_label = (_cell(record, cols.label) or "").strip()
        if not source_label:
            raise _Reject(Reason.EMPTY_LABEL, f"column {cols.label!r} is missing or empty")
        _utf8_size(source_label, cols.label)
        label = self._map_label(source_label)
        ticket_id, generated = self._ticket_id(record, id_column, subject, body, source_label)
        extras = {name: _cell(record, name) for name in OPTIONAL_COLUMNS}
        fields: dict[str, Any] = {k: v.strip() for k, v in extras.items() if v and v.strip()}
        for name, value in fields.items():
            _utf8_size(value, name)
        if "channel" in fields and fields["channel"] not in CHANNELS:
            raise _Reject(
                Reason.INVALID_TICKET,
                f"channel {fields['channel'][:40]!r} is not one of {', '.join(sorted(CHANNELS))}",
            )
        try:
            ticket = RawTicket(id=ticket_id, subject=subject or None, body=body, **fields)
        except ValidationError as exc:
            raise _Reject(Reason.INVALID_TICKET, _describe(exc)) from None
        return Row(line, ticket, label, source_label, generated)

    def _map_label(self, source_label: str) -> str:
        if self.label_map is None:
            label = source_label
        elif source_label in self.label_map:
            label = self.label_map[source_label]
        else:
            raise _Reject(
                Reason.UNKNOWN_LABEL, f"label {source_label[:80]!r} is not in the label map"
            )
        if len(label) > MAX_LABEL_CHARS:
            raise _Reject(
                Reason.INVALID_LABEL, f"label is longer than {MAX_LABEL_CHARS} characters"
            )
        return label

    def _ticket_id(
        self,
        record: Mapping[str, Any],
        id_column: str | None,
        subject: str | None,
        body: str,
        source_label: str,
    ) -> tuple[str, bool]:
        if id_column is None:
            return stable_ticket_id(subject, body, source_label), True
        value = _cell(record, id_column)
        value = value.strip() if value is not None else ""
        if not value:
            raise _Reject(Reason.INVALID_ID, f"column {id_column!r} is missing or empty")
        if len(value) > MAX_ID_CHARS or any(ch.isspace() for ch in value):
            raise _Reject(
                Reason.INVALID_ID,
                f"id {value[:40]!r} must be 1-{MAX_ID_CHARS} characters without whitespace",
            )
        _utf8_size(value, id_column)
        return value, False


def _cell(record: Mapping[str, Any], column: str) -> str | None:
    value = record.get(column)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(
            Reason.MALFORMED, f"column {column!r} holds a {type(value).__name__}, not text"
        )
    return str(value)


def _utf8_size(value: str, column: str | None) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Reject(Reason.INVALID_UTF8, f"column {column!r} is not valid UTF-8") from None


def _describe(exc: ValidationError) -> str:
    """Field and message only: pydantic's own text would echo the ticket's content."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "ticket"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
