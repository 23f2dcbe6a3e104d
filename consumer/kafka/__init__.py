"""Thin, typed wrappers over confluent-kafka: behaviour lives above them."""

from consumer.kafka.admin import ensure_topics, wait_for_broker
from consumer.kafka.consumer import Consumer, Record
from consumer.kafka.errors import BrokerUnavailable, DeliveryFailed, KafkaFatal, is_fatal
from consumer.kafka.producer import Producer

__all__ = [
    "BrokerUnavailable",
    "Consumer",
    "DeliveryFailed",
    "KafkaFatal",
    "Producer",
    "Record",
    "ensure_topics",
    "is_fatal",
    "wait_for_broker",
]
