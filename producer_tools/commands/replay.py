"""``replay FILE``: publish a labeled file's tickets, without their labels, to the raw topic.

Every good row is published once (keyed by its ticket id, the same id ``import`` would use),
so the count equals the file's good rows; ``--rate`` paces it, ``--limit`` stops early.
"""

from __future__ import annotations

import argparse
import sys

from consumer.kafka import Producer
from consumer.settings import Settings
from producer_tools.connect import require_broker, require_topic
from producer_tools.delivery import flush_all
from producer_tools.exits import ExitCode, ToolError
from producer_tools.file_options import add_file_arguments, open_file_from_args
from producer_tools.labeled_files import Row
from producer_tools.options import positive_float, positive_int
from producer_tools.pacing import Pacer
from producer_tools.row_report import RowReport
from producer_tools.stopping import StopSignal

NAME = "replay"
HELP = "publish a labeled file's tickets (without labels) to the raw topic"

PUBLISHED = "published"
NOT_SENT = "not sent (interrupted)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_arguments(parser)
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        metavar="N",
        help="tickets per second (default: as fast as possible)",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="stop after N tickets"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    rows = open_file_from_args(args, settings)
    topic = settings.topics.raw
    require_broker(settings, args.broker_timeout)
    require_topic(settings, topic)
    producer = Producer(settings.kafka)
    report = RowReport(args.file)
    report.count(PUBLISHED, 0)
    with StopSignal() as stop:
        pacer = Pacer(args.rate, idle=producer.poll, stopped=stop)
        try:
            for item in rows:
                if stop.requested or (
                    args.limit is not None and report.outcomes[PUBLISHED] >= args.limit
                ):
                    break
                report.seen(item)
                if not isinstance(item, Row):
                    continue
                if not pacer.wait(report.outcomes[PUBLISHED]):
                    report.count(NOT_SENT)
                    break
                producer.produce(topic, item.ticket.to_bytes(), key=item.ticket.id)
                report.count(PUBLISHED)
                producer.poll(0)
        finally:
            report.close()
        try:
            flush_all(producer, "replay")
        finally:
            report.summary()
            published = report.outcomes[PUBLISHED]
            print(
                f"published {published} ticket(s) to {topic} in {pacer.elapsed():.2f}s"
                f" ({pacer.rate_of(published):.1f}/s)"
            )
    if stop.requested:
        print("interrupted: the rest of the file was not replayed", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if report.read == 0:
        raise ToolError(f"{args.file} holds no rows")
    if report.good == 0:
        raise ToolError(f"no good rows in {args.file}: nothing published")
    return ExitCode.OK
