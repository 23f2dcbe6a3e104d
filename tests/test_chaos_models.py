"""Chaos: bad model folders are refused with a clear message, and no pickle ever runs.

Each variant starts from a copy of a good model folder: missing, truncated safetensors
(adapter, head), and pickles planted where a careless loader would read them: the adapter
shipped only as ``adapter_model.bin`` (peft's fallback when the safetensors file is absent),
the head shipped only as ``head.pt`` or ``pytorch_model.bin`` in place of
``head.safetensors``, and pickles under the safetensors names. Every pickle is live:
unpickling it creates a marker directory (a control test proves that), and loading,
hot-reloading and starting the real service on each folder must refuse it with a message
that names the file, and leave the marker uncreated.
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.metrics import Metrics
from consumer.model_store import CURRENT, ModelLoadError, load_model, promote
from consumer.reload import ModelWatcher
from consumer.settings import ModelSettings, Settings
from tests.chaos.figures import Figures, record_figures
from tests.chaos.producing import produce_landed
from tests.chaos.reading import committed
from tests.chaos.service import EventLog, ServiceProcess, chaos_env
from tests.chaos.tickets import good_ticket
from tests.chaos.zygote import Zygote

pytestmark = [pytest.mark.chaos]


class Boom:
    """Unpickling this creates ``path`` (a directory): proof that the pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))


def _live_pickle(marker: Path) -> bytes:
    return pickle.dumps({"weight": Boom(marker)})


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _replace(path: Path, name: str, marker: Path) -> None:
    """Ship ``path`` only as a pickle named ``name`` (what a careless loader falls back to)."""
    path.unlink()
    (path.parent / name).write_bytes(_live_pickle(marker))


def _pickle_in_place(path: Path, marker: Path) -> None:
    """A pickle under the safetensors file's own name."""
    path.write_bytes(_live_pickle(marker))


Breaker = Callable[[Path, Path], None]
ADAPTER = Path("adapter") / "adapter_model.safetensors"
HEAD = Path("head.safetensors")
PICKLE_REFUSED = ("refused", "safetensors only", "never executes a pickle")
# variant -> (how the folder is broken, what the refusal must say)
VARIANTS: dict[str, tuple[Breaker, tuple[str, ...]]] = {
    "missing": (lambda folder, _m: shutil.rmtree(folder), ("does not exist",)),
    "truncated-adapter": (
        lambda folder, _m: _truncate(folder / ADAPTER),
        ("could not be loaded",),
    ),
    "truncated-head": (lambda folder, _m: _truncate(folder / HEAD), ("could not be loaded",)),
    # The adapter shipped only as peft's pickle file name, which peft reads when the
    # safetensors file is absent.
    "adapter-only-as-pickle-bin": (
        lambda folder, m: _replace(folder / ADAPTER, "adapter_model.bin", m),
        ("adapter/adapter_model.bin", *PICKLE_REFUSED),
    ),
    # The head shipped only as a torch pickle, under the names torch.load users reach for.
    "head-only-as-pickle-pt": (
        lambda folder, m: _replace(folder / HEAD, "head.pt", m),
        ("head.pt", *PICKLE_REFUSED),
    ),
    "head-only-as-pytorch-model-bin": (
        lambda folder, m: _replace(folder / HEAD, "pytorch_model.bin", m),
        ("pytorch_model.bin", *PICKLE_REFUSED),
    ),
    # Pickles under the safetensors names: the safetensors reader refuses them as corrupt.
    "pickle-named-head-safetensors": (
        lambda folder, m: _pickle_in_place(folder / HEAD, m),
        ("could not be loaded",),
    ),
    "pickle-named-adapter-safetensors": (
        lambda folder, m: _pickle_in_place(folder / ADAPTER, m),
        ("could not be loaded",),
    ),
}
SERVICE_VARIANTS = ("head-only-as-pickle-pt", "adapter-only-as-pickle-bin", "truncated-adapter")


def _bad_copy(good: Path, root: Path, variant: str) -> tuple[Path, Path]:
    folder = root / variant / "v-bad"
    shutil.copytree(good, folder)
    marker = root / variant / "PICKLE-RAN"
    VARIANTS[variant][0](folder, marker)
    return folder, marker


def test_the_test_pickle_is_live(tmp_path: Path) -> None:
    """Control: the pickles planted below do run when something unpickles them."""
    marker = tmp_path / "PICKLE-RAN"
    pickle.loads(_live_pickle(marker))
    assert marker.is_dir()


@pytest.mark.slow  # needs a model folder (the training fixture's)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bad_model_folder_is_refused(
    variant: str,
    chaos_model_dir: Path,
    tmp_path: Path,
) -> None:
    folder, marker = _bad_copy(chaos_model_dir, tmp_path, variant)
    with pytest.raises(ModelLoadError) as refused:
        load_model(folder)
    message = str(refused.value)
    for expected in VARIANTS[variant][1]:
        assert expected in message, message
    assert not marker.exists(), "a pickle was executed while loading"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["head-only-as-pickle-pt", "truncated-head"])
def test_hot_reload_refuses_a_bad_version_and_keeps_serving(
    variant: str,
    chaos_model_dir: Path,
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    good = store / "v-good"
    shutil.copytree(chaos_model_dir, good)
    promote(store, good)
    bad, marker = _bad_copy(chaos_model_dir, tmp_path, variant)
    shutil.move(bad, store / "v-bad")
    metrics = Metrics()
    watcher = ModelWatcher(ModelSettings(store=store), good.resolve(), metrics)
    promote(store, store / "v-bad")
    with EventLog() as events:
        watcher.check_once()
    assert watcher.take_ready() is None, "the bad version must not be swapped in"
    assert events.named("model_reload_refused"), events.lines[-5:]
    assert "failure" in metrics.render().decode()
    assert not marker.exists(), "a pickle was executed by the hot reload"
    assert (store / CURRENT).resolve().name == "v-bad"  # refused, yet nothing crashed


@pytest.mark.integration
def test_service_refuses_a_pickle_model_and_consumes_nothing(
    settings: Settings,
    chaos_model_dir: Path,
    chaos_spawner: Zygote | None,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    landed = produce_landed(settings.kafka, settings.topics.raw, [good_ticket("m", 1)])
    outcomes = {}
    markers: list[Path] = []
    for variant in SERVICE_VARIANTS:
        folder, marker = _bad_copy(chaos_model_dir, tmp_path, variant)
        service = ServiceProcess(
            chaos_env(settings, folder), tmp_path / f"{variant}.log", chaos_spawner
        )
        code = service.wait(180)
        text = service.text()
        assert code == 2, text[-3000:]
        assert "cannot start" in text, text[-3000:]
        for expected in VARIANTS[variant][1]:
            assert expected in text, text[-3000:]
        outcomes[variant] = code
        markers.append(marker)
    offsets = committed(settings.kafka, settings.kafka.group_id, settings.topics.raw, 3)
    pickles_run = sum(1 for m in markers if m.exists())
    record_figures(
        Figures(
            scenario="bad models refused",
            inputs=len(landed),
            seconds=time.monotonic() - started,
            notes={
                "variants_refused": sum(1 for c in outcomes.values() if c == 2),
                "service_exit_codes": sorted(set(outcomes.values())),
                "pickles_run": pickles_run,
            },
        )
    )
    assert pickles_run == 0, "a pickle was executed by the service"
    assert all(o < 0 for o in offsets.values()), f"nothing may be consumed: {offsets}"
