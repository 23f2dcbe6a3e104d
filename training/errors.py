"""Errors that map to the command's exit codes."""

from __future__ import annotations

from consumer.errors import ExitCode, TicketsortError


class BadInput(TicketsortError):
    """The data or the options cannot make a model (exit code 2).

    No data, too few examples, an unreadable file, an unknown label map...
    """

    exit_code = ExitCode.BAD_INPUT
