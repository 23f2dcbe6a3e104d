"""``tail TOPIC``: follow a topic and print one line per record (readable, or the JSON event).

Partitions are assigned directly under a throwaway group id: no group join, no commits, so
tailing never moves anyone's offsets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from consumer.kafka import Consumer, Record
from consumer.settings import Settings
from producer_tools.connect import TOPIC_ALIASES, require_broker, require_topic, resolve_topic
from producer_tools.exits import ExitCode
from producer_tools.options import positive_float, positive_int
from producer_tools.render import render_record
from producer_tools.stopping import StopSignal

NAME = "tail"
HELP = "follow a topic and print its events (readable lines or JSON lines)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "topic",
        metavar="TOPIC",
        help=f"a topic name or alias: {', '.join(a for a in TOPIC_ALIASES if a != 'dead_letter')}",
    )
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record (default: new)"
    )
    parser.add_argument("--json", action="store_true", help="print each event as a JSON line")
    parser.add_argument("--max", type=positive_int, default=None, metavar="N", help="stop after N")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds without a new record (default: follow until Ctrl-C)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    topic = resolve_topic(settings.topics, args.topic)
    require_broker(settings, args.broker_timeout)
    partitions = require_topic(settings, topic)
    consumer = Consumer(settings.kafka, group_id=f"ticketsort-tail-{uuid.uuid4().hex[:12]}")
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    printed = 0
    try:
        with StopSignal() as stop:
            consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
            last_seen = time.monotonic()
            while not stop.requested and (args.max is None or printed < args.max):
                wanted = 500 if args.max is None else min(500, args.max - printed)
                records = consumer.consume(wanted, 0.5)
                for err in consumer.errors:
                    print(f"kafka: {err}", file=sys.stderr)
                consumer.errors.clear()
                if records:
                    last_seen = time.monotonic()
                elif args.timeout is not None and time.monotonic() - last_seen >= args.timeout:
                    break
                for record in records:
                    _print(record, as_json=args.json)
                printed += len(records)
                sys.stdout.flush()
    except BrokenPipeError:  # `tail ... | head`: the reader left, stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
    finally:
        consumer.close()
    print(f"{printed} record(s) from {topic}", file=sys.stderr)
    return ExitCode.OK


def _print(record: Record, *, as_json: bool) -> None:
    if not as_json:
        print(render_record(record))
        return
    try:
        if record.value is None:
            raise ValueError("tombstone")
        event = json.loads(record.value)
    except (ValueError, UnicodeDecodeError) as exc:
        print(
            f"skipped non-JSON record p{record.partition}@{record.offset}:"
            f" {exc.__class__.__name__}",
            file=sys.stderr,
        )
        return
    print(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
