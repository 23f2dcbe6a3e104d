"""Send at a steady rate: message ``n`` (0-based) goes out no earlier than ``start + n / rate``."""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_IDLE_SLICE_S = 0.25  # how often a long wait checks ``stopped``


class Pacer:
    """Call ``wait(n)`` before sending message ``n``. ``rate=None``: as fast as possible.

    ``idle`` is called with the seconds to wait (e.g. ``producer.poll`` so delivery reports are
    served meanwhile); it may return early, the pacer loops until it is time. ``wait`` returns
    False, without waiting out the rest, once ``stopped()`` is true.
    """

    def __init__(
        self,
        rate: float | None,
        idle: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._idle = idle
        self._clock = clock
        self._stopped = stopped
        self._start: float | None = None

    def wait(self, sent: int) -> bool:
        now = self._clock()
        if self._start is None:
            self._start = now
        if self.rate is not None:
            due = self._start + sent / self.rate
            while now < due and not self._stopped():
                self._idle(min(due - now, MAX_IDLE_SLICE_S))
                now = self._clock()
        return not self._stopped()

    def elapsed(self) -> float:
        return 0.0 if self._start is None else self._clock() - self._start

    def rate_of(self, sent: int) -> float:
        elapsed = self.elapsed()
        return sent / elapsed if elapsed > 0 else 0.0
