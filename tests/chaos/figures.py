"""Scenario figures: in / out per topic / lost / duplicated, the table, the JSON file.

``record_figures`` prints one scenario's figures at once and rewrites ``.chaos-results.json``
(``CHAOS_RESULTS`` overrides the path); the plugin prints the session table at the end.
``CHAOS_SCALE=10 make chaos`` multiplies the CI sizes (``scaled``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCALE = max(1.0, float(os.environ.get("CHAOS_SCALE", "1") or "1"))
RESULTS_PATH = Path(os.environ.get("CHAOS_RESULTS", str(REPO / ".chaos-results.json")))


def scaled(n: int) -> int:
    return max(1, round(n * SCALE))


@dataclass
class Figures:
    scenario: str
    inputs: int
    classified: int = 0
    review: int = 0
    dead_letter: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        return self.classified + self.review + self.dead_letter


_RESULTS: list[Figures] = []

_COLUMNS = ("scenario", "in", "classified", "review", "dead-letter", "lost", "dup", "s", "notes")


def _row(f: Figures) -> tuple[str, ...]:
    notes = " ".join(f"{k}={v}" for k, v in f.notes.items())
    return (
        f.scenario,
        str(f.inputs),
        str(f.classified),
        str(f.review),
        str(f.dead_letter),
        str(f.lost),
        str(f.duplicated),
        f"{f.seconds:.1f}",
        notes,
    )


def format_table(rows: Sequence[Figures]) -> list[str]:
    cells = [_COLUMNS, *(_row(f) for f in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for n, r in enumerate(cells):
        fixed = "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        )
        lines.append(f"{fixed}  {r[-1]}".rstrip())
        if n == 0:
            lines.append("-" * max(len(lines[0]), 40))
    return lines


def record_figures(fig: Figures) -> Figures:
    """Print one scenario's figures now, keep them for the session table and the JSON file."""
    _RESULTS.append(fig)
    print(f"\n[chaos] {fig.scenario}: " + " ".join(format_table([fig])[2:]), flush=True)
    with contextlib.suppress(OSError):
        RESULTS_PATH.write_text(
            json.dumps(
                {
                    "scale": SCALE,
                    "results": [{**asdict(f), "outputs": f.outputs} for f in _RESULTS],
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return fig


def recorded() -> list[Figures]:
    """The figures recorded in this session, in order."""
    return list(_RESULTS)


def load_results(path: Path = RESULTS_PATH) -> tuple[float, list[Figures]]:
    """(scale, figures) as the last suite run wrote them to ``path``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    figures = []
    for row in data["results"]:
        row = {k: v for k, v in row.items() if k != "outputs"}
        figures.append(Figures(**row))
    return float(data["scale"]), figures
