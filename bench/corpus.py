"""The benchmark's tickets: BANKING77 test texts plus generated e-mail-length tickets."""

from __future__ import annotations

import csv
from pathlib import Path

from consumer.clean import clean_ticket
from consumer.events import RawTicket
from producer_tools.synthetic import generate_tickets

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"


def banking77_texts(limit: int | None = None) -> list[str]:
    path = DATASETS / "banking77" / "test.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return texts[:limit] if limit else texts


def email_tickets(n: int, seed: int = 99) -> list[RawTicket]:
    return [
        RawTicket(id=t.ticket_id, subject=t.subject, body=t.body, channel="email")
        for t in generate_tickets(n, seed=seed)
    ]


def mixed_raw_tickets(n: int) -> list[RawTicket]:
    """Half BANKING77 one-liners, half generated e-mails: the end-to-end stream."""
    short = banking77_texts()
    emails = email_tickets(n // 2)
    out: list[RawTicket] = []
    for i in range(n - len(emails)):
        out.append(RawTicket(id=f"b77-{i}", body=short[i % len(short)], channel="web_form"))
    out.extend(emails)
    # interleave so every batch mixes lengths
    out.sort(key=lambda t: hash(t.id) % 1000)
    return out


def cleaned_texts(tickets: list[RawTicket]) -> list[str]:
    return [clean_ticket(t.subject, t.body) for t in tickets]
