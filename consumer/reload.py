"""Hot reload: follow ``<store>/current`` (and ``<store>/shadow``) and load new versions in
the background.

The main loop calls ``take_ready()`` between batches and swaps the predictor
there, so no batch is split across two models. A version that fails to load
is refused (logged, counted) and the old model keeps serving, and so is one that loads but
fails on a probe batch (an exception, a non-finite confidence, a label it does not have).

A version is identified by the content of its files (a digest of every file's relative path
and bytes), not by the manifest's modification time: a folder rewritten in place with its
times kept is seen, a manifest touched without a change is not reloaded (issue #12).
"""

from __future__ import annotations

import hashlib
import math
import threading
from pathlib import Path

from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.model_store import CURRENT, load_model
from consumer.predictor import Predictor
from consumer.settings import ModelSettings

log = get_logger(__name__)


PROBE_TEXTS = (
    "I was charged twice for my subscription this month",
    "The app crashes when I open the settings page",
    "hello",
)
CHUNK = 1 << 20


def content_identity(folder: Path) -> str:
    """A digest of every file under ``folder`` (relative path and bytes)."""
    digest = hashlib.sha256()
    if not folder.is_dir():
        return "missing"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def probe(predictor: Predictor) -> None:
    """Run a small batch through a freshly loaded model; raise if it misbehaves."""
    labels = set(predictor.model.labels)
    for prediction in predictor.predict(list(PROBE_TEXTS)):
        if not math.isfinite(prediction.confidence) or not 0.0 <= prediction.confidence <= 1.0:
            raise ValueError(f"probe batch: confidence {prediction.confidence!r}")
        if prediction.category not in labels:
            raise ValueError(f"probe batch: unknown category {prediction.category!r}")


class ModelWatcher:
    """Loads what ``<store>/<link>`` points at when its content changes.

    The shadow's watcher (``link="shadow"``) starts with nothing loaded (``serving=None``)
    and also reports the link's removal (``take_removed``): the shadow is then dropped.
    """

    def __init__(
        self,
        settings: ModelSettings,
        serving: Path | None,
        metrics: Metrics,
        *,
        link: str = CURRENT,
    ) -> None:
        self.settings = settings
        self.link = settings.store / link
        self.metrics = metrics
        self.reloads = metrics.model_reloads if link == CURRENT else metrics.shadow_reloads
        self._serving = content_identity(serving.resolve()) if serving is not None else None
        self._refused: str | None = None
        self._ready: Predictor | None = None
        self._removed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def has_news(self) -> bool:
        """A model is ready or the link went away: ``take_ready`` or ``take_removed`` is due."""
        with self._lock:
            return self._ready is not None or self._removed

    def take_ready(self) -> Predictor | None:
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def take_removed(self) -> bool:
        """True once after the link went away while a model from it was loaded."""
        with self._lock:
            removed, self._removed = self._removed, False
        return removed

    def check_once(self) -> None:
        if not self.link.exists():
            if self._serving is not None and self.link.name != CURRENT:
                with self._lock:
                    self._removed, self._ready = True, None
                self._serving = None
                log.info("model_link_removed", link=str(self.link))
            return
        target = self.link.resolve()
        identity = content_identity(target)
        if identity == self._serving or identity == self._refused:
            return
        try:
            predictor = Predictor(load_model(target, self.settings.base_model), self.settings)
            predictor.warm()
            probe(predictor)
        except Exception as exc:  # any failure: refuse the version, keep serving the old one
            self._refused = identity
            self.reloads.labels(result="failure").inc()
            log.error(
                "model_reload_refused",
                link=self.link.name,
                model_dir=str(target),
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        with self._lock:
            self._ready, self._removed = predictor, False
        self._serving = identity
        log.info(
            "model_reload_loaded",
            link=self.link.name,
            model_dir=str(target),
            model_version=predictor.version,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                self.check_once()
            except Exception as exc:  # never let the watcher thread die
                log.error("model_watch_failed", error=str(exc))
