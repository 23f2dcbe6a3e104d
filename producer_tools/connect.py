"""Settings, broker reachability and topic names for the tools."""

from __future__ import annotations

import time

from pydantic import ValidationError

from consumer.kafka import BrokerUnavailable, wait_for_broker
from consumer.kafka.admin import admin_client
from consumer.settings import Settings, TopicSettings
from producer_tools.exits import ExitCode, ToolError

DEFAULT_BROKER_TIMEOUT_S = 5.0
MISSING_TOPIC_GRACE_S = 3.0

# Short names accepted wherever a topic is named (``tail raw``).
TOPIC_ALIASES: dict[str, str] = {
    "raw": "raw",
    "classified": "classified",
    "review": "review",
    "dead-letter": "dead_letter",
    "dead_letter": "dead_letter",
    "labeled": "labeled",
}


def load_settings() -> Settings:
    """``Settings()`` from the environment (``KAFKA_BOOTSTRAP_SERVERS`` included)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ToolError(f"invalid settings in the environment or .env:\n{exc}") from exc


def resolve_topic(topics: TopicSettings, name: str) -> str:
    """An alias (raw, classified, review, dead-letter, labeled) or a literal topic name."""
    field = TOPIC_ALIASES.get(name)
    return str(getattr(topics, field)) if field else name


def require_broker(settings: Settings, timeout: float) -> None:
    """Raise ``ToolError`` (exit 3) with ``wait_for_broker``'s message when none answers."""
    # librdkafka prints every refused connection of the probe to stderr; keep only its verdict.
    quiet = settings.kafka.model_copy(update={"extra": {**settings.kafka.extra, "log_level": 2}})
    try:
        wait_for_broker(quiet, timeout=timeout)
    except BrokerUnavailable as exc:
        raise ToolError(str(exc), ExitCode.BROKER_UNREACHABLE) from exc


def require_topic(settings: Settings, topic: str, timeout: float = 10.0) -> int:
    """Return the topic's partition count; ``ToolError`` (exit 2) when it does not exist.

    A topic that exists but has no partition leader yet (just created) is waited for.
    """
    admin = admin_client(settings.kafka)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        # All topics, not list_topics(topic=...): a metadata request naming a missing topic
        # can auto-create it on brokers with auto.create.topics.enable.
        metadata = admin.list_topics(timeout=timeout)
        info = metadata.topics.get(topic)
        if info is None and time.monotonic() - started < MISSING_TOPIC_GRACE_S:
            time.sleep(0.3)  # a just-created topic can be missing from metadata for a moment
            continue
        if info is None:
            raise ToolError(
                f"topic {topic!r} does not exist on {settings.kafka.bootstrap_servers};"
                " create the topics with `python -m producer_tools topics`"
            )
        ready = (
            info.error is None
            and info.partitions
            and all(p.leader >= 0 for p in info.partitions.values())
        )
        if ready:
            return len(info.partitions)
        if time.monotonic() > deadline:
            raise ToolError(
                f"topic {topic!r} is not available (error: {info.error}; partitions"
                f" without a leader)",
                ExitCode.FAILED,
            )
        time.sleep(0.2)
