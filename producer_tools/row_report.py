"""Per-row reporting for file commands: progress bar, one line per bad row, a summary."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from producer_tools.labeled_files import Row, RowError


def count_lines(path: Path) -> int:
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


class RowReport:
    """Counts what happened to each row of a file and reports every rejected one.

    The progress bar (tqdm) goes to stderr and is shown on a terminal only; rejected rows are
    written above it, to stderr, as ``FILE:LINE: reason: detail``.
    """

    def __init__(self, path: Path, *, progress: bool = True) -> None:
        self.path = path
        self.read = 0
        self.rejected: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self._bar = tqdm(
            total=count_lines(path) if progress else None,
            unit="line",
            desc=path.name,
            file=sys.stderr,
            disable=None if progress else True,
            leave=False,
            dynamic_ncols=True,
        )

    def seen(self, item: Row | RowError) -> None:
        self.read += 1
        if item.line > self._bar.n:
            self._bar.update(item.line - self._bar.n)
        if isinstance(item, RowError):
            self.rejected[item.reason.value] += 1
            self.warn(item.line, f"{item.reason.value}: {item.detail}")

    def warn(self, line: int, message: str) -> None:
        tqdm.write(f"{self.path.name}:{line}: {message}", file=sys.stderr)

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] += n

    @property
    def good(self) -> int:
        return self.read - sum(self.rejected.values())

    def close(self) -> None:
        self._bar.close()

    def summary(self, out: TextIO | None = None) -> None:
        out = out or sys.stdout
        print(f"read {self.read} row(s) from {self.path}", file=out)
        for outcome, n in self.outcomes.items():
            print(f"  {outcome}: {n}", file=out)
        total = sum(self.rejected.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
        print(f"  rejected: {total}" + (f" ({reasons})" if reasons else ""), file=out)
