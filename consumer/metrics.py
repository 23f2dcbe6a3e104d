"""Prometheus metrics and the health/readiness endpoints.

``GET /metrics`` (Prometheus text), ``GET /healthz`` (the process is alive and
its loop is turning), ``GET /readyz`` (200 only once the model is loaded and
partitions are assigned). Each service instance owns its registry, so tests
can run several in one process.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from consumer.drift import CONFIDENCE_BUCKETS, NOVELTY_BUCKETS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter(
            "ticketsort_records_consumed", "Records read from the raw topic.", ["topic"], registry=r
        )
        self.routed = Counter(
            "ticketsort_tickets_routed",
            "Records delivered to an output topic, by route.",
            ["route", "model_version"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "ticketsort_dead_letters",
            "Records sent to the dead-letter topic.",
            ["error_type"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "ticketsort_delivery_failures",
            "Output messages the broker did not accept.",
            ["topic"],
            registry=r,
        )
        self.batch_size = Histogram(
            "ticketsort_batch_size", "Tickets per micro-batch.", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "ticketsort_inference_seconds",
            "Model time per micro-batch.",
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "ticketsort_end_to_end_latency_seconds",
            "From the raw record's timestamp to the output's delivery.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "ticketsort_consumer_lag",
            "Records not yet read: high watermark minus the consumer's position, per assigned"
            " partition (removed when the partition is revoked).",
            ["topic", "partition"],
            registry=r,
        )
        self.not_fetching = Gauge(
            "ticketsort_partitions_not_fetching",
            "Assigned partitions that have waited longer than consumer.fetch_stall_s for their"
            " committed offset without fetching (for example held by a hanging transaction).",
            registry=r,
        )
        self.in_flight = Gauge(
            "ticketsort_in_flight", "Outputs produced but not yet delivered.", registry=r
        )
        self.paused = Gauge(
            "ticketsort_paused", "1 while consumption is paused for backpressure.", registry=r
        )
        self.commits = Counter("ticketsort_commits", "Offset commits made.", registry=r)
        self.model_info = Gauge(
            "ticketsort_model_info",
            "The model being served (value 1).",
            ["model_version", "device", "precision"],
            registry=r,
        )
        self.inference_workers = Gauge(
            "ticketsort_inference_workers",
            "Batches the model runs at once (consumer.inference_streams).",
            registry=r,
        )
        self.model_reloads = Counter(
            "ticketsort_model_reloads", "Model hot reloads by result.", ["result"], registry=r
        )
        self.ready = Gauge("ticketsort_ready", "1 when the service is ready.", registry=r)
        # Drift (consumer.drift): the live mix and confidences, and the training figures.
        self.category_predictions = Counter(
            "ticketsort_category_predictions",
            "Delivered classified and review outputs, by predicted category and route.",
            ["category", "route", "model_version"],
            registry=r,
        )
        self.confidence = Histogram(
            "ticketsort_confidence",
            "Confidence of each delivered prediction (bins: distribution.json's).",
            ["model_version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.novelty = Histogram(
            "ticketsort_novelty_score",
            "Novelty score of each delivered prediction, when the model computes one.",
            ["model_version"],
            buckets=NOVELTY_BUCKETS,
            registry=r,
        )
        self.training_category_share = Gauge(
            "ticketsort_training_category_share",
            "Category shares stored with the served model: slice=train (labels) or"
            " validation (predictions).",
            ["category", "slice", "model_version"],
            registry=r,
        )
        self.training_confidence_share = Gauge(
            "ticketsort_training_confidence_share",
            "Share of validation confidences at or below le, stored with the served model.",
            ["le", "model_version"],
            registry=r,
        )
        self.training_review_share = Gauge(
            "ticketsort_training_review_share",
            "Review share on validation at the served model's thresholds.",
            ["model_version"],
            registry=r,
        )
        # Shadow scoring (consumer.shadow), counted when its ticket.shadow event is delivered.
        # Labels are the served category, so every ratio shares its denominator.
        self.shadow_scored = Counter(
            "ticketsort_shadow_scored",
            "Tickets the shadow model also scored, by served category.",
            ["category", "served_version", "shadow_version"],
            registry=r,
        )
        self.shadow_agreed = Counter(
            "ticketsort_shadow_agreed",
            "Shadow-scored tickets where the shadow chose the served category.",
            ["category", "served_version", "shadow_version"],
            registry=r,
        )
        self.shadow_review = Counter(
            "ticketsort_shadow_would_review",
            "Shadow-scored tickets the shadow would have sent to review.",
            ["category", "served_version", "shadow_version"],
            registry=r,
        )
        self.shadow_confidence = Histogram(
            "ticketsort_shadow_confidence",
            "The shadow's confidence on the tickets it scored, by served category.",
            ["category", "shadow_version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.shadow_seconds = Counter(
            "ticketsort_shadow_inference_seconds",
            "Time the shadow model spent scoring (on the inference workers).",
            registry=r,
        )
        self.shadow_cpu_share = Gauge(
            "ticketsort_shadow_cpu_share",
            "Shadow inference time over the served model's, since the shadow loaded.",
            registry=r,
        )
        self.shadow_skipped = Counter(
            "ticketsort_shadow_skipped",
            "Tickets picked for shadow scoring but not scored, by reason.",
            ["reason"],
            registry=r,
        )
        self.shadow_info = Gauge(
            "ticketsort_shadow_model_info",
            "The shadow model loaded (value 1); absent when there is none.",
            ["model_version"],
            registry=r,
        )
        self.shadow_reloads = Counter(
            "ticketsort_shadow_reloads", "Shadow model (re)loads by result.", ["result"], registry=r
        )
        self.ready_model = False
        self.ready_assigned = False
        self.last_loop = time.monotonic()

    def set_model(self, version: str, device: str, precision: str) -> None:
        self.model_info.clear()
        self.model_info.labels(model_version=version, device=device, precision=precision).set(1)

    def is_ready(self) -> bool:
        ready = self.ready_model and self.ready_assigned
        self.ready.set(1 if ready else 0)
        return ready

    def render(self) -> bytes:
        self.is_ready()
        return bytes(generate_latest(self.registry))


class HealthServer:
    """A tiny HTTP server on its own thread: /metrics, /healthz, /readyz."""

    def __init__(self, metrics: Metrics, host: str, port: int, stale_after_s: float = 120) -> None:
        self.metrics = metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    self._send(200, outer.metrics.render(), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/healthz"):
                    alive = time.monotonic() - outer.metrics.last_loop < stale_after_s
                    self._json(200 if alive else 503, {"alive": alive})
                elif self.path.startswith("/readyz"):
                    ready = outer.metrics.is_ready()
                    self._json(
                        200 if ready else 503,
                        {
                            "ready": ready,
                            "model_loaded": outer.metrics.ready_model,
                            "partitions_assigned": outer.metrics.ready_assigned,
                        },
                    )
                else:
                    self._json(404, {"error": "not found"})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
