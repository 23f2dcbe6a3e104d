"""Hot reload: versions are told apart by their files' content, and probed before serving."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from consumer.metrics import Metrics
from consumer.model_store import promote
from consumer.reload import ModelWatcher, content_identity
from consumer.settings import ModelSettings
from tests.chaos.models import write_untrained_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_model(tmp_path_factory.mktemp("reload") / "v-base")


def _store_with(model_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    store.mkdir()
    serving = store / "v-1"
    shutil.copytree(model_dir, serving)
    promote(store, serving)
    return store, serving


def _rewrite_head(folder: Path, change: str) -> None:
    """Rewrite head.safetensors in place, keeping every file's times as they were."""
    path = folder / "head.safetensors"
    times = {p: (p.stat().st_atime, p.stat().st_mtime) for p in folder.rglob("*") if p.is_file()}
    state = load_file(str(path))
    for name, tensor in state.items():
        state[name] = torch.full_like(tensor, float("nan")) if change == "nan" else tensor * -1.0
    save_file(state, str(path))
    for p, (atime, mtime) in times.items():
        os.utime(p, (atime, mtime))


def test_a_touched_manifest_is_not_a_new_version(model_dir: Path, tmp_path: Path) -> None:
    store, serving = _store_with(model_dir, tmp_path)
    watcher = ModelWatcher(ModelSettings(store=store), serving, Metrics())
    before = content_identity(serving)
    manifest = serving / "manifest.json"
    os.utime(manifest, (manifest.stat().st_atime + 60, manifest.stat().st_mtime + 60))
    watcher.check_once()
    assert watcher.take_ready() is None, "same content: nothing to reload"
    assert content_identity(serving) == before


def test_a_version_rewritten_in_place_with_its_times_kept_is_reloaded(
    model_dir: Path, tmp_path: Path
) -> None:
    store, serving = _store_with(model_dir, tmp_path)
    watcher = ModelWatcher(ModelSettings(store=store), serving, Metrics())
    _rewrite_head(serving, "negate")
    watcher.check_once()
    fresh = watcher.take_ready()
    assert fresh is not None, "the content changed: the new weights must be served"


def test_a_version_that_loads_but_fails_the_probe_batch_is_refused(
    model_dir: Path, tmp_path: Path
) -> None:
    store, serving = _store_with(model_dir, tmp_path)
    metrics = Metrics()
    watcher = ModelWatcher(ModelSettings(store=store), serving, metrics)
    broken = store / "v-2"
    shutil.copytree(model_dir, broken)
    _rewrite_head(broken, "nan")
    promote(store, broken)
    watcher.check_once()
    assert watcher.take_ready() is None, "a model answering NaN must not be swapped in"
    assert 'ticketsort_model_reloads_total{result="failure"} 1.0' in metrics.render().decode()
