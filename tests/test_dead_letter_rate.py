from __future__ import annotations

import pytest

from consumer.dead_letter_rate import DeadLetterRate, DeadLetterRateExceeded


def test_rate_is_checked_only_on_a_full_window() -> None:
    rate = DeadLetterRate(window=10, max_ratio=0.5)
    for _ in range(9):
        rate.observe(True)
    rate.check()  # window not full yet
    rate.observe(True)
    with pytest.raises(DeadLetterRateExceeded, match="10 of the last 10"):
        rate.check()


def test_window_slides() -> None:
    rate = DeadLetterRate(window=4, max_ratio=0.5)
    for bad in (True, True, True, False):
        rate.observe(bad)
    assert rate.ratio == 0.75
    for _ in range(3):
        rate.observe(False)
    assert rate.ratio == 0.0
    rate.check()
