"""oneDNN's primitive cache is sized when ``consumer`` is imported (consumer.onednn)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from consumer.onednn import CAPACITY, CAPACITY_VARIABLE, size_primitive_cache

# 1,100 row counts through one bf16 Linear: one oneDNN primitive each, past the default
# cache of 1,024; the second pass finds every one of them again only in a larger cache.
PROGRAM = """
import consumer, torch
layer = torch.nn.Linear(16, 16).to(torch.bfloat16)
with torch.inference_mode():
    for turn in range(2):
        print("PASS", turn, flush=True)
        for rows in range(1, 1101):
            layer(torch.zeros(rows, 16, dtype=torch.bfloat16))
"""


def cache_misses(extra_env: dict[str, str]) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != CAPACITY_VARIABLE}
    env.update(ONEDNN_VERBOSE="2", **extra_env)
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    misses = [0, 0]
    turn = -1
    for line in run.stdout.splitlines():
        if line.startswith("PASS"):
            turn = int(line.split()[1])
        elif "create:cache_miss" in line and turn >= 0:
            misses[turn] += 1
    return misses


def test_shapes_seen_before_are_not_rebuilt() -> None:
    first, second = cache_misses({})
    if first == 0:
        pytest.skip("this CPU runs bf16 Linear layers without oneDNN: nothing to cache")
    assert first > 1024, "more primitives on the first pass than the default cache holds"
    assert second == 0, f"{second} primitives rebuilt though each shape was seen before"


def test_a_size_in_the_environment_wins() -> None:
    env: dict[str, str] = {}
    assert size_primitive_cache(env) == str(CAPACITY) and env[CAPACITY_VARIABLE] == str(CAPACITY)
    mine = {CAPACITY_VARIABLE: "64"}
    assert size_primitive_cache(mine) == "64" and mine[CAPACITY_VARIABLE] == "64"
