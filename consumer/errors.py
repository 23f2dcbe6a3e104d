"""The project's one exception base and one exit-code scheme, shared by every command.

``python -m consumer``, ``python -m training`` and ``python -m producer_tools`` all exit with
an ``ExitCode``; every error raised on purpose derives from ``TicketsortError`` and names the
code its command exits with when the error reaches the top.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # unexpected error; a delivery that failed; an unreadable archive
    BAD_INPUT = 2  # bad arguments or files; no usable model (the consumer consumed nothing)
    BROKER_UNREACHABLE = 3  # no broker answered at the bootstrap address
    DEAD_LETTER_RATE = 4  # the consumer stopped: most of the stream was garbage
    KAFKA_FATAL = 5  # a fatal client error: restart from the committed offsets
    OUTPUT_UNDELIVERABLE = 6  # not even a minimal dead letter could be written
    INTERRUPTED = 130  # Ctrl-C before the work was done


class TicketsortError(Exception):
    """Base of every error ticketsort raises on purpose; ``exit_code`` is what it exits with."""

    exit_code: ExitCode = ExitCode.FAILED
