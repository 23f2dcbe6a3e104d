"""Shared fixtures: a real Kafka broker, uuid-named topics, settings.

The broker comes, in order, from ``KAFKA_BOOTSTRAP_SERVERS``; else the local
JVM broker (``deploy/kafka/kafka_local.py``, started once per run); else
testcontainers where Docker exists; else the integration tests fail when
``KAFKA_REQUIRED=1`` (CI) and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Two inference workers, not a start-up measurement per service (a couple of seconds each);
# two also keeps the ordering across workers under test everywhere.
os.environ.setdefault("TICKETSORT_BATCHING__INFERENCE_WORKERS", "2")

from consumer.kafka import ensure_topics
from consumer.settings import KafkaSettings, Settings, TopicSettings

pytest_plugins = ["tests.fixtures_model", "tests.chaos.plugin"]

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"


def load_kafka_local() -> ModuleType:
    path = REPO / "deploy" / "kafka" / "kafka_local.py"
    spec = importlib.util.spec_from_file_location("kafka_local", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _testcontainers_bootstrap() -> tuple[str, Callable[[], None]] | None:
    try:
        from testcontainers.core.container import DockerContainer  # type: ignore[import-untyped]
        from testcontainers.core.waiting_utils import wait_for_logs  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        container = DockerContainer("apache/kafka:4.4.0").with_exposed_ports(9092)
    except Exception:  # docker.errors.DockerException when there is no engine
        return None
    container.start()
    wait_for_logs(container, "Kafka Server started", timeout=90)
    host = container.get_container_host_ip()
    port = container.get_exposed_port(9092)
    return f"{host}:{port}", container.stop


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    required = os.environ.get("KAFKA_REQUIRED") == "1"
    errors: list[str] = []
    try:
        local = load_kafka_local()
        address = str(local.ensure_up())
        yield address
        return
    except Exception as exc:
        errors.append(f"local JVM broker: {exc}")
    started = None
    try:
        started = _testcontainers_bootstrap()
    except Exception as exc:
        errors.append(f"testcontainers: {exc}")
    if started is not None:
        address, stop = started
        yield address
        stop()
        return
    message = "no Kafka broker: " + "; ".join(errors or ["nothing configured"])
    if required:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topics(kafka_settings: KafkaSettings, unique: str) -> TopicSettings:
    """A fresh set of uuid-named topics, created on the broker."""
    spec = TopicSettings(
        raw=f"t-{unique}.raw",
        classified=f"t-{unique}.classified",
        review=f"t-{unique}.review",
        dead_letter=f"t-{unique}.dead-letter",
        labeled=f"t-{unique}.labeled",
        shadow=f"t-{unique}.shadow",
        partitions=3,
    )
    ensure_topics(kafka_settings, spec)
    return spec


@pytest.fixture
def settings(
    kafka_settings: KafkaSettings, topics: TopicSettings, unique: str, tmp_path: Path
) -> Settings:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    return s.model_copy(
        update={
            "kafka": kafka_settings.model_copy(update={"group_id": f"g-{unique}"}),
            "topics": topics,
            "model": s.model.model_copy(update={"store": tmp_path / "models"}),
            "consumer": s.consumer.model_copy(update={"metrics_port": 0}),
        }
    )


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"{DATASETS} not present")
    return DATASETS
