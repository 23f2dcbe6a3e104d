"""The serving-path choice rule (consumer.precision) on fake hardware and fake records (fast).

Fakes are honest here: the rule is a pure function of what training recorded,
what the serving machine has and what a warm-up would measure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from consumer import precision as sp

AMX_FLAGS = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"})
EPYC_FLAGS = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})  # bf16, no AMX
OLD_FLAGS = frozenset({"avx2", "fma"})  # no native bf16

XEON = sp.Hardware("cpu", "Intel Xeon", AMX_FLAGS, 2)
EPYC = sp.Hardware("cpu", "AMD EPYC", EPYC_FLAGS, 2)
OLD = sp.Hardware("cpu", "Old Core", OLD_FLAGS, 4)
GPU = sp.Hardware("cuda", "Intel Xeon", AMX_FLAGS, 2, "NVIDIA H200", (9, 0))


def record(
    drops: Mapping[str, float],
    speeds: Mapping[str, float] | None = None,
    measured_on: sp.Hardware | None = None,
) -> sp.Record:
    speeds = speeds or {}
    return sp.Record(
        candidates=tuple(
            sp.Candidate(name, 0.97 - drop / 100, drop, speeds.get(name))
            for name, drop in drops.items()
        ),
        measured_on={measured_on.device: measured_on.signature()} if measured_on else {},
    )


class Measure:
    """A warm-up that returns fixed speeds and remembers what it was asked to measure."""

    def __init__(self, speeds: Mapping[str, float]) -> None:
        self.speeds = dict(speeds)
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, names: Sequence[str]) -> dict[str, float]:
        self.asked.append(tuple(names))
        return {n: self.speeds[n] for n in names}


ALL_SAFE = {"fp32": 0.0, "bf16": 0.0, "bf16-autocast": 0.0, "int8": 0.1}


def test_the_fastest_safe_supported_candidate_wins_by_warm_up() -> None:
    measure = Measure({"fp32": 100, "bf16": 380, "bf16-autocast": 300, "int8": 240})
    choice = sp.choose(record(ALL_SAFE), XEON, measure=measure)
    assert choice.name == "bf16" and choice.precision == "bf16"
    assert measure.asked == [("fp32", "bf16", "bf16-autocast", "int8")]
    assert choice.measured["bf16"] == 380

    # The same record on a CPU where int8 measures faster: int8 (no default tuned to one CPU).
    measure = Measure({"fp32": 100, "bf16": 130, "bf16-autocast": 120, "int8": 220})
    assert sp.choose(record(ALL_SAFE), EPYC, measure=measure).name == "int8"


def test_a_candidate_that_lost_more_than_the_gate_is_never_chosen() -> None:
    drops = {"fp32": 0.0, "int8": 0.36, "bf16": 0.3}
    measure = Measure({"fp32": 100, "int8": 900, "bf16": 200})
    choice = sp.choose(record(drops), XEON, measure=measure)
    assert choice.name == "bf16", "0.30 is within the gate, 0.36 is not"
    assert "int8" not in choice.eligible and measure.asked == [("fp32", "bf16")]


def test_unsupported_hardware_leaves_fp32_without_measuring() -> None:
    measure = Measure({"fp32": 100, "bf16": 500, "bf16-autocast": 400})
    drops = {"fp32": 0.0, "bf16": 0.0, "bf16-autocast": 0.0, "int8": 0.5}
    choice = sp.choose(record(drops), OLD, measure=measure)
    assert choice.name == "fp32"
    assert measure.asked == [], "one eligible candidate is an obvious choice"


def test_training_speeds_decide_only_on_the_same_hardware_with_a_clear_win() -> None:
    speeds = {"fp32": 100, "bf16": 390, "bf16-autocast": 300, "int8": 250}
    measure = Measure({"fp32": 100, "bf16": 100, "bf16-autocast": 100, "int8": 700})
    same = sp.choose(record(ALL_SAFE, speeds, XEON), XEON, measure=measure)
    assert same.name == "bf16" and measure.asked == []
    assert "training" in same.reason

    other = sp.choose(record(ALL_SAFE, speeds, XEON), EPYC, measure=measure)
    assert other.name == "int8" and len(measure.asked) == 1, "another machine measures itself"

    close = {"fp32": 100, "bf16": 260, "bf16-autocast": 200, "int8": 250}
    measure = Measure({"fp32": 100, "bf16": 200, "bf16-autocast": 100, "int8": 300})
    assert sp.choose(record(ALL_SAFE, close, XEON), XEON, measure=measure).name == "int8"
    assert len(measure.asked) == 1, "260 vs 250 is no clear win: measured at start-up"


def test_a_forced_precision_wins_over_everything() -> None:
    measure = Measure({"fp32": 100, "bf16": 500, "bf16-autocast": 400, "int8": 300})
    unsafe = {"fp32": 0.0, "bf16": 0.0, "int8": 5.0}
    assert sp.choose(record(unsafe), XEON, "int8", measure=measure).name == "int8"
    assert sp.choose(record(unsafe), XEON, "fp32", measure=measure).name == "fp32"
    assert sp.choose(None, OLD, "bf16").name == "bf16", "forced even where it is emulated"
    assert sp.choose(record(unsafe), XEON, "bf16-autocast").precision == "bf16-autocast"
    assert measure.asked == []
    gpu = sp.choose(None, GPU, "bf16")
    assert gpu.name == "bf16-cuda" and gpu.precision == "bf16"
    assert sp.choose(None, GPU, "fp32").precision == "fp32"
    with pytest.raises(ValueError, match="GPU precision"):
        sp.choose(None, XEON, "fp16")
    with pytest.raises(ValueError, match="CPU precision"):
        sp.choose(None, GPU, "int8")


def test_folders_without_a_record_keep_their_old_behaviour() -> None:
    assert sp.choose(None, XEON).name == "fp32"
    assert sp.choose(None, XEON, int8_safe=True).name == "int8"
    assert sp.choose(None, GPU).name == "fp16"
    # A record from a CPU-only training has nothing for the GPU: the old GPU default.
    assert sp.choose(record(ALL_SAFE), GPU).name == "fp16"


def test_gpu_candidates_need_bf16_capable_hardware() -> None:
    drops = {"fp32-cuda": 0.0, "fp16": 0.0, "bf16-cuda": 0.0}
    old_gpu = sp.Hardware("cuda", "x", OLD_FLAGS, 2, "Tesla T4", (7, 5))
    measure = Measure({"fp32-cuda": 1000, "fp16": 5000, "bf16-cuda": 9000})
    assert sp.choose(record(drops), old_gpu, measure=measure).name == "fp16"
    assert measure.asked == [("fp32-cuda", "fp16")]
    assert sp.choose(record(drops), GPU, measure=measure).name == "bf16-cuda"


def test_record_round_trip_ignores_unknown_candidates() -> None:
    rec = record(ALL_SAFE, {"fp32": 100.0, "int8": 200.0}, XEON)
    data = rec.to_dict()
    data["candidates"].append({"name": "onnx-int4", "accuracy": 0.9, "drop_points": 0.0})
    back = sp.Record.from_manifest({sp.MANIFEST_KEY: data})
    assert back is not None
    assert [c.name for c in back.candidates] == list(ALL_SAFE)
    assert back.candidates[-1].tickets_per_s == 200.0
    assert back.measured_on == {"cpu": XEON.signature()}
    assert sp.Record.from_manifest({"int8_safe": True}) is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    )
    name, flags = sp.cpu_info.__wrapped__(str(info))
    assert name == "AMD EPYC 9R14"
    assert {"avx512_bf16", "avx512f"} <= flags and "amx_bf16" not in flags
    assert sp.cpu_info.__wrapped__(str(tmp_path / "missing")) == ("unknown", frozenset())
    hw = sp.Hardware("cpu", name, flags, 2)
    onnx = ["onnx-fp32", "onnx-int8"] if sp.onnx_available() else []
    assert [s.name for s in sp.specs_for(hw)] == ["fp32", "bf16", "bf16-autocast", "int8", *onnx]


def test_interleaved_speeds_take_the_median_per_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(sp.time, "perf_counter", lambda: clock[0])
    costs = {"slow": [0.5, 0.1, 0.1, 5.0], "fast": [0.9, 0.05, 0.05, 0.05]}
    calls = {"slow": 0, "fast": 0}

    def forward(name: str) -> object:
        clock[0] += costs[name][calls[name]]
        calls[name] += 1
        return None

    speeds = sp.interleaved_speeds(
        {"slow": lambda: forward("slow"), "fast": lambda: forward("fast")}, batch=16, rounds=3
    )
    assert calls == {"slow": 4, "fast": 4}, "one untimed round, then three timed ones each"
    assert speeds == {"slow": 160.0, "fast": 320.0}, "the untimed first round is left out"


def test_a_fast_machine_measures_more_rounds_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(sp.time, "perf_counter", lambda: clock[0])
    calls = {"a": 0, "b": 0}

    def forward(name: str, cost: float) -> object:
        clock[0] += cost
        calls[name] += 1
        return None

    forwards = {"a": lambda: forward("a", 0.1), "b": lambda: forward("b", 0.15)}
    speeds = sp.interleaved_speeds(forwards, batch=10, rounds=3, budget_s=1.0, max_rounds=15)
    # 0.25 s per timed round: rounds 1-4 spend 1.0 s, then the budget stops it.
    assert calls == {"a": 5, "b": 5}
    assert speeds == {"a": 100.0, "b": pytest.approx(66.7)}
    calls.update(a=0, b=0)
    sp.interleaved_speeds(forwards, batch=10, rounds=3, budget_s=100.0, max_rounds=6)
    assert calls == {"a": 7, "b": 7}, "max_rounds caps a generous budget"


def test_the_warm_up_runs_the_mean_and_the_long_tail_of_the_lengths() -> None:
    kept = sp.Record(candidates=(), mean_tokens=15.85, long_tokens=27.0)
    assert kept.warm_up_lengths(max_length=128) == (16, 27)
    assert kept.warm_up_lengths(max_length=20) == (16, 20), "capped at the serving max_length"
    older = sp.Record(candidates=(), mean_tokens=15.85)
    assert older.warm_up_lengths(max_length=128) == (16, 32), "twice the mean without a p90"
    back = sp.Record.from_manifest({sp.MANIFEST_KEY: kept.to_dict()})
    assert back is not None and back.long_tokens == 27.0
    old_back = sp.Record.from_manifest({sp.MANIFEST_KEY: older.to_dict()})
    assert old_back is not None and old_back.long_tokens is None


def test_warm_up_speeds_time_one_chunk_at_each_length() -> None:
    import torch

    from consumer.predictor import warm_up_speeds

    class Shapes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set[tuple[int, ...]] = set()

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            assert ids.shape == mask.shape
            self.seen.add(tuple(ids.shape))
            return ids.float().sum()

    network = Shapes()
    speeds = warm_up_speeds(
        {"fp32": (network, "fp32")}, device="cpu", batch=4, lengths=(16, 27), vocab=30000
    )
    assert network.seen == {(4, 16), (4, 27)}
    assert speeds["fp32"] > 0


def test_a_forced_path_runs_one_forward_before_serving_and_training_views_none(
    tmp_path: Path,
) -> None:
    """A forced (or cached) path runs no speed measurement, so ``warm`` (called where the
    consumer loads or reloads a model) runs it once at each warm-up length before any ticket:
    the first batch meets warm kernels. Training's many views never pay for it."""
    from consumer.model_store import load_model
    from consumer.predictor import Predictor
    from consumer.settings import ModelSettings
    from tests.chaos.models import write_untrained_model

    model = load_model(write_untrained_model(tmp_path / "v-warm"))
    shapes: list[tuple[int, ...]] = []
    model.network.register_forward_hook(lambda _m, args, _out: shapes.append(tuple(args[0].shape)))
    predictor = Predictor(model, ModelSettings(device="cpu", precision="fp32"), chunk_size=4)
    assert shapes == [], "building a predictor (as training's views do) runs no forward"
    predictor.warm()
    assert shapes == [(4, n) for n in predictor.warm_up_lengths()]
    predictor.warm()
    assert len(shapes) == len(predictor.warm_up_lengths()), "once"
