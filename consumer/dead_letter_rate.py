"""Stop when most of the stream is garbage instead of dead-lettering all of it."""

from __future__ import annotations

from collections import deque

from consumer.errors import ExitCode, TicketsortError


class DeadLetterRateExceeded(TicketsortError):
    """The share of dead-lettered records in the window passed the configured limit."""

    exit_code = ExitCode.DEAD_LETTER_RATE


class DeadLetterRate:
    def __init__(self, window: int, max_ratio: float) -> None:
        self.window = window
        self.max_ratio = max_ratio
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._bad = 0

    def observe(self, dead_lettered: bool) -> None:
        if len(self._outcomes) == self.window and self._outcomes[0]:
            self._bad -= 1
        self._outcomes.append(dead_lettered)
        if dead_lettered:
            self._bad += 1

    @property
    def ratio(self) -> float:
        return self._bad / len(self._outcomes) if self._outcomes else 0.0

    def check(self) -> None:
        if len(self._outcomes) >= self.window and self.ratio > self.max_ratio:
            raise DeadLetterRateExceeded(
                f"{self._bad} of the last {len(self._outcomes)} records were dead-lettered"
                f" ({self.ratio:.0%} > {self.max_ratio:.0%}): is the consumer reading the right"
                " topic, or is a producer broken? Stopping instead of dead-lettering the stream."
            )
