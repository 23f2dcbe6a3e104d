"""Wait for every produced message's delivery report before claiming success."""

from __future__ import annotations

from consumer.kafka import DeliveryFailed, Producer
from consumer.kafka.config import PRODUCER_DEFAULTS
from producer_tools.exits import ExitCode, ToolError

# Longer than message.timeout.ms: by then every message is delivered or has failed.
FLUSH_TIMEOUT_S = PRODUCER_DEFAULTS["message.timeout.ms"] / 1000 + 10


def flush_all(producer: Producer, what: str) -> None:
    """Flush; ``ToolError`` (exit 1) when any message failed or is still undelivered."""
    try:
        remaining = producer.flush(timeout=FLUSH_TIMEOUT_S)
    except DeliveryFailed as exc:
        raise ToolError(f"{what} incomplete: {exc}", ExitCode.FAILED) from exc
    if remaining:
        raise ToolError(
            f"{what} incomplete: {remaining} message(s) still undelivered after"
            f" {FLUSH_TIMEOUT_S:.0f}s",
            ExitCode.FAILED,
        )
