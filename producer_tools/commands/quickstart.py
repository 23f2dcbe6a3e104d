"""``quickstart``: everything ``make run`` needs before the consumer starts.

Creates the topics; when there is no promoted model, seeds the labeled archive
with generated demo tickets (only if the archive is empty) and trains a short
first model. A second run with a model present does nothing but the topics.
"""

from __future__ import annotations

import argparse

from consumer.events import LabeledTicket, RawTicket
from consumer.kafka import Producer, ensure_topics
from consumer.kafka.admin import watermarks
from consumer.model_store import current_version
from consumer.settings import Settings
from producer_tools.commands.generate import DEMO_ARCHIVE_SEED, DEMO_STREAM_SEED
from producer_tools.connect import require_broker
from producer_tools.delivery import flush_all
from producer_tools.exits import ExitCode
from producer_tools.options import positive_float, positive_int
from producer_tools.synthetic import generate_tickets

NAME = "quickstart"
HELP = "create topics; on first run seed demo data and train a first model"

DEMO_TICKETS = 2400
FIRST_TRAINING_MINUTES = 4.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo-tickets",
        type=positive_int,
        default=DEMO_TICKETS,
        metavar="N",
        help=f"generated labeled tickets to seed an empty archive with (default {DEMO_TICKETS})",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="cap the first training at N steps (tests)",
    )
    parser.add_argument(
        "--max-minutes",
        type=positive_float,
        default=FIRST_TRAINING_MINUTES,
        metavar="M",
        help=f"cap the first training's wall time (default {FIRST_TRAINING_MINUTES:g})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEMO_ARCHIVE_SEED,
        help=f"demo data seed (default {DEMO_ARCHIVE_SEED}; `generate` streams seed"
        f" {DEMO_STREAM_SEED})",
    )


def archive_size(settings: Settings) -> int:
    return sum(
        high - low for low, high in watermarks(settings.kafka, settings.topics.labeled).values()
    )


def seed_archive(settings: Settings, count: int, seed: int) -> int:
    producer = Producer(settings.kafka)
    for t in generate_tickets(count, seed=seed):
        ticket = RawTicket(
            id=t.ticket_id,
            subject=t.subject,
            body=t.body,
            channel=t.channel,
            customer_id=t.customer_id,
            language=t.language,
        )
        event = LabeledTicket(
            ticket=ticket, label=t.category, label_source="history", labeled_by="quickstart-demo"
        )
        producer.produce(settings.topics.labeled, event.to_bytes(), key=ticket.id)
    flush_all(producer, "demo data")
    return count


def run(args: argparse.Namespace, settings: Settings) -> int:
    require_broker(settings, args.broker_timeout)
    created = ensure_topics(settings.kafka, settings.topics)
    if created:
        print(f"created topics: {', '.join(created)}")
    version = current_version(settings.model.store)
    if version is not None:
        print(f"model {version} is being served from {settings.model.store / 'current'}")
        return ExitCode.OK
    existing = archive_size(settings)
    if existing == 0:
        seeded = seed_archive(settings, args.demo_tickets, args.seed)
        print(
            f"no model yet: seeded {settings.topics.labeled} with {seeded} generated demo tickets"
        )
    else:
        print(
            f"no model yet: training on the {existing} records already in {settings.topics.labeled}"
        )
    from training.args import TrainingArgs
    from training.pipeline import run_training

    overrides: dict[str, object] = {"max_train_minutes": args.max_minutes}
    if args.max_steps:
        overrides.update(max_steps=args.max_steps, eval_every_steps=max(1, args.max_steps))
    result = run_training(settings, TrainingArgs().with_overrides(overrides), source="archive")
    test = result.metrics.get("test", {})
    print(
        f"trained {result.version}: test accuracy {test.get('accuracy', 0):.3f},"
        f" macro-F1 {test.get('macro_f1', 0):.3f}; promoted: {result.promoted}"
    )
    print(f"report: {result.model_dir / 'report.md'}")
    return ExitCode.OK if result.promoted else ExitCode.FAILED
