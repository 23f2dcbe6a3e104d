"""How busy the machine was while a bench row ran: load average before and after, others' CPU.

A speed figure taken while other processes compete for the cores says more about
them than about ticketsort. Every row records the 1/5/15-minute load average
before and after it and the share of the machine's CPU time that processes
other than this one (and its children) used meanwhile, read from ``/proc/stat``.
A row is flagged ``under_load`` when other processes took a real share of the CPU
during it. The load average alone cannot say that: it counts the bench's own threads,
so after one row of a two-thread bench on two cores it reads ~2 on a quiet machine.
It decides only where ``/proc/stat`` cannot be read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# Flag a row when the 1-minute load average before it exceeds this share of the
# cores, or other processes used more than this share of the CPU time during it.
LOADED_PER_CORE = 0.5
OTHERS_SHARE = 0.2
T = TypeVar("T")


def machine_busy_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU seconds all processes have spent busy since boot (None where unreadable)."""
    try:
        fields = stat.read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(values) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def judge(load_before: float, others_share: float | None, cores: int) -> bool:
    """Busy when others' CPU share during the row is high; where it is unknown, when the
    1-minute load average before the row is."""
    if others_share is not None:
        return others_share > OTHERS_SHARE
    return load_before > LOADED_PER_CORE * cores


def measured(run: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """``run()`` and the load around it: the figures ``judge`` flags from."""
    cores = len(os.sched_getaffinity(0))
    before = os.getloadavg()
    busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    result = run()
    busy1, own1, wall = machine_busy_seconds(), own_cpu_seconds(), time.monotonic() - wall0
    after = os.getloadavg()
    others: float | None = None
    if busy0 is not None and busy1 is not None and wall > 0:
        share = ((busy1 - busy0) - (own1 - own0)) / (wall * cores)
        others = min(1.0, max(0.0, share))  # clock ticks make short windows jitter
    load = {
        "load_before": [round(x, 2) for x in before],
        "load_after": [round(x, 2) for x in after],
        "others_cpu_share": None if others is None else round(others, 3),
        "under_load": judge(before[0], others, cores),
    }
    return result, load
