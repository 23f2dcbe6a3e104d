"""Tests for producer_tools.synthetic: the seeded demo-ticket generator."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter

import pytest

from consumer.clean import clean_ticket
from producer_tools import synthetic
from producer_tools.synthetic import (
    CATEGORIES,
    CHANNELS,
    DEFAULT_WEIGHTS,
    SyntheticTicket,
    generate_tickets,
)

N = 2000


@pytest.fixture(scope="module")
def tickets() -> list[SyntheticTicket]:
    return list(generate_tickets(N, seed=0))


def test_categories_constant() -> None:
    assert CATEGORIES == (
        "billing",
        "bug_report",
        "feature_request",
        "account_access",
        "refund",
        "cancellation",
        "security",
        "integrations_api",
        "data_privacy",
        "how_to",
        "shipping",
        "feedback",
    )
    assert set(DEFAULT_WEIGHTS) == set(CATEGORIES)


def test_same_seed_same_output() -> None:
    assert list(generate_tickets(200, seed=42)) == list(generate_tickets(200, seed=42))


def test_different_seed_different_output() -> None:
    a = list(generate_tickets(200, seed=1))
    b = list(generate_tickets(200, seed=2))
    assert [t.body for t in a] != [t.body for t in b]
    assert len({t.body for t in a} & {t.body for t in b}) < 20  # a few identical one-liners at most


def test_start_resumes_the_stream() -> None:
    full = list(generate_tickets(30, seed=5))
    assert list(generate_tickets(10, seed=5, start=20)) == full[20:]


def test_ids_and_fields(tickets: list[SyntheticTicket]) -> None:
    assert [t.ticket_id for t in tickets[:3]] == ["syn-0-0", "syn-0-1", "syn-0-2"]
    assert len({t.ticket_id for t in tickets}) == N
    for t in tickets:
        assert t.category in CATEGORIES
        assert t.channel in CHANNELS
        assert t.language in ("en", "de", "fr")
        assert t.body.strip()
        assert "{" not in t.subject
        assert t.customer_id is None or re.fullmatch(r"cus_[0-9a-f]{10}", t.customer_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tickets[0].category = "billing"  # type: ignore[misc]
    assert tickets[0].to_dict()["ticket_id"] == "syn-0-0"


def test_all_categories_and_imbalance(tickets: list[SyntheticTicket]) -> None:
    counts = Counter(t.category for t in tickets)
    assert set(counts) == set(CATEGORIES)
    ratio = max(counts.values()) / min(counts.values())
    print(f"class counts: {dict(counts.most_common())} (max/min {ratio:.1f})")
    assert 4 <= ratio <= 15
    assert counts["billing"] > counts["security"] and counts["bug_report"] > counts["shipping"]


def test_custom_weights() -> None:
    only = list(generate_tickets(50, seed=3, weights={"refund": 1.0, "shipping": 0.0}))
    assert {t.category for t in only} == {"refund"}
    balanced = Counter(
        t.category for t in generate_tickets(2400, seed=3, weights=dict.fromkeys(CATEGORIES, 1.0))
    )
    assert max(balanced.values()) / min(balanced.values()) < 1.6
    with pytest.raises(ValueError):
        list(generate_tickets(1, weights={"nope": 1.0}))
    with pytest.raises(ValueError):
        list(generate_tickets(1, weights={"billing": -1.0}))
    with pytest.raises(ValueError):
        list(generate_tickets(1, weights={"billing": 0.0}))
    with pytest.raises(ValueError):
        list(generate_tickets(-1))


def test_templates_are_rich_and_fill_cleanly() -> None:
    rng = random.Random(0)
    for category in CATEGORIES:
        intents = synthetic._INTENTS[category]
        assert len(set(intents)) >= 12, category
        assert len(synthetic._ONE_LINERS[category]) >= 4, category
        assert len(synthetic._SUBJECTS[category]) >= 5, category
        pools = (
            intents,
            synthetic._ONE_LINERS[category],
            synthetic._DETAILS[category],
            synthetic._SUBJECTS[category],
        )
        for pool in pools:
            for template in pool:
                filled = synthetic._Slots(rng).fill(template)
                assert not re.search(r"\{\w+\}", filled), template
    for language, table in synthetic._FOREIGN.items():
        assert set(table) == set(CATEGORIES), language


def test_typos_change_a_fraction_of_words() -> None:
    text = "Please refund the duplicate payment from yesterday because something happened " * 5
    assert synthetic._typos(text, random.Random(1), 0.0) == text
    mangled = synthetic._typos(text, random.Random(1), 0.2)
    changed = sum(a != b for a, b in zip(text.split(), mangled.split(), strict=False))
    assert mangled != text and changed < len(text.split()) / 2


def _rate(tickets: list[SyntheticTicket], pattern: str) -> float:
    rx = re.compile(pattern, re.MULTILINE)
    return sum(1 for t in tickets if rx.search(t.body)) / len(tickets)


def test_messy_features_at_plausible_rates(tickets: list[SyntheticTicket]) -> None:
    rates = {
        "html": _rate(tickets, r"<div|<p[ >]|<html"),
        "quoted_reply": _rate(
            tickets, r"wrote:|schrieb .*:$|a écrit :|-----Original Message-----|^Sent: |^Date: "
        ),
        "forwarded": _rate(tickets, r"Forwarded [Mm]essage|Begin forwarded message"),
        "sent_from": _rate(tickets, r"^(Sent from|Get Outlook)"),
        "disclaimer": _rate(tickets, r"(?i)confidential|before printing"),
        "signature_dash": _rate(tickets, r"^-- ?$|>-- <br>|^-- <br>"),
        "greeting": _rate(tickets, r"^(Hi|Hello|Dear|Hey|Good (morning|afternoon))\b"),
        "one_liner": sum(len(t.body) < 60 for t in tickets) / len(tickets),
        "long": sum(len(t.body) > 600 for t in tickets) / len(tickets),
        "non_english": sum(t.language != "en" for t in tickets) / len(tickets),
        "no_customer_id": sum(t.customer_id is None for t in tickets) / len(tickets),
        "vague_or_empty_subject": sum(
            t.subject in ("", "Help", "Question", "Urgent", "Quick question", "(no subject)")
            for t in tickets
        )
        / len(tickets),
    }
    print({k: round(v, 3) for k, v in rates.items()})
    assert 0.03 <= rates["html"] <= 0.15
    assert 0.06 <= rates["quoted_reply"] <= 0.25
    assert 0.005 <= rates["forwarded"] <= 0.06
    assert 0.01 <= rates["sent_from"] <= 0.1
    assert 0.005 <= rates["disclaimer"] <= 0.06
    assert 0.002 <= rates["signature_dash"] <= 0.1
    assert rates["greeting"] >= 0.2
    assert 0.04 <= rates["one_liner"] <= 0.25
    assert 0.01 <= rates["long"] <= 0.2
    assert 0.01 <= rates["non_english"] <= 0.08
    assert 0.05 <= rates["no_customer_id"] <= 0.3
    assert rates["vague_or_empty_subject"] >= 0.05
    channels = Counter(t.channel for t in tickets)
    assert set(channels) == set(CHANNELS) and channels["email"] > channels["api"]


def test_clean_ticket_never_empty_and_strips_history(tickets: list[SyntheticTicket]) -> None:
    cleaned = [clean_ticket(t.subject, t.body) for t in tickets]
    assert all(cleaned)
    leftovers = re.compile(
        r"wrote:|a écrit|-----Original Message|Forwarded message|Sent from my|<div|&nbsp;|&#x27;"
        r"|Quillstack Support|^(Hi|Hello|Dear) "
    )
    dirty = [c for c in cleaned if leftovers.search(c)]
    assert len(dirty) / len(cleaned) < 0.01, dirty[:5]


def test_learnable_but_not_trivial() -> None:
    """TF-IDF + logistic regression: clearly learnable, but not a keyword lookup."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    train = list(generate_tickets(2000, seed=0))
    test = list(generate_tickets(500, seed=1))
    x_train = [clean_ticket(t.subject, t.body) for t in train]
    x_test = [clean_ticket(t.subject, t.body) for t in test]
    with threadpool_limits(1):
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        model = LogisticRegression(max_iter=2000)
        model.fit(vectorizer.fit_transform(x_train), [t.category for t in train])
        predicted = model.predict(vectorizer.transform(x_test))
    accuracy = sum(p == t.category for p, t in zip(predicted, test, strict=True)) / len(test)
    print(f"TF-IDF + LogisticRegression accuracy on another seed: {accuracy:.3f}")
    assert accuracy > 0.8
    assert accuracy < 0.995, "synthetic data became trivially separable; make it harder"
