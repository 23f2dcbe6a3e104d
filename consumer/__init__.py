"""The long-running Kafka consumer, and what serving and training share.

Importing the package sizes oneDNN's primitive cache before any model runs
(``consumer.onednn``).
"""

from consumer.onednn import size_primitive_cache

size_primitive_cache()
