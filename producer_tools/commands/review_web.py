"""``review-web``: the reviewers' web page (keyboard-first), on 127.0.0.1 by default.

Shares the queue, leases and commits with the terminal tool (``review``). The
token, when needed, comes only from ``TICKETSORT_REVIEW__TOKEN`` (never from the
command line, where other users of the machine could read it).
"""

from __future__ import annotations

import argparse

from consumer.settings import Settings
from producer_tools.connect import require_broker, require_topic
from producer_tools.exits import ExitCode, ToolError
from producer_tools.options import positive_float

NAME = "review-web"
HELP = "serve the reviewers' web page (review queue, model page) on 127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to bind (default: review.host)")
    parser.add_argument("--port", type=int, default=None, help="port (default: review.port)")
    parser.add_argument(
        "--categories",
        default=None,
        help="comma-separated categories to choose from (default: the served model's labels)",
    )
    parser.add_argument(
        "--lease",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds a reviewer holds a ticket before it goes back (default: review.lease_s)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from producer_tools.web.app import BindingError, check_binding, create_app

    review = settings.review.model_copy(
        update={
            k: v
            for k, v in {"host": args.host, "port": args.port, "lease_s": args.lease}.items()
            if v is not None
        }
    )
    settings = settings.model_copy(update={"review": review})
    try:
        check_binding(settings, review.host)
    except BindingError as exc:
        raise ToolError(str(exc), ExitCode.BAD_INPUT) from exc
    require_broker(settings, args.broker_timeout)
    require_topic(settings, settings.topics.review)
    categories = [c.strip() for c in args.categories.split(",")] if args.categories else None
    app = create_app(settings, categories=categories)
    shown = "localhost" if review.host in ("127.0.0.1", "::1") else review.host
    print(f"review page: http://{shown}:{review.port}/   (Ctrl-C stops; answers are saved)")
    uvicorn.run(app, host=review.host, port=review.port, log_level="warning", access_log=False)
    return ExitCode.OK
