"""What the model page shows: the served model folder's report and the consumer's live counts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from consumer.settings import Settings

# consumer.model_store.CURRENT (a test checks they agree); not imported from there, since
# that module loads torch: the review tools only read JSON and a PNG from the folder.
CURRENT = "current"


def served_folder(settings: Settings) -> Path | None:
    """The folder the consumer serves: ``model.path``, else ``<store>/current``."""
    folder = settings.model.path or settings.model.store / CURRENT
    return folder.resolve() if folder.exists() else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_categories(settings: Settings) -> list[str]:
    """The served model's labels ([] when there is no model)."""
    folder = served_folder(settings)
    labels = _read_json(folder / "labels.json") if folder else None
    return [str(x) for x in labels] if isinstance(labels, list) else []


def model_summary(settings: Settings) -> dict[str, Any]:
    """Version, test metrics per class, baseline and thresholds of the served model."""
    folder = served_folder(settings)
    if folder is None:
        return {"found": False, "where": str(settings.model.path or settings.model.store)}
    manifest = _read_json(folder / "manifest.json") or {}
    metrics = _read_json(folder / "metrics.json") or {}
    thresholds = _read_json(folder / "thresholds.json") or metrics.get("thresholds") or {}
    test = metrics.get("test") or {}
    baseline = (metrics.get("baseline") or {}).get("test") or {}
    review = metrics.get("review_on_test") or {}
    per_class = [{"label": label, **row} for label, row in (test.get("per_class") or {}).items()]
    return {
        "found": True,
        "folder": folder.name,
        "version": manifest.get("version") or folder.name,
        "created": manifest.get("created_at") or metrics.get("created_at"),
        "base_model": "/".join(Path(str(manifest["base_model"])).parts[-2:])
        if manifest.get("base_model")
        else None,
        "labels": manifest.get("labels") or model_categories(settings),
        "test": {k: test.get(k) for k in ("n", "accuracy", "macro_f1", "ece")},
        "baseline": {k: baseline.get(k) for k in ("accuracy", "macro_f1", "ece")},
        "per_class": per_class,
        "threshold": thresholds.get("global"),
        "per_category": thresholds.get("per_category") or {},
        "target_accuracy": (metrics.get("thresholds") or {}).get("target_accuracy"),
        "review_share": review.get("review_share"),
        "auto_accuracy": review.get("auto_accuracy"),
        "promotion": metrics.get("promotion") or {},
        "has_confusion": (folder / "confusion.png").is_file(),
    }


def confusion_png(settings: Settings) -> Path | None:
    folder = served_folder(settings)
    path = folder / "confusion.png" if folder else None
    return path if path is not None and path.is_file() else None


@dataclass
class LiveCounts:
    """Counts scraped from the consumer's /metrics, with rates since the previous scrape."""

    url: str
    previous: tuple[float, dict[str, float]] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def scrape(self, timeout: float = 2.0) -> dict[str, Any]:
        try:
            response = httpx.get(self.url, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return {"ok": False, "url": self.url, "error": type(exc).__name__}
        counts = parse_counts(response.text)
        now = time.monotonic()
        rates: dict[str, float | None] = {k: None for k in counts}
        if self.previous is not None and now > self.previous[0]:
            then, before = self.previous
            for key, value in counts.items():
                rates[key] = max(0.0, value - before.get(key, 0.0)) / (now - then)
        self.previous = (now, counts)
        routed = counts["classified"] + counts["review"]
        share = counts["review"] / routed if routed else None
        return {
            "ok": True,
            "url": self.url,
            "counts": counts,
            "rates": rates,
            "review_share": share,
        }


def parse_counts(text: str) -> dict[str, float]:
    """Consumed, classified, review, dead letters and delivery failures from Prometheus text."""
    counts = {"consumed": 0.0, "classified": 0.0, "review": 0.0, "dead_letter": 0.0}
    counts["delivery_failures"] = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == "ticketsort_records_consumed":
                counts["consumed"] += sample.value
            elif family.name == "ticketsort_tickets_routed":
                route = sample.labels.get("route", "")
                if route in ("classified", "review"):  # dead letters: their own counter
                    counts[route] += sample.value
            elif family.name == "ticketsort_dead_letters":
                counts["dead_letter"] += sample.value
            elif family.name == "ticketsort_delivery_failures":
                counts["delivery_failures"] += sample.value
    return counts
