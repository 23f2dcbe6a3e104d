"""``review``: drain the review topic in a terminal, one key per ticket.

Shows the cleaned text (``o`` shows the original), the model's suggestions with
confidences and progress (reviewed / remaining). Keys: ``1``-``9`` accept a
suggestion, ``c`` pick another category, ``s`` skip (comes back later), ``o``
original, ``q`` quit. Works over SSH in a plain terminal; from a script or a
test, answers are read line by line from ``--decisions FILE`` or stdin (``1``,
``c billing``, ``s``, ``q``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TextIO

from consumer.settings import Settings
from producer_tools.connect import require_broker, require_topic
from producer_tools.exits import ExitCode
from producer_tools.options import positive_float
from producer_tools.review_session import (
    DEFAULT_GROUP,
    Decision,
    ReviewSession,
    parse_decision,
    request_text,
    review_reason,
)
from producer_tools.web.model_info import model_categories

NAME = "review"
HELP = "answer the tickets the model was unsure about (labels go to the archive)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reviewer", default=None, help="your name (default: the login name)")
    parser.add_argument(
        "--group",
        default=None,
        help=f"reviewers' consumer group (default: review.group, {DEFAULT_GROUP})",
    )
    parser.add_argument(
        "--decisions",
        type=Path,
        default=None,
        metavar="FILE",
        help="read answers from FILE, one per line (default: the keyboard, or stdin if piped)",
    )
    parser.add_argument(
        "--categories",
        default=None,
        help="comma-separated categories to choose from (default: the served model's labels)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds with nothing to review (default: wait for more)",
    )


class Answers:
    """Single keys from a terminal, or lines from a file / pipe."""

    def __init__(self, source: TextIO, out: TextIO) -> None:
        self.source = source
        self.out = out
        self.interactive = source.isatty()

    def ask(self, prompt: str) -> str | None:
        self.out.write(prompt)
        self.out.flush()
        if self.interactive:
            key = read_key(self.source)
            if key == "c":
                self.out.write("c\ncategory (name or number): ")
                self.out.flush()
                rest = self.source.readline()
                return f"c {rest.strip()}"
            self.out.write(key + "\n")
            return key
        line = self.source.readline()
        if not line:
            return None
        self.out.write(line if line.endswith("\n") else line + "\n")
        return line


def read_key(stream: TextIO) -> str:
    import termios
    import tty

    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        return stream.read(1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def run(args: argparse.Namespace, settings: Settings) -> int:
    require_broker(settings, args.broker_timeout)
    require_topic(settings, settings.topics.review)
    out = sys.stdout
    source: TextIO = args.decisions.open(encoding="utf-8") if args.decisions else sys.stdin
    answers = Answers(source, out)
    reviewer = args.reviewer or getpass.getuser()
    group = args.group or settings.review.group
    session = ReviewSession(settings, reviewer, group, lease_s=settings.review.lease_s)
    fixed = [c.strip() for c in args.categories.split(",")] if args.categories else []
    categories = fixed or model_categories(settings)
    idle = args.idle_timeout
    try:
        waited = 0.0
        while True:
            got = session.next_request(timeout=1.0)
            if got is None:
                waited += 1.0
                if idle is not None and waited >= idle:
                    break
                continue
            waited = 0.0
            record, request = got
            suggestions = [s.category for s in request.scores]
            choices = categories or sorted(set(suggestions))
            out.write("\n" + "─" * 72 + "\n")
            out.write(
                f"ticket {request.ticket.id}  ·  reviewed {session.progress.reviewed}"
                f"  ·  remaining {session.lag() + 1}  ·  model {request.model_version}\n\n"
            )
            out.write(f"reason: {review_reason(request)}\n\n")
            out.write(request_text(request) + "\n\n")
            for i, score in enumerate(request.scores, start=1):
                out.write(f"  [{i}] {score.category:<24} {score.score:6.1%}\n")
            out.write(f"  categories: {', '.join(f'{i}:{c}' for i, c in enumerate(choices, 1))}\n")
            decision: Decision | None = None
            while decision is None:
                line = answers.ask("answer [1-9 accept, c category, s skip, o original, q quit]: ")
                if line is None:
                    line = "q"
                if line.strip().lower() == "o":
                    subject = request.ticket.subject or ""
                    out.write(
                        f"--- original ---\n{subject}\n{request.ticket.body}\n----------------\n"
                    )
                    continue
                parsed = parse_decision(line, suggestions, choices)
                if isinstance(parsed, str):
                    out.write(parsed + "\n")
                    continue
                decision = parsed
            outcome = session.apply(record, request, decision)
            if decision.action == "quit":
                break
            if not outcome.ok:
                out.write(f"not recorded: {outcome.message}\n")
    except KeyboardInterrupt:
        out.write("\ninterrupted: answered tickets are saved\n")
    finally:
        session.close()
        if args.decisions:
            source.close()
    p = session.progress
    out.write(
        f"\nreviewed {p.reviewed}, skipped {p.skipped}; labels are in {settings.topics.labeled}\n"
    )
    if p.invalid:
        out.write(
            f"{p.invalid} unreadable review request(s) sent to {settings.topics.dead_letter}\n"
        )
    return ExitCode.OK
