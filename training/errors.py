"""Errors that map to the command's exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable

from consumer.errors import ExitCode, TicketsortError


class BadInput(TicketsortError):
    """The data or the options cannot make a model (exit code 2).

    No data, too few examples, an unreadable file, an unknown label map...
    """

    exit_code = ExitCode.BAD_INPUT


def exit_code_of(command: Callable[[], int]) -> int:
    """Run ``command``; an error raised on purpose is printed and becomes its exit code
    (``BadInput`` and a bad model folder 2, no broker 3, ...), Ctrl-C 130."""
    try:
        return command()
    except TicketsortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
