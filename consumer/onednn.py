"""oneDNN's primitive cache, sized for the shapes a consumer feeds the encoder.

oneDNN (torch's CPU kernels for bf16 and packed Linear layers) builds one primitive per
input shape it meets, and keeps 1,024 of them by default. A bf16 Linear gets one per row
count (batch rows × tokens), and the encoder's forward needs about five per shape, so a
consumer whose chunks run 1..``chunk_size`` rows of 2..``max_length`` tokens meets thousands:
with the default cache, a second pass over 400 forwards of 302 mixed shapes still rebuilt
712 primitives (all of them seen before), at a few milliseconds each; with 16,384, none.
Measured with ``ONEDNN_VERBOSE=2`` (``create:cache_miss`` lines) on this project's encoder.

oneDNN reads the size once, when it builds its first primitive: so it is set when the
``consumer`` package is imported, before any model runs. A value already in the
environment wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

CAPACITY_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
CAPACITY = 16384  # primitives; each is small (the process's peak memory did not move)


def size_primitive_cache(environ: MutableMapping[str, str] = os.environ) -> str:
    """Set oneDNN's primitive cache size unless the environment has one; the size in force."""
    return environ.setdefault(CAPACITY_VARIABLE, str(CAPACITY))
