"""Deterministic sampling by ticket id: the same ticket is always in or out.

Training's split, the audit sample and the shadow share all pick tickets with
``hash_unit``: a uniform number in [0, 1) from the ticket id and a salt. A
ticket replayed after a crash or a rewind is picked again (or not) exactly as
the first time, so at-least-once redelivery does not change what was sampled.
"""

from __future__ import annotations

import hashlib

AUDIT_SALT = "ticketsort-audit"
SHADOW_SALT = "ticketsort-shadow"


def hash_unit(ticket_id: str, salt: str) -> float:
    """A uniform number in [0, 1) from the ticket id: the same id, the same number."""
    digest = hashlib.sha256(f"{salt}\x00{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def picked(ticket_id: str, share: float, salt: str) -> bool:
    """Whether ``ticket_id`` is in the ``share`` of tickets that ``salt`` samples."""
    return share > 0 and (share >= 1 or hash_unit(ticket_id, salt) < share)
