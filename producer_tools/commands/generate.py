"""``generate``: synthetic tickets from ``producer_tools.synthetic``, reproducible with a seed.

Without ``--labeled``: ``RawTicket`` events to the raw topic (load for the consumer). With
``--labeled``: ``LabeledTicket`` events (label_source "history") to the labeled archive (demo
training data), or with ``--out FILE.jsonl`` JSON lines with ``id, text, subject, body, label``
(+ channel, language, customer_id) that ``import`` and training's ``--from-file`` read.
``--count 0`` with ``--rate`` runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from consumer.events import LabeledTicket, RawTicket
from consumer.kafka import Producer
from consumer.settings import Settings
from producer_tools.connect import require_broker, require_topic
from producer_tools.delivery import flush_all
from producer_tools.exits import ExitCode, ToolError
from producer_tools.options import non_negative_int, positive_float
from producer_tools.pacing import Pacer
from producer_tools.stopping import StopSignal
from producer_tools.synthetic import SyntheticTicket, generate_tickets

NAME = "generate"
HELP = "publish synthetic tickets (raw, or labeled to the archive or a JSONL file)"

DEFAULT_COUNT = 100
# The demo archive (``quickstart``, ``--labeled``) and the demo stream (raw tickets) use
# different seeds: a stream from the archive's seed would replay the very tickets the demo
# model was trained on, and a newcomer would see nothing but confidence 1.000.
DEMO_ARCHIVE_SEED = 0
DEMO_STREAM_SEED = 1
CHUNK = 1000  # tickets asked of the generator at a time when --count 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count",
        type=non_negative_int,
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"tickets to generate (default {DEFAULT_COUNT}); 0 with --rate: until Ctrl-C",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        metavar="R",
        help="tickets per second (default: as fast as possible)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"random seed (default {DEMO_STREAM_SEED} for raw tickets, {DEMO_ARCHIVE_SEED} with"
        " --labeled: the demo stream is not the tickets the demo model learned from)",
    )
    parser.add_argument(
        "--start",
        type=non_negative_int,
        default=0,
        metavar="I",
        help="index of the first ticket (continue a previous run without repeating ids)",
    )
    parser.add_argument(
        "--labeled",
        action="store_true",
        help="labeled tickets to the archive topic (or to --out) instead of raw tickets",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help="write labeled rows to this JSONL file instead of Kafka (needs --labeled)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.count == 0 and args.rate is None:
        raise ToolError("--count 0 (run until Ctrl-C) needs --rate")
    if args.out is not None and not args.labeled:
        raise ToolError("--out writes labeled rows: add --labeled")
    if args.out is not None and args.count == 0:
        raise ToolError("--out needs a --count above 0")
    seed = args.seed
    if seed is None:
        seed = DEMO_ARCHIVE_SEED if args.labeled else DEMO_STREAM_SEED
    elif seed == DEMO_ARCHIVE_SEED and not args.labeled:
        print(
            f"note: seed {seed} is the demo archive's: these are the tickets the demo model"
            " was trained on",
            file=sys.stderr,
        )
    tickets = _tickets(args.count, seed, args.start)
    if args.out is not None:
        return _write_jsonl(args.out, tickets)
    return _publish(args, settings, tickets)


def _tickets(count: int, seed: int, start: int) -> Iterator[SyntheticTicket]:
    if count:
        yield from generate_tickets(count, seed, start=start)
        return
    for index in itertools.count(start, CHUNK):
        yield from generate_tickets(CHUNK, seed, start=index)


def raw_ticket(synthetic: SyntheticTicket) -> RawTicket:
    return RawTicket(
        id=synthetic.ticket_id,
        subject=synthetic.subject,
        body=synthetic.body,
        channel=synthetic.channel,
        language=synthetic.language,
        customer_id=synthetic.customer_id,
        metadata={"source": "synthetic"},
    )


def file_row(synthetic: SyntheticTicket) -> dict[str, Any]:
    subject = synthetic.subject or ""
    text = f"{subject}\n\n{synthetic.body}" if subject else synthetic.body
    return {
        "id": synthetic.ticket_id,
        "text": text,
        "subject": synthetic.subject,
        "body": synthetic.body,
        "label": synthetic.category,
        "category": synthetic.category,  # the default --label-column of import and training
        "channel": synthetic.channel,
        "language": synthetic.language,
        "customer_id": synthetic.customer_id,
    }


def _write_jsonl(path: Path, tickets: Iterator[SyntheticTicket]) -> int:
    written = 0
    try:
        with path.open("w", encoding="utf-8") as out:
            for synthetic in tickets:
                out.write(json.dumps(file_row(synthetic), ensure_ascii=False) + "\n")
                written += 1
    except OSError as exc:
        raise ToolError(f"cannot write {path}: {exc}") from exc
    print(f"wrote {written} labeled ticket(s) to {path}")
    return ExitCode.OK


def _publish(
    args: argparse.Namespace, settings: Settings, tickets: Iterator[SyntheticTicket]
) -> int:
    topic = settings.topics.labeled if args.labeled else settings.topics.raw
    require_broker(settings, args.broker_timeout)
    require_topic(settings, topic)
    producer = Producer(settings.kafka)
    published = 0
    with StopSignal() as stop:
        pacer = Pacer(args.rate, idle=producer.poll, stopped=stop)
        for synthetic in tickets:
            ticket = raw_ticket(synthetic)
            value = (
                LabeledTicket(ticket=ticket, label=synthetic.category, label_source="history")
                if args.labeled
                else ticket
            ).to_bytes()
            if not pacer.wait(published):
                break
            producer.produce(topic, value, key=ticket.id)
            published += 1
            producer.poll(0)
        try:
            flush_all(producer, "generate")
        finally:
            kind = "labeled" if args.labeled else "raw"
            print(
                f"published {published} {kind} ticket(s) (seed {args.seed}) to {topic}"
                f" in {pacer.elapsed():.2f}s ({pacer.rate_of(published):.1f}/s)"
            )
    if stop.requested and args.count and published < args.count:
        print(f"interrupted after {published} of {args.count} ticket(s)", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return ExitCode.OK
