"""``python -m producer_tools``: topics, import, replay, generate, tail, quickstart, review(-web).

Every command reads ``Settings()`` (so ``KAFKA_BOOTSTRAP_SERVERS`` and ``TICKETSORT_*``
apply). Exit codes: 0 ok, 1 failed (e.g. delivery), 2 bad input, 3 broker unreachable,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from confluent_kafka import KafkaException

from consumer.kafka import KafkaFatal
from consumer.logs import configure_logging
from consumer.settings import Settings
from producer_tools.connect import DEFAULT_BROKER_TIMEOUT_S, load_settings
from producer_tools.exits import ExitCode, ToolError
from producer_tools.options import positive_float

# name -> module (``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(args, settings)``).
# Only the chosen command's module is imported: quickstart pulls in torch (seconds).
COMMANDS: dict[str, str] = {
    "topics": "producer_tools.commands.topics",
    "import": "producer_tools.commands.import_labeled",
    "replay": "producer_tools.commands.replay",
    "generate": "producer_tools.commands.generate",
    "tail": "producer_tools.commands.tail",
    "quickstart": "producer_tools.commands.quickstart",
    "review": "producer_tools.commands.review",
    "review-web": "producer_tools.commands.review_web",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, the other commands are bare placeholders (not imported)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--broker-timeout",
        type=positive_float,
        default=DEFAULT_BROKER_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for the broker (default {DEFAULT_BROKER_TIMEOUT_S:.0f})",
    )
    parser = argparse.ArgumentParser(
        prog="python -m producer_tools",
        description="Feed and inspect ticketsort's Kafka topics.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad input, 3 broker unreachable, 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        command: ModuleType = importlib.import_module(module_name)
        sub_parser = sub.add_parser(
            name, help=command.HELP, description=command.HELP, parents=[common]
        )
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=command.run)
    return parser


def run_cli(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Parse and run one command; return its exit code (argparse errors exit 2 themselves)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    try:
        return int(args.handler(args, settings if settings is not None else load_settings()))
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.code)
    except (KafkaException, KafkaFatal) as exc:
        print(f"error: Kafka: {exc}", file=sys.stderr)
        return int(ExitCode.FAILED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging("WARNING")
    return run_cli(argv)


if __name__ == "__main__":
    sys.exit(main())
