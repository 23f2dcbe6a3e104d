"""The training thread tuner (training.threads) on synthetic step times (fast)."""

from __future__ import annotations

from training.threads import ThreadTuner, thread_candidates


def run(tuner: ThreadTuner, steps: int, cost: dict[int, float], set_log: list[int]) -> list[int]:
    """Drive ``steps`` steps where a step with t threads takes ``cost[t]`` s; threads per step."""
    used = []
    for step in range(steps):
        tuner.before_step(step)
        used.append(tuner.current)
        tuner.after_step(step, cost[tuner.current])
    return used


def test_candidates_are_all_half_and_one_core() -> None:
    assert thread_candidates(2) == [2, 1]
    assert thread_candidates(16) == [16, 8, 1]
    assert thread_candidates(1) == [1]


def test_the_faster_thread_count_is_kept_and_probed_again_later() -> None:
    set_log: list[int] = []
    tuner = ThreadTuner([2, 1], probe_steps=2, every=10, first_probe=2, set_threads=set_log.append)
    loaded = {2: 6.8, 1: 0.9}  # a busy shared machine: one thread wins
    used = run(tuner, 10, loaded, set_log)
    assert used[:2] == [2, 2], "no probe before first_probe"
    assert used[2:6] == [2, 1, 2, 1], "the probe alternates the candidates"
    assert used[6:] == [1, 1, 1, 1], "then the faster one is kept"
    assert tuner.choices == [(6, 1)]
    quiet = {2: 0.15, 1: 0.27}  # the load went away: all cores win at the next probe
    for step in range(10, 20):
        tuner.before_step(step)
        tuner.after_step(step, quiet[tuner.current])
    assert tuner.choices == [(6, 1), (16, 2)] and tuner.current == 2
    assert set_log[-1] == 2


def test_one_candidate_never_touches_the_thread_count() -> None:
    set_log: list[int] = []
    tuner = ThreadTuner([1], set_threads=set_log.append)
    assert run(tuner, 8, {1: 1.0}, set_log) == [1] * 8
    assert set_log == [] and tuner.choices == []
