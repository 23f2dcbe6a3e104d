"""Chaos: bad model folders are refused with a clear message, and no pickle ever runs.

Each variant starts from a copy of a good model folder: missing, truncated safetensors
(adapter, head), a pickle ``*.bin`` next to the adapter, a pickle ``head.pt``, a pickle
renamed ``*.safetensors``, a ``.pkl`` deep in the tokenizer folder. Every pickle is live:
unpickling it creates a marker directory (a control test proves that), and after loading,
hot-reloading and starting the real service on each folder the marker must not exist.
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


Breaker = Callable[[Path, Path], None]
VARIANTS: dict[str, tuple[Breaker, str]] = {
    "missing": (lambda folder, _m: shutil.rmtree(folder), "does not exist"),
    "truncated-adapter": (
        lambda folder, _m: _truncate(folder / "adapter" / "adapter_model.safetensors"),
        "could not be loaded",
    ),
    "truncated-head": (
        lambda folder, _m: _truncate(folder / "head.safetensors"),
        "could not be loaded",
    ),
    "pickle-bin-next-to-adapter": (
        lambda folder, m: (folder / "adapter" / "adapter_model.bin").write_bytes(_live_pickle(m)),
        "pickle",
    ),
    "pickle-head-pt": (
        lambda folder, m: (folder / "head.pt").write_bytes(_live_pickle(m)),
        "pickle",
    ),
    "pickle-named-safetensors": (
        lambda folder, m: (folder / "head.safetensors").write_bytes(_live_pickle(m)),
        "could not be loaded",
    ),
    "pickle-pkl-in-tokenizer": (
        lambda folder, m: (folder / "tokenizer" / "extra.pkl").write_bytes(_live_pickle(m)),
        "pickle",
    ),
}


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


_REFUSED: dict[str, str] = {}


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
    assert VARIANTS[variant][1] in message, message
    if "pickle" in VARIANTS[variant][1]:
        assert "refused" in message and "safetensors" in message, message
    assert not marker.exists(), "a pickle was executed while loading"
    _REFUSED[variant] = message.splitlines()[0][:160]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pickle-head-pt", "truncated-head"])
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
    for variant in ("pickle-head-pt", "pickle-bin-next-to-adapter", "truncated-adapter"):
        folder, marker = _bad_copy(chaos_model_dir, tmp_path, variant)
        service = ServiceProcess(
            chaos_env(settings, folder), tmp_path / f"{variant}.log", chaos_spawner
        )
        code = service.wait(180)
        text = service.text()
        assert code == 2, text[-3000:]
        assert "cannot start" in text and VARIANTS[variant][1] in text, text[-3000:]
        assert not marker.exists(), f"{variant}: a pickle was executed by the service"
        outcomes[variant] = code
    offsets = committed(settings.kafka, settings.kafka.group_id, settings.topics.raw, 3)
    assert all(o < 0 for o in offsets.values()), f"nothing may be consumed: {offsets}"
    record_figures(
        Figures(
            scenario="bad models refused",
            inputs=len(landed),
            seconds=time.monotonic() - started,
            notes={
                "variants_refused_in_process": len(_REFUSED) or "-",
                "service_exit_codes": sorted(set(outcomes.values())),
                "pickles_run": 0,
            },
        )
    )
