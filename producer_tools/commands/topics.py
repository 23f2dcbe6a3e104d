"""``topics``: create ticketsort's topics where missing (idempotent)."""

from __future__ import annotations

import argparse

from consumer.kafka import ensure_topics
from consumer.kafka.admin import topic_specs
from consumer.settings import Settings
from producer_tools.connect import require_broker
from producer_tools.exits import ExitCode

NAME = "topics"
HELP = "create the topics (raw, classified, review, dead-letter, labeled) if missing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options of its own


def run(args: argparse.Namespace, settings: Settings) -> int:
    require_broker(settings, args.broker_timeout)
    topics = settings.topics
    wanted = [spec.topic for spec in topic_specs(topics)]
    created = set(ensure_topics(settings.kafka, topics))
    for name in wanted:
        state = "created" if name in created else "exists "
        print(f"{state}  {name}")
    print(
        f"{len(created)} created, {len(wanted) - len(created)} already existed"
        f" on {settings.kafka.bootstrap_servers}"
    )
    return ExitCode.OK
