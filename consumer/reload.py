"""Hot reload: follow ``<store>/current`` and load new versions in the background.

The main loop calls ``take_ready()`` between batches and swaps the predictor
there, so no batch is split across two models. A version that fails to load
is refused (logged, counted) and the old model keeps serving.
"""

from __future__ import annotations

import threading
from pathlib import Path

from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.model_store import CURRENT, load_model
from consumer.predictor import Predictor
from consumer.settings import ModelSettings

log = get_logger(__name__)


def _identity(folder: Path) -> tuple[str, float]:
    manifest = folder / "manifest.json"
    mtime = manifest.stat().st_mtime if manifest.exists() else 0.0
    return str(folder), mtime


class ModelWatcher:
    def __init__(self, settings: ModelSettings, serving: Path, metrics: Metrics) -> None:
        self.settings = settings
        self.link = settings.store / CURRENT
        self.metrics = metrics
        self._serving = _identity(serving.resolve())
        self._refused: tuple[str, float] | None = None
        self._ready: Predictor | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def take_ready(self) -> Predictor | None:
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def check_once(self) -> None:
        if not self.link.exists():
            return
        target = self.link.resolve()
        identity = _identity(target)
        if identity == self._serving or identity == self._refused:
            return
        try:
            predictor = Predictor(load_model(target, self.settings.base_model), self.settings)
        except Exception as exc:  # any failure: refuse the version, keep serving the old one
            self._refused = identity
            self.metrics.model_reloads.labels(result="failure").inc()
            log.error(
                "model_reload_refused", model_dir=str(target), error=f"{type(exc).__name__}: {exc}"
            )
            return
        with self._lock:
            self._ready = predictor
        self._serving = identity
        log.info("model_reload_loaded", model_dir=str(target), model_version=predictor.version)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                self.check_once()
            except Exception as exc:  # never let the watcher thread die
                log.error("model_watch_failed", error=str(exc))
