"""Serving candidates (precision x runtime), the hardware each needs, and the choice rule.

Training scores every candidate the training machine can run on the validation
slice and records, in the model folder's manifest (``serving_candidates``),
each one's accuracy, its loss against fp32 in points, the hardware it needs and
its throughput on the machine that measured it. At start-up the consumer keeps
the candidates the *serving* machine supports that lost at most
``MAX_DROP_POINTS``, and takes the fastest: from training's measurement when it
was taken on the same hardware and the winner is clear, else from a short
interleaved warm-up on this machine. ``TICKETSORT_MODEL__PRECISION`` forces one.

Model folders written before this record keep loading: fp32 on the CPU, or
int8 when their old ``int8_safe`` check allows it; fp16 on a GPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch

Device = Literal["cpu", "cuda"]

MAX_DROP_POINTS = 0.3
# Training's own speed figures decide only when taken on the same hardware and the
# fastest beats the next by this factor; otherwise the consumer measures itself.
CLEAR_WIN = 1.25
MANIFEST_KEY = "serving_candidates"

# CPU features (``/proc/cpuinfo`` flag names) a candidate runs natively on; any one suffices.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Spec:
    """One way to serve the network: where it runs, in what precision, on what hardware."""

    name: str
    device: Device
    needs_any: tuple[str, ...] = ()  # CPU flags, or "cuda_bf16" on a GPU
    note: str = ""


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("fp32", "cpu", note="torch eager, fp32"),
        Spec("bf16", "cpu", BF16_FLAGS, "weights and activations cast to bfloat16"),
        Spec("bf16-autocast", "cpu", BF16_FLAGS, "fp32 weights, bf16 matmuls (torch.autocast)"),
        Spec("int8", "cpu", note="dynamic int8 quantization of every Linear layer"),
        # Optional extra (consumer.onnx_runtime); training offers them with onnx_candidates.
        Spec("onnx-fp32", "cpu", ("onnxruntime",), "ONNX Runtime, optimised graph, fp32"),
        Spec("onnx-int8", "cpu", ("onnxruntime",), "ONNX Runtime, optimised graph, dynamic int8"),
        Spec("fp32-cuda", "cuda", note="fp32 on the GPU"),
        Spec("fp16", "cuda", note="half precision on the GPU"),
        Spec("bf16-cuda", "cuda", ("cuda_bf16",), "bfloat16 on the GPU"),
    )
}
# The names ``TICKETSORT_MODEL__PRECISION`` takes, per device, mapped to a spec.
FORCED: dict[Device, dict[str, str]] = {
    "cpu": {
        "fp32": "fp32",
        "bf16": "bf16",
        "bf16-autocast": "bf16-autocast",
        "int8": "int8",
        "onnx-fp32": "onnx-fp32",
        "onnx-int8": "onnx-int8",
    },
    "cuda": {"fp32": "fp32-cuda", "fp16": "fp16", "bf16": "bf16-cuda"},
}
# What each spec reports as its precision (metrics label ``precision``, ``Predictor.precision``).
PRECISION_OF: dict[str, str] = {
    "fp32": "fp32",
    "bf16": "bf16",
    "bf16-autocast": "bf16-autocast",
    "int8": "int8",
    "onnx-fp32": "onnx-fp32",
    "onnx-int8": "onnx-int8",
    "fp32-cuda": "fp32",
    "fp16": "fp16",
    "bf16-cuda": "bf16",
}


@dataclass(frozen=True)
class Hardware:
    device: Device
    cpu: str
    cpu_flags: frozenset[str]
    threads: int
    gpu: str | None = None
    gpu_capability: tuple[int, int] | None = None

    def features(self) -> frozenset[str]:
        extra = set()
        if self.gpu_capability is not None and self.gpu_capability >= (8, 0):
            extra.add("cuda_bf16")
        if self.device == "cpu" and onnx_available():
            extra.add("onnxruntime")
        return self.cpu_flags | extra

    def signature(self) -> str:
        """What makes two machines comparable for speed: the chip and its relevant features."""
        relevant = sorted(f for f in self.cpu_flags if f.startswith(("amx", "avx512", "avx_vnni")))
        chip = self.gpu if self.device == "cuda" and self.gpu else self.cpu
        return f"{self.device}|{chip}|{','.join(relevant)}|threads={self.threads}"

    def to_dict(self) -> dict[str, Any]:
        relevant = sorted(f for f in self.cpu_flags if f.startswith(("amx", "avx512", "avx_vnni")))
        return {
            "device": self.device,
            "cpu": self.cpu,
            "cpu_flags": relevant,
            "threads": self.threads,
            "gpu": self.gpu,
            "signature": self.signature(),
        }


@lru_cache(maxsize=1)
def onnx_available() -> bool:
    from consumer.onnx_runtime import available

    return available()


@lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """The CPU's model name and its feature flags (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return "unknown", frozenset()
    name, flags = "unknown", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name == "unknown":
            name = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return name, flags


def cpu_has_bf16() -> bool:
    return bool(cpu_info()[1] & set(BF16_FLAGS))


def detect_hardware(device: Device) -> Hardware:
    name, flags = cpu_info()
    gpu: str | None = None
    capability: tuple[int, int] | None = None
    if device == "cuda":
        gpu = torch.cuda.get_device_name(0)
        capability = tuple(torch.cuda.get_device_capability(0))  # type: ignore[assignment]
    return Hardware(device, name, flags, torch.get_num_threads(), gpu, capability)


def supports(hardware: Hardware, spec: Spec) -> bool:
    if spec.device != hardware.device:
        return False
    return not spec.needs_any or bool(hardware.features() & set(spec.needs_any))


def specs_for(hardware: Hardware) -> list[Spec]:
    """The candidates this machine can run natively, fp32 first."""
    return [s for s in SPECS.values() if supports(hardware, s)]


@dataclass(frozen=True)
class Candidate:
    """What training measured for one spec (one entry of the manifest's record)."""

    name: str
    accuracy: float
    drop_points: float
    tickets_per_s: float | None = None

    @property
    def spec(self) -> Spec:
        return SPECS[self.name]

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            **asdict(self),
            "device": spec.device,
            "needs_any": list(spec.needs_any),
            "note": spec.note,
        }


def warm_up_lengths(
    mean_tokens: float, long_tokens: float | None, max_length: int
) -> tuple[int, ...]:
    """The chunk lengths a speed measurement runs: the mean and the long tail.

    At the mean alone two candidates can tie (bf16 and int8 at 16 tokens here) and the
    noise picks one, though they part ways on longer tickets; traffic that runs longer than
    the training slice then pays for the coin toss. The long length is the slice's 90th
    percentile (twice the mean for folders written before it was kept).
    """
    long = long_tokens if long_tokens is not None else 2 * mean_tokens
    lengths = {min(max(2, round(x)), max_length) for x in (mean_tokens, long)}
    return tuple(sorted(lengths))


@dataclass(frozen=True)
class Record:
    """The manifest's ``serving_candidates``: every measured candidate and where it was measured."""

    candidates: tuple[Candidate, ...]
    measured_on: dict[str, str] = field(default_factory=dict)  # device -> Hardware.signature()
    mean_tokens: float = 32.0
    long_tokens: float | None = None  # the slice's 90th-percentile length (None: older folders)
    max_drop_points: float = MAX_DROP_POINTS
    extra: dict[str, Any] = field(default_factory=dict)

    def warm_up_lengths(self, max_length: int) -> tuple[int, ...]:
        """The chunk lengths a speed measurement runs (``warm_up_lengths``)."""
        return warm_up_lengths(self.mean_tokens, self.long_tokens, max_length)

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "measured_on": self.measured_on,
            "mean_tokens": self.mean_tokens,
            **({"long_tokens": self.long_tokens} if self.long_tokens is not None else {}),
            "max_drop_points": self.max_drop_points,
            **self.extra,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Record | None:
        """The record in a manifest; None for folders written before it (or a foreign one)."""
        data = manifest.get(MANIFEST_KEY)
        if not isinstance(data, dict):
            return None
        candidates = []
        for row in data.get("candidates", []):
            if not isinstance(row, dict) or row.get("name") not in SPECS:
                continue  # a candidate this version does not know: ignored, not fatal
            speed = row.get("tickets_per_s")
            candidates.append(
                Candidate(
                    name=str(row["name"]),
                    accuracy=float(row["accuracy"]),
                    drop_points=float(row["drop_points"]),
                    tickets_per_s=float(speed) if speed is not None else None,
                )
            )
        return cls(
            candidates=tuple(candidates),
            measured_on={str(k): str(v) for k, v in dict(data.get("measured_on") or {}).items()},
            mean_tokens=float(data.get("mean_tokens", 32.0)),
            long_tokens=float(data["long_tokens"]) if "long_tokens" in data else None,
            max_drop_points=float(data.get("max_drop_points", MAX_DROP_POINTS)),
        )


@dataclass(frozen=True)
class Choice:
    name: str
    reason: str
    eligible: tuple[str, ...] = ()
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def spec(self) -> Spec:
        return SPECS[self.name]

    @property
    def precision(self) -> str:
        return PRECISION_OF[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "eligible": list(self.eligible),
            "measured_tickets_per_s": self.measured,
        }


Measure = Callable[[Sequence[str]], Mapping[str, float]]


def forced_spec(wanted: str, device: Device) -> str:
    names = FORCED[device]
    if wanted not in names:
        other: Device = "cuda" if device == "cpu" else "cpu"
        kind = "GPU" if other == "cuda" else "CPU"
        where = f"; {wanted} is a {kind} precision" if wanted in FORCED[other] else ""
        raise ValueError(
            f"TICKETSORT_MODEL__PRECISION={wanted} cannot run on {device}{where}: use auto or"
            f" one of {', '.join(names)}"
        )
    if "onnxruntime" in SPECS[names[wanted]].needs_any and not onnx_available():
        raise ValueError(
            f"TICKETSORT_MODEL__PRECISION={wanted} needs ONNX Runtime: pip install -e '.[onnx]'"
        )
    return names[wanted]


def legacy_choice(device: Device, int8_safe: bool) -> Choice:
    """Folders without a record: what ticketsort did before it measured candidates."""
    if device == "cuda":
        return Choice("fp16", "no candidate record for the GPU: fp16 (accuracy not measured)")
    if int8_safe:
        return Choice("int8", "no candidate record; the folder's int8 check allows int8")
    return Choice("fp32", "no candidate record in the model folder: fp32")


def choose(
    record: Record | None,
    hardware: Hardware,
    wanted: str = "auto",
    *,
    int8_safe: bool = False,
    measure: Measure | None = None,
    max_drop_points: float = MAX_DROP_POINTS,
) -> Choice:
    """The serving candidate: forced, else the fastest supported one that lost ≤ the gate.

    ``measure(names) -> {name: tickets/s}`` is called only when the choice is not
    obvious: more than one candidate qualifies and training's figures were not
    taken on this hardware or show no clear winner.
    """
    if wanted != "auto":
        spec = forced_spec(wanted, hardware.device)
        return Choice(spec, f"forced (precision={wanted}, TICKETSORT_MODEL__PRECISION)")
    if record is None:
        return legacy_choice(hardware.device, int8_safe)
    baseline = "fp32" if hardware.device == "cpu" else "fp32-cuda"
    measured = {c.name: c for c in record.candidates}
    if hardware.device == "cuda" and baseline not in measured:
        return legacy_choice("cuda", int8_safe)
    eligible = [baseline] + [
        c.name
        for c in record.candidates
        if c.name != baseline and supports(hardware, c.spec) and c.drop_points <= max_drop_points
    ]
    if len(eligible) == 1:
        return Choice(baseline, "no faster candidate is both supported here and safe", (baseline,))
    if record.measured_on.get(hardware.device) == hardware.signature():
        speeds = [(measured[n].tickets_per_s or 0.0, n) for n in eligible if n in measured]
        speeds.sort(reverse=True)
        if len(speeds) == len(eligible) and speeds[0][0] >= CLEAR_WIN * speeds[1][0] > 0:
            return Choice(
                speeds[0][1],
                "fastest in training's measurement on this same hardware",
                tuple(eligible),
                {n: s for s, n in speeds},
            )
    if measure is None:
        return Choice(baseline, "several candidates qualify but nothing measured them", ())
    speeds_now = dict(measure(eligible))
    best = max(eligible, key=lambda n: speeds_now.get(n, 0.0))
    return Choice(
        best, "fastest in the start-up warm-up on this machine", tuple(eligible), speeds_now
    )


def interleaved_speeds(
    forwards: Mapping[str, Callable[[], object]],
    batch: int | Mapping[str, int],
    rounds: int = 3,
    *,
    budget_s: float = 0.0,
    max_rounds: int = 15,
) -> dict[str, float]:
    """Tickets/s of each forward (``batch`` tickets each call, or ``batch[name]``): the
    median of its rounds.

    Candidates take turns, one batch each per round after one untimed round, so a
    neighbour's load on a shared machine falls on all of them alike. At least
    ``rounds`` timed rounds; more, up to ``max_rounds``, while the timed rounds
    have taken less than ``budget_s`` (cheap on a fast machine, steadier medians).
    """
    times: dict[str, list[float]] = {name: [] for name in forwards}
    spent = 0.0
    turn = 0
    while turn <= rounds or (spent < budget_s and turn <= max_rounds):
        for name, forward in forwards.items():
            started = time.perf_counter()
            forward()
            if turn:
                elapsed = time.perf_counter() - started
                times[name].append(elapsed)
                spent += elapsed
        turn += 1
    tickets = batch if isinstance(batch, Mapping) else dict.fromkeys(forwards, batch)
    return {name: round(tickets[name] / statistics.median(t), 1) for name, t in times.items()}
