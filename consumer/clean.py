"""Ticket text cleaning shared by serving and training.

The model must see exactly the same text at training time and in the Kafka hot path, so both
sides call :func:`clean_ticket` (or :func:`clean_body`). The functions are pure, never raise on
odd input and are cheap: all regular expressions are compiled once at import time and the common
path is a handful of C-level regex scans (tens of microseconds for a typical ticket).

What is removed, in order:

1. HTML → text (``html.parser`` from the standard library; ``<style>``/``<script>``/``<head>``
   dropped, block elements become line breaks, ``<blockquote>`` becomes ``>``-quoted lines,
   entities unescaped).
2. Invisible characters (zero-width, bidi controls, soft hyphen, C0/C1 controls), then NFKC.
3. Tracking junk: query strings of URLs (overlong paths collapse to the host), ``[cid:...]``
   inline-image placeholders, ``<mailto:...>`` duplicates.
4. Forwarded-message headers ("---------- Forwarded message ---------", "Begin forwarded
   message:" …): the header lines go, the forwarded content is kept.
5. Everything from the first reply header onward ("On … wrote:", "Am … schrieb …:",
   "Le … a écrit :", "-----Original Message-----", Outlook "From:/Sent:" blocks, "____" + From:),
   the signature delimiter "-- ", "Sent from my iPhone"-style lines, legal disclaimers; then
   ``>``-quoted lines and pure separator lines.
6. A closing block at the end ("Thanks,\\nJane", "Best regards,\\nJohn Smith\\nAcme Inc").
7. A greeting at the very start ("Hi team,", "Dear Support,") if text remains after it.
8. Whitespace collapsed to single spaces, output capped at ``max_chars``.

The cleaner never empties a message that has content: if step 6 leaves nothing, the text after
step 5 is used; if that is empty too, the text with only HTML/unicode/whitespace normalisation.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

__all__ = [
    "DEFAULT_MAX_CHARS",
    "clean_body",
    "clean_subject",
    "clean_ticket",
    "html_to_text",
]

DEFAULT_MAX_CHARS = 2000

# Raw input beyond this many characters (or 25 x max_chars, whichever is larger) is not looked at:
# it bounds the work per message in the hot path. Base64 data URIs are dropped first.
_RAW_LIMIT_MIN = 50_000
_RAW_LIMIT_FACTOR = 25

_SIGNOFF_TAIL_LINES = 5  # lines allowed after a sign-off line ("Thanks,\nJane\nCEO\nAcme\n+1 …")
_SIGNOFF_LINE_MAX = 72  # ... and each of those must be at most this long
_MAX_FORWARDS = 8

# --------------------------------------------------------------------------------------------
# Character-level normalisation
# --------------------------------------------------------------------------------------------

_NEWLINE_TRANSLATION: dict[int, int | None] = {
    ord("\r"): ord("\n"),
    0x0B: ord("\n"),
    0x0C: ord("\n"),
    0x85: ord("\n"),
    0x2028: ord("\n"),
    0x2029: ord("\n"),
}
# Zero-width characters, bidi controls, soft hyphen, BOM, C0/C1 controls (tab/newline kept).
for _cp in [
    *range(0x00, 0x09),
    *range(0x0E, 0x20),
    0x7F,
    *range(0x80, 0x85),
    *range(0x86, 0xA0),
    0xAD,
    0x034F,
    0x061C,
    0x180E,
    *range(0x200B, 0x2010),
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2070),
    0xFEFF,
]:
    _NEWLINE_TRANSLATION[_cp] = None
del _cp

_HTML_WS_RE = re.compile(r"[ \t\n\r\f]+")
_HTML_HINT_RE = re.compile(
    r"<(?:!doctype|html|head|body|div|p|br|span|table|tbody|tr|td|th|style|font|ul|ol|li"
    r"|blockquote|a|b|i|u|strong|em|h[1-6]|meta|img|hr|center|pre|o:p)(?=[\s/>])[^<>]{0,1000}>",
    re.IGNORECASE,
)
_ENTITY_RE = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_DATA_URI_RE = re.compile(r"data:[\w/+.-]{1,100};base64,[A-Za-z0-9+/=\r\n]*")

_URL_RE = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+", re.IGNORECASE)
_URL_TRAILING_PUNCT = ".,;:!?)]}'\""
_URL_MAX_KEEP = 80
_JUNK_RE = re.compile(
    r"\[cid:[^\]\n]{0,300}\]|\[image:[^\]\n]{0,300}\]|<mailto:[^>\s]{1,300}>"
    r"|\[mailto:[^\]\s]{1,300}\]|\[Quoted text hidden\]",
    re.IGNORECASE,
)

# --------------------------------------------------------------------------------------------
# Reply / forward / signature markers (all line-anchored, MULTILINE)
# --------------------------------------------------------------------------------------------

_HDR_NAMES = (
    r"(?:From|Date|Sent|Subject|To|Cc|CC|Bcc|Reply-To|Von|Datum|Gesendet|Betreff|An|Kopie"
    r"|De|Envoyé|Objet|À|A|Para|Asunto|Fecha|Enviado|Da|Oggetto|Inviato|Van|Onderwerp|Aan"
    r"|Verzonden|Importance|Wichtigkeit)"
)
_HDR_LINE = rf"[ \t]*\*{{0,2}}{_HDR_NAMES}\*{{0,2}}[ \t]?:[^\n]*(?:\n|\Z)"

# All line-anchored patterns start with a literal "\n" and are searched in "\n" + text: the
# regex engine then skips to newlines with a fast literal scan instead of trying every offset
# (an order of magnitude faster than ``^`` with MULTILINE on long bodies).
_FWD_MARKER_RE = re.compile(
    r"\n[ \t]*(?:"
    r"-{3,}[ \t]*(?i:forwarded message|forwarded e-?mail|weitergeleitete nachricht"
    r"|message transf[ée]r[ée]|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht)"
    r"[ \t]*-{3,}"
    r"|(?i:begin forwarded message|anfang der weitergeleiteten nachricht"
    r"|d[ée]but du message r[ée]exp[ée]di[ée])[ \t]*:"
    r")[ \t]*(?=\n|\Z)"
)
# Header lines (and separator/blank lines) directly after a forward marker.
_FWD_HEADER_RE = re.compile(
    rf"(?:[ \t]*(?:-{{2,}}[^\n]{{0,80}}-{{2,}}|_{{8,}})[ \t]*(?:\n|\Z)|[ \t]*\n|{_HDR_LINE})*"
)
_DEQUOTE_RE = re.compile(r"^[ \t]*> ?", re.MULTILINE)
_QUOTED_START_RE = re.compile(r"\A\s*>")

_FROM = r"(?:From|Von|De|Van|Da|Från|Od)"
_SENT = r"(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Verzonden|Inviato|Skickat|Fecha|Data)"
_TO = r"(?:To|An|À|A|Para|Aan)"
_REPLY_INTRO = r"(?:On|Am|Le|El|Op|Il|Em|Den|W dniu)"
_REPLY_VERB_END = r"(?:wrote|a [ée]crit|escribi[óo]|ha scritto|escreveu|napisa[łl]|kirjoitti|skrev)"
_REPLY_VERB_NAME = r"(?:schrieb|schreef|skrev)"

_HARD_CUT = (
    # "On Tue, Mar 5, 2024 at 10:12 AM Jane Doe <jane@x.com> wrote:" (possibly over 3 lines),
    # "Am 05.03.2024 um 10:12 schrieb Jane Doe <jane@x.com>:", "Le … a écrit :".
    rf"(?P<onwrote>{_REPLY_INTRO}[ \t](?=[^\n]{{0,300}}?\d)"
    rf"[^\n]{{0,300}}?(?:\n[^\n]{{0,300}}?){{0,2}}?"
    rf"(?:{_REPLY_VERB_END}[ \t]?|{_REPLY_VERB_NAME}\b[^\n]{{0,150}}?):[ \t]*$)"
    # -----Original Message----- and translations
    r"|(?P<original>-{2,}[ \t]*(?i:original message|original-nachricht"
    r"|urspr[üu]ngliche nachricht|message d'origine|mensaje original|messaggio originale"
    r"|oorspronkelijk bericht)[ \t]*-{2,})"
    # ________________________________ followed by From:
    rf"|(?P<underscore>_{{8,}}[ \t]*\n(?:[ \t]*\n)*[ \t]*\*{{0,2}}{_FROM}\*{{0,2}}[ \t]?:)"
    # Outlook header block: From: … then Sent:/Date: within a few lines
    rf"|(?P<outlook>\*{{0,2}}{_FROM}\*{{0,2}}[ \t]?:[^\n]{{0,300}}\n"
    rf"(?:[^\n]{{0,300}}\n){{0,3}}?[ \t]*\*{{0,2}}{_SENT}\*{{0,2}}[ \t]?:)"
    # Outlook header squashed onto one line
    rf"|(?P<outlook1>\*{{0,2}}{_FROM}\*{{0,2}}[ \t]?:[^\n]{{1,200}}?[ \t]\*{{0,2}}{_SENT}"
    rf"\*{{0,2}}[ \t]?:[^\n]{{1,200}}?[ \t]\*{{0,2}}{_TO}\*{{0,2}}[ \t]?:)"
)
_SOFT_CUT = (
    # signature delimiter "-- "
    r"|(?P<sigdash>--[ \t]*$)"
    # mobile / client advertising lines
    r"|(?P<sentfrom>(?:Sent from (?:my |Mail |Outlook|Yahoo|AOL|Proton|Samsung|Gmail)"
    r"[^\n]{0,60}|Sent via [^\n]{0,60}|Get Outlook for [^\n]{0,60}"
    r"|Von meinem [^\n]{0,60}gesendet[^\n]{0,10}"
    r"|(?:Gesendet|Envoy[ée]|Enviado) (?:von|de|desde) (?:meinem|mon|mi) [^\n]{0,60})[ \t]*$)"
    # legal disclaimers
    r"|(?P<disclaimer>(?i:confidentiality notice)|DISCLAIMER|IMPORTANT NOTICE"
    r"|(?i:this (?:e-?mail|message|communication|transmission)\b[^\n]{0,80}?"
    r"\b(?:confidential|privileged|intended (?:solely|only|exclusively) for))"
    r"|(?i:the information (?:contained )?in this (?:e-?mail|message)\b[^\n]{0,60}?"
    r"\bconfidential)"
    r"|(?i:diese (?:e-?mail|nachricht)\b[^\n]{0,80}?\bvertraulich)"
    r"|(?i:ce (?:message|courriel|e-?mail)\b[^\n]{0,80}?\bconfidenti)"
    r"|(?i:please consider the environment before printing))"
)
_HARD_CUT_RE = re.compile(rf"\n[ \t]*(?:{_HARD_CUT})", re.MULTILINE)
_CUT_RE = re.compile(rf"\n[ \t]*(?:{_HARD_CUT}{_SOFT_CUT})", re.MULTILINE)
_OUTLOOK_KINDS = frozenset({"original", "underscore", "outlook", "outlook1"})

_QUOTE_LINE_RE = re.compile(r"\n[ \t]*>[^\n]*")
_SEPARATOR_LINE_RE = re.compile(r"\n[ \t]*[-_=*~#.]{3,}[ \t]*(?=\n|\Z)")
_SEPARATOR_ONLY_RE = re.compile(r"[-_=*~#.\s]*")

# --------------------------------------------------------------------------------------------
# Sign-offs and greetings
# --------------------------------------------------------------------------------------------

_UPPER_WORD = r"[A-ZÀ-ÖØ-Þ][\w.'’/-]*"
_SIGNOFF_PHRASES = (
    r"(?:thanks|thank you|thank u|thanx|thx|ty|tia"
    r"|thanks?(?: you)? (?:a lot|again|so much|very much|in advance|for your help"
    r"|for your time|for the help|for your support|for your assistance"
    r"|for looking into (?:this|it))"
    r"|many thanks|much appreciated|appreciated|cheers|best|best regards|kind regards"
    r"|warm regards|warmest regards|regards|best wishes|all the best|sincerely|yours sincerely"
    r"|yours truly|sincerely yours|respectfully|br|kr|rgds|take care"
    r"|have a (?:nice|good|great) (?:day|weekend)"
    r"|mit freundlichen gr[üu](?:ß|ss)en|freundliche gr[üu](?:ß|ss)e|viele gr[üu](?:ß|ss)e"
    r"|beste gr[üu](?:ß|ss)e|liebe gr[üu](?:ß|ss)e|gr[üu](?:ß|ss)e|gru(?:ß|ss)|lg|vg|mfg"
    r"|danke|vielen dank|danke sch[öo]n|merci|merci beaucoup|cordialement|bien cordialement"
    r"|bien [àa] vous|salutations|bonne journ[ée]e|saludos|un saludo|atentamente|gracias"
    r"|merci d'avance|merci par avance|danke im voraus|danke und (?:viele )?gr[üu](?:ß|ss)e)"
)
_SIGNOFF_RE = re.compile(
    rf"[ \t]*(?i:{_SIGNOFF_PHRASES})[ \t]*[,.!:;…]*"
    rf"(?:[ \t]*[-–—]?[ \t]*{_UPPER_WORD}(?:[ \t]+{_UPPER_WORD}){{0,2}})?[ \t]*[,.!]*[ \t]*"
)

_GREETING_NAME = (
    rf"(?:(?!I\b){_UPPER_WORD}|(?i:team|support|there|all|everyone|folks|guys|y'all|again"
    r"|sir|madam|or|and|mr\.?|mrs\.?|ms\.?|dr\.?|damen|und|herren|zusammen|tous|l'[ée]quipe"
    r"|[ée]quipe|le|la|[àa]))"
)
_GREETING_RE = re.compile(
    r"\A\s*(?i:hi|hello|hey|hiya|heya|dear|greetings|good (?:morning|afternoon|evening|day)"
    r"|howdy|hallo|guten (?:tag|morgen|abend)|sehr geehrte[rs]?|liebe[rs]?|moin|servus"
    r"|bonjour|bonsoir|salut|cher|ch[èe]re|madame|monsieur|hola|buenos d[íi]as|ciao|hej"
    r"|to whom it may concern)\b"
    rf"(?:[ \t]+{_GREETING_NAME}){{0,4}}?[ \t]*(?:[,!:;.]+|(?=\n)|\Z)[ \t]*"
)

# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------

_SUBJECT_PREFIX_RE = re.compile(
    r"\A(?:\s*(?:(?i:re|fwd?|aw|wg|tr|sv|vs|antw|antwort|rif|r[ée]f|enc|rv|doorst)"
    r"(?:\[\d{1,3}\]|\(\d{1,3}\))?[ \t]*[:：]"
    r"|\[(?i:external|ext|extern|spam|suspicious|warning|caution)[^\]\n]{0,30}\]"
    r"|\((?i:external)\)))+\s*"
)
_SUBJECT_FWD_RE = re.compile(
    r"\A\s*(?:\[[^\]\n]{0,40}\]\s*)*(?i:fwd?|wg|tr|enc|rv|doorst)(?:\[\d{1,3}\])?[ \t]*[:：]"
)
_EMPTY_SUBJECTS = frozenset(
    {
        "(no subject)",
        "no subject",
        "(kein betreff)",
        "kein betreff",
        "(sans objet)",
        "sans objet",
        "(sin asunto)",
        "(untitled)",
        "untitled",
        "none",
        "-",
    }
)
_SENTENCE_END = ".!?:;…。！？"


# --------------------------------------------------------------------------------------------
# HTML → text
# --------------------------------------------------------------------------------------------

_SKIP_TAGS = frozenset(
    {"style", "script", "head", "title", "noscript", "template", "svg", "xml", "object"}
)
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "tbody", "thead", "tfoot",
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article",
        "header", "footer", "main", "nav", "aside", "dd", "dt", "dl", "address", "center",
        "form", "fieldset", "figure", "figcaption", "caption",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})


class _HTMLTextExtractor(HTMLParser):
    """Collects the visible text of an HTML mail; ``<blockquote>`` content becomes ``> `` lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skip = 0
        self._quote = 0
        self._pre = 0
        self._line_start = True

    def text(self) -> str:
        return "".join(self._parts)

    def _newline(self) -> None:
        self._parts.append("\n")
        self._line_start = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if tag == "body":
            self._skip = 0  # an unclosed <head> must not hide the body
        if tag in _BLOCK_TAGS:
            self._newline()
        if tag == "blockquote":
            self._quote += 1
        elif tag == "pre":
            self._pre += 1
        elif tag in _CELL_TAGS:
            self._parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            return
        if tag in _BLOCK_TAGS:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _BLOCK_TAGS and tag != "br":
            self._newline()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre:
            data = _HTML_WS_RE.sub(" ", data)
        for i, seg in enumerate(data.split("\n")):
            if i:
                self._newline()
            if self._line_start:
                seg = seg.lstrip(" \t")
                if not seg:
                    continue
                if self._quote:
                    self._parts.append("> " * self._quote)
                self._line_start = False
            self._parts.append(seg)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document, with block elements as line breaks.

    ``<style>``, ``<script>`` and ``<head>`` are dropped, entities unescaped, ``<blockquote>``
    content is prefixed with ``> `` so quote removal treats it like plain-text quoting.
    """
    parser = _HTMLTextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # pragma: no cover - html.parser is lenient; never fail the hot path
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return parser.text()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _shorten_url(match: re.Match[str]) -> str:
    url = match.group(0)
    stripped = url.rstrip(_URL_TRAILING_PUNCT)
    trail = url[len(stripped) :]
    q = stripped.find("?")
    f = stripped.find("#")
    cut = min((p for p in (q, f) if p >= 0), default=-1)
    if cut < 0 and len(stripped) <= _URL_MAX_KEEP:
        return url
    base = stripped[:cut] if cut >= 0 else stripped
    if len(base) > _URL_MAX_KEEP:
        scheme_end = base.find("://") + 3
        slash = base.find("/", scheme_end)
        if slash > 0:
            base = base[:slash]
    return base + trail


def _normalise(body: str, max_chars: int) -> str:
    """HTML → text, invisible characters out, NFKC, tracking junk out; line structure kept."""
    limit = max(_RAW_LIMIT_MIN, max_chars * _RAW_LIMIT_FACTOR)
    if len(body) > limit:
        body = _DATA_URI_RE.sub("", body)[:limit]
    text = body.replace("\r\n", "\n")
    if "<" in text and _HTML_HINT_RE.search(text):
        text = html_to_text(text)
    elif "&" in text and _ENTITY_RE.search(text):
        text = html.unescape(text)
    text = text.translate(_NEWLINE_TRANSLATION)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if "[" in text or "<" in text:
        text = _JUNK_RE.sub(" ", text)
    if "://" in text:
        text = _URL_RE.sub(_shorten_url, text)
    return text


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space >= max_chars * 0.8:
        cut = cut[:space]
    return cut.rstrip()


def _split_forwards(text: str, forwarded: bool) -> list[str]:
    """Split at forwarded-message headers, dropping the header lines but keeping the content.

    A forward marker below the first reply header belongs to quoted history and is left alone.
    With ``forwarded`` (the subject said "Fwd:"/"FW:"), an Outlook-style header block that is not
    preceded by an explicit marker is treated as the forward header too.
    ``text`` and every returned segment start with a newline (see the line-anchored patterns).
    """
    segments: list[str] = []
    for _ in range(_MAX_FORWARDS):
        marker = _FWD_MARKER_RE.search(text)
        if marker is None and not forwarded:
            break
        hard = _HARD_CUT_RE.search(text)
        if marker is not None and (hard is None or marker.start() < hard.start()):
            segments.append(text[: marker.start()])
            rest = text[marker.end() :]
        elif forwarded and hard is not None and hard.lastgroup in _OUTLOOK_KINDS:
            segments.append(text[: hard.start()])
            rest = text[hard.start() :]
        else:
            break
        forwarded = False
        if _QUOTED_START_RE.match(rest):  # Apple Mail quotes the forwarded message
            rest = _DEQUOTE_RE.sub("", rest)
        header = _FWD_HEADER_RE.match(rest)
        text = "\n" + (rest[header.end() :] if header else rest)
    segments.append(text)
    return segments


def _strip_signoff(segment: str) -> str:
    """Remove a closing block ("Thanks,\\nJane\\nAcme Inc") at the end of a segment."""
    segment = segment.rstrip()
    max_split = 2 * _SIGNOFF_TAIL_LINES + 2
    parts = segment.rsplit("\n", max_split)
    if len(parts) > max_split:  # long segment: parts[0] holds everything above the tail
        head: list[str] = [parts[0]]
        tail = parts[1:]
    else:
        head = []
        tail = parts
    nonempty = [i for i, line in enumerate(tail) if line.strip()]
    candidates = nonempty[-(_SIGNOFF_TAIL_LINES + 1) :]
    for pos, idx in enumerate(candidates):
        line = tail[idx]
        if len(line) > 60 or not _SIGNOFF_RE.fullmatch(line):
            continue
        if all(len(tail[j].strip()) <= _SIGNOFF_LINE_MAX for j in candidates[pos + 1 :]):
            return "\n".join([*head, *tail[:idx]])
    return segment


def _strip_greeting(text: str) -> str:
    for _ in range(4):
        m = _GREETING_RE.match(text)
        if m is None or m.end() == 0:
            break
        rest = text[m.end() :]
        if not rest.strip():
            break
        text = rest
    return text


def _remove_history(text: str, forwarded: bool) -> list[str]:
    """Forward headers, quoted replies, signatures, disclaimers, ``>`` lines and separator lines
    removed; one entry per kept (non-blank) segment."""
    kept: list[str] = []
    for seg in _split_forwards(text, forwarded):
        m = _CUT_RE.search(seg)
        if m is not None:
            seg = seg[: m.start()]
        if ">" in seg:
            seg = _QUOTE_LINE_RE.sub("", seg)
        seg = _SEPARATOR_LINE_RE.sub("", seg)
        if seg.strip():
            kept.append(seg)
    return kept


def _is_greeting_only(text: str) -> bool:
    m = _GREETING_RE.match(text)
    return m is not None and not text[m.end() :].strip()


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def clean_body(body: str, *, max_chars: int = DEFAULT_MAX_CHARS, forwarded: bool = False) -> str:
    """Clean one ticket body (plain text or HTML mail) into a single line of at most ``max_chars``.

    ``forwarded=True`` (set by :func:`clean_ticket` for "Fwd:"/"FW:" subjects) keeps the content
    below an Outlook-style header block instead of cutting it as a quoted reply.
    """
    if max_chars < 0:
        raise ValueError("max_chars must be >= 0")
    if not body or max_chars == 0:
        return ""
    base = "\n" + _normalise(body, max_chars)

    quoted_out = _remove_history(base, forwarded)
    if not quoted_out and not forwarded:
        # Nothing above the first header: an Outlook-style forward without a note. Keep what
        # is below the header block rather than falling back to the raw text.
        quoted_out = _remove_history(base, True)

    text = ""
    if quoted_out:
        signed_out = [s for s in (_strip_signoff(seg) for seg in quoted_out) if s.strip()]
        parts = [_strip_greeting(seg) for seg in signed_out]
        parts = [p for p in parts if not _is_greeting_only(p)] or parts
        text = _collapse(_strip_greeting("\n\n".join(parts)))
        if not text:
            text = _collapse("\n\n".join(quoted_out))
    if not text:
        text = _collapse(base)
    text = _truncate(text, max_chars)
    return "" if _SEPARATOR_ONLY_RE.fullmatch(text) else text


def clean_subject(subject: str | None) -> str:
    """Subject without Re:/Fwd:/AW:/WG: prefixes and [EXTERNAL] tags, on one line."""
    if not subject:
        return ""
    text = subject.translate(_NEWLINE_TRANSLATION)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = _collapse(_SUBJECT_PREFIX_RE.sub("", text))
    if text.casefold() in _EMPTY_SUBJECTS:
        return ""
    return text


def clean_ticket(subject: str | None, body: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Subject and body as one "subject. body" string (what the model sees).

    The subject is skipped when it is empty, only reply/forward prefixes, or when the cleaned
    body already starts with it.
    """
    forwarded = bool(subject) and _SUBJECT_FWD_RE.match(subject or "") is not None
    text = clean_body(body, max_chars=max_chars, forwarded=forwarded)
    subj = clean_subject(subject)
    if not subj:
        return text
    if not text:
        return _truncate(subj, max_chars)
    key = subj.rstrip(_SENTENCE_END + " ").casefold()
    if key and text.casefold().startswith(key):
        return text
    sep = " " if subj[-1] in _SENTENCE_END else ". "
    return _truncate(subj + sep + text, max_chars)
