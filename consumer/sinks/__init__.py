"""Where a batch's outputs go: at-least-once or transactional (exactly-once) delivery."""

from consumer.sinks.at_least_once import AtLeastOnceSink, OutputUndeliverable
from consumer.sinks.base import Sink
from consumer.sinks.transactional import TransactionalSink

__all__ = ["AtLeastOnceSink", "OutputUndeliverable", "Sink", "TransactionalSink"]
