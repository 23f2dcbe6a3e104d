"""Review requests for the reviewers' tests (terminal tool, queue, web page)."""

from __future__ import annotations

from consumer.events import CategoryScore, RawTicket, ReviewRequest

CATEGORIES = ["billing", "bug_report", "feature_request", "account_access"]
BODIES = [
    "I was charged twice for my subscription this month, please fix the invoice",
    "The export button crashes the app every time I click it",
    "Could you add a dark mode to the dashboard?",
    "I can't log in, the password reset email never arrives",
]


def review_request(i: int, prefix: str = "rv") -> ReviewRequest:
    """A low-confidence request whose best suggestion is ``CATEGORIES[i % 4]``."""
    best = CATEGORIES[i % 4]
    other = CATEGORIES[(i + 1) % 4]
    return ReviewRequest(
        ticket=RawTicket(
            id=f"{prefix}-{i}",
            subject=f"Ticket number {i}",
            body=f"<p>Hello,</p><p>{BODIES[i % 4]}</p><p>--<br>Sent from my phone</p>",
            language="en",
        ),
        category=best,
        confidence=0.41,
        scores=[CategoryScore(category=best, score=0.41), CategoryScore(category=other, score=0.3)],
        model_version="v-test",
        threshold=0.8,
    )


def review_values(n: int, prefix: str = "rv") -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        request = review_request(i, prefix)
        out.append((request.ticket.id, request.to_bytes()))
    return out
