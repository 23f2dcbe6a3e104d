"""``import FILE``: load historical labeled tickets into the labeled archive topic.

Each good row becomes a ``LabeledTicket`` (label_source "history") keyed by its ticket id.
Ids already in the archive (read up to its end offsets before producing) and ids repeated in
the file are counted and not produced again, so importing a file twice adds nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from consumer.events import LabeledTicket
from consumer.kafka import Producer
from consumer.settings import Settings
from producer_tools.archive import ArchiveSnapshotTimeout, archived_ids
from producer_tools.connect import require_broker, require_topic
from producer_tools.delivery import flush_all
from producer_tools.exits import ExitCode, ToolError
from producer_tools.file_options import add_file_arguments, open_file_from_args
from producer_tools.labeled_files import Row, RowError
from producer_tools.row_report import RowReport
from producer_tools.stopping import StopSignal

NAME = "import"
HELP = "import a labeled CSV/JSONL file into the labeled archive topic"

IMPORTED = "imported"
ALREADY_ARCHIVED = "already archived"
DUPLICATE = "duplicate in file"
VALID = "valid (dry run)"
POLL_EVERY = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file and report bad rows; no broker needed, nothing produced",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    rows = open_file_from_args(args, settings)
    topic = settings.topics.labeled
    existing: set[str] = set()
    producer: Producer | None = None
    if not args.dry_run:
        require_broker(settings, args.broker_timeout)
        require_topic(settings, topic)
        try:
            existing = archived_ids(settings.kafka, topic, settings.training.snapshot_timeout_s)
        except ArchiveSnapshotTimeout as exc:
            raise ToolError(f"{exc}; nothing imported", ExitCode.FAILED) from exc
        print(f"archive {topic} holds {len(existing)} ticket id(s)", file=sys.stderr)
        producer = Producer(settings.kafka)

    report = RowReport(args.file)
    for outcome in (VALID,) if producer is None else (IMPORTED, ALREADY_ARCHIVED):
        report.count(outcome, 0)
    report.count(DUPLICATE, 0)
    with StopSignal() as stop:
        try:
            _import_rows(rows, report, existing, producer, topic, stop)
        finally:
            report.close()
        try:
            if producer is not None:
                flush_all(producer, "import")
        finally:
            report.summary()
    if stop.requested:
        print("interrupted: the rows after the last one read were not imported", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if report.read == 0:
        raise ToolError(f"{args.file} holds no rows")
    if report.good == 0:
        raise ToolError(f"no good rows in {args.file}: nothing imported")
    return ExitCode.OK


def _import_rows(
    rows: Iterator[Row | RowError],
    report: RowReport,
    existing: set[str],
    producer: Producer | None,
    topic: str,
    stop: StopSignal,
) -> None:
    first_line: dict[str, int] = {}
    for item in rows:
        report.seen(item)
        if not isinstance(item, Row):
            continue
        ticket_id = item.ticket.id
        if ticket_id in first_line:
            report.count(DUPLICATE)
            report.warn(
                item.line, f"duplicate: id {ticket_id} already on line {first_line[ticket_id]}"
            )
        elif ticket_id in existing:
            first_line[ticket_id] = item.line
            report.count(ALREADY_ARCHIVED)
        elif producer is None:
            first_line[ticket_id] = item.line
            report.count(VALID)
        else:
            first_line[ticket_id] = item.line
            event = LabeledTicket(ticket=item.ticket, label=item.label, label_source="history")
            producer.produce(topic, event.to_bytes(), key=ticket_id)
            report.count(IMPORTED)
            if report.outcomes[IMPORTED] % POLL_EVERY == 0:
                producer.poll(0)
        if stop.requested:
            return
