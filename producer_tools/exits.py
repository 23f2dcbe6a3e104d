"""Exit codes of ``python -m producer_tools`` and the error that carries one."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # delivery failed, archive unreadable, ...
    BAD_INPUT = 2  # bad arguments, unreadable file, missing topic, no good rows
    BROKER_UNREACHABLE = 3
    INTERRUPTED = 130  # Ctrl-C before the work was done


class ToolError(Exception):
    """A clear, user-facing failure: printed as ``error: <message>``, then exit with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
