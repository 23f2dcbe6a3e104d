"""The bench's load record and flags, and how BENCHMARKS.md shows them (fast, no broker)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bench import load
from bench.report import speed_section


def test_busy_seconds_leave_out_idle_and_iowait(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 1000 50 5 5 0 0 0\ncpu0 50 10 15 500 25 2 3 0 0 0\n")
    hz = os.sysconf("SC_CLK_TCK")
    assert load.machine_busy_seconds(stat) == pytest.approx((100 + 20 + 30 + 5 + 5) / hz)
    stat.write_text("intr 1 2 3\n")
    assert load.machine_busy_seconds(stat) is None
    assert load.machine_busy_seconds(tmp_path / "missing") is None


def test_a_row_is_flagged_when_others_load_the_machine() -> None:
    assert not load.judge(0.4, 0.05, cores=2)
    assert load.judge(0.4, 0.35, cores=2), "other processes took a third of the CPU meanwhile"
    assert not load.judge(0.4, None, cores=2)
    assert load.judge(1.2, None, cores=2), "no /proc/stat: the load average decides"


def test_the_bench_own_threads_in_the_load_average_do_not_flag_a_quiet_row() -> None:
    # The row before kept both cores busy, so the 1-minute load reads ~1.9 at the start of
    # this one, while nothing else ran (others took 1%): not a row taken under load.
    assert not load.judge(1.9, 0.01, cores=2)


def test_measured_returns_the_result_and_the_load_around_it() -> None:
    result, record = load.measured(lambda: sum(i * i for i in range(200_000)))
    assert result == sum(i * i for i in range(200_000))
    assert len(record["load_before"]) == len(record["load_after"]) == 3
    share = record["others_cpu_share"]
    assert share is None or 0.0 <= share <= 1.0
    assert record["under_load"] == load.judge(
        record["load_before"][0], share, len(os.sched_getaffinity(0))
    )


def _row(tickets_per_s: float, under_load: bool) -> dict[str, Any]:
    return {
        "tickets_per_s": tickets_per_s,
        "ms_per_batch": 100.0,
        "mean_tokens": 26.7,
        "batch_size": 32,
        "load_before": [1.5 if under_load else 0.1, 0.5, 0.3],
        "load_after": [1.9 if under_load else 0.4, 0.6, 0.3],
        "others_cpu_share": 0.4 if under_load else 0.01,
        "under_load": under_load,
    }


def _speed(loaded_fp32: bool) -> dict[str, Any]:
    return {
        "model_dir": "m",
        "auto_precision": "bf16",
        "auto_choice": {"name": "bf16", "reason": "fastest in the start-up warm-up"},
        "model_only": {"fp32@32": _row(125.0, loaded_fp32), "auto (bf16)@32": _row(390.0, False)},
        "precision_accuracy": {"fp32": 0.9711, "bf16": 0.9711},
        "flops_per_ticket": 0.6e9,
        "end_to_end": {**_row(380.0, False), "batch_size": 32},
        "naive": _row(36.0, False),
        "latency": {
            **_row(0, False),
            "offered_per_s": 190,
            "received": 3000,
            "p50_ms": 90,
            "p95_ms": 200,
            "p99_ms": 250,
            "max_ms": 300,
        },
        "ratios": {
            "end_to_end_over_model_only": 0.97,
            "end_to_end_over_naive": 10.6,
            "auto_over_fp32_model_only": 3.12,
        },
        "ratios_under_load": loaded_fp32,
        "batch_inference_ms": 80.0,
    }


def test_benchmarks_md_flags_loaded_rows_and_uses_the_hardware_target() -> None:
    amx = {"gpu": None, "cpu_flags": ["amx_bf16", "avx512_bf16"]}
    quiet = "\n".join(speed_section(_speed(loaded_fp32=False), amx))
    assert "**under load** |" not in quiet and "indicative only" not in quiet
    assert "| auto (bf16)@32 | 390.0 |" in quiet
    assert "≥ 3 × fp32, model only | 3.12 × (bf16) | met |" in quiet

    loaded = "\n".join(speed_section(_speed(loaded_fp32=True), {"gpu": None, "cpu_flags": []}))
    assert "| fp32@32 | 125.0 | 100.0 | 26.7 | 1.5 → 1.9 (others 40%) **under load** |" in loaded
    assert "ratios are indicative only" in loaded
    assert "≥ 2 × fp32, model only | 3.12 × (bf16) | met |" in loaded


def test_interleaved_rounds_take_turns_and_report_medians() -> None:
    from bench.model_only import interleaved

    order: list[str] = []
    drift = iter([100.0, 300.0, 80.0, 240.0, 120.0, 360.0])  # the machine slows, then speeds up

    def rate(name: str) -> float:
        order.append(name)
        return next(drift)

    got = interleaved(rate, ["fp32", "bf16"], rounds=3)
    assert order == ["fp32", "bf16"] * 3
    assert got["medians"] == {"fp32": 100.0, "bf16": 300.0}
    assert got["rates"] == {"fp32": [100.0, 80.0, 120.0], "bf16": [300.0, 240.0, 360.0]}


def test_benchmarks_md_judges_the_fast_path_by_the_interleaved_ratio() -> None:
    speed = _speed(loaded_fp32=False)
    speed["auto_key"] = "auto (bf16)@32"
    speed["fast_path_interleaved"] = {
        "rounds": 3,
        "rates": {"fp32": [110.0, 100.0, 90.0], "bf16": [280.0, 250.0, 260.0]},
        "medians": {"fp32": 100.0, "bf16": 260.0},
        **_row(0, False),
    }
    speed["ratios"]["auto_over_fp32_model_only"] = 2.6
    text = "\n".join(speed_section(speed, {"gpu": None, "cpu_flags": ["amx_bf16"]}))
    assert "fp32 and the served path (bf16) in turn at batch 32, 3 rounds each" in text
    assert "fp32 100.0 tickets/s (rounds [110.0, 100.0, 90.0])" in text
    assert "model only (fp32 and it in turn) | 2.6 × (bf16) | **not met** |" in text


def test_benchmarks_md_judges_end_to_end_by_the_rounds_taken_in_turn() -> None:
    speed = _speed(loaded_fp32=False)
    speed["end_to_end_interleaved"] = {
        "rounds": 3,
        "rates": {"model only": [300.0, 250.0, 280.0], "end to end": [270.0, 240.0, 290.0]},
        "medians": {"model only": 280.0, "end to end": 270.0},
        "tickets_per_drain": 1000,
        **_row(0, False),
    }
    speed["ratios"]["end_to_end_over_model_only"] = 0.964
    text = "\n".join(speed_section(speed, {"gpu": None, "cpu_flags": ["amx_bf16"]}))
    assert "in turn, 3 rounds each (end to end: a drain of 1000 tickets" in text
    assert "end to end 270.0 tickets/s (rounds [270.0, 240.0, 290.0])" in text
    assert (
        "| end to end ≥ 0.95 × model only (served path, the two in turn) | 0.964 × | met |" in text
    )
