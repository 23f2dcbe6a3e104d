"""Errors raised by the Kafka wrappers."""

from __future__ import annotations

from consumer.errors import ExitCode, TicketsortError


class KafkaWrapperError(TicketsortError):
    """Base class for errors from ticketsort's Kafka layer."""


class BrokerUnavailable(KafkaWrapperError):
    """No broker answered at the configured bootstrap address."""

    exit_code = ExitCode.BROKER_UNREACHABLE


class DeliveryFailed(KafkaWrapperError):
    """One or more produced messages were not delivered."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        summary = "; ".join(f"{topic}: {reason}" for topic, reason in failures[:5])
        super().__init__(f"{len(failures)} message(s) not delivered: {summary}")


class KafkaFatal(KafkaWrapperError):
    """A fatal client error: the client must be recreated (the process exits and restarts)."""

    exit_code = ExitCode.KAFKA_FATAL
