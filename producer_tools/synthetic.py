"""Seeded generator of realistic, messy support e-mails for a fictional SaaS product.

This is the project's own demo data (all templates written for this project). The product is
"Quillstack", a team workspace with projects, reports, invoicing and an optional hardware add-on
(hubs, card readers, security keys) — so the 12 categories, including ``shipping``, all occur.

What makes it realistic enough to train on:

* many phrasings per category (>= 12 intents, plus one-liners, details and subjects), with slot
  fillers (product areas, plans, amounts, dates, error codes, integrations, browsers, ...);
* overlapping vocabulary between neighbouring categories (billing/refund/cancellation,
  account_access/security, bug_report/integrations_api, how_to/feature_request, ...), vague
  subjects, short follow-ups whose topic is only in the subject, ~5% mixed-topic tickets (the
  primary topic is the label) and a few German/French tickets;
* the mess of real mail: greetings, sign-offs and signatures, "Sent from my iPhone", disclaimers,
  quoted replies in Gmail/Outlook/Apple Mail/Thunderbird/German/French styles, forwarded
  messages, HTML bodies, typos, one-liners and long multi-paragraph messages;
* imbalanced classes by default (billing/bug_report ~8x more frequent than shipping).

Every ticket draws from its own ``random.Random`` seeded from ``(seed, index)``: the stream is
deterministic for a seed and ``start`` resumes it exactly (``generate_tickets(5, s, start=10)``
equals items 10..14 of ``generate_tickets(15, s)``).
"""

from __future__ import annotations

import html
import random
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "DEFAULT_WEIGHTS",
    "SyntheticTicket",
    "generate_tickets",
]

CATEGORIES: tuple[str, ...] = (
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

CHANNELS: tuple[str, ...] = ("email", "web_form", "chat", "api")
_CHANNEL_WEIGHTS = (0.55, 0.25, 0.12, 0.08)

# Imbalanced on purpose (max/min = 8): exercises class weighting / sampling in training.
DEFAULT_WEIGHTS: dict[str, float] = {
    "billing": 0.16,
    "bug_report": 0.16,
    "how_to": 0.12,
    "account_access": 0.11,
    "feature_request": 0.08,
    "integrations_api": 0.08,
    "refund": 0.07,
    "cancellation": 0.07,
    "feedback": 0.05,
    "data_privacy": 0.04,
    "security": 0.025,
    "shipping": 0.02,
}

PRODUCT = "Quillstack"
SUPPORT_ADDRESS = "support@quillstack.com"


@dataclass(frozen=True)
class SyntheticTicket:
    """One generated ticket as it would arrive from the help desk."""

    ticket_id: str
    subject: str
    body: str
    channel: str
    category: str
    language: str = "en"
    customer_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


# =============================================================================================
# Slot fillers
# =============================================================================================

_FIRST = (
    "Jane", "Tom", "Priya", "Wei", "Fatima", "Lukas", "Sofia", "Kwame", "Aiko", "Mateo",
    "Olga", "Chen", "Amara", "Liam", "Noah", "Emma", "Hannah", "Jonas", "Camille", "Luca",
    "Yuki", "Ravi", "Sara", "Omar", "Ingrid", "Diego", "Nina", "Tariq", "Mei", "Elena",
    "Bob", "Maria", "Ahmed", "Zoe", "Pieter", "Anaïs", "Björn", "Chloé", "Dmitri", "Grace",
)  # fmt: skip
_LAST = (
    "Smith", "Müller", "García", "Nguyen", "Okafor", "Rossi", "Kowalski", "Tanaka", "Dubois",
    "Novak", "Patel", "Johansson", "Silva", "Khan", "Schmidt", "Cohen", "Murphy", "Jensen",
    "Ivanova", "Moreau", "Becker", "Lopez", "O'Brien", "van Dijk", "Haddad", "Kim", "Weber",
)  # fmt: skip
_COMPANIES = (
    "Northwind Traders", "Brightline Studio", "Kestrel Logistics", "Bluepeak Dental",
    "Orchard & Finch", "Helio Labs", "Vantage Realty", "Copperleaf Bakery", "Tidewater Legal",
    "Nimbus Analytics", "Redwood Schools", "Lumen Health", "Granite Works GmbH",
    "Atelier Moreau", "Sakura Design", "Polaris Freight", "Fjord Outdoor AS", "Cobalt Media",
    "Marigold Events", "Ironbark Construction",
)  # fmt: skip
_TITLES = (
    "Office Manager", "CTO", "Head of Finance", "Operations Lead", "IT Administrator",
    "Founder & CEO", "Project Manager", "Customer Success Manager", "Accountant",
    "Software Engineer", "Marketing Director", "Practice Manager",
)  # fmt: skip
_AGENTS = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Riley", "Casey", "Robin")
_AREAS = (
    "dashboard", "reports page", "invoices page", "team settings", "project board",
    "calendar view", "timeline", "editor", "file manager", "search", "admin console",
    "user directory", "audit log", "forms builder", "automations page", "templates gallery",
    "comments panel", "analytics tab", "inbox", "mobile app", "desktop app", "kanban board",
)  # fmt: skip
_OBJECTS = ("task", "project", "report", "invoice", "form", "document", "board", "client record")
_PLANS = ("Free", "Starter", "Team", "Business", "Pro", "Enterprise", "Growth")
_ADDONS = ("Advanced Analytics", "Extra Storage", "Priority Support", "AI Assist", "Guest Seats")
_BROWSERS = (
    "Chrome 122", "Chrome", "Firefox 123", "Firefox", "Safari 17", "Safari", "Edge",
    "Brave", "Opera",
)  # fmt: skip
_OSES = ("Windows 11", "Windows 10", "macOS Sonoma", "macOS 13", "Ubuntu 22.04", "ChromeOS")
_DEVICES = (
    "iPhone 15", "iPhone 12", "iPad Air", "Pixel 8", "Samsung Galaxy S23", "OnePlus 11",
    "an old Android phone", "a Surface tablet",
)  # fmt: skip
_ERRORS = (
    "500 Internal Server Error", "502 Bad Gateway", "504 Gateway Timeout", "E1042",
    "ERR_CONNECTION_RESET", "TypeError: Cannot read properties of undefined (reading 'id')",
    "Error QS-3301", "Something went wrong (code 17)", "NullPointerException",
    "ChunkLoadError", "403 Forbidden", "an 'Unexpected token <' error",
)  # fmt: skip
_API_ERRORS = (
    "401 Unauthorized", "403 Forbidden", "429 Too Many Requests", "500 Internal Server Error",
    "400 Bad Request (invalid_grant)", "a 502 from the gateway", "422 Unprocessable Entity",
)  # fmt: skip
_INTEGRATIONS = (
    "Slack", "Salesforce", "Zapier", "HubSpot", "Jira", "GitHub", "Google Drive",
    "Microsoft Teams", "QuickBooks", "Xero", "Shopify", "Stripe", "Zendesk",
    "Google Calendar", "Outlook Calendar", "Notion", "Make", "Dropbox",
)  # fmt: skip
_IDPS = ("Okta", "Azure AD", "Google Workspace", "OneLogin", "JumpCloud")
_ENDPOINTS = (
    "/v2/projects", "/v2/tasks", "/v1/invoices", "/v2/users", "/v2/reports/export",
    "/v2/webhooks", "/v1/clients", "/v2/search",
)  # fmt: skip
_EVENTS = ("task.created", "invoice.paid", "project.updated", "comment.added", "user.invited")
_SDKS = ("Python", "Node.js", "Ruby", "Go", "PHP")
_FILE_TYPES = ("CSV", "PDF", "Excel", "XLSX", "JSON")
_HARDWARE = (
    "Quillstack Hub", "card reader", "barcode scanner", "receipt printer",
    "YubiKey security keys", "welcome kits", "room display", "label printer",
)  # fmt: skip
_CARRIERS = ("UPS", "DHL", "FedEx", "USPS", "Royal Mail", "DPD", "Canada Post", "PostNL")
_COUNTRIES = (
    "Germany", "France", "Canada", "Brazil", "India", "Japan", "Australia", "Nigeria",
    "the Netherlands", "Spain", "Mexico", "Poland", "Singapore", "South Africa", "Norway",
)  # fmt: skip
_CITIES = (
    "Berlin", "Toronto", "Sydney", "Tokyo", "São Paulo", "Lagos", "Madrid", "Chicago",
    "Auckland", "Mumbai", "Oslo", "Denver",
)  # fmt: skip
_FEATURES = (
    "export dashboards to PowerPoint", "set recurring tasks with custom intervals",
    "use dark mode on the web app", "add dependencies between tasks",
    "archive projects instead of deleting them", "@mention whole teams",
    "set a default view per project", "lock fields after approval",
    "customise the notification emails", "track time on tasks", "embed dashboards in our intranet",
    "colour-code calendar entries", "duplicate a whole workspace", "snooze reminders",
    "require approval before invoices are sent", "add custom statuses",
    "see who viewed a document", "pin comments", "create private projects inside a workspace",
)  # fmt: skip
_BUTTONS = ("Save", "Export", "Share", "New project", "Publish", "Send invoice", "Apply filter")
_REPORTS = ("monthly revenue report", "utilisation report", "time report", "pipeline report")
_TEAMS = ("marketing", "design", "sales", "finance", "support", "engineering", "operations")
_CVES = ("OpenSSH regreSSHion", "Log4Shell", "XZ Utils backdoor", "HTTP/2 Rapid Reset")
_PRICES = (9, 12, 19, 29, 39, 49, 79, 99, 120, 149, 199, 249, 299, 499, 588, 1188, 2388)


def _amount(rng: random.Random) -> str:
    value = rng.choice(_PRICES)
    cents = rng.choice(("", "", ".00", ".50", ".99"))
    style = rng.random()
    if style < 0.5:
        return f"${value:,}{cents}"
    if style < 0.75:
        return f"€{value}{cents}"
    if style < 0.85:
        return f"£{value}{cents}"
    if style < 0.95:
        return f"{value}{cents} EUR"
    return f"USD {value:,}{cents}"


_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _date(rng: random.Random) -> str:
    month = rng.randrange(12)
    day = rng.randint(1, 28)
    year = rng.choice((2023, 2024, 2024, 2025))
    fmt = rng.randrange(9)
    if fmt == 0:
        return f"{_MONTHS[month]} {day}"
    if fmt == 1:
        return f"{day} {_MONTHS[month]}"
    if fmt == 2:
        return f"{month + 1:02d}/{day:02d}/{year}"
    if fmt == 3:
        return f"{year}-{month + 1:02d}-{day:02d}"
    if fmt == 4:
        return f"{day:02d}.{month + 1:02d}.{year}"
    if fmt == 5:
        return f"last {rng.choice(_WEEKDAYS)}"
    if fmt == 6:
        return rng.choice(("yesterday", "the day before yesterday", "this morning"))
    if fmt == 7:
        return f"{_MONTHS[month][:3]} {day}"
    return f"the {day}{_ordinal(day)}"


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _email(rng: random.Random) -> str:
    first = _ascii(rng.choice(_FIRST)).lower()
    last = _ascii(rng.choice(_LAST)).lower().replace(" ", "").replace("'", "")
    domain = rng.choice(("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com"))
    if rng.random() < 0.6:
        domain = _ascii(rng.choice(_COMPANIES)).lower().split()[0].strip("&") + ".example"
    return f"{first}.{last}@{domain}" if rng.random() < 0.7 else f"{first[0]}{last}@{domain}"


def _invoice(r: random.Random) -> str:
    if r.random() < 0.7:
        return f"INV-{r.choice((2023, 2024, 2025))}-{r.randint(1, 9999):04d}"
    return f"#{r.randint(10000, 99999)}"


def _tracking(r: random.Random) -> str:
    if r.random() < 0.6:
        return f"1Z{_hex(r, 6).upper()}{r.randint(10**9, 10**10 - 1)}"
    return f"JD{r.randint(10**15, 10**16 - 1)}"


def _card(r: random.Random) -> str:
    return f"{r.choice(('Visa', 'Mastercard', 'Amex', 'card'))} ending {r.randint(1000, 9999)}"


def _workspace(r: random.Random) -> str:
    return _ascii(r.choice(_COMPANIES)).split()[0].lower() + r.choice(("", "-hq", "team"))


_STREETS = ("Harbour Street", "Elm Avenue", "Kastanienallee", "Rue de la Paix", "King St W")


def _address(r: random.Random) -> str:
    return f"{r.randint(1, 250)} {r.choice(_STREETS)}, {r.choice(_CITIES)}"


def _spoof_email(r: random.Random) -> str:
    domain = r.choice(("quil1stack.com", "quillstack-support.net", "qulllstack.co"))
    return f"billing@{domain}"


_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "product": lambda r: r.choice((PRODUCT, PRODUCT, PRODUCT, "the app", "your app")),
    "area": lambda r: r.choice(_AREAS),
    "object": lambda r: r.choice(_OBJECTS),
    "plan": lambda r: r.choice(_PLANS[1:]),
    "addon": lambda r: r.choice(_ADDONS),
    "amount": _amount,
    "date": _date,
    "time": lambda r: f"{r.randint(8, 17)}:{r.choice(('00', '15', '30', '45'))}",
    "invoice": _invoice,
    "order": lambda r: r.choice((f"QS-{r.randint(10000, 99999)}", f"#A-{r.randint(1000, 9999)}")),
    "tracking": _tracking,
    "error": lambda r: r.choice(_ERRORS),
    "api_error": lambda r: r.choice(_API_ERRORS),
    "browser": lambda r: r.choice(_BROWSERS),
    "os": lambda r: r.choice(_OSES),
    "device": lambda r: r.choice(_DEVICES),
    "version": lambda r: f"{r.randint(3, 6)}.{r.randint(0, 14)}.{r.randint(0, 9)}",
    "integration": lambda r: r.choice(_INTEGRATIONS),
    "idp": lambda r: r.choice(_IDPS),
    "endpoint": lambda r: r.choice(_ENDPOINTS),
    "event": lambda r: r.choice(_EVENTS),
    "sdk": lambda r: r.choice(_SDKS),
    "file_type": lambda r: r.choice(_FILE_TYPES),
    "hardware": lambda r: r.choice(_HARDWARE),
    "carrier": lambda r: r.choice(_CARRIERS),
    "country": lambda r: r.choice(_COUNTRIES),
    "city": lambda r: r.choice(_CITIES),
    "feature": lambda r: r.choice(_FEATURES),
    "button": lambda r: r.choice(_BUTTONS),
    "report": lambda r: r.choice(_REPORTS),
    "team": lambda r: r.choice(_TEAMS),
    "cve": lambda r: r.choice(_CVES),
    "card": _card,
    "n": lambda r: str(r.randint(2, 9)),
    "qty": lambda r: str(r.choice((2, 3, 4, 5, 6, 10, 12, 20, 25))),
    "n_users": lambda r: str(r.choice((4, 6, 8, 12, 15, 25, 40, 60, 120, 300))),
    "seats": lambda r: str(r.choice((5, 10, 15, 20, 30, 50, 75, 150))),
    "size": lambda r: str(r.choice((20, 50, 100, 250))),
    "years": lambda r: r.choice(("two", "three", "four", "five", "6", "2", "3")),
    "email": _email,
    "first": lambda r: r.choice(_FIRST),
    "agent": lambda r: r.choice(_AGENTS),
    "company": lambda r: r.choice(_COMPANIES),
    "workspace": _workspace,
    "req_id": lambda r: f"req_{_hex(r, 12)}",
    "vat": lambda r: f"{r.choice(('DE', 'FR', 'NL', 'IE', 'ES'))}{r.randint(10**8, 10**9 - 1)}",
    "address": _address,
    "spoof_email": _spoof_email,
}  # fmt: skip

_SLOT_RE = re.compile(r"\{(\w+)\}")


class _Slots:
    """Per-ticket slot values: the same ``{slot}`` gets the same value everywhere in a ticket,
    ``{slot2}`` a different value of the same kind."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._values: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        base = name[:-1] if name.endswith("2") and name[:-1] in _SLOTS else name
        gen = _SLOTS.get(base)
        if gen is None:
            raise KeyError(f"unknown template slot {{{name}}}")
        value = gen(self._rng)
        if base != name:
            first = self.get(base)
            for _ in range(6):
                if value != first:
                    break
                value = gen(self._rng)
        self._values[name] = value
        return value

    def fill(self, template: str) -> str:
        return _SLOT_RE.sub(lambda m: self.get(m.group(1)), template)


# =============================================================================================
# Templates (English)
# =============================================================================================

_INTENTS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged {amount} on {date} but our {plan} plan should only cost {amount2} a month. "
        "Can you explain the difference?",
        "Our latest invoice ({invoice}) still shows our old company address. Could you reissue it "
        "with the correct billing details?",
        "The invoice is missing our VAT number, which our accounting department needs before they "
        "can pay it.",
        "How do I update the credit card on file? Our {card} expired last month.",
        "The payment for our {plan} subscription failed and now there's a banner saying the "
        "workspace will be restricted. Can you retry the charge?",
        "We'd like to switch from monthly to annual billing. Will the rest of this month be "
        "prorated?",
        "Can we pay by bank transfer or purchase order instead of card? Our procurement team "
        "needs an invoice with net 30 terms.",
        "We added {n} seats in the middle of the billing cycle and the charge looks higher than "
        "expected. How is proration calculated?",
        "Where can I download receipts for all payments from last year? I need them for our tax "
        "return.",
        "Our organisation is tax-exempt. How do we submit the exemption certificate so sales tax "
        "is not added to future invoices?",
        "I got an email saying your prices are going up on {date}. Does this affect our current "
        "{plan} plan or only new customers?",
        "We're billed in USD but we are based in {country}. Is it possible to be invoiced in EUR?",
        "The billing page shows {seats} paid seats but we only have {n_users} people in the "
        "workspace. Why are we paying for inactive users?",
        "Please send all invoices to {email} instead of my personal address from now on.",
        "Our card keeps getting declined even though there are enough funds. The bank says they "
        "never saw the authorisation attempt.",
        "Could you split the invoice into two cost centres? Finance wants the {plan} plan and "
        "the {addon} add-on as separate line items.",
        "There's a charge of {amount} from {product} on our statement that I don't recognise. "
        "What is it for?",
        "Can you confirm our next renewal date and how much we will be charged?",
        "We cancelled the {addon} add-on last month but it's still on the latest invoice. Can "
        "you correct the invoice?",
        "How do I add our PO number to future invoices?",
        "After last month's refund, what will our next invoice look like?",
        "Our invoice says {seats} seats at {amount} but the quote from your sales team was lower. "
        "Which price is correct?",
    ),
    "bug_report": (
        "When I click {button} in the {area}, nothing happens and the console shows {error}.",
        "The {area} has been loading forever since {date}. I tried {browser} and {browser2} with "
        "the same result.",
        "Changes I make in the {area} are not saved. After refreshing the page everything is "
        "back to how it was.",
        "The mobile app crashes as soon as I open a {object} with attachments. I'm on {device} "
        "with version {version}.",
        "Exporting to {file_type} produces an empty file, even though the preview shows data.",
        "All due dates are shown one day off. I think it's a timezone problem because I'm in "
        "{city}.",
        "Search doesn't find any {object}s created today, only older ones.",
        "I get a '{error}' page whenever I try to open the {area}.",
        "Notifications arrive three or four times for the same comment.",
        "Drag and drop on the {area} stopped working after the last update, cards just snap "
        "back to where they were.",
        "Uploading files larger than about {size} MB fails at 99% with 'Something went wrong'.",
        "The totals in the {report} don't add up: the sum at the bottom is different from the "
        "rows above it.",
        "Since version {version} the desktop app shows a white screen on startup on {os}.",
        "Accented characters and emoji turn into question marks in {object} titles after an "
        "import.",
        "In dark mode the text in the {area} is unreadable, it's black on dark grey.",
        "The page jumps to the top every time someone else edits the {object}, so I can't type.",
        "The charts on the dashboard show no data for {date} although we definitely had activity "
        "that day.",
        "The {button} button stays greyed out in the {area} even after all required fields are "
        "filled in.",
        "The {area} is extremely slow today — every click takes 10+ seconds. Is something down?",
        "The integrations page itself throws {error} when I open it, for every integration.",
        "The invoice PDF is cut off at the bottom, the last line items are missing.",
    ),
    "feature_request": (
        "It would be great if we could {feature}. Right now we work around it with spreadsheets.",
        "Are there any plans to let users {feature}? It's the main thing our team is missing.",
        "Please add an option to {feature}. Other tools we've used already have this.",
        "Feature request: the ability to {feature}.",
        "We'd love two-way sync with {integration}, not just a one-way import.",
        "Could you make it possible to define custom fields per {object} type?",
        "Our managers keep asking for a timeline view with dependencies between {object}s. Is "
        "that on the roadmap?",
        "Would you consider more granular permissions, so that guests can comment without being "
        "able to edit?",
        "It would save us hours every week if the {area} supported editing several items at once.",
        "Is a native Linux desktop app planned at all?",
        "Suggestion: let admins schedule the {report} to be emailed automatically every Monday "
        "morning.",
        "We need to be able to {feature} before we can roll {product} out to the rest of the "
        "company.",
        "Can you please add keyboard shortcuts for the most common actions in the {area}?",
        "I'd like to vote for the idea to {feature} — it was mentioned in the community forum "
        "ages ago.",
        "An offline mode for the mobile app would really help our field staff.",
        "Please consider supporting multiple currencies in the {report}, we have clients in "
        "{country}.",
        "Would it be possible to get an API endpoint for {object} templates? We want to automate "
        "our onboarding.",
        "Could the {area} remember my filters between sessions? I set them up again every morning.",
        "I looked everywhere for a way to {feature} — if it doesn't exist, please consider adding "
        "it.",
    ),
    "account_access": (
        "I can't log in to my account. It keeps saying 'invalid email or password' even though "
        "I just reset it.",
        "The password reset email never arrives. I checked spam and tried {n} times.",
        "I lost my phone and can't get the two-factor code anymore. How do I get back into my "
        "account?",
        "Our SSO login through {idp} sends me in a loop back to the login page.",
        "My account got locked after too many attempts. How long do I have to wait, or can you "
        "unlock it?",
        "I need to change the email address on my account, but I no longer have access to the "
        "old mailbox.",
        "The invitation link my colleague sent me says it has expired.",
        "When I sign in I land in an empty workspace instead of our company's workspace.",
        "I'm the only admin and my user was deactivated by mistake, so nobody can manage users "
        "now.",
        "The magic link opens the app but then asks me to sign in again.",
        "I get 'Your session has expired' every few minutes and have to log in again.",
        "I signed up with Google but now want to log in with email and password. How do I set a "
        "password?",
        "After turning on 2FA the app rejects every code from my authenticator app as invalid.",
        "I can log in on the web, but the mobile app says my account doesn't exist.",
        "Our former admin left and nobody has access to the owner account anymore. How do we "
        "transfer ownership?",
        "Please reset my password, I forgot it and the reset page shows an error.",
        "The login page just shows a spinner and never loads in {browser}.",
        "I set up a security key for login and now it isn't recognised on my new laptop.",
        "How do I get back into my account after switching phones? The 2FA codes don't work.",
    ),
    "refund": (
        "I was charged twice for the same month ({amount} each time). Please refund the "
        "duplicate payment.",
        "Our annual plan renewed automatically on {date} but we had already decided not to "
        "continue. Can we get a refund?",
        "I cancelled on {date} but was still charged {amount} the next day. I'd like that money "
        "back.",
        "We downgraded from {plan} to {plan2} and expected a prorated refund for the difference, "
        "but nothing has shown up.",
        "The service was down for most of {date} and we lost a day of work. Are we eligible for "
        "a refund or credit?",
        "I picked the annual plan by mistake, I meant monthly. Could you refund it and switch me?",
        "You promised a refund of {amount} on {date} but it still hasn't appeared on my card. "
        "Can you check the status?",
        "We removed {n} seats right after the renewal. Can we get the money back for those "
        "unused seats?",
        "The trial turned into a paid plan without warning. I never meant to pay, please reverse "
        "the charge.",
        "I'd like to use the 30-day money-back guarantee, the product doesn't fit our workflow.",
        "An employee signed up with the company card without approval. Please refund the "
        "{amount} and close that subscription.",
        "Can you send a confirmation that the refund went through? My bank wants a reference "
        "number.",
        "We were charged for the {addon} add-on that we never activated. Please refund it.",
        "I sent back the {hardware} last week as agreed — when will I get my money back?",
        "Your pricing page said {amount2} but we were charged {amount}. Please refund the "
        "difference.",
        "If I cancel today, do I get back the remaining months of my annual subscription?",
        "We cancelled our {plan} plan on {date}. Since we paid for the whole year, please refund "
        "the unused months.",
        "Invoice {invoice} was paid twice by our accounts team. Could you send the second payment "
        "back?",
        "Please issue a credit note and refund for invoice {invoice}, it was raised in error.",
    ),
    "cancellation": (
        "Please cancel our subscription, effective immediately.",
        "We've decided not to renew. Please make sure we're not charged again on {date}.",
        "How do I cancel my account? I can't find the option anywhere in settings.",
        "I'd like to close my account and delete the workspace.",
        "We're moving to another tool and want to end our {plan} plan at the end of the current "
        "term.",
        "Can I pause the subscription for a few months instead of cancelling? Our project is on "
        "hold.",
        "Please turn off auto-renewal for our account.",
        "I only signed up for the trial, please cancel it so I don't get billed.",
        "Our company is closing down, so we need to cancel all {seats} seats.",
        "Please downgrade us to the free plan, we don't need the paid features anymore.",
        "What happens to our data if we cancel? We want to export everything first and then "
        "close the account.",
        "I tried to cancel in the billing settings but the button just reloads the page. Please "
        "cancel it for me.",
        "Unsubscribe me from the paid plan, I'm not using it anymore.",
        "We are terminating our contract with the {n}0-day notice period. Please confirm the "
        "cancellation in writing.",
        "My manager asked me to cancel the {product} subscription for the {team} team.",
        "Cancel the {addon} add-on but keep the rest of the subscription.",
        "Please cancel before the next invoice is generated. We don't expect a refund for the "
        "current month.",
        "Stop billing us from next month on — we're done with {product}.",
        "We won't need {product} after this quarter. What's the last day we can cancel without "
        "being charged for another year?",
    ),
    "security": (
        "I received an email that looks like it's from {product} asking me to confirm my password "
        "via a strange link. Is this phishing?",
        "There's a login to my account from {country} that wasn't me. I changed my password, "
        "what else should I do?",
        "I think I found a cross-site scripting issue: HTML in {object} titles gets executed when "
        "someone opens the {area}.",
        "One of our developers accidentally pushed an API key to a public GitHub repo. Can you "
        "revoke it and check whether it was used?",
        "We'd like to report a vulnerability. Where can we send the details securely, and do you "
        "run a bug bounty?",
        "By changing the ID in the URL I can see {object}s from another company's workspace. "
        "That looks like a serious access control flaw.",
        "Can you send us your latest SOC 2 Type II report and pen test summary? Our security "
        "team needs them for the vendor review.",
        "I see active sessions on devices I don't recognise. How can I sign them all out?",
        "Our audit log shows a former employee exported data after they left. How did they "
        "still have access?",
        "Can we enforce hardware security keys for all admins? We had an account takeover "
        "attempt last week.",
        "Someone changed the payout bank details in our workspace without our knowledge. Please "
        "freeze the account.",
        "Is our data encrypted at rest and in transit, and how are the keys managed?",
        "Our clients are receiving invoices from our workspace with a different bank account. "
        "We think the account was compromised.",
        "Your password reset form has no rate limit: I could trigger hundreds of emails to "
        "another user.",
        "Please confirm whether {product} is affected by the {cve} vulnerability.",
        "I got a 2FA code by SMS that I didn't request. Is someone trying to get into my account?",
        "Can you confirm that no customer data was exposed in the incident on {date}?",
        "There's an unknown OAuth app with full access connected to our workspace. Who "
        "installed it?",
    ),
    "integrations_api": (
        "Our {integration} integration stopped syncing on {date}. Nothing new has come through "
        "since.",
        "The API returns {api_error} for every request, even with a freshly generated key.",
        "Webhooks for {event} events are no longer delivered to our endpoint. The delivery log "
        "shows timeouts.",
        "When connecting {integration}, the OAuth screen says 'redirect_uri mismatch'.",
        "We hit the rate limit on {endpoint} although we only send a few requests per minute.",
        "The {integration} sync creates a duplicate record for every contact.",
        "Is there an endpoint to bulk create {object}s? The docs only show single-item requests.",
        "Since the last release, tasks created through the API show up without a due date in the "
        "app.",
        "Our Zapier zap triggers twice for every new {object}.",
        "Pagination on {endpoint} is broken: next_cursor returns the same page again.",
        "The {sdk} SDK throws an exception when I call the list method with a filter.",
        "Slack notifications still go to the old channel after we renamed it.",
        "How do we authenticate a service account against the API without tying it to a "
        "person's login?",
        "The {integration} app disappeared from our integrations page and we can't reconnect it.",
        "Custom fields are missing from the webhook payload for {event}.",
        "Our {integration} connection keeps dropping every few days and we have to re-authorise "
        "it.",
        "The API reference for {endpoint} says the field is optional, but we get a 422 if we "
        "leave it out.",
        "Updates from {product} show up in {integration} hours late.",
    ),
    "data_privacy": (
        "Under GDPR Article 17 I request the deletion of all personal data you hold about me.",
        "Please send me a copy of all the personal data you store about me (a subject access "
        "request).",
        "Our legal team needs a signed Data Processing Agreement before they approve {product}.",
        "In which region is our data stored? We're required to keep customer data inside the EU.",
        "Can you share your current list of subprocessors and tell us when it changes?",
        "A former employee asked us to remove their name and comments from our workspace. How "
        "do we do that properly?",
        "Please stop sending me marketing emails and remove my address from all your lists.",
        "Do you use our workspace content to train AI models? We need to opt out.",
        "How long do you keep our data after an account is closed, and are backups deleted too?",
        "As a California resident I'd like to know what personal information you have collected "
        "about me under the CCPA.",
        "Your cookie banner has no option to reject analytics cookies, which isn't compliant.",
        "We have to fill in a privacy questionnaire for our customers — does {product} process "
        "any special category data?",
        "Can our data be moved from the US region to the EU data centre?",
        "Someone added my personal phone number to a shared workspace I'm not part of. Please "
        "remove it.",
        "Is there a way to anonymise guest users' data after a project ends?",
        "Who at {product} can access our data, and is that access logged?",
        "Please confirm in writing that all data of our old workspace '{workspace}' has been "
        "permanently erased.",
    ),
    "how_to": (
        "How do I add new users to our workspace and give them admin rights?",
        "Is there a way to create recurring {object}s, for example every first Monday of the "
        "month?",
        "How can I move a project from one workspace to another?",
        "Where do I change who gets email notifications for comments?",
        "Can you explain how to set up a template so that new projects start with the same "
        "{object}s?",
        "How do I import our existing data from a {file_type} file?",
        "What's the best way to share the {report} with someone outside the company who doesn't "
        "have an account?",
        "How do I filter the {area} to show only items assigned to me?",
        "I'm new to {product} — how should I set up the {area} for a team of {n_users}?",
        "Where can I find a list of keyboard shortcuts?",
        "How do I restore a {object} that I deleted by accident?",
        "Can I switch the interface language to German for some of our users?",
        "Is it possible to give people different permissions in different projects? How?",
        "How do I download all of our invoices at once?",
        "How do I turn on two-factor authentication for my own account?",
        "Where do I connect {integration} so that due dates show up there?",
        "How do I rename our workspace and change its URL?",
        "Is there already a way to {feature}? I couldn't find it in the settings.",
        "Can you point me to a guide for automations that move {object}s when their status "
        "changes?",
        "What does the 'archived' status mean, and can archived {object}s still be searched?",
    ),
    "shipping": (
        "I ordered {qty} {hardware} on {date} and they still haven't arrived. Tracking number "
        "{tracking} hasn't updated in a week.",
        "The package with our {hardware} arrived damaged — the box was crushed and the device "
        "won't power on.",
        "We received the wrong item: we ordered {hardware} but got {hardware2}.",
        "Can I change the delivery address for order {order}? We moved offices.",
        "{carrier} wants us to pay {amount} in import duties for the {hardware}. Weren't those "
        "included?",
        "How long does delivery to {country} usually take?",
        "Tracking says delivered, but nobody at our office received the {hardware}.",
        "Do you ship replacement {hardware} overnight? Ours stopped working and we need it by "
        "Monday.",
        "Our order {order} has been 'processing' for ten days. When will it ship?",
        "Could you send a return label for the extra {hardware} we don't need?",
        "Only {n} of the {qty} {hardware} we ordered were in the box.",
        "Can you ship the welcome kits directly to our remote employees' home addresses?",
        "The courier came while our office was closed. How do I rebook the delivery with "
        "{carrier}?",
        "Could you combine our two open orders into one shipment?",
        "The parcel with the {hardware} is stuck in customs in {country}. What documents do you "
        "need from us?",
        "Please send me the tracking link for order {order}, I never got a shipping confirmation.",
        "The replacement {hardware} you promised still hasn't shipped. Order {order}.",
    ),
    "feedback": (
        "Just wanted to say the new {area} is fantastic, it's so much faster than before.",
        "{agent} from your support team was incredibly helpful yesterday. Please pass on our "
        "thanks!",
        "Honestly, the redesign made things worse. Everything takes two extra clicks now.",
        "We've used {product} for {years} years and it's still the best tool we've tried.",
        "The latest update removed the compact view that our whole team relied on. Not happy "
        "about that.",
        "Your onboarding emails are a bit much — three in one day felt like spam.",
        "Love the product, but the mobile app feels a lot slower than the web version.",
        "I gave you a 6 in the survey because the price keeps going up while the product stays "
        "the same.",
        "Great job on the {integration} integration, it saves us a lot of manual work.",
        "The new pricing page is confusing. It took me 20 minutes to work out which plan we need.",
        "Thank you for fixing the export problem so quickly, much appreciated!",
        "Your help center articles are out of date, half of the screenshots don't match the app "
        "anymore.",
        "The new notification sound is really annoying. Otherwise a great product.",
        "Kudos for the dark mode, my eyes thank you.",
        "The new {area} looks great, though I miss the old keyboard shortcuts.",
        "I'm disappointed it took almost a week to get a reply to my last ticket.",
        "The webinar on automations last week was really useful, please do more of those.",
        "Five stars from our team. The {area} is exactly what we needed.",
    ),
}

_ONE_LINERS: dict[str, tuple[str, ...]] = {
    "billing": (
        "invoice has the wrong vat number", "how do i update my card", "payment failed again",
        "need a copy of invoice {invoice}", "why is my bill higher this month?",
        "can we pay yearly instead?", "charged {amount}?? we're on {plan}",
        "Please send me the invoice for {date}.",
    ),
    "bug_report": (
        "{area} is broken", "getting {error} when saving", "app keeps crashing",
        "export gives me an empty file", "page won't load", "search is not working",
        "the {button} button does nothing",
    ),
    "feature_request": (
        "pls add dark mode", "any plans for a gantt view?", "would love to {feature}",
        "can you add bulk edit?", "Is recurring tasks something you'd add?",
    ),
    "account_access": (
        "cant login", "reset email not coming", "locked out of my account",
        "2fa code not working", "sso login loop again", "my invite link expired",
    ),
    "refund": (
        "i want a refund", "charged twice, refund please", "where is my refund?",
        "please refund the annual renewal", "money back please, it renewed without warning",
    ),
    "cancellation": (
        "cancel my subscription", "please cancel", "how do i cancel?", "dont renew us",
        "close my account please", "end our plan at the end of the month",
    ),
    "security": (
        "is this email from you? looks like phishing", "someone logged into my account from "
        "{country}", "I think I found a security bug", "need your soc 2 report",
        "our api key leaked, revoke it",
    ),
    "data_privacy": (
        "delete all my data please (gdpr)", "where is our data hosted?", "need a DPA signed",
        "stop emailing me", "send me all personal data you have on me",
    ),
    "shipping": (
        "where is my order?", "{hardware} not delivered yet", "tracking not updating",
        "package arrived damaged", "wrong item in the box",
    ),
    "integrations_api": (
        "{integration} integration stopped working", "api returning {api_error}",
        "webhooks not firing", "zapier not triggering", "oauth redirect error with "
        "{integration}",
    ),
    "how_to": (
        "how do i add a user?", "how to export a report?", "where are the templates?",
        "how do i change my notification settings", "how do I share a board?",
    ),
    "feedback": (
        "love the new update!", "great support, thanks {agent}", "the new ui is confusing",
        "Thanks for the quick fix!", "big fan of the new {area}",
    ),
}  # fmt: skip

_DETAILS: dict[str, tuple[str, ...]] = {
    "billing": (
        "Our company name is {company} and the account email is {email}.",
        "We're on the {plan} plan with {seats} seats.",
        "Finance needs this sorted before the end of the month.",
        "The charge shows up as 'QUILLSTACK* {order}' on our statement.",
        "I've attached a screenshot of the billing page.",
        "Our VAT ID is {vat}.",
        "The invoice number is {invoice}.",
    ),
    "bug_report": (
        "Steps to reproduce: open the {area}, click {button}, then refresh the page.",
        "Browser: {browser}, OS: {os}.",
        "It worked fine until {date}.",
        "I've cleared the cache and tried an incognito window already.",
        "Screenshot attached.",
        "It happens for everyone on our team, not just me.",
        "The request ID on the error page was {req_id}.",
        "We're on version {version}.",
    ),
    "feature_request": (
        "We'd be happy to beta test it.",
        "A few other teams in our company would use it too.",
        "At the moment we export everything to Excel to do this.",
        "This would probably make us upgrade to {plan}.",
        "Happy to explain our use case in more detail on a call.",
    ),
    "account_access": (
        "My login email is {email}.",
        "I tried in {browser} and on my phone.",
        "The error just says 'Something went wrong, please try again later'.",
        "I need access urgently, I have a client presentation at {time}.",
        "Our workspace is {workspace}.quillstack.com.",
    ),
    "refund": (
        "The transaction ID is {invoice}.",
        "I'd prefer the money to go back to the original card.",
        "Please confirm once it's done.",
        "We have already cancelled the subscription.",
        "The two charges are from {date} and {date2}.",
    ),
    "cancellation": (
        "Please confirm once the cancellation is done.",
        "The reason is mostly budget cuts.",
        "We'd like to keep read-only access until {date} if possible.",
        "Thanks for the service over the past {years} years.",
        "The account email is {email}.",
    ),
    "security": (
        "I have not clicked the link.",
        "We've already rotated all our passwords.",
        "I can provide a proof-of-concept video.",
        "Please treat this as urgent.",
        "The sender address was {spoof_email}.",
        "Our security team is in copy.",
    ),
    "integrations_api": (
        "Request ID: {req_id}.",
        "We use the {sdk} SDK, version {version}.",
        'The response body is {"error": "internal"}.',
        "Nothing changed on our side.",
        "The integration was set up by our admin {first}.",
        "Endpoint: {endpoint}.",
    ),
    "data_privacy": (
        "My account email is {email}.",
        "Please confirm within the statutory 30 days.",
        "Our DPO can be reached at {email2}.",
        "We are a healthcare provider, so this is critical for us.",
        "Please include backups and logs.",
    ),
    "how_to": (
        "I looked in the help center but couldn't find it.",
        "A link to the docs would be perfect.",
        "I'm not very technical, so step-by-step instructions would help.",
        "We're on the {plan} plan if that matters.",
    ),
    "shipping": (
        "Shipping address: {address}.",
        "The order was placed by {first} from our office team.",
        "We need the devices before {date} for a store opening.",
        "I've attached a photo of the box.",
        "Order number: {order}.",
    ),
    "feedback": (
        "Keep up the good work!",
        "Just my two cents.",
        "No need to reply, just wanted to share.",
        "Happy to chat more if it's useful.",
    ),
}

_SUBJECTS: dict[str, tuple[str, ...]] = {
    "billing": (
        "Question about invoice {invoice}", "Wrong address on invoice", "Payment failed",
        "Update credit card", "Billing question", "Invoice missing VAT ID", "Price increase?",
        "Charges for inactive seats", "Annual billing", "Receipts for last year",
    ),
    "bug_report": (
        "{area} not loading", "Error {error}", "App crashes on {device}", "Export is empty",
        "Bug: changes not saved", "Something is broken", "Duplicate notifications",
        "Timezone issue with due dates", "Problem with the {area}",
    ),
    "feature_request": (
        "Feature request", "Suggestion", "Idea: {feature}", "Roadmap question",
        "Would love this feature", "Request: bulk edit",
    ),
    "account_access": (
        "Can't log in", "Password reset not working", "Locked out", "Lost my 2FA device",
        "SSO problem", "Invitation expired", "Login issue",
    ),
    "refund": (
        "Refund request", "Double charge", "Charged after cancelling", "Refund status?",
        "Money back", "Refund for annual renewal",
    ),
    "cancellation": (
        "Cancel subscription", "Cancellation", "Please cancel", "Not renewing",
        "Close account", "Downgrade to free",
    ),
    "security": (
        "Suspicious email", "Possible phishing", "Security issue", "Vulnerability report",
        "Unrecognised login", "SOC 2 report request", "Leaked API key",
    ),
    "integrations_api": (
        "{integration} integration not syncing", "API error {api_error}", "Webhooks failing",
        "{integration} sync issue", "API question", "OAuth error", "Rate limiting",
    ),
    "data_privacy": (
        "GDPR request", "Data deletion request", "DPA", "Data residency question",
        "Privacy question", "Subject access request", "Unsubscribe",
    ),
    "how_to": (
        "How to add users?", "Quick question", "How do I do this?", "Help with templates",
        "Question about permissions", "Importing data", "How-to question",
    ),
    "shipping": (
        "Order {order} not received", "Where is my order?", "Damaged delivery", "Shipping",
        "Wrong item received", "Delivery question", "Customs fees",
    ),
    "feedback": (
        "Feedback", "Thank you!", "Some feedback on the new design", "Kudos",
        "Not happy with the update", "A few thoughts",
    ),
}  # fmt: skip

_VAGUE_SUBJECTS = (
    "Help", "Question", "Urgent", "Problem", "Quick question", "Support request",
    "(no subject)", "Issue with my account", "Please help!!", "Hello", "Inquiry",
    "Request", "Following up", "{product}", "Need assistance",
)  # fmt: skip

_CONTEXT = (
    "We've been using {product} for about {years} years.",
    "Our team has {n_users} people.",
    "This is fairly urgent for us.",
    "I checked the help center but couldn't find anything about this.",
    "Happy to jump on a call if that helps.",
    "Our account email is {email}.",
    "I'm the admin of our workspace.",
    "Let me know if you need more information.",
    "We are on the {plan} plan.",
    "Our workspace ID is ws_{req_id}.",
    "I already asked in the community forum but nobody answered.",
    "A colleague had the same question last week.",
    "Sorry if this has been asked before.",
    "We're a small {team} team at {company}.",
)

_FOLLOW_UPS = (
    "Any update on this?",
    "Still not resolved, please help.",
    "Following up on the message below — it's still happening.",
    "Just checking in on this ticket.",
    "I sent the screenshot you asked for, see attached.",
    "Thanks, but that didn't work.",
    "Could someone please look at this? It's been {n} days.",
    "Same problem again today.",
    "Yes, that's the account. What happens next?",
    "Bumping this, we still need an answer.",
)

_CONTENTLESS = (
    "Please call me back, it's about our account.",
    "See attached.",
    "Hello? Is anyone there?",
    "I have a problem, can someone contact me as soon as possible?",
    "Screenshot attached, please advise.",
    "Can you help me with the issue I mentioned on the phone?",
    "My colleague {first} will explain the details, please get in touch with them.",
    "Please have a look at this.",
)

_MIXED_INTROS = (
    "Also, unrelated: ",
    "One more thing — ",
    "PS: ",
    "While I have you: ",
    "Separately, ",
    "And another small thing: ",
)

_AGENT_REPLIES = (
    "Thanks for reaching out! Could you tell us which browser and version you are using?",
    "Thanks for your patience. I've passed this on to our team and will get back to you shortly.",
    "Could you send us a screenshot and the email address of the account in question?",
    "I've looked into your account and made the change. Let us know if anything else comes up.",
    "We're sorry for the trouble. Can you confirm the workspace URL so we can take a look?",
    "Our engineers are investigating and we'll update you as soon as we know more.",
    "Thanks for the details. This should now be resolved — could you try again?",
)

_GREETINGS = (
    "Hi,", "Hello,", "Hi team,", "Hello Quillstack team,", "Dear Support,", "Hi there,",
    "Hey,", "Good morning,", "Hi {agent},", "Dear Sir or Madam,", "Hello support team,",
    "Hi all,", "To whom it may concern,", "Hey Quillstack,", "Good afternoon,",
)  # fmt: skip
_SIGNOFFS = (
    "Thanks,", "Thank you,", "Best,", "Best regards,", "Kind regards,", "Regards,", "Cheers,",
    "Thanks in advance,", "Many thanks,", "Sincerely,", "Thx", "Thank you!", "Warm regards,",
    "All the best,",
)  # fmt: skip

# =============================================================================================
# Templates (German / French): fewer, like a real mostly-English help desk
# =============================================================================================

_FOREIGN: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "de": {
        "billing": (
            (
                "Unsere letzte Rechnung ({invoice}) enthält die falsche Adresse. Können Sie sie "
                "bitte korrigieren?",
                "Die Zahlung für unseren {plan}-Tarif ist fehlgeschlagen. Wie kann ich die "
                "Kreditkarte aktualisieren?",
            ),
            ("Frage zur Rechnung", "Zahlung fehlgeschlagen"),
        ),
        "bug_report": (
            (
                "Beim Öffnen von {area} erscheint immer der Fehler {error}.",
                "Die App stürzt auf meinem {device} direkt nach dem Start ab.",
            ),
            ("Fehler in der App", "Absturz"),
        ),
        "feature_request": (
            (
                "Wäre es möglich, eine Gantt-Ansicht einzubauen? Das würde uns sehr helfen.",
                "Bitte fügen Sie einen Dunkelmodus für die Web-App hinzu.",
            ),
            ("Funktionswunsch", "Vorschlag"),
        ),
        "account_access": (
            (
                "Ich kann mich nicht mehr anmelden, die E-Mail zum Zurücksetzen des Passworts "
                "kommt nicht an.",
                "Mein Konto ist nach mehreren Fehlversuchen gesperrt.",
            ),
            ("Login funktioniert nicht", "Konto gesperrt"),
        ),
        "refund": (
            (
                "Uns wurden {amount} doppelt abgebucht. Bitte erstatten Sie die zweite Zahlung.",
                "Das Jahresabo wurde automatisch verlängert, obwohl wir gekündigt hatten. Wir "
                "bitten um Rückerstattung.",
            ),
            ("Rückerstattung", "Doppelte Abbuchung"),
        ),
        "cancellation": (
            (
                "Hiermit kündigen wir unser Abonnement zum nächstmöglichen Zeitpunkt.",
                "Bitte bestätigen Sie die Kündigung unseres {plan}-Tarifs schriftlich.",
            ),
            ("Kündigung", "Kündigung unseres Abos"),
        ),
        "security": (
            (
                "Ich habe eine verdächtige E-Mail im Namen von {product} erhalten, die nach "
                "meinem Passwort fragt. Ist das Phishing?",
                "In meinem Konto gab es eine Anmeldung aus {country}, die nicht von mir war.",
            ),
            ("Verdächtige Anmeldung", "Phishing?"),
        ),
        "data_privacy": (
            (
                "Gemäß Art. 17 DSGVO beantrage ich die Löschung aller meiner personenbezogenen "
                "Daten.",
                "Wo werden unsere Daten gespeichert? Wir benötigen außerdem einen "
                "Auftragsverarbeitungsvertrag.",
            ),
            ("Datenschutzanfrage", "DSGVO"),
        ),
        "shipping": (
            (
                "Unsere Bestellung {order} ist immer noch nicht angekommen, die "
                "Sendungsverfolgung zeigt seit Tagen nichts Neues.",
                "Das Paket mit dem {hardware} kam beschädigt bei uns an.",
            ),
            ("Lieferung", "Bestellung nicht angekommen"),
        ),
        "integrations_api": (
            (
                "Die {integration}-Integration synchronisiert seit {date} nicht mehr.",
                "Die API liefert bei jeder Anfrage {api_error}.",
            ),
            ("Problem mit der Integration", "API-Fehler"),
        ),
        "how_to": (
            (
                "Wie kann ich neue Benutzer zu unserem Workspace hinzufügen?",
                "Wie exportiere ich einen Bericht als {file_type}?",
            ),
            ("Kurze Frage", "Wie geht das?"),
        ),
        "feedback": (
            (
                "Das neue Dashboard ist großartig, vielen Dank an das ganze Team!",
                "Das neue Design gefällt mir leider gar nicht, alles ist umständlicher geworden.",
            ),
            ("Feedback", "Lob"),
        ),
    },
    "fr": {
        "billing": (
            (
                "Notre dernière facture ({invoice}) ne comporte pas notre numéro de TVA. "
                "Pouvez-vous la corriger ?",
                "Le paiement de notre abonnement {plan} a échoué. Comment mettre à jour la carte "
                "bancaire ?",
            ),
            ("Question sur la facture", "Paiement refusé"),
        ),
        "bug_report": (
            (
                "Quand j'ouvre {area}, j'ai l'erreur {error}.",
                "L'application plante dès que j'ouvre une pièce jointe sur mon {device}.",
            ),
            ("Bug dans l'application", "Erreur"),
        ),
        "feature_request": (
            (
                "Serait-il possible d'ajouter une vue Gantt ? Ce serait très utile pour notre "
                "équipe.",
                "Merci d'ajouter un mode sombre à l'application web.",
            ),
            ("Suggestion de fonctionnalité", "Idée"),
        ),
        "account_access": (
            (
                "Je n'arrive plus à me connecter, l'e-mail de réinitialisation du mot de passe "
                "n'arrive pas.",
                "Mon compte est bloqué après plusieurs tentatives.",
            ),
            ("Problème de connexion", "Compte bloqué"),
        ),
        "refund": (
            (
                "Nous avons été débités deux fois de {amount}. Merci de rembourser le second "
                "paiement.",
                "L'abonnement annuel a été renouvelé alors que nous avions résilié. Nous "
                "demandons un remboursement.",
            ),
            ("Demande de remboursement", "Double prélèvement"),
        ),
        "cancellation": (
            (
                "Je souhaite résilier notre abonnement dès que possible.",
                "Merci de ne pas renouveler notre abonnement {plan}.",
            ),
            ("Résiliation", "Résiliation de l'abonnement"),
        ),
        "security": (
            (
                "J'ai reçu un e-mail suspect au nom de {product} qui demande mon mot de passe. "
                "Est-ce du phishing ?",
                "Il y a eu une connexion à mon compte depuis {country} qui n'était pas moi.",
            ),
            ("Connexion suspecte", "E-mail suspect"),
        ),
        "data_privacy": (
            (
                "Conformément au RGPD, je demande la suppression de toutes mes données "
                "personnelles.",
                "Où sont hébergées nos données ? Nous avons besoin d'un accord de traitement des "
                "données.",
            ),
            ("Données personnelles", "Demande RGPD"),
        ),
        "shipping": (
            (
                "Notre commande {order} n'est toujours pas arrivée et le suivi ne bouge plus.",
                "Le colis contenant le {hardware} est arrivé endommagé.",
            ),
            ("Livraison", "Commande non reçue"),
        ),
        "integrations_api": (
            (
                "L'intégration {integration} ne se synchronise plus depuis {date}.",
                "L'API renvoie {api_error} pour chaque requête.",
            ),
            ("Problème d'intégration", "Erreur API"),
        ),
        "how_to": (
            (
                "Comment ajouter de nouveaux utilisateurs à notre espace de travail ?",
                "Comment exporter un rapport en {file_type} ?",
            ),
            ("Petite question", "Comment faire ?"),
        ),
        "feedback": (
            (
                "Le nouveau tableau de bord est génial, bravo à toute l'équipe !",
                "Le nouveau design est moins pratique qu'avant, c'est dommage.",
            ),
            ("Retour d'expérience", "Bravo"),
        ),
    },
}
_FOREIGN_GREETINGS = {
    "de": ("Hallo,", "Guten Tag,", "Sehr geehrte Damen und Herren,", "Hallo zusammen,"),
    "fr": ("Bonjour,", "Bonjour à tous,", "Madame, Monsieur,", "Bonjour {agent},"),
}
_FOREIGN_SIGNOFFS = {
    "de": ("Viele Grüße", "Mit freundlichen Grüßen", "Beste Grüße", "Danke und Grüße"),
    "fr": ("Cordialement,", "Merci d'avance,", "Bien à vous,", "Bonne journée,"),
}
_FOREIGN_FOLLOW_UPS = {
    "de": ("Gibt es hierzu schon Neuigkeiten?", "Das Problem besteht leider weiterhin."),
    "fr": ("Avez-vous des nouvelles ?", "Le problème persiste toujours."),
}

# =============================================================================================
# Mail client decorations
# =============================================================================================

_DISCLAIMERS = (
    "This email and any attachments are confidential and intended solely for the use of the "
    "individual to whom they are addressed. If you have received this email in error please "
    "notify the sender.",
    "CONFIDENTIALITY NOTICE: The information contained in this message may be privileged and "
    "confidential. Any unauthorised review, use or distribution is prohibited.",
    "The information in this e-mail is confidential and may be legally privileged. It is "
    "intended solely for the addressee.",
    "Please consider the environment before printing this email.",
)
_SENT_FROM = (
    "Sent from my iPhone",
    "Sent from my iPad",
    "Sent from my Android",
    "Sent from my Samsung Galaxy smartphone.",
    "Get Outlook for iOS",
    "Get Outlook for Android",
    "Sent from Mail for Windows",
)
_REPLY_STYLES = (
    "gmail",
    "gmail",
    "outlook_desktop",
    "outlook_desktop",
    "outlook_web",
    "outlook_mac",
    "apple",
    "thunderbird",
    "german",
    "french",
)
_FORWARD_STYLES = ("gmail", "gmail", "outlook", "apple", "thunderbird")
_FORWARD_NOTES = (
    "FYI — forwarding this from one of our users.",
    "See below, can you help with this?",
    "Forwarding from our finance team.",
    "Please see the message from our customer below.",
    "Can someone look at this? Forwarded from a colleague.",
    "",
    "",
)
_TYPO_NEIGHBOURS = {
    "a": "sqz", "s": "adw", "e": "wrd", "r": "etf", "t": "ryg", "i": "uok", "o": "ipl",
    "n": "bmh", "l": "kop", "c": "xvd", "u": "yij", "d": "sfe", "m": "n", "h": "gjn",
}  # fmt: skip
_WORD_RE = re.compile(r"(?<![\w@/.{])[A-Za-z]{4,}(?![\w@/}])")


def _typos(text: str, rng: random.Random, rate: float) -> str:
    """Random character swaps/drops/doublings in a small fraction of the words."""
    if rate <= 0:
        return text

    def mangle(m: re.Match[str]) -> str:
        word = m.group(0)
        if rng.random() >= rate:
            return word
        i = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if kind == 1:
            return word[:i] + word[i + 1 :]
        if kind == 2:
            return word[:i] + word[i] + word[i:]
        near = _TYPO_NEIGHBOURS.get(word[i].lower())
        return word[:i] + (rng.choice(near) if near else word[i]) + word[i + 1 :]

    return _WORD_RE.sub(mangle, text)


def _chatify(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        text = text.lower()
    if rng.random() < 0.5:
        text = text.replace(". ", "\n").rstrip(".")
    return text


def _person(rng: random.Random) -> tuple[str, str, str]:
    first = rng.choice(_FIRST)
    last = rng.choice(_LAST)
    company = rng.choice(_COMPANIES)
    domain = _ascii(company).lower().split()[0].strip("&") + ".example"
    email = f"{_ascii(first).lower()}.{_ascii(last).lower().replace(' ', '')}@{domain}"
    return f"{first} {last}", email, company


def _when(rng: random.Random) -> datetime:
    return datetime(2024, 1, 1, 8, 0) + timedelta(minutes=rng.randrange(60 * 24 * 500))


_DE_MONTHS = (
    "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
    "Oktober", "November", "Dezember",
)  # fmt: skip
_FR_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip
_DE_DAYS = ("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So.")
_FR_DAYS = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")


def _ampm(when: datetime) -> str:
    hour = when.hour % 12 or 12
    return f"{hour}:{when.minute:02d} {'AM' if when.hour < 12 else 'PM'}"


def _reply_header(
    style: str, when: datetime, name: str, email: str, to: str, subject: str
) -> list[str]:
    """Header lines of a quoted reply in the given mail client's style (locale-independent)."""
    full_day = _WEEKDAYS[when.weekday()]
    day = full_day[:3]
    full_mon = _MONTHS[when.month - 1]
    mon = full_mon[:3]
    hm = f"{when.hour:02d}:{when.minute:02d}"
    ampm = _ampm(when)
    if style == "gmail":
        line = f"On {day}, {mon} {when.day}, {when.year} at {ampm} {name} <{email}> wrote:"
        if len(line) > 78:  # Gmail wraps long attribution lines
            cut = line.rfind(" ", 0, 76)
            return [line[:cut], line[cut + 1 :]]
        return [line]
    if style == "outlook_desktop":
        return [
            "-----Original Message-----",
            f"From: {name} <{email}>",
            f"Sent: {full_day}, {full_mon} {when.day}, {when.year} {ampm}",
            f"To: {to}",
            f"Subject: RE: {subject}",
        ]
    if style == "outlook_web":
        return [
            "________________________________",
            f"From: {name} <{email}>",
            f"Sent: {full_day}, {full_mon} {when.day}, {when.year} {hm}",
            f"To: {to} <{to}>",
            f"Subject: Re: {subject}",
        ]
    if style == "outlook_mac":
        return [
            f"From: {name} <{email}>",
            f"Date: {full_day}, {when.day} {full_mon} {when.year} at {hm}",
            f"To: {to}",
            f"Subject: Re: {subject}",
        ]
    if style == "apple":
        return [f"On {when.day} {mon} {when.year}, at {hm}, {name} <{email}> wrote:"]
    if style == "thunderbird":
        return [f"On {when.month}/{when.day}/{when.year % 100:02d} {ampm}, {name} wrote:"]
    if style == "german":
        return [
            f"Am {_DE_DAYS[when.weekday()]}, {when.day}. {_DE_MONTHS[when.month - 1]} {when.year} "
            f"um {hm} Uhr schrieb {name} <{email}>:"
        ]
    return [
        f"Le {_FR_DAYS[when.weekday()]} {when.day} {_FR_MONTHS[when.month - 1]} {when.year} à "
        f"{hm}, {name} <{email}> a écrit :"
    ]


def _quote_lines(text: str) -> list[str]:
    return [f"> {line}" if line else ">" for line in text.split("\n")]


# =============================================================================================
# Ticket assembly
# =============================================================================================


@dataclass
class _Parts:
    """A mail before rendering: paragraphs written by the sender plus optional history."""

    greeting: str
    paragraphs: list[str]
    closing: list[str]  # sign-off, signature lines, "Sent from", disclaimer (as paragraphs)
    quote_header: list[str]
    quote_text: str
    quote_style: str
    forward_header: list[str]
    forward_text: str
    forward_style: str


def _pick_category(rng: random.Random, cats: tuple[str, ...], weights: tuple[float, ...]) -> str:
    return rng.choices(cats, weights=weights)[0]


def _compose_content(
    rng: random.Random, slots: _Slots, category: str, channel: str
) -> tuple[list[str], str]:
    """The sender's own text as paragraphs, and the length mode."""
    r = rng.random()
    one_liner_p = 0.35 if channel == "chat" else 0.1
    if r < one_liner_p:
        mode = "one_liner"
    elif r < one_liner_p + 0.33:
        mode = "short"
    elif r < 0.87:
        mode = "normal"
    else:
        mode = "long"
    intents = _INTENTS[category]
    if mode == "one_liner":
        return [slots.fill(rng.choice(_ONE_LINERS[category]))], mode
    paragraphs = [slots.fill(rng.choice(intents))]
    if mode == "short":
        return paragraphs, mode
    details = list(_DETAILS[category])
    rng.shuffle(details)
    n_details = rng.randint(1, 2) if mode == "normal" else rng.randint(2, 4)
    extra = [slots.fill(d) for d in details[:n_details]]
    if rng.random() < (0.4 if mode == "normal" else 0.9):
        extra.append(slots.fill(rng.choice(_CONTEXT)))
    if mode == "long":
        second = slots.fill(rng.choice(intents))
        if second != paragraphs[0]:
            extra.insert(rng.randrange(len(extra) + 1), second)
        if rng.random() < 0.6:
            paragraphs.insert(0, slots.fill(rng.choice(_CONTEXT)))
        # split into 2-3 paragraphs
        cut = max(1, len(extra) // 2)
        paragraphs.append(" ".join(extra[:cut]))
        paragraphs.append(" ".join(extra[cut:]))
    elif rng.random() < 0.5:
        paragraphs[0] = paragraphs[0] + " " + " ".join(extra)
    else:
        paragraphs.append(" ".join(extra))
    return [p for p in paragraphs if p], mode


def _signature(rng: random.Random, name: str, email: str, company: str) -> list[str]:
    lines = [name]
    if rng.random() < 0.6:
        lines.append(rng.choice(_TITLES) + (f" | {company}" if rng.random() < 0.5 else ""))
    if rng.random() < 0.5 and " | " not in lines[-1]:
        lines.append(company)
    if rng.random() < 0.35:
        phone = f"+{rng.randint(1, 49)} {rng.randint(100, 999)} {rng.randint(10**6, 10**7 - 1)}"
        lines.append(phone)
    if rng.random() < 0.2:
        lines.append(email)
    return lines


def _build(rng: random.Random, category: str, channel: str, language: str) -> tuple[str, str, str]:
    """Returns (subject, body, secondary_category_or_empty)."""
    slots = _Slots(rng)
    name, email, company = _person(rng)
    first = name.split()[0]

    # --- subject and own text ------------------------------------------------------------
    if language != "en":
        intents, subjects = _FOREIGN[language][category]
        paragraphs = [slots.fill(rng.choice(intents))]
        if rng.random() < 0.3:
            alternatives = [t for t in intents if slots.fill(t) != paragraphs[0]]
            if alternatives:
                paragraphs.append(slots.fill(rng.choice(alternatives)))
        subject = slots.fill(rng.choice(subjects))
        mode = "short"
    else:
        paragraphs, mode = _compose_content(rng, slots, category, channel)
        s = rng.random()
        if s < 0.68:
            subject = slots.fill(rng.choice(_SUBJECTS[category]))
        elif s < 0.9:
            subject = slots.fill(rng.choice(_VAGUE_SUBJECTS))
        else:
            subject = ""
        if rng.random() < 0.03:  # no usable content: the topic is at best in the subject
            paragraphs, mode = [slots.fill(rng.choice(_CONTENTLESS))], "one_liner"

    # ~5% mixed-topic tickets: an aside about another category (the label stays primary)
    secondary = ""
    if language == "en" and mode != "one_liner" and rng.random() < 0.05:
        secondary = rng.choice([c for c in CATEGORIES if c != category])
        aside = slots.fill(rng.choice(_ONE_LINERS[secondary] + _INTENTS[secondary][:6]))
        aside = rng.choice(_MIXED_INTROS) + aside[0].lower() + aside[1:]
        paragraphs.append(aside)

    sloppiness = rng.random()
    rate = 0.0 if sloppiness < 0.55 else (0.03 if sloppiness < 0.88 else 0.08)
    paragraphs = [_typos(p, rng, rate) for p in paragraphs]

    # --- channel-specific shaping ----------------------------------------------------------
    if channel == "chat":
        text = "\n".join(_chatify(p, rng) for p in paragraphs)
        if rng.random() < 0.35:
            text = rng.choice(("hi", "hello", "hey there", "hi!")) + "\n" + text
        if rng.random() < 0.2:
            text += "\n" + rng.choice(("thx", "thanks", "ty", "thank you!"))
        subject = rng.choice(("", "", f"Chat with {first}", "Live chat", subject))
        return subject, text, secondary

    if channel == "api":
        text = "\n\n".join(paragraphs)
        if rng.random() < 0.5:
            text += (
                f"\n\n---\nApp version: {slots.get('version')}\n"
                f"Platform: {rng.choice(('web', 'iOS', 'Android', 'macOS', 'Windows'))}\n"
                f"User: u_{_hex(rng, 8)}"
            )
        if rng.random() < 0.4:
            subject = f"[In-app] {subject}" if subject else "[In-app] Message from widget"
        return subject, text, secondary

    if channel == "web_form":
        text = "\n\n".join(paragraphs)
        if rng.random() < 0.3:
            text = f"Name: {name}\nCompany: {company}\nEmail address: {email}\n\nMessage:\n{text}"
        if rng.random() < 0.3:
            subject = rng.choice(("Contact form submission", "Support request", "Website form"))
        return subject, text, secondary

    # --- e-mail ------------------------------------------------------------------------------
    greetings = _FOREIGN_GREETINGS.get(language, _GREETINGS)
    signoffs = _FOREIGN_SIGNOFFS.get(language, _SIGNOFFS)
    greeting = slots.fill(rng.choice(greetings)) if rng.random() < 0.72 else ""
    closing: list[str] = []
    sent_from = rng.random() < 0.08
    if rng.random() < 0.7:
        if rng.random() < 0.15 and language == "en":
            closing.append(f"{rng.choice(('Cheers', 'Thanks', 'Best'))}, {first}")
        else:
            sig = [rng.choice(signoffs)]
            if not sent_from or rng.random() < 0.3:
                sig += _signature(rng, name, email, company) if rng.random() < 0.45 else [first]
            closing.append("\n".join(sig))
    elif rng.random() < 0.3:
        closing.append("-- \n" + "\n".join(_signature(rng, name, email, company)))
    if sent_from:
        closing.append(rng.choice(_SENT_FROM))
    if rng.random() < 0.04:
        closing.append(rng.choice(_DISCLAIMERS))

    parts = _Parts(greeting, paragraphs, closing, [], "", "", [], "", "")
    r = rng.random()
    if r < 0.22:  # reply to an earlier message
        style = rng.choice(_REPLY_STYLES)
        if language == "de":
            style = rng.choice(("german", "outlook_desktop"))
        elif language == "fr":
            style = rng.choice(("french", "gmail"))
        when = _when(rng)
        h = rng.random()
        if h < 0.55:
            agent = rng.choice(_AGENTS)
            history = (
                f"Hi {first},\n\n{rng.choice(_AGENT_REPLIES)}\n\nBest,\n{agent}\n{PRODUCT} Support"
            )
            header = _reply_header(
                style, when, f"{PRODUCT} Support", SUPPORT_ADDRESS, email, subject
            )
            if rng.random() < 0.45:  # short follow-up: the topic is in the history and subject
                pool = _FOREIGN_FOLLOW_UPS.get(language, _FOLLOW_UPS)
                parts.paragraphs = [slots.fill(rng.choice(pool))]
        else:  # the customer's own earlier message is quoted (support replied from elsewhere)
            other = category if h < 0.8 else rng.choice(CATEGORIES)
            history = slots.fill(rng.choice(_INTENTS[other])) + f"\n\nThanks,\n{first}"
            header = _reply_header(style, when, name, email, SUPPORT_ADDRESS, subject)
        parts.quote_header, parts.quote_text, parts.quote_style = header, history, style
        prefix = {"german": "AW: ", "outlook_desktop": "RE: ", "outlook_web": "RE: "}
        subject = prefix.get(style, "Re: ") + subject if subject else subject
    elif r < 0.27:  # forwarded by a colleague or an internal team
        style = rng.choice(_FORWARD_STYLES)
        fwd_name, fwd_email, _ = _person(rng)
        when = _when(rng)
        original = "\n\n".join(([greeting] if greeting else []) + parts.paragraphs + parts.closing)
        parts.forward_text = original
        parts.forward_style = style
        parts.forward_header = _forward_header(style, when, name, email, subject)
        note = rng.choice(_FORWARD_NOTES)
        parts.greeting = ""
        parts.paragraphs = [note] if note else []
        parts.closing = [f"Thanks,\n{fwd_name.split()[0]}"] if note and rng.random() < 0.5 else []
        if subject or rng.random() < 0.5:
            subject = ("FW: " if style == "outlook" else "Fwd: ") + subject
        _ = fwd_email

    if rng.random() < 0.12:
        return subject, _render_html(parts, rng), secondary
    return subject, _render_text(parts), secondary


def _forward_header(style: str, when: datetime, name: str, email: str, subject: str) -> list[str]:
    full_day = _WEEKDAYS[when.weekday()]
    full_mon = _MONTHS[when.month - 1]
    ampm = _ampm(when)
    hms = f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    if style == "gmail":
        return [
            "---------- Forwarded message ---------",
            f"From: {name} <{email}>",
            f"Date: {full_day[:3]}, {full_mon[:3]} {when.day}, {when.year} at {ampm}",
            f"Subject: {subject}",
            f"To: <{SUPPORT_ADDRESS}>",
        ]
    if style == "outlook":
        return [
            "________________________________",
            f"From: {name} <{email}>",
            f"Sent: {full_day}, {full_mon} {when.day}, {when.year} {ampm}",
            "To: Sales <sales@quillstack.com>",
            f"Subject: {subject}",
        ]
    if style == "apple":
        return [
            "Begin forwarded message:",
            "",
            f"> From: {name} <{email}>",
            f"> Subject: {subject}",
            f"> Date: {when.day} {full_mon} {when.year} at {hms} CET",
            f"> To: {SUPPORT_ADDRESS}",
        ]
    return [
        "-------- Forwarded Message --------",
        f"Subject: \t{subject}",
        f"Date: \t{full_day[:3]}, {when.day:02d} {full_mon[:3]} {when.year} {hms} +0100",
        f"From: \t{name} <{email}>",
        f"To: \t{SUPPORT_ADDRESS}",
    ]


def _render_text(parts: _Parts) -> str:
    blocks = ([parts.greeting] if parts.greeting else []) + parts.paragraphs + parts.closing
    text = "\n\n".join(blocks)
    if parts.forward_header:
        if parts.forward_style == "apple":
            fwd = "\n".join([*parts.forward_header, ">", *_quote_lines(parts.forward_text)])
        else:
            fwd = "\n".join(parts.forward_header) + "\n\n\n" + parts.forward_text
        text = f"{text}\n\n{fwd}" if text else fwd
    if parts.quote_header:
        if parts.quote_style.startswith("outlook"):
            history = parts.quote_text
        else:
            history = "\n".join(_quote_lines(parts.quote_text))
        if parts.quote_style == "apple" and len(parts.quote_header) == 1:
            header = "\n".join(_quote_lines(parts.quote_header[0]))
            text += f"\n\n{header}\n>\n{history}"
        else:
            text += "\n\n" + "\n".join(parts.quote_header) + "\n\n" + history
    return text + "\n"


_HTML_HEADS = (
    "",
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>',
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta charset="utf-8">'
    "<style><!-- p.MsoNormal, li.MsoNormal {margin:0cm; font-size:11.0pt; "
    'font-family:"Calibri",sans-serif;} @page WordSection1 {size:612.0pt 792.0pt;} --></style>'
    '</head><body lang="EN-US"><div class="WordSection1">',
    '<html><head><style type="text/css">body{font-family:Helvetica,Arial;font-size:14px}'
    '</style></head><body style="overflow-wrap: break-word;">',
)


def _html_para(text: str, rng: random.Random, cls: str) -> str:
    escaped = html.escape(text, quote=rng.random() < 0.5)
    if rng.random() < 0.3:
        escaped = escaped.replace(" ", "&nbsp;", 1)
    escaped = escaped.replace("\n", "<br>\n")
    if cls:
        return f'<p class="{cls}">{escaped}<o:p></o:p></p>'
    return f'<div dir="ltr">{escaped}</div><div><br></div>'


def _render_html(parts: _Parts, rng: random.Random) -> str:
    head_idx = rng.randrange(len(_HTML_HEADS))
    cls = "MsoNormal" if head_idx == 2 else ""
    out = [_HTML_HEADS[head_idx]]
    blocks = ([parts.greeting] if parts.greeting else []) + parts.paragraphs + parts.closing
    out.extend(_html_para(b, rng, cls) for b in blocks)
    if parts.forward_header:
        header = [line.lstrip("> ") for line in parts.forward_header if line]
        out.append("<div>" + "<br>".join(html.escape(h) for h in header) + "<br><br>")
        out.extend(_html_para(b, rng, cls) for b in parts.forward_text.split("\n\n"))
        out.append("</div>")
    if parts.quote_header:
        quoted = "".join(
            f"<div>{html.escape(p).replace(chr(10), '<br>')}</div>"
            for p in parts.quote_text.split("\n\n")
        )
        if parts.quote_style.startswith("outlook"):
            fields = [h for h in parts.quote_header if ":" in h]
            hdr = "<br>".join(
                "<b>{}:</b>{}".format(*map(html.escape, f.split(":", 1))) for f in fields
            )
            out.append(
                '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
                f'<font face="Calibri, sans-serif" style="font-size:11pt">{hdr}</font>'
                f"<div>&nbsp;</div></div>{quoted}"
            )
        else:
            attr = html.escape(" ".join(parts.quote_header))
            out.append(
                f'<div class="gmail_quote"><div dir="ltr" class="gmail_attr">{attr}<br></div>'
                '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
                f'border-left:1px solid rgb(204,204,204);padding-left:1ex">{quoted}</blockquote>'
                "</div>"
            )
    if head_idx == 2:
        out.append("</div>")
    if head_idx:
        out.append("</body></html>")
    return "\n".join(out)


# =============================================================================================
# Public API
# =============================================================================================


def _resolve_weights(weights: dict[str, float] | None) -> tuple[tuple[str, ...], tuple[float, ...]]:
    chosen = DEFAULT_WEIGHTS if weights is None else weights
    unknown = set(chosen) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories in weights: {sorted(unknown)}")
    if any(w < 0 for w in chosen.values()):
        raise ValueError("weights must be >= 0")
    cats = tuple(c for c in CATEGORIES if chosen.get(c, 0.0) > 0)
    if not cats:
        raise ValueError("at least one category needs a positive weight")
    return cats, tuple(chosen[c] for c in cats)


def generate_tickets(
    n: int,
    seed: int = 0,
    *,
    start: int = 0,
    weights: dict[str, float] | None = None,
) -> Iterator[SyntheticTicket]:
    """Yield ``n`` synthetic tickets with ids ``syn-<seed>-<index>`` for index ``start..start+n-1``.

    Deterministic for ``seed``; each ticket uses its own ``random.Random`` derived from
    ``(seed, index)``, so ``start`` continues a stream exactly. ``weights`` maps categories to
    relative frequencies (categories left out are not generated); default :data:`DEFAULT_WEIGHTS`.
    """
    if n < 0 or start < 0:
        raise ValueError("n and start must be >= 0")
    cats, cat_weights = _resolve_weights(weights)
    for index in range(start, start + n):
        rng = random.Random(f"ticketsort-synthetic:{seed}:{index}")
        category = _pick_category(rng, cats, cat_weights)
        channel = rng.choices(CHANNELS, weights=_CHANNEL_WEIGHTS)[0]
        lang_roll = rng.random()
        language = "de" if lang_roll < 0.025 else "fr" if lang_roll < 0.04 else "en"
        if language != "en" and channel in ("chat", "api"):
            channel = "email"
        subject, body, _secondary = _build(rng, category, channel, language)
        customer_id = f"cus_{_hex(rng, 10)}" if rng.random() < 0.85 else None
        yield SyntheticTicket(
            ticket_id=f"syn-{seed}-{index}",
            subject=subject,
            body=body,
            channel=channel,
            category=category,
            language=language,
            customer_id=customer_id,
        )
