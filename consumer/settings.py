"""The one settings class of ticketsort.

Every value can come from the environment with the ``TICKETSORT_`` prefix and
``__`` between nested names (``TICKETSORT_BATCHING__MAX_BATCH=64``), from a
``.env`` file, or from keyword arguments (tests). ``KAFKA_BOOTSTRAP_SERVERS``
is honoured too, so one variable points every command at an external cluster.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_BOOTSTRAP = "127.0.0.1:19092"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or LOCAL_BOOTSTRAP


class KafkaSettings(BaseModel):
    """Connection to the cluster. Unknown librdkafka keys go in ``extra``."""

    bootstrap_servers: str = Field(default_factory=_default_bootstrap)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    client_id: str = "ticketsort"
    group_id: str = "ticketsort-classifier"
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict)

    def client_config(self) -> dict[str, Any]:
        """librdkafka configuration common to every client."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        optional: dict[str, str | SecretStr | None] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password,
        }
        for key, value in optional.items():
            if value is None:
                continue
            conf[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        conf.update(self.extra)
        return conf


class TopicSettings(BaseModel):
    raw: str = "tickets.raw"
    classified: str = "tickets.classified"
    review: str = "tickets.review"
    dead_letter: str = "tickets.dead-letter"
    labeled: str = "tickets.labeled"
    shadow: str = Field(
        default="tickets.shadow",
        description="Both models' answers for the tickets a shadow model scored (ticket.shadow).",
    )
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    max_message_bytes: int = Field(default=1_048_588, ge=1024)
    review_retention_ms: int = Field(
        default=90 * 24 * 3600 * 1000,
        ge=-1,
        description="Retention of the review topic, a queue people drain (-1: forever).",
    )


class ModelSettings(BaseModel):
    """Where models live and how they are run."""

    base_model: str | None = Field(
        default=None,
        description="Local Hugging Face model folder; default: the bundled all-MiniLM-L6-v2.",
    )
    store: Path = REPO_ROOT / "models"
    path: Path | None = Field(
        default=None, description="Serve this model folder instead of <store>/current."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal[
        "auto", "fp32", "int8", "bf16", "bf16-autocast", "fp16", "onnx-fp32", "onnx-int8"
    ] = Field(
        default="auto",
        description=(
            "auto: the fastest serving path this machine supports among those training measured"
            " to lose <= 0.3 points (consumer.precision); or force fp32, bf16, bf16-autocast,"
            " int8, onnx-fp32, onnx-int8 (CPU; onnx: the onnx extra), fp16, bf16, fp32 (GPU)."
        ),
    )
    max_length: int = Field(default=128, ge=8, le=512)
    threads: int | None = Field(default=None, ge=1)
    reload_interval_s: float = Field(default=5.0, gt=0)


class BatchingSettings(BaseModel):
    max_batch: int = Field(default=32, ge=1)
    max_wait_ms: int = Field(default=50, ge=0)
    max_in_flight: int = Field(
        default=2000, ge=1, description="Undelivered outputs before pausing."
    )
    pipeline_depth: int = Field(
        default=2,
        ge=0,
        description="Batches each inference worker may run ahead while the service polls,"
        " cleans and publishes; 0 runs the model inline.",
    )
    inference_workers: int | None = Field(
        default=None,
        ge=1,
        description="Batches the model runs at once, each on its share of the CPU threads;"
        " unset: timed at start-up on the CPU (consumer.inference_streams), one on a GPU.",
    )


class ValidationSettings(BaseModel):
    max_body_bytes: int = Field(default=64 * 1024, ge=64)
    max_clean_chars: int = Field(default=2000, ge=64)
    dead_letter_window: int = Field(default=500, ge=10)
    dead_letter_max_ratio: float = Field(default=0.5, gt=0, le=1)


class RoutingSettings(BaseModel):
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Override the model's calibrated review threshold."
    )
    per_category: dict[str, float] = Field(default_factory=dict)
    top_k: int = Field(default=3, ge=1)
    novelty: bool = Field(
        default=True,
        description="Send confident tickets unlike the training data to review (reason novel).",
    )
    novelty_threshold: float | None = Field(
        default=None, ge=0, description="Override the model's calibrated novelty threshold."
    )
    audit_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of auto-routed tickets also sent to review (reason audit), picked by"
        " ticket id: reviewers' labels on them estimate accuracy without the hard-case bias"
        " (e.g. 0.02).",
    )


class ShadowSettings(BaseModel):
    """A second model (``<store>/shadow``) scoring live traffic without serving it."""

    enabled: bool = Field(
        default=True, description="Score with <store>/shadow when it exists (hot-reloaded)."
    )
    share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of tickets the shadow also scores, picked by ticket id.",
    )
    max_cpu_share: float = Field(
        default=1.0,
        gt=0,
        description="Shadow inference time allowed, as a share of the served model's: batches"
        " beyond it are not shadow-scored (counted as skipped).",
    )


class ConsumerSettings(BaseModel):
    processing: Literal["at-least-once", "exactly-once"] = "at-least-once"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    log_ticket_text: bool = False
    poll_timeout_s: float = Field(default=0.1, gt=0)
    transactional_id: str | None = Field(
        default=None,
        description="Exactly-once: the producer's transactional id. It must stay the same"
        " across restarts of one instance (so a restart fences its predecessor at once) and"
        " differ between instances; unset, it is '<group id>-<host name>', stable for a"
        " StatefulSet pod (ticketsort-0, ticketsort-1, ...) and for a host.",
    )
    max_delivery_attempts: int = Field(
        default=5,
        ge=1,
        description="At-least-once: attempts at one output before it counts as a poison"
        " record (refused as too large or invalid, or refused while others to its topic are"
        " delivered) and becomes a dead letter. An outage, where nothing reaches a topic, is"
        " retried for as long as it lasts.",
    )
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    fetch_stall_s: float = Field(
        default=60.0,
        gt=0,
        description="An assigned partition that has not started fetching after this long (its"
        " committed offset is unavailable, e.g. held by a hanging transaction) is logged as"
        " `partitions_not_fetching` and counted in ticketsort_partitions_not_fetching.",
    )


class TrainingSettings(BaseModel):
    min_examples: int = Field(default=20, ge=1)
    target_accuracy: float = Field(default=0.99, gt=0, le=1)
    snapshot_timeout_s: float = Field(default=30.0, gt=0)
    online_window: str = Field(
        default="7d", description="Window of reviewers' labels online evaluation reads."
    )
    online_confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="Confidence of the interval `compare` and `promote --from-shadow` use.",
    )
    online_margin: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="promote --from-shadow: the shadow may be at most this much less accurate"
        " (lower bound of shadow minus served accuracy >= -margin).",
    )
    online_min_pairs: int = Field(
        default=30, ge=1, description="Reviewed tickets both models scored, at least, to decide."
    )


class ReviewSettings(BaseModel):
    """The reviewers' queue (terminal tool and web page) and the web page's server."""

    group: str = Field(default="ticketsort-reviewers", description="Reviewers' consumer group.")
    lease_s: float = Field(
        default=600.0, gt=0, description="Seconds a reviewer holds a ticket before it goes back."
    )
    prefetch: int = Field(default=20, ge=1, description="Review requests buffered per process.")
    host: str = Field(default="127.0.0.1", description="Address the review page binds to.")
    port: int = Field(default=8088, ge=0, le=65535)
    token: SecretStr | None = Field(
        default=None,
        description="Access token (or basic-auth password); required when not bound to localhost.",
    )
    metrics_url: str = Field(
        default="http://127.0.0.1:9108/metrics",
        description="The consumer's /metrics, shown on the model page.",
    )


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKETSORT_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
