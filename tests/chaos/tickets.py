"""Tickets for the scenarios: good ones, marked ones, and hostile payloads by kind."""

from __future__ import annotations

import base64
import json
import random
import string

from consumer.events import RawTicket

_SUBJECTS = [
    "Invoice charged twice",
    "App crashes on login",
    "Cannot reset my password",
    "Parcel never arrived",
    "Refund for order",
    "Error 500 when saving",
    "Change the account email",
    "Tracking number does not work",
]
_BODIES = [
    "Hello, my card was charged twice for invoice {n}. Please refund one of the payments.",
    "Since the update the app closes every time I try to log in on my phone (build {n}).",
    "The reset link you sent expired before I could use it. Account number {n}.",
    "Order {n} was shipped two weeks ago and the parcel still has not arrived.",
    "I returned the item last month and I am still waiting for the refund of order {n}.",
    "Saving the form gives an internal server error, request id {n}. Can you check?",
    "Please change the email on my account to the new address, customer {n}.",
    "The tracking page says the number {n} is unknown. Where is my delivery?",
]


def good_ticket(prefix: str, i: int, marker: str = "") -> tuple[str, bytes]:
    """(key, value) of a valid ticket; ``marker`` is placed in the body when given."""
    k = i % len(_SUBJECTS)
    body = _BODIES[k].format(n=1000 + i)
    if marker:
        body = f"{body} Reference {marker}."
    ticket = RawTicket(id=f"{prefix}-{i}", subject=_SUBJECTS[k], body=body, channel="email")
    return ticket.id, ticket.to_bytes()


def good_tickets(prefix: str, n: int, marker: str = "") -> list[tuple[str, bytes]]:
    return [good_ticket(prefix, i, marker) for i in range(n)]


# Hostile payloads for the end-to-end runs (the in-process fuzzer uses hypothesis instead).
HOSTILE_KINDS = (
    "not_json",
    "invalid_utf8",
    "huge",
    "deep_nesting",
    "nulls",
    "control_chars",
    "wrong_types",
    "missing_fields",
    "empty",
    "truncated_json",
    "extra_fields",
    "unicode_text",
)
# The dead-letter reason each hostile kind must get (unicode_text is a valid ticket).
EXPECTED_REASON: dict[str, set[str | None]] = {
    "not_json": {"invalid_json", "invalid_utf8", "schema_violation"},
    "invalid_utf8": {"invalid_utf8"},
    "huge": {"too_large"},
    "deep_nesting": {"invalid_json", "schema_violation", "too_large", None},
    "nulls": {"schema_violation", "invalid_json", "empty_record", None},
    "control_chars": {"empty_after_cleaning", "schema_violation", None},
    "wrong_types": {"schema_violation"},
    "missing_fields": {"schema_violation"},
    "empty": {"empty_record"},
    "truncated_json": {"invalid_json"},
    "extra_fields": {"schema_violation"},
    "unicode_text": {None, "empty_after_cleaning"},
}
_UNICODE_SNIPPETS = [
    "Mein Paket ist nicht angekommen 📦😡",
    "לא קיבלתי את ההחזר עבור ההזמנה",  # Hebrew (RTL)
    "لم أستلم المبلغ المسترد",  # Arabic (RTL)
    "\u202eevil override\u202c text",
    "我的账户无法登录，请帮忙",
    "ログインできません",
    "비밀번호를 재설정할 수 없습니다",
    "Z̷̢̛a̵l̸g̶o̴ ̷t̵e̶x̶t̸",
    "👩‍👩‍👧‍👦 family emoji and 🏳️‍🌈 flag",
    "𝕱𝖆𝖓𝖈𝖞 𝖒𝖆𝖙𝖍 𝖑𝖊𝖙𝖙𝖊𝖗𝖘",
]


def hostile_payload(rng: random.Random, kind: str, key: str, huge_bytes: int) -> bytes | None:
    """One malformed (or merely strange) payload of the given kind; None is a tombstone."""
    base = {"id": key, "subject": "s", "body": "my invoice is wrong"}
    if kind == "not_json":
        choice = rng.randrange(3)
        if choice == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        if choice == 1:
            return "".join(
                rng.choice(string.printable) for _ in range(rng.randrange(1, 80))
            ).encode()
        return b"{'id': 'single quotes', body: unquoted}"
    if kind == "invalid_utf8":
        good = json.dumps(base).encode()
        cut = rng.randrange(1, len(good))
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80"])
        return good[:cut] + bad + good[cut:]
    if kind == "huge":
        # Incompressible (random base64), so lz4 cannot shrink it under a size limit.
        body = base64.b64encode(rng.randbytes(huge_bytes * 3 // 4)).decode()
        return json.dumps({**base, "body": body}).encode()
    if kind == "deep_nesting":
        depth = rng.choice([50, 300, 3000, 20000])
        if rng.random() < 0.5:
            return ("[" * depth + "]" * depth).encode()
        return (
            json.dumps(base)[:-1] + ', "metadata": ' + '{"a":' * depth + "1" + "}" * depth + "}"
        ).encode()
    if kind == "nulls":
        return rng.choice(
            [
                b"null",
                json.dumps({**base, "body": None}).encode(),
                json.dumps({**base, "id": None}).encode(),
                b"\x00" * rng.randrange(1, 64),
                json.dumps({**base, "subject": "nul\u0000subject"}).encode(),
            ]
        )
    if kind == "control_chars":
        junk = "".join(chr(rng.choice([*range(0, 32), 127, *range(0x80, 0xA0)])) for _ in range(40))
        body = junk if rng.random() < 0.5 else f"printer broken {junk} help"
        return json.dumps({**base, "body": body}).encode()
    if kind == "wrong_types":
        field_name, value = rng.choice(
            [
                ("id", 12345),
                ("body", 17),
                ("body", ["a", "b"]),
                ("subject", {"x": 1}),
                ("channel", "carrier-pigeon"),
                ("created_at", "yesterday-ish"),
                ("metadata", [1, 2]),
                ("schema_version", 99),
                ("event_type", "ticket.other"),
                ("id", "has space"),
            ]
        )
        return json.dumps({**base, field_name: value}).encode()
    if kind == "missing_fields":
        drop = rng.choice(["id", "body"])
        return json.dumps({k: v for k, v in base.items() if k != drop}).encode()
    if kind == "empty":
        return rng.choice([None, b""])
    if kind == "truncated_json":
        good = json.dumps(base).encode()
        return good[: rng.randrange(1, len(good) - 1)]
    if kind == "extra_fields":
        return json.dumps({**base, "priority": "urgent", "__proto__": {}}).encode()
    if kind == "unicode_text":
        text = " ".join(rng.sample(_UNICODE_SNIPPETS, 3))
        return json.dumps(
            {**base, "subject": text[:30], "body": text}, ensure_ascii=rng.random() < 0.5
        ).encode()
    raise ValueError(kind)
