"""Errors raised by the Kafka wrappers."""

from __future__ import annotations

import confluent_kafka

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


def is_fatal(error: object) -> bool:
    """True for a client error the client cannot recover from (recreate it: exit 5).

    librdkafka hands a consumer its fatal error as an event with code ``_FATAL``, and the
    ``KafkaError`` confluent-kafka builds from that message keeps the code but not the flag:
    ``fatal()`` is False. Seen after a broker restart, when a static member was fenced by its
    own rejoin ("Static consumer fenced by other consumer with same group.instance.id") and,
    read as a transient error, polled on for good without a record.
    """
    if not isinstance(error, confluent_kafka.KafkaError):
        return False
    return bool(error.fatal()) or error.code() == confluent_kafka.KafkaError._FATAL
