"""Waiting in tests for something another thread or process does: one helper for all."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 90.0,
    what: str = "",
    *,
    interval: float = 0.1,
    tolerate: tuple[type[Exception], ...] = (),
) -> Any:
    """``predicate``'s first truthy value, asked every ``interval`` s; AssertionError after
    ``timeout`` s. Exceptions of the ``tolerate`` types count as not yet (a page that is
    re-rendering); the last one is in the message."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except tolerate as exc:
            last = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f" ({last!r})" if last is not None else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}{detail}")
