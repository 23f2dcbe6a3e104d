"""Exit codes of ``python -m producer_tools`` and the error that carries one."""

from __future__ import annotations

from consumer.errors import ExitCode, TicketsortError

__all__ = ["ExitCode", "ToolError"]


class ToolError(TicketsortError):
    """A clear, user-facing failure: printed as ``error: <message>``, then exit with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = code
