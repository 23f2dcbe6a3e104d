"""``python -m consumer``: run the classification service, or export its schemas.

Exit codes (``consumer.errors.ExitCode``, shared by every command): 0 clean stop; 2 no usable
model (nothing consumed); 3 no broker; 4 dead-letter rate limit passed; 5 fatal Kafka error
(restart: it resumes from the committed offsets); 6 not even a minimal dead letter could be
written.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from consumer.errors import ExitCode
from consumer.events import SCHEMA_DIR, json_schemas, write_schemas
from consumer.kafka import BrokerUnavailable
from consumer.logs import configure_logging, get_logger
from consumer.model_store import ModelLoadError
from consumer.settings import Settings

if TYPE_CHECKING:
    from consumer.predictor import Predictor

PredictorLoader = Callable[[Settings], "Predictor"]


def run_service(settings: Settings, load: PredictorLoader | None = None) -> int:
    """Serve; ``load`` replaces ``load_predictor`` (a fork server that preloaded the model)."""
    from consumer.service import ClassifierService, load_predictor

    log = get_logger("consumer")
    try:
        predictor = (load or load_predictor)(settings)
    except ModelLoadError as exc:
        log.error("model_unavailable", error=str(exc))
        print(f"ticketsort: cannot start: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    service = ClassifierService(settings, predictor, stop_event=stop)
    try:
        return service.run()
    except BrokerUnavailable as exc:
        log.error("broker_unavailable", error=str(exc))
        print(f"ticketsort: {exc}", file=sys.stderr)
        return ExitCode.BROKER_UNREACHABLE


def check_schemas() -> int:
    stale = []
    for name, text in json_schemas().items():
        path = SCHEMA_DIR / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print(f"stale JSON schemas: {stale}; run `python -m consumer schemas`", file=sys.stderr)
        return 1
    print("JSON schemas are current")
    return 0


def main(argv: list[str] | None = None, *, load_predictor: PredictorLoader | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumer", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the classification service (the default)")
    schemas = sub.add_parser("schemas", help="export the event contracts as JSON Schema")
    schemas.add_argument(
        "--check", action="store_true", help="fail if the exported files are stale"
    )
    sub.add_parser("env-example", help="print every setting as an environment variable")
    args = parser.parse_args(argv)
    if args.command == "env-example":
        from consumer.settings_doc import env_example

        print(env_example(), end="")
        return 0
    settings = Settings()
    configure_logging(settings.logging.level, settings.logging.format)
    if args.command == "schemas":
        if args.check:
            return check_schemas()
        for path in write_schemas():
            print(path)
        return 0
    return run_service(settings, load_predictor)


if __name__ == "__main__":
    sys.exit(main())
