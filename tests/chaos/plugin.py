"""The failure suite's pytest plugin (registered in ``tests/conftest.py`` with ``pytest_plugins``).

Fixtures: ``chaos_model_dir`` (the training fixture's tiny trained model when it exists, else
an untrained but complete model folder; ``CHAOS_MODEL=untrained`` skips training),
``chaos_predictor`` (a ``Predictor`` for it, in process) and ``chaos_spawner`` (the fork
server for it; None with ``CHAOS_SPAWN=exec``). Hook: the table of every scenario's figures
after pytest's own summary, when any scenario ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.figures import RESULTS_PATH, SCALE, format_table, recorded
from tests.chaos.models import write_untrained_model
from tests.chaos.zygote import Zygote

_MODEL_CACHE: dict[str, Path] = {}
_PREDICTORS: dict[Path, Any] = {}
_ZYGOTES: dict[Path, Zygote] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Prints the figures of every scenario that ran, after pytest's own summary."""
    results = recorded()
    if not results:
        return
    terminalreporter.section(f"chaos figures (CHAOS_SCALE={SCALE:g})")
    for line in format_table(results):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also in {RESULTS_PATH}; `python -m tests.chaos.readme` puts")
    terminalreporter.write_line(" them in the README's Reliability table)")


@pytest.fixture(scope="session")
def chaos_model_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The training fixture's model if it exists (CHAOS_MODEL=untrained skips it), else ours."""
    if "dir" in _MODEL_CACHE:
        return _MODEL_CACHE["dir"]
    folder: Path | None = None
    if os.environ.get("CHAOS_MODEL", "") != "untrained":
        try:
            folder = Path(request.getfixturevalue("trained_model_dir"))
        except pytest.FixtureLookupError:
            folder = None
    if folder is None:
        folder = write_untrained_model(tmp_path_factory.mktemp("chaos-model") / "v-chaos")
    _MODEL_CACHE["dir"] = folder
    return folder


@pytest.fixture(scope="session")
def chaos_predictor(chaos_model_dir: Path) -> Any:
    """A ``Predictor`` for ``chaos_model_dir`` in this process (for in-process services)."""
    if chaos_model_dir not in _PREDICTORS:
        from consumer.model_store import load_model
        from consumer.predictor import Predictor
        from consumer.settings import ModelSettings

        settings = ModelSettings(device="cpu")
        _PREDICTORS[chaos_model_dir] = Predictor(load_model(chaos_model_dir), settings)
    return _PREDICTORS[chaos_model_dir]


@pytest.fixture(scope="session")
def chaos_spawner(
    request: pytest.FixtureRequest,
    chaos_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Zygote | None:
    """The fork server for ``chaos_model_dir``; None with CHAOS_SPAWN=exec (real exec each time)."""
    if os.environ.get("CHAOS_SPAWN", "") == "exec":
        return None
    if chaos_model_dir not in _ZYGOTES:
        zygote = Zygote(chaos_model_dir, tmp_path_factory.mktemp("zygote") / "zygote.log")
        _ZYGOTES[chaos_model_dir] = zygote

        def close() -> None:
            _ZYGOTES.pop(chaos_model_dir, None)
            zygote.close()

        request.config.add_cleanup(close)
    return _ZYGOTES[chaos_model_dir]
