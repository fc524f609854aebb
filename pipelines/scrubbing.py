"""PII scrubbing, the first pipeline stage: personal data out of `payload` and `client_ip`.

What is filtered is replaced with `[Filtered]`, keeping the event's shape (a filtered value
stays under its key, lists keep their length, the JSON stays valid):

* the values of sensitive keys (`password`, `X-Api-Key`, `csrfmiddlewaretoken`, `Cookie`, ...)
  anywhere in the event: dict items, `[name, value]` pairs (how SDKs send headers, query
  strings, cookies, tags) and `key=value` / `key: value` inside text (form bodies, query
  strings, log messages, reprs of frame variables), URL-encoded too, however many times (a
  redirect target's query: `next=%2Flogin%3Fpassword%3D[Filtered]`; URL-encoded JSON: a
  quoted value goes to its closing quote; a cookie header: all its cookies);
* in every string: emails, credit-card numbers (Luhn), IBANs (mod 97), US SSNs,
  `Bearer`/`Basic`/`Token` credentials, passwords in URLs, PEM private keys, and a project's
  extra patterns;
* `user.email`; IP addresses (`client_ip`, `user.ip_address`, forwarding headers) are kept,
  hashed or dropped per project.

How the work is split, for speed. Parsing an event in Python costs more than running a
Rust regex over its JSON text, so most rules run vectorized over the `payload` column:

1. Rules that a regex can apply to JSON text directly (private keys, URL passwords, emails,
   auth credentials, string and number values of sensitive keys) run as Polars
   `str.replace_all`. These regexes are written for JSON text: they read escapes (`\\n`,
   `\\"`, `\\/`, `\\u00e9`) as one character and never start or end inside one, so a
   replacement cannot break the JSON. The heaviest replacements that keep groups run in two
   cheaper passes (`_replace_marked`).
2. Triggers (also Rust regexes, each a superset of what its Python rule can match) pick the
   events that need the rest: `key=value` inside text, containers under sensitive keys,
   candidate card numbers / IBANs / SSNs (checksums need Python), IP fields, extra patterns.
3. Only those events are parsed and walked in Python, running only the rules they triggered.
   Except where `key=value` in text is the only rule left and every string it could apply
   to is plain (query strings, URLs, `id: 5`): there it runs as a regex over the JSON text
   too (`_quick_key_values`); parsed, such an event equals what the walk makes of it.

The same rules exist as Python regexes over decoded strings (`scrub_text`, the walk, and
`scrub_event_json`, which applies everything in Python); the tests check that both paths
agree.

Choices worth knowing:

* Card numbers: 13-19 digits passing Luhn *and* starting with an issuer digit 2-6 (which
  spares millisecond timestamps), written whole or in groups of 3-6 with one kind of
  separator. IBANs: capitals, whole or in groups of four, registered country length, mod 97.
* `user.id` and `user.username` identify the affected user: they get the pattern rules
  (an email used as username goes) but not the number rules (numeric ids are not cards).
* `scheme://user:password@host` keeps the scheme, user and host; `scheme://user@host`
  (no password) reads as an email and is filtered.
* ip modes: `hash` is an HMAC-SHA256 of the address with the installation's salt (32 hex
  characters); `drop` empties `client_ip` and `user.ip_address` and filters IP headers.
  `"{{auto}}"` in `user.ip_address` is resolved to the sender's IP first.
* Payloads that are not JSON objects are left as they are; text that starts like an object
  but does not parse still gets the JSON-text rules.
* An event orjson refuses but Python's json reads (NaN, ±Infinity, 1e400, lone surrogates:
  raw rows of an older ingest, a direct insert) gets every rule in Python and is written
  back as the later stages read JSON: those numbers as null, a lone surrogate as U+FFFD.
  Such events are found in the pass that looks for card numbers, at no cost to the others.
* A key repeated in one object keeps its last value, as parsers read it: the walk sees only
  that one, so an event (or JSON held in a string) that repeats a key is written again even
  when the walk changed nothing, and no earlier value stays in its text.
* Scrubbing what was scrubbed changes nothing, so a time range can be reprocessed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote

import orjson
import polars as pl

MARKER = "[Filtered]"

IpMode = Literal["keep", "hash", "drop"]
_IP_MODES = ("keep", "hash", "drop")


@dataclass(frozen=True)
class ScrubConfig:
    """A project's scrubbing settings.

    `extra_patterns` are Python regexes; their matches are filtered in every string.
    `safe_fields` are key names (case-insensitive) whose values are never filtered.
    `hash_salt` makes `ip_mode="hash"` hashes differ between installations.
    """

    ip_mode: IpMode = "keep"
    extra_patterns: tuple[str, ...] = ()
    safe_fields: tuple[str, ...] = ()
    hash_salt: str = ""

    def __post_init__(self) -> None:
        # Checked here so that project settings can validate input by building a ScrubConfig.
        if self.ip_mode not in _IP_MODES:
            raise ValueError(f"ip_mode must be one of {_IP_MODES}, not {self.ip_mode!r}")
        for pattern in self.extra_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"invalid extra pattern {pattern!r}: {error}") from None


_DEFAULT = ScrubConfig()


def hash_ip(ip: str, salt: str) -> str:
    """The stand-in for an IP address in `hash` mode: stable per installation, and not
    reversible without the salt (a plain hash of the 2^32 IPv4 addresses is)."""
    return hmac.new(salt.encode(), ip.encode(), hashlib.sha256).hexdigest()[:32]


# --- Sensitive key names ----------------------------------------------------------------------

# Written as plain regex alternations so that the same definition runs in Python (on a key)
# and inside the Rust regexes over JSON text. Matched case-insensitively.
# Stems a key only has to contain: "user_password", "X-Api-Key", "csrfmiddlewaretoken".
_CONTAINED = (
    r"password|passwd|passphrase|secret|api[-_. ]?key|credential|csrf|xsrf"
    r"|private[-_. ]?key|credit[-_. ]?card|card[-_. ]?number|cookie|authorization"
    r"|sess(?:ion)?[-_. ]?id|session[-_. ]?key|session[-_. ]?data|access[-_. ]?key"
    r"|auth[-_. ]?(?:key|header|data|code)|authentication|token[-_. ]?value"
)
# Stems that must end a word: "oauth", "access_token", "authToken", but not "author",
# "max_tokens" or "sessions".
_WORD_END = r"pwd|token|auth|session"
# Stems that must be a whole word: "pass", "db_pass", but not "bypass" or "passenger".
_WORD = r"pass|ssn|cvv|cvc|jwt"
_SENSITIVE_KEY_RE = re.compile(
    rf"{_CONTAINED}|(?:{_WORD_END})(?![a-z])|(?<![a-z])(?:{_WORD})(?![a-z])", re.IGNORECASE
)
# Lowercase literals at least one of which every sensitive key contains: a cheap first test.
_STEM_LITERALS = (
    r"pass|pwd|secret|apikey|api_key|api-key|api\.key|api key|credential|csrf|xsrf|private"
    r"|card|cookie|auth|sess|token|ssn|cvv|cvc|jwt"
    r"|access_key|accesskey|access-key|access\.key|access key"
)

_key_cache: dict[str, bool] = {}


def is_sensitive_key(name: str) -> bool:
    """Whether values under this key name are filtered (before a project's safe fields)."""
    known = _key_cache.get(name)
    if known is None:
        known = _SENSITIVE_KEY_RE.search(name) is not None
        if len(_key_cache) > 50_000:  # keys can be arbitrary (frame vars, extra): stay bounded
            _key_cache.clear()
        _key_cache[name] = known
    return known


# Keys whose values are client IP addresses; they follow the project's ip mode. Header names
# of proxies and CDNs (x-forwarded-for, cf-connecting-ipv6, fastly-client-ip, ...), as CGI
# environment names too (HTTP_X_REAL_IP), and SDK fields (ip_address, client_ip).
_IP_KEY_RE = re.compile(
    r"(?:^|[-_])(?:ip[-_]?address|client[-_]ip|remote[-_]addr|real[-_]ip|connecting[-_]ipv?6?"
    r"|forwarded(?:[-_]for)?|external[-_]address)$"
)


def is_ip_key(lowered: str) -> bool:
    """Whether values under this (lowercased) key name are client IPs."""
    return _IP_KEY_RE.search(lowered) is not None


_AUTO_IP_RE = re.compile(r"\{\{\s*auto\s*\}\}")  # "fill in the sender's IP", from SDKs


# --- Rules over decoded strings (Python) ------------------------------------------------------

_PRIVATE_KEY_RE = re.compile(
    # Without an END line (SDKs truncate long strings) the rest of the string goes too, up
    # to a quote (the end of a string in JSON held in the string).
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r'(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[^"]*)',
    re.DOTALL,
)
_URL_PASSWORD_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/?#@\[\]]*:)[^\s/?#@]+@")
_EMAIL_RE = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@[^\W_][\w\-]*(?:\.[\w\-]+)*\.[^\W\d_]{2,}")
_ENCODED_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]+%40[^\W_][\w\-]*(?:\.[\w\-]+)*\.[^\W\d_]{2,}"
)
# A credential after an auth scheme has a digit, a symbol or a lower-to-upper change, or is
# long: "Bearer eyJhbGciOi...", "Basic dXNlcjpwYXNz", but not "token expired", "Basic usage".
_SCHEMES = r"Bearer|bearer|BEARER|Basic|basic|BASIC|Token|token|TOKEN"
_AUTH_RE = re.compile(
    rf"(?<!\w)({_SCHEMES})(\s+)"
    r"(?:[\w\-.~+/]*(?:[0-9_\-~+/]|\.\w|[a-z][A-Z])[\w\-.~+/]*|[\w\-.~+/]{20,})"
)
_SSN_RE = re.compile(r"(?<![\w\-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![\w\-])")
# Digit groups joined by single spaces or dashes, at least 13 digits; decimals are not cards.
_CARD_CANDIDATE_RE = re.compile(
    r"(?<![\w.\-])(?=(?:[0-9][ \-]?){13})[0-9]+(?:[ \-][0-9]+)*(?![\w\-]|\.[0-9])"
)
_DIGIT_RUN_RE = re.compile(r"[0-9]+")
# IBANs are written whole or in groups of four separated by spaces.
_IBAN_RE = re.compile(
    r"(?<![A-Za-z0-9])([A-Z]{2})[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
    r"(?![A-Za-z0-9])"
)
# `key=value`, `key: value`, `key => value`, `"key": "value"`, `'key': b'value'` inside text.
# The value is a quoted string (to the end of the text if its quote was left open), or runs to
# whitespace, `&`, a quote, or a `,`/`;` followed by a space (so a password containing a comma
# goes whole, while "password=x, user=y" keeps "user=y").
_KEY_VALUE_RE = re.compile(
    r"""(?<![\w\-.])([\w\-.]+)(["']?\s*(?:=>|[=:])\s*)"""
    r"""([bBuU]?"(?:[^"\\]|\\.)*"|[bBuU]?'(?:[^'\\]|\\.)*'"""
    r"""|["'](?:[^"'\\]|\\.)*\Z"""  # a quote an SDK's truncation left open
    rf"""|(?:(?:{_SCHEMES})\s+)?(?:[^\s&,;"']|[,;](?=\S))+)"""
)
# printf- and format-style placeholders: a message template's `password=%s` is no secret.
_PLACEHOLDER_RE = re.compile(
    r"%(?:\((\w+)\))?[#0\- +]*(?:\*|[0-9]+)?(?:\.(?:\*|[0-9]+))?[diouxXeEfFgGcrsa%]"
    r"|\{(\w*)(?:[:!][^{}]*)?\}"
)
# Words that describe a credential's state in an error message rather than being one:
# "Invalid token: expired", "Password: too short" keep their meaning (and their issue).
_STATUS_WORDS = (
    "expired|revoked|invalid|missing|malformed|required|empty|none|null|undefined|true|false"
    "|too|not|is|was|must|cannot|incorrect|wrong|mismatch|unknown|denied|rejected"
)
_STATUS_WORD_RE = re.compile(rf"(?:{_STATUS_WORDS})", re.IGNORECASE)
_SLOT_KEY_RE = re.compile(r"([\w\-.]+)[\"']?\s*(?:=>|[=:])\s*[\"']?$")
# `key=value` URL-encoded inside text: a redirect target in a query string
# (`next=%2Flogin%3Fpassword%3Dhunter2`), a form body sent as a value, URL-encoded JSON
# (`%22token%22%3A%22x%22`, or `%22token%22:%22x%22` as `encodeURI` leaves it), text encoded
# again any number of times (`%253D`, `%25253D`: `%25` before an escape's digits). This regex
# finds a key and its separator; the value is read by `_Scrubber._encoded_key_values`. A key
# starts after a whole escape (taken in the match, so that a deeper one is read whole), a `%`
# that starts none, or a character no key has, never inside an escape (the `F` of `%3F` is
# none of `password`, nor the `3F` of `%253F`). The separator is an encoded `=`/`:` (group 3:
# its `%` and `25`s, which tell how deep the pair is encoded), or a plain one after an encoded
# quote (group 4) or before one; spaces around it are `%20`, `+` or plain; a quote opening the
# value, encoded or not (`password%3D"hunter 2"`), is group 5 (all of them are in group 2).
_PCT = r"%(?:25)*"
_ENCODED_QUOTE = rf"{_PCT}2[27]"
_ENCODED_SPACES = rf"(?:{_PCT}20|[+ \t])*"
_ENCODED_KEY_VALUE_RE = re.compile(
    rf"(?:{_PCT}(?!25[0-9A-Fa-f]{{2}})[0-9A-Fa-f]{{2}}|(?<=%)(?![0-9A-Fa-f]{{2}})"
    r"|(?<![\w\-.%]))([\w\-.]++)"  # possessive: no separator starts with a key character
    rf"((?:(?:{_ENCODED_QUOTE})?{_ENCODED_SPACES}({_PCT})3[aAdD]{_ENCODED_SPACES}"
    rf"|({_ENCODED_QUOTE}){_ENCODED_SPACES}[=:]{_ENCODED_SPACES}"
    rf"|{_ENCODED_SPACES}[=:]{_ENCODED_SPACES}(?={_ENCODED_QUOTE}))"
    rf"({_ENCODED_QUOTE}|[\"'])?)"
)
# Whether a text may hold such a pair: an encoded `=`, `:` or quote.
_ENCODED_HINT_RE = re.compile(rf"{_PCT}(?:3[aAdD]|2[27])")
_ENCODED_QUOTE_RE = re.compile(_ENCODED_QUOTE)


@lru_cache(maxsize=32)
def _encoded_value_re(level: int) -> re.Pattern[str]:
    """An unquoted value of a pair encoded `level` times. It ends where a plain one does, at
    whitespace, `&`, a quote, or `,`/`;` before a space, written plain or encoded at most
    `level` times (`+` is a space): what is encoded more belongs to the value (the `&` of a
    password `ab&cd` in a redirect target: `password%3Dab%2526cd`)."""
    end = rf"%(?:25){{0,{level - 1}}}(?:2[0267]|0[9aAdD])|\+"
    return re.compile(
        rf"(?:(?:{_SCHEMES})(?:{_PCT}20|\+)+)?(?:(?!{end})[^\s&\"',;]|[,;](?=\S))+")


@lru_cache(maxsize=32)
def _encoded_cookie_end_re(level: int) -> re.Pattern[str]:
    """Where an encoded cookie header (`Cookie%3A%20a%3Db%3B%20sid%3Dx`) ends: at a line end
    encoded as deep as it, or where the text it is a value of goes on (encoded less deep)."""
    shallower = (rf"|%(?:25){{0,{level - 2}}}(?:2[0267]|0[9aAdD])|\+" if level > 1 else "")
    return re.compile(rf"[\s&\"']|%(?:25){{{level - 1}}}0[aAdD]{shallower}")


def _closing_quote(text: str, start: int, quote: str) -> int:
    """Where the encoded `quote` closing a value that starts at `start` is (one escaped by
    an encoded backslash of the same depth, or a backslash if it is a plain quote, does not
    close it); the text's length if none."""
    backslash = quote[:-2] + "5c" if len(quote) > 1 else "\\"
    pos = start
    while (close := text.find(quote, pos)) >= 0:
        escaped = False
        before = close
        while before - len(backslash) >= start and (
                text[before - len(backslash):before].lower() == backslash):
            escaped = not escaped
            before -= len(backslash)
        if not escaped:
            return close
        pos = close + len(quote)
    return len(text)


def _encoding_depth(escape_start: str) -> int:
    """How many times an escape starting `%`, `%25`, `%2525`... was encoded."""
    return (len(escape_start) - 1) // 2 + 1


# Registered IBAN lengths by country (ISO 13616); a candidate of another length is not one.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits (every card number passes it)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Country, length and the ISO 7064 mod-97 check of an IBAN written without spaces."""
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not (iban.isascii() and iban.isalnum()):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _is_card(window: str, digits: str, groups: int) -> bool:
    # Issuer prefixes start with 2-6, which also spares millisecond timestamps ("17...").
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    if groups > 1:
        # Printed cards group digits by 3-6 with one kind of separator; dates and phone
        # numbers ("2024-05-22 ...") do not.
        if (" " in window) == ("-" in window):
            return False
        if any(not 3 <= len(part) <= 6 for part in re.split(r"[ \-]", window)):
            return False
    return luhn_valid(digits)


def _filter_cards_in(match: re.Match[str]) -> str:
    # The candidate may hold a card next to other numbers ("order 12 4111 1111 1111 1111"):
    # try windows of whole digit groups, longest first, left to right.
    text = match.group()
    runs = [(run.start(), run.end()) for run in _DIGIT_RUN_RE.finditer(text)]
    pieces: list[str] = []
    kept_from = 0
    first = 0
    while first < len(runs):
        ends: list[int] = []
        count = 0
        for last in range(first, len(runs)):
            count += runs[last][1] - runs[last][0]
            if count > 19:
                break
            ends.append(last)
        found = 0
        for last in reversed(ends):
            window = text[runs[first][0]:runs[last][1]]
            digits = window.replace(" ", "").replace("-", "")
            if _is_card(window, digits, last - first + 1):
                found = last + 1
                break
        if found:
            pieces += (text[kept_from:runs[first][0]], MARKER)
            kept_from = runs[found - 1][1]
            first = found
        else:
            first += 1
    if not pieces:
        return text
    pieces.append(text[kept_from:])
    return "".join(pieces)


def _filter_iban(match: re.Match[str]) -> str:
    text = match.group()
    length = _IBAN_LENGTHS.get(match.group(1))
    if length is None:
        return text
    # The candidate may run on into following groups ("AT61 1904 3002 3457 3201 RENT"): take
    # the country's length of characters, if the IBAN ends there at a space or the end.
    seen = 0
    end = len(text)
    for index, char in enumerate(text):
        if char != " ":
            seen += 1
            if seen == length:
                end = index + 1
                break
    if seen < length or (end < len(text) and text[end] != " "):
        return text
    if not iban_valid(text[:end].replace(" ", "")):
        return text
    return MARKER + _ibans(text[end:])  # the rest may start another IBAN


def _filter_ssn(match: re.Match[str]) -> str:
    area, group, serial = match.groups()
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return match.group()  # never issued, so not an SSN
    return MARKER


def _private_keys(text: str) -> str:
    return _PRIVATE_KEY_RE.sub(MARKER, text) if "PRIVATE KEY" in text else text


def _url_passwords(text: str) -> str:
    if "@" not in text or "://" not in text:
        return text
    return _URL_PASSWORD_RE.sub(rf"\1{MARKER}@", text)


def _emails(text: str) -> str:
    if "@" in text:
        text = _EMAIL_RE.sub(MARKER, text)
    if "%40" in text:  # URL-encoded, in query strings and form bodies
        text = _ENCODED_EMAIL_RE.sub(MARKER, text)
    return text


def _auth_credentials(text: str) -> str:
    if not any(map(text.__contains__, _SCHEME_HINTS)):
        return text
    return _AUTH_RE.sub(rf"\1\2{MARKER}", text)


_SCHEME_HINTS = ("earer", "EARER", "asic", "ASIC", "oken", "OKEN")


def _digit_count(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _numbers(text: str) -> str:
    # SSNs and card numbers need 9 and 13 digits; most strings have far fewer.
    if _digit_count(text) < 9:
        return text
    text = _SSN_RE.sub(_filter_ssn, text)
    return _CARD_CANDIDATE_RE.sub(_filter_cards_in, text)


def _ibans(text: str) -> str:
    return _IBAN_RE.sub(_filter_iban, text)


# The pattern rules that the vectorized pass also applies to JSON text; the order matters:
# a key block contains anything, and `user:pw@host.com` must not be read as an email.
_PATTERN_RULES: tuple[Callable[[str], str], ...] = (
    _private_keys, _url_passwords, _auth_credentials, _emails,
)


# --- The same rules over JSON text (Rust regexes, run by Polars) ------------------------------

_U = r"\\u[0-9a-fA-F]{4}"  # a \uXXXX escape, read as one character
# An escape that may stand for a letter (Latin, Greek, Cyrillic, ..., CJK, Hangul) but not for
# a space, punctuation or an emoji (a surrogate pair), so that a match does not run on into
# its neighbours; and the other escapes.
_U_LETTER = (
    r"\\u(?:00[c-fC-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|1[0-9a-fA-F]{3}"
    r"|2[c-fC-F][0-9a-fA-F]{2}|30[4-9a-fA-F][0-9a-fA-F]|3[1-9a-fA-F][0-9a-fA-F]{2}"
    r"|[4-9a-cA-C][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}|[fF][9aA][0-9a-fA-F]{2}"
    r"|[fF][fF](?:[2-5][0-9a-fA-F]|[6-9a-dA-D][0-9a-fA-F]))"
)
_U_OTHER = (
    r"\\u(?:00[0-9a-bA-B][0-9a-fA-F]|2[0-9a-bA-B][0-9a-fA-F]{2}|30[0-3][0-9a-fA-F]"
    r"|[dD][89a-fA-F][0-9a-fA-F]{2}|[eE][0-9a-fA-F]{3}|[fF][0-8b-eB-E][0-9a-fA-F]{2}"
    r"|[fF][fF](?:[01][0-9a-fA-F]|[e-fE-F][0-9a-fA-F]))"
)

# What may precede a match: a character that is not part of it, or a whole escape. Starting
# with it (and putting it back) is how a regex without look-behind starts at a boundary; the
# leftmost match then never starts inside an escape such as the `n` of `\n`.
_BEFORE_EMAIL = rf"(^|[^\w.%+\-\\]|\\[nrtbf\"\\/]|{_U})"
_LABEL_CHAR = rf"(?:[\w\-]|{_U_LETTER})"
_JSON_EMAIL = (
    _BEFORE_EMAIL
    + rf"(?:[\w.%+\-]|{_U_LETTER})+@(?:[^\W_]|{_U_LETTER}){_LABEL_CHAR}*"
    + rf"(?:\.{_LABEL_CHAR}+)*"
    + rf"\.(?:[^\W\d_]|{_U_LETTER}){{2,}}"
)
_JSON_ENCODED_EMAIL = (
    _BEFORE_EMAIL + r"[\w.%+\-]+%40[^\W_][\w\-]*(?:\.[\w\-]+)*\.[^\W\d_]{2,}"
)
_JSON_URL_PASSWORD = (
    rf"([a-zA-Z][a-zA-Z0-9+.\-]*:(?:\\?/){{2}}(?:[^\s:/?#@\[\]\"\\]|\\[\"\\]|{_U})*:)"
    rf"(?:[^\s/?#@\"\\]|\\[\"\\]|{_U})+@"
)
_CRED_CHAR = rf"(?:[\w\-.~+]|\\?/|{_U_LETTER})"
_CRED_SIGN = rf"(?:[0-9_\-~+]|\\?/|\.(?:\w|{_U_LETTER})|[a-z][A-Z])"
# The escapes that stand for what Python's \s matches.
_U_SPACE = r"\\u(?:000[bB]|001[c-fC-F]|0085|00[aA]0|1680|200[0-9aA]|202[89fF]|205[fF]|3000)"
_JSON_AUTH = (
    rf"(^|[^\w\\]|\\[nrtbf\"\\/]|{_U_OTHER})({_SCHEMES})((?:\s|\\[nrtf]|{_U_SPACE})+)"
    rf"(?:{_CRED_CHAR}*{_CRED_SIGN}{_CRED_CHAR}*|{_CRED_CHAR}{{20,}})"
)
_JSON_CHARS = r"(?:[^\"\\]|\\.)"  # string content: any character but `"`, escapes whole
_JSON_PRIVATE_KEY = (
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    rf"(?:{_JSON_CHARS}*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?:[^\"\\]|\\[^\"])*)"
)


def _json_key(chars: str, non_letter: str, contained: str = _CONTAINED) -> str:
    """A JSON string that is a sensitive key name: _SENSITIVE_KEY_RE over its `chars`, with
    the look-arounds turned into "a `non_letter` or the end of the string"."""
    return (
        rf"\"(?:{chars}*(?:{contained}){chars}*"
        rf"|{chars}*(?:{_WORD_END})(?:{non_letter}{chars}*)?"
        rf"|(?:{chars}*{non_letter})?(?:{_WORD})(?:{non_letter}{chars}*)?)\""
    )


_JSON_KEY = _json_key(_JSON_CHARS, r"(?:[^a-zA-Z\"\\]|\\.)")
# The name of a [name, value] pair has no whitespace (see _is_pair_name); escapes other
# than \n \r \t \f may stand for none, so they count as name characters.
_JSON_PAIR_NAME = _json_key(r"(?:[^\"\\\s]|\\[^nrtf])", r"(?:[^a-zA-Z\"\\\s]|\\[^nrtf])",
                            _CONTAINED.replace("[-_. ]", "[-_.]"))
# A sensitive key's string or number value, in an object or a [name, value] pair. Why this
# cannot misfire: a regex starting at a closing quote reads the JSON between two strings as
# a "key", and that text (`, `, `: 12, `, `true`) never holds a stem.
_JSON_SCALAR = r"\"(?:[^\"\\]|\\.)+\"|-?[0-9][0-9.eE+\-]*"
_JSON_SENSITIVE_VALUE = (
    rf"(?i)({_JSON_KEY}\s*:\s*)(?:{_JSON_SCALAR})"
    rf"|(\[\s*{_JSON_PAIR_NAME}\s*,\s*)(?:{_JSON_SCALAR})(\s*\])"
)
_JSON_AUTO_IP = r"(\"ip_address\"\s*:\s*)\"\{\{\s*auto\s*\}\}\""

# Triggers: where a Python rule could match a decoded string, these match the JSON text.
# `key=value` in text, and containers under sensitive keys (the regexes cannot filter those).
_JSON_SPACE = rf"(?:\s|\\[nrtf]|{_U_SPACE})"
# A stem, the rest of a key, then `=`/`:` plain or URL-encoded, or plain after an encoded
# quote (_ENCODED_KEY_VALUE_RE).
_ENCODED_SEPARATOR = r"%(?:25)*3[aAdD]"
_TRIGGER_KEY_VALUE = (
    rf"(?i)(?:{_CONTAINED}|{_WORD_END}|{_WORD})(?:[\w.\-]|{_U})*"
    rf"(?:(?:\\\"|')?{_JSON_SPACE}*[=:]"
    rf"|(?:{_ENCODED_QUOTE})?(?:{_PCT}20|[+ ])*(?:{_ENCODED_SEPARATOR})"
    rf"|{_ENCODED_QUOTE}(?:{_PCT}20|[+ ])*[=:])"
)
_TRIGGER_CONTAINER = (
    rf"(?i){_JSON_KEY}\s*:\s*[\[{{]|\[\s*{_JSON_PAIR_NAME}\s*,\s*[\[{{]"
)
# What every match of _TRIGGER_CONTAINER holds, over the lowered text: a stem, the rest of
# its string, and a container after `:` or `,`. Starting with literals, it runs as a fast
# literal search. (?i) also reads the long s (U+017F) as `s`, which lowering leaves as it
# is: events holding one get the full test whatever the hint says.
_CONTAINER_HINT = rf'(?:{_STEM_LITERALS})(?:[^"\\]|\\(?s:.))*"\s*[:,]\s*[\[{{]'
_LONG_S = "\u017f"
# Cheap tests that select the events worth running an expensive regex on.
_TRIGGER_EMAIL = (
    rf"@(?:[^\W_]|{_U})(?:[\w\-]|{_U})*(?:\.(?:[\w\-]|{_U})+)*\.(?:[^\W\d_]|{_U}){{2}}"
)
_TRIGGER_ENCODED_EMAIL = r"%40[^\W_][\w\-]*(?:\.[\w\-]+)*\.[^\W\d_]{2}"
_TRIGGER_URL_PASSWORD = (
    rf"(?://|\\/\\/)(?:[^\s:/?#@\[\]\"\\]|\\[\"\\]|{_U})*:(?:[^\s/?#@\"\\]|\\[\"\\]|{_U})+@"
)
_TRIGGER_AUTH = rf"(?:{_SCHEMES}){_JSON_SPACE}"
# What orjson refuses and Python's json reads (an event holding it is read and written back
# by the walk, see `_lenient_loads`): a surrogate escape, unless a high one followed by a
# low one, and a NaN or ±Infinity token (or what looks like one in a string, as in
# "got: NaN, expected 1": that event is walked for nothing). The surrogates come first, so
# that a pair is matched whole and an escape is never the character before a number
# candidate.
_SURROGATE_PAIR = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_UNREADABLE = (
    rf"{_SURROGATE_PAIR}|\\u[dD][89a-fA-F][0-9a-fA-F]{{2}}"
    r"|[:,\[]\s*-?(?:NaN|Infinity"
    # or a number beyond a double (Python's json reads it as Infinity), whole: a hex id in a
    # string ("8e41670551699457") is none
    r"|[0-9]+(?:\.[0-9]*)?[eE]\+?0*(?:30[89]|3[1-9][0-9]|[4-9][0-9]{2}|[1-9][0-9]{3,}))"
    r"\s*[,\]}]"
)
_UNREADABLE_RE = re.compile(_UNREADABLE)
_SURROGATE_PAIR_RE = re.compile(_SURROGATE_PAIR)
# Candidate card numbers, SSNs and IBANs, with the character before them: checked in Python
# (Luhn, mod 97) so that long order ids do not send their events through the walk. The same
# pass finds what orjson refuses, at no cost: this regex has no literal to search for, so
# it reads every character anyway.
_JSON_NUMBER_CANDIDATES = (
    rf"{_UNREADABLE}|"
    rf"(?:{_U}|\\.|[^0-9A-Za-z])?"
    r"(?:[0-9](?:[ \-]?[0-9]){12,}|[0-9]{3}-[0-9]{2}-[0-9]{4}"
    r"|[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)"
    # and the groups that follow, so that a candidate never ends inside the next one
    r"(?:[ \-]?[0-9A-Z]+)*"
)
# user.email that the email pattern did not already filter (not email-shaped).
_TRIGGER_USER_EMAIL = (
    r"\"email\"\s*:\s*(?:[\[{0-9\-]|\"(?:[^\"\\]|\\.){1,9}\"|\"(?:[^\"\\]|\\.){11,}\""
    r"|\"[^\"\\\[](?:[^\"\\]|\\.){9}\")"  # a value other than "" and "[Filtered]"
)
# IP fields with a value the ip mode has not replaced yet (not a hash, not empty), in the
# lowered JSON text.
_TRIGGER_IP_FIELDS = (
    r"(?:ip_?address|remote_addr|forwarded|real[-_]ip|client[-_]ip|connecting[-_]ip"
    r"|external[-_]address)[\w\-]*\"\s*[:,]\s*"
    r"\"(?:(?:[^\"\\]|\\.)*(?:[^0-9a-f\"\\]|\\.)(?:[^\"\\]|\\.)*|[0-9a-f]{1,31}|[0-9a-f]{33,})\""
)
# What the JSON-text regexes may misread, so such events get every rule in Python instead: a
# printable ASCII character written as \u00XX could hide what they look for (\u0040 for
# @; standard encoders only write `&`, `<`, `>` so, in Go), and JSON held in a string has its
# escapes escaped again (`\\n`), which the regexes do not read as one character.
_TRIGGER_ODD_ESCAPES = (
    r"\\u00(?:2[0-57-9a-fA-F]|3[0-9abdfABDF]|[4-7][0-9a-fA-F])|\\\\[nrtbfu/\"\\]"
)


# `key=value` inside text, as a regex over the JSON text, for the events where it is exactly
# what the walk's `_KEY_VALUE_RE` rule does (see `_QUICK_KEY_VALUE_EXCLUDED`): every string
# holding `=` or `:` is plain ASCII without quotes, `,;%{}` or escapes. In such a string a
# pair is a whole run of key characters after another character, `=` or `:` with spaces
# around, and a value running to the next space, `&` or the end of the string. The walk
# looks for pairs again right after the separator of a key that is not sensitive, as this
# scan does; events where a value starts with an auth scheme (`k: Bearer x`), which the walk
# reads differently, are excluded, and so are (to be safe) those where pairs follow each
# other without a space (`a=b: c`, `k: password = x`).
_KEY_CHAR = r"[A-Za-z0-9_.\-]"
_KEY_NON_LETTER = r"[0-9_.\-]"
_JSON_KEY_VALUE = (
    rf"(?i)([^A-Za-z0-9_.\-])("
    rf"{_KEY_CHAR}*(?:{_CONTAINED.replace('[-_. ]', '[-_.]')}){_KEY_CHAR}*"
    rf"|{_KEY_CHAR}*(?:{_WORD_END})(?:{_KEY_NON_LETTER}{_KEY_CHAR}*)?"
    rf"|(?:{_KEY_CHAR}*{_KEY_NON_LETTER})?(?:{_WORD})(?:{_KEY_NON_LETTER}{_KEY_CHAR}*)?"
    r")( *(?:=>|[=:]) *)[^&\" ]+"
)
# The start of a JSON string, read from the start of the text (without escapes, which the
# events concerned do not have, quotes open and close strings in turn).
_AT_STRING = r'^[^"]*(?:"[^"]*"[^"]*)*"'
# Eight characters other than `Filtered`, and strings other than the marker.
_NOT_FILTERED8 = (
    r'[^F"][^"]{7}|F[^i"][^"]{6}|Fi[^l"][^"]{5}|Fil[^t"][^"]{4}|Filt[^e"][^"]{3}'
    r'|Filte[^r"][^"]{2}|Filter[^e"][^"]|Filtere[^d"]'
)
_NOT_PLAIN = r"[',;%{}]|[^\x00-\x7F]"
# Where the walk does more than that rule, or the rule reads text differently: escapes and
# control characters; a dict key holding `=`/`:` (the walk leaves keys alone); a string
# holding `=`/`:` that is not plain; the user's id or username (left alone too); log
# entries (their params follow the template); strings holding JSON (scrubbed as JSON); a
# 10-character user email starting with `[` (filtered whole by the walk); the pairs the
# scan would read differently from the walk (above).
_QUICK_KEY_VALUE_EXCLUDED = "|".join((
    r"\\|[\x00-\x1f]",
    rf'{_AT_STRING}[^"]*[=:][^"]*"\s*:',
    rf'{_AT_STRING}[^"]*(?:[=:][^"]*(?:{_NOT_PLAIN})|(?:{_NOT_PLAIN})[^"]*[=:])[^"]*"',
    r'(?i:"(?:id|username)")\s*:\s*"[^"]*[=:]',
    r'"(?:logentry|sentry\.interfaces\.Message)"|"message"\s*:\s*\{',
    rf'{_AT_STRING}(?:\{{[^"]*[\]}}]|\[[^"]*\}}|\[(?:[^"]{{0,7}}|[^"]{{9,}}|{_NOT_FILTERED8})\])"',
    rf'"email"\s*:\s*"\[(?:(?:{_NOT_FILTERED8})[^"]|Filtered[^\]"])"',
    r'[=:] *[^\s&"]*[=:] |[=:] *[^\s&"]+ +[=:]',
    rf"(?:=>|[=:]) *(?:{_SCHEMES}) ",
    r"(?i:cookie)[\w.\-]* *[=:]",  # the walk filters a cookie header's pairs to the line end
    rf'(?:=>|[=:]) *(?i:{_STATUS_WORDS})(?:[&" ]|$)',  # the walk keeps a status word
    _ENCODED_SEPARATOR,  # URL-encoded pairs are the walk's only
))


# Replacements that keep capture groups cost 10-30k instructions a match with the large
# regexes above (Polars runs a capture engine on each), so the two heaviest run in two passes
# (`_replace_marked`): the regex without groups only finds the matches, which costs what a
# `contains` does, and wraps each in sentinels; then a small regex that starts at a sentinel
# (a fast literal search) splits each marked match into its groups. It can read a marked
# match one way only, the way the regex did: where the JSON string of a key ends and where
# the next scalar starts are fixed by the text.
_OPEN = "\x00"
_CLOSE = "\x01"
_SENTINELS = r"[\x00\x01]"  # rows holding one as it is (not valid JSON) take one pass
_MARKED_STRING = r'"(?:[^"\\]|\\[^\x01])*"'
# A key and `\s*:\s*` up to the scalar (none of `"`, `-`, a digit in between); or a pair's
# `[`, name and `\s*,\s*`, then the scalar, then `\s*]` (none of whose characters ends a
# scalar).
_MARKED_SENSITIVE_VALUE = (
    rf'\x00({_MARKED_STRING}[^"\-0-9]*)["\-0-9][^\x01]*\x01'
    rf'|\x00(\[[^"]*{_MARKED_STRING}[^"\-0-9]*)'
    rf'(?:{_MARKED_STRING}|-?[0-9][0-9.eE+\-]*)([^"0-9.eE+\-\x01][^\x01]*)\x01'
)
# One character, a key (no space, `=` or `:` in it), the separator, the value; `=` and the
# value `>` where `=>` has nothing after it, as in _JSON_KEY_VALUE (and its groups).
_MARKED_KEY_VALUE = r"\x00((?s:.))([^ =:]*)( *(?:=>|[=:]) *)[^\x01]+\x01"


def _ungrouped(pattern: str) -> str:
    """The pattern with its capture groups made non-capturing."""
    result, changed = re.subn(r"(?<!\\)\((?!\?)", "(?:", pattern)
    # As many `(` changed as groups (Python's parser counts them in these patterns): none
    # in a class was taken for a group (tests check the result as Polars reads it).
    if changed != re.compile(pattern).groups:
        raise ValueError(f"cannot remove the groups of {pattern!r}")
    return result


# --- The per-event walk (Python) --------------------------------------------------------------

# Which rules the walk runs for an event: bits of the mask computed by the vectorized pass.
_PATTERNS = 1  # the rules of _PATTERN_RULES (already applied as JSON regexes, unless asked)
_KEY_VALUE = 2  # `key=value` inside text
_NUMBERS = 4  # card numbers and SSNs
_IBAN = 8
_EXTRA = 16  # the project's extra patterns
_WALK = 32  # key rules, user, IPs: the whole event must be walked
_EVERYTHING = 63

_MAX_DEPTH = 64  # SDKs send far less nesting; deeper parts are cut before scrubbing
_LOGENTRY_KEYS = frozenset({"logentry", "message", "sentry.interfaces.Message"})


class _TooDeep(Exception):
    pass


def _holds_any(value: Any, needles: list[bytes]) -> bool:
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: the walk cuts it
        return True
    return any(needle in data for needle in needles)


@lru_cache(maxsize=256)
def _compiled_extras(config: ScrubConfig) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in config.extra_patterns)


class _Scrubber:
    """Scrubs parsed events of one project in place, running the rules of one mask.

    The walk is the slow part of scrubbing, so its hot path (a string under an ordinary key)
    is inlined, and per-event needles (strings the JSON regexes found, such as a candidate
    card number) let most strings skip a rule after one `in` test.
    """

    def __init__(self, config: ScrubConfig, mask: int) -> None:
        self.config = config
        self.safe = frozenset(name.lower() for name in config.safe_fields)
        self.ip_fields = config.ip_mode != "keep"  # they follow the ip mode
        # Only the rules not already applied to the JSON text, see scrub_payloads.
        self.patterns = bool(mask & _PATTERNS)
        self.key_values = bool(mask & _KEY_VALUE)
        self.numbers = bool(mask & _NUMBERS)
        self.ibans = bool(mask & _IBAN)
        self.extras = _compiled_extras(config) if mask & _EXTRA else ()
        self.text_rules = (self.patterns or self.key_values or self.numbers or self.ibans
                           or bool(self.extras))
        # Only text rules with needles: parts of the event without a needle can be skipped.
        self.prune = not mask & (_WALK | _PATTERNS | _EXTRA)
        self.key_kinds: dict[str, int] = {}
        # Per event: the sender's IP and the needles (None: unknown, look everywhere).
        self.client_ip = ""
        self.key_needles: tuple[str, ...] | None = None
        self.number_needles: tuple[str, ...] | None = None
        self.changed = False
        self.depth = 0

    def scrub_event(self, event: dict[str, Any], client_ip: str = "",
                    needles: _Needles = (None, None)) -> bool:
        """Scrub a parsed event in place; True when anything changed."""
        self.client_ip = client_ip
        self.key_needles, self.number_needles = needles
        self.changed = False
        self.depth = 0
        wanted = None
        if self.prune:
            wanted = [n.encode() for n in (self.key_needles or ()) + (self.number_needles or ())]
        for key, value in event.items():
            if wanted is not None and type(value) in (dict, list) and not _holds_any(
                    value, wanted):
                continue  # no needle in this part: serializing it is cheaper than a walk
            if key == "user" and type(value) is dict:
                self._user(value)
            elif key in _LOGENTRY_KEYS and type(value) is dict:
                self._logentry(value)
            else:
                new = self._item(key, value)
                if new is not value:
                    event[key] = new
        return self.changed

    def text(self, text: str) -> str:
        if len(text) > 1 and text[0] in "{[" and text[-1] in "}]" and text != MARKER:
            nested = self._json_in_text(text)
            if nested is not None:
                return nested
        # The needles were found in the event as it came: look for them before any rule
        # changes the text.
        key_values = self.key_values and ("=" in text or ":" in text or "%" in text) and _found(
            text, self.key_needles, _has_stem)
        numbers = (self.numbers or self.ibans) and _found(
            text, self.number_needles, _has_digits)
        if not (key_values or numbers or self.patterns or self.extras):
            return text  # most strings
        result = text
        if self.patterns:
            for rule in _PATTERN_RULES:
                result = rule(result)
        if key_values:
            result = self._key_values(result)
            if "%" in result:
                result = self._encoded_key_values(result)
        if numbers and self.numbers:
            result = _numbers(result)
        if numbers and self.ibans:
            result = _ibans(result)
        for pattern in self.extras:
            result = pattern.sub(MARKER, result)
        if result != text:
            self.changed = True
        return result

    # Tree walk

    def _key_kind(self, key: str) -> int:
        kind = self.key_kinds.get(key)
        if kind is None:
            lowered = key.lower()
            if lowered in self.safe:
                kind = _SAFE_KEY
            elif self.ip_fields and is_ip_key(lowered):
                kind = _IP_KEY
            else:
                kind = _SENSITIVE_KEY if is_sensitive_key(key) else _PLAIN_KEY
            if len(self.key_kinds) < 10_000:
                self.key_kinds[key] = kind
        return kind

    def _item(self, key: str, value: Any) -> Any:
        """The new value under `key` (a dict key or the name of a [name, value] pair)."""
        kind = self._key_kind(key)
        if kind == _PLAIN_KEY:
            return self._value(value)
        if kind == _SENSITIVE_KEY:
            return self._filter_all(value)
        if kind == _IP_KEY:
            return self._ip(value, MARKER)
        return value  # a safe field

    def _value(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(value) if self.text_rules else value
        if kind is dict:
            self._dict(value)
        elif kind is list:
            self._list(value)
        elif kind is int and self.numbers and not -10**12 < value < 10**12:
            digits = str(abs(value))
            if _is_card(digits, digits, 1):
                self.changed = True
                return MARKER
        return value

    def _dict(self, mapping: dict[str, Any]) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _TooDeep
        kinds = self.key_kinds
        renamed: list[tuple[str, str]] = []
        for key, value in mapping.items():
            kind = kinds.get(key)
            if kind is None:
                kind = self._key_kind(key)
            if kind == _PLAIN_KEY and type(value) is str:
                if self.text_rules:  # inlined: most of an event
                    new = self.text(value)
                    if new is not value:
                        mapping[key] = new
            else:
                new = self._item(key, value)
                if new is not value:
                    mapping[key] = new
            if self.patterns or self.extras:
                new_key = self._pattern_text(key)  # keys can be PII too: {"jane@example.com": 1}
                if new_key != key:
                    renamed.append((key, new_key))
        for key, new_key in renamed:
            mapping[new_key] = mapping.pop(key)
        self.depth -= 1

    def _list(self, items: list[Any]) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _TooDeep
        if len(items) == 2 and _is_pair_name(items[0]):
            # [name, value]: how SDKs send headers, query strings, cookies, tags.
            value = items[1]
            new = self._item(items[0], value)
            if new is not value:
                items[1] = new
            if self.text_rules:
                items[0] = self.text(items[0])
        else:
            for index, item in enumerate(items):
                if type(item) is str:
                    if self.text_rules:  # inlined: the common case
                        new = self.text(item)
                        if new is not item:
                            items[index] = new
                else:
                    new = self._value(item)
                    if new is not item:
                        items[index] = new
        self.depth -= 1

    def _pattern_text(self, text: str) -> str:
        """Only the pattern rules (those not applied to the JSON text already) and the
        project's extra patterns: for keys, and for the user's id and username."""
        result = text
        if self.patterns:
            for rule in _PATTERN_RULES:
                result = rule(result)
        for pattern in self.extras:
            result = pattern.sub(MARKER, result)
        if result != text:
            self.changed = True
        return result

    def _filter_all(self, value: Any, in_list: bool = False) -> Any:
        """Everything under a sensitive key; containers keep their shape. Only in a list of
        pairs (`"cookies": [["sid", "x"], ...]`) does a [name, value] pair keep its name: the
        key's own value (`"password": ["old", "new"]`) is all secret."""
        kind = type(value)
        if kind is str:
            if value and value != MARKER:
                self.changed = True
                return MARKER
        elif kind is int or kind is float:
            self.changed = True
            return MARKER
        elif kind is dict:
            for key, item in value.items():
                value[key] = self._filter_all(item)
        elif kind is list:
            if in_list and len(value) == 2 and _is_pair_name(value[0]):
                value[1] = self._filter_all(value[1])
                if self.text_rules:
                    value[0] = self.text(value[0])
            else:
                for index, item in enumerate(value):
                    value[index] = self._filter_all(item, in_list=True)
        return value  # True, False, None and empty strings hide nothing

    # Places with their own rules

    def _ip(self, value: Any, dropped: str) -> Any:
        """An IP address under the ip mode; `dropped` is what drop mode leaves."""
        if type(value) is not str or not value:
            return self._value(value)  # not an address: an ordinary value
        if _AUTO_IP_RE.fullmatch(value):
            address = self.client_ip
        else:
            address = self.text(value) if self.text_rules else value  # may not be one
        new = _apply_ip_mode(address, self.config, dropped)
        if new != value:
            self.changed = True
        return new

    def _user(self, user: dict[str, Any]) -> None:
        for key, value in user.items():
            lowered = key.lower()
            if lowered in self.safe:
                continue
            if lowered in ("id", "username"):
                # How developers recognise the affected user: numeric ids are not checked
                # for card numbers; an email or a credential in them is filtered.
                new = (self._pattern_text(value) if (self.patterns or self.extras)
                       and type(value) is str else value)
            elif lowered == "ip_address":
                new = self._ip(value, "")  # like the client_ip column
            elif lowered == "email":
                new = self._filter_all(value)
            else:
                new = self._item(key, value)
            if new is not value:
                user[key] = new

    def _logentry(self, entry: dict[str, Any]) -> None:
        # Params are filled into the template later: `password=%s` makes its param a secret.
        template = entry.get("message")
        slots = _sensitive_slots(template) if type(template) is str else []
        for key, value in entry.items():
            new = self._item(key, value)
            if new is not value:
                entry[key] = new
        params = entry.get("params")
        for slot in slots:
            in_list = isinstance(params, list) and isinstance(slot, int) and slot < len(params)
            if in_list or (isinstance(params, dict) and slot in params):
                params[slot] = self._filter_all(params[slot])

    def _key_values(self, text: str) -> str:
        """`text` with the value of every pair whose key is sensitive filtered. After a pair
        whose key is not, the search goes on right after its `=`/`:`, as what looked like
        its value may start a pair itself (`k: password = x`, `a=token: x`,
        `https://x/?token=1`)."""
        parts: list[str] = []
        pos = 0
        while (match := _KEY_VALUE_RE.search(text, pos)) is not None:
            key, _, value = match.groups()
            quoted = len(value) > 1 and value[0] in "\"'" and value[-1] == value[0]
            inner = value[1:-1] if quoted else value
            if (not is_sensitive_key(key) or key.lower() in self.safe
                    or _PLACEHOLDER_RE.fullmatch(inner) or _STATUS_WORD_RE.fullmatch(inner)):
                parts.append(text[pos:match.end(2)])
                pos = match.end(2)
                continue
            parts.append(text[pos:match.start(3)])
            parts.append(f"{value[0]}{MARKER}{value[0]}" if quoted else MARKER)
            pos = match.end()
            if value[0] == "%" and (quote := _ENCODED_QUOTE_RE.match(value)) is not None:
                # `password=%22hunter 2%22`: an encoded quote the value did not close goes
                # on to its closing one (to the end of the text if none).
                close = _closing_quote(text, match.start(3) + quote.end(), quote.group())
                pos = max(pos, min(close + quote.end(), len(text)))
            if "cookie" in key.lower():
                # `Cookie: theme=dark; sid=x`: every pair of the header is a cookie.
                line_end = text.find("\n", pos)
                pos = len(text) if line_end < 0 else line_end
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)

    def _encoded_key_values(self, text: str) -> str:
        """`text` with the value of every URL-encoded pair whose key is sensitive filtered
        (`password%3D[Filtered]`: the marker as it reads, like an encoded email's), the
        search going on after the separator of a key that is not, as in _key_values. A
        quoted value runs to its closing quote (to the end of the text if none), whatever it
        holds; a cookie header's value to the header's end, all its cookies."""
        if _ENCODED_HINT_RE.search(text) is None:
            return text  # no encoded `=`, `:` or quote; `%` alone is common (`%s`, `%2F`)
        parts: list[str] = []
        pos = 0  # text[pos:] is not in parts yet
        search = 0
        while (match := _ENCODED_KEY_VALUE_RE.search(text, search)) is not None:
            key, separator, escape, key_quote, quote = match.groups()
            start = match.end(2)
            # Go on at the separator's last escape (which may start the next key) unless
            # this pair's value is filtered.
            search = (start if separator[-1] in "=:+ \t\"'"
                      else match.start(2) + separator.rfind("%"))
            if not is_sensitive_key(key) or key.lower() in self.safe:
                continue
            depth = _encoding_depth(escape if escape is not None
                                    else (key_quote or quote)[:-2])
            if quote is not None:
                if len(quote) > 1:
                    depth = _encoding_depth(quote[:-2])  # what the quoted value is encoded as
                end = _closing_quote(text, start, quote)
            else:
                value_match = _encoded_value_re(depth).match(text, start)
                end = start if value_match is None else value_match.end()
            value = text[start:end]
            inner = value
            for _ in range(depth):
                inner = unquote(inner)
            if not value or _PLACEHOLDER_RE.fullmatch(inner) or _STATUS_WORD_RE.fullmatch(inner):
                continue
            if quote is None and "cookie" in key.lower():
                # `Cookie%3A%20theme%3Ddark%3B%20sid%3Dx`: every pair of the header is a cookie.
                header_end = _encoded_cookie_end_re(depth).search(text, end)
                end = len(text) if header_end is None else header_end.start()
            parts += (text[pos:start], MARKER)
            pos = search = end
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)

    def _json_in_text(self, text: str) -> str | None:
        """A string holding JSON (request bodies, breadcrumb data) is scrubbed as JSON, so
        that the rules see its keys and decoded strings; None when it is not JSON."""
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if type(parsed) is not dict and type(parsed) is not list:
            return None
        changed_before = self.changed
        self.changed = False
        self._value(parsed)
        out, written = _written_back(text, parsed, self.changed, _orjson_dump)
        self.changed = changed_before or written
        return out


# Needles for the `key=value` and the number rules (None: look everywhere).
_Needles = tuple[tuple[str, ...] | None, tuple[str, ...] | None]
_PLAIN_KEY, _SENSITIVE_KEY, _IP_KEY, _SAFE_KEY = range(4)
_STEMS = tuple(_STEM_LITERALS.replace("\\", "").split("|"))


def _is_pair_name(name: Any) -> bool:
    """Whether a list [name, value] reads as a named value: names have no whitespace, so
    that ["not found", 404] stays a list of values. A name holding the marker was changed
    by the JSON-text regexes (which decided on the name as it came) and is no name."""
    return (type(name) is str and name != "" and _SPACE_RE.search(name) is None
            and MARKER not in name)


_SPACE_RE = re.compile(r"\s")


def _found(text: str, needles: tuple[str, ...] | None, fallback: Callable[[str], bool]) -> bool:
    if needles is None:
        return fallback(text)
    return any(map(text.__contains__, needles))


def _has_stem(text: str) -> bool:
    return any(map(text.lower().__contains__, _STEMS))


def _has_digits(text: str) -> bool:
    return _digit_count(text) >= 9


def _sensitive_slots(template: str) -> list[int | str]:
    """Which params of a message template follow a sensitive key ("password=%s" -> [0])."""
    slots: list[int | str] = []
    position = 0
    for match in _PLACEHOLDER_RE.finditer(template):
        if match.group() == "%%":
            continue
        name = match.group(1) or match.group(2)
        slot: int | str
        if not name:
            slot = position
            position += 1
        else:
            slot = int(name) if name.isdigit() else name
        before = _SLOT_KEY_RE.search(template, 0, match.start())
        if before and is_sensitive_key(before.group(1)):
            slots.append(slot)
    return slots


def _truncate(value: Any, depth: int = 0) -> Any:
    if depth >= _MAX_DEPTH and isinstance(value, dict | list):
        return MARKER
    if isinstance(value, dict):
        return {key: _truncate(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_truncate(item, depth + 1) for item in value]
    return value


def _scrub_json(payload: str, scrubber: _Scrubber, client_ip: str,
                needles: _Needles = (None, None)) -> str:
    parse: Callable[[str], Any] = orjson.loads
    dump: Callable[[Any], str] = _orjson_dump
    rewrite = False
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # What orjson refuses but SDKs send: NaN (Python's json default), lone surrogates.
        # Every later stage reads events with orjson, so such an event is written back as
        # they read it, changed by the rules or not (else it is never stored).
        parse, dump, rewrite = _lenient_loads, _json_dump, True
        try:
            event = parse(payload)
        except (ValueError, RecursionError):
            # Beyond any parser's depth: nothing downstream can read it either (its row is
            # skipped), so it is never stored processed.
            return payload
    if type(event) is not dict:
        return payload
    try:
        changed = scrubber.scrub_event(event, client_ip, needles)
    except (_TooDeep, RecursionError):
        event = _truncate(parse(payload))
        scrubber.scrub_event(event, client_ip, needles)
        changed = True
    return _written_back(payload, event, changed or rewrite, dump)[0]


def _written_back(text: str, parsed: Any, changed: bool,
                  dump: Callable[[Any], str]) -> tuple[str, bool]:
    """What replaces the JSON `text` (an event, or JSON held in a string) once the rules have
    walked `parsed`, its parsed value, and whether that is not `text`. Unchanged, `text`
    stays as it came (its layout), unless an object in it repeats a key: the parsed value,
    all the walk saw, holds the last value only, and an earlier one left in the text could
    be a secret (see _repeats_keys). A part deeper than the writer goes (a safe field's
    value, the one part neither walked nor cut) is cut as the walk cuts any part that deep
    when changed (it failed the batch); unchanged, the text stays as it came."""
    try:
        dumped = dump(parsed)
    except (orjson.JSONEncodeError, RecursionError):
        return (dump(_truncate(parsed)), True) if changed else (text, False)
    if changed or _repeats_keys(text, dumped):
        return dumped, True
    return text, False


def _repeats_keys(text: str, dumped: str) -> bool:
    """Whether parsing the JSON `text` dropped object members, as it does with all but the
    last of a repeated key; `dumped` is the parsed value written again. Every member has a
    `:` between its key and value; the colons in strings are the same in both texts (written
    `:` or `\\u003a` in `text`, `:` in `dumped`); so a dropped member leaves `text` with more
    colons. Two counts, much cheaper than parsing again to look for repeats."""
    colons = text.count(":")
    if "\\u003" in text:
        # A literal `\\u003a` counted too only makes the event written again.
        colons += text.count("\\u003a") + text.count("\\u003A")
    return colons != dumped.count(":")


def _orjson_dump(event: Any) -> str:
    return orjson.dumps(event).decode()


def _json_dump(event: Any) -> str:
    # `_lenient_loads` left nothing orjson refuses: should anything be, this raises (and the
    # event is set aside) rather than writing an event no later stage reads.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _readable(value: Any) -> Any:
    """A scalar as orjson reads and writes JSON: NaN, ±Infinity and integers beyond a double
    become None, a string's lone surrogates (Python's json joins pairs) U+FFFD."""
    if type(value) is str:
        return _SURROGATE_RE.sub("\ufffd", value) if _SURROGATE_RE.search(value) else value
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int and value.bit_length() > 1000:
        try:
            float(value)
        except OverflowError:
            return None
    return value


def _lenient_loads(payload: str) -> Any:
    """The payload as Python's json reads it (NaN, Infinity, lone surrogates: what orjson
    refuses), each such value made `_readable`, keys too. In place and without recursion:
    json reads deeper than the interpreter recurses (the walk cuts such parts later)."""
    parsed = _readable(json.loads(payload))
    pending = [parsed] if type(parsed) is dict or type(parsed) is list else []
    while pending:
        container = pending.pop()
        if type(container) is dict:
            if any(_SURROGATE_RE.search(key) for key in container):
                items = [(_readable(key), item) for key, item in container.items()]
                container.clear()
                container.update(items)  # a key now repeated keeps its last value, as parsed
            for key, item in container.items():
                if type(item) is dict or type(item) is list:
                    pending.append(item)
                else:
                    container[key] = _readable(item)
        else:
            for index, item in enumerate(container):
                if type(item) is dict or type(item) is list:
                    pending.append(item)
                else:
                    container[index] = _readable(item)
    return parsed


# --- Public functions -------------------------------------------------------------------------


def scrub_text(text: str, config: ScrubConfig = _DEFAULT) -> str:
    """Every pattern and `key=value` rule, for one string (titles, tags, messages)."""
    return _Scrubber(config, _EVERYTHING).text(text)


def scrub_event_json(payload: str, config: ScrubConfig = _DEFAULT, client_ip: str = "") -> str:
    """One event's JSON with every rule applied in Python: what `scrub_payloads` computes
    for a row, the slow way. Anything but a JSON object is returned as it is."""
    return _scrub_json(payload, _Scrubber(config, _EVERYTHING), client_ip)


def scrub_payloads(frame: pl.DataFrame, configs: Mapping[int, ScrubConfig]) -> pl.DataFrame:
    """The raw-events frame with `payload` scrubbed and `client_ip` kept, hashed or dropped
    (emptied) per project (`ScrubConfig()` for projects without one). Same columns, same
    rows, same order."""
    if frame.height == 0:
        return frame
    payload = frame.get_column("payload")
    project = frame.get_column("project_id")
    client_ip = frame.get_column("client_ip")
    present = payload.is_not_null()
    lowered = payload.str.to_lowercase()

    # Events the JSON-text regexes could get wrong get every rule in Python instead: those
    # with odd escapes, containers under sensitive keys, or a project's safe field (only the
    # walk knows where such a value ends).
    python_only = payload.str.contains(_TRIGGER_ODD_ESCAPES).fill_null(False)
    # The long s (U+017F) is an `s` to the (?i) rules but not to lowering: a key such as
    # "paſsword" has no stem in the lowered text, and would otherwise skip every key rule.
    long_s = payload.str.contains(_LONG_S, literal=True).fill_null(False)
    with_stem = lowered.str.contains(_STEM_LITERALS).fill_null(False) | long_s
    # The container trigger scans all the text of an event without a match (most events);
    # a test over the lowered text that starts at a stem (a fast literal search) picks the
    # events it can match first.
    hinted = _where(with_stem, lowered, _CONTAINER_HINT) | long_s
    python_only |= _where(hinted, payload, _TRIGGER_CONTAINER)
    for project_id, config in configs.items():
        if config.safe_fields:
            names = [name.lower() for name in config.safe_fields]
            python_only |= (project == project_id) & lowered.str.contains_any(names)
    python_only = present & python_only.fill_null(False)
    # Only JSON objects are events; anything else is left as it is.
    rows = present & ~python_only & payload.str.contains(r"^\s*\{").fill_null(False)

    # 1. The rules that regexes apply to the JSON text, each on the events its cheap test
    # selects (a regex pass costs time on every event it runs over); in the order of
    # _PATTERN_RULES, as the results can overlap.
    with_stem &= rows
    sentinels = _where(rows, payload, _SENTINELS)
    payload = _replace_marked(payload, with_stem, sentinels, _JSON_SENSITIVE_VALUE,
                              _MARKED_SENSITIVE_VALUE, f'${{1}}${{2}}"{MARKER}"${{3}}')
    payload = _replace(payload, _where(rows, payload, "PRIVATE KEY"), _JSON_PRIVATE_KEY, MARKER)
    payload = _replace(payload, _where(rows, payload, _TRIGGER_URL_PASSWORD), _JSON_URL_PASSWORD,
                       f"${{1}}{MARKER}@")
    payload = _replace(payload, _where(rows, payload, _TRIGGER_AUTH), _JSON_AUTH,
                       f"${{1}}${{2}}${{3}}{MARKER}")
    payload = _replace(payload, _where(rows, payload, _TRIGGER_EMAIL), _JSON_EMAIL,
                       f"${{1}}{MARKER}")
    payload = _replace(payload, _where(rows, payload, _TRIGGER_ENCODED_EMAIL),
                       _JSON_ENCODED_EMAIL, f"${{1}}{MARKER}")
    payload = _fill_auto_ips(payload, rows, project, client_ip, configs)

    # 2. Which events the walk must see, and which of its rules to run.
    ip_projects = [pid for pid, config in configs.items() if config.ip_mode != "keep"]
    extra_projects = [pid for pid, config in configs.items() if config.extra_patterns]
    key_masks = _bits(_where(with_stem, payload, _TRIGGER_KEY_VALUE), _KEY_VALUE)
    number_masks, number_needles = _number_bits(rows, payload)
    masks = (
        key_masks
        | number_masks
        | _bits(_where(rows, payload, _TRIGGER_USER_EMAIL), _WALK)
        | _bits(_where(rows, payload, r"\{\{\s*auto"), _WALK)  # in other IP fields
        | _bits(_where(rows & project.is_in(ip_projects), lowered, _TRIGGER_IP_FIELDS), _WALK)
        | _bits(present & project.is_in(extra_projects), _EXTRA | _WALK)
        | _bits(python_only, _EVERYTHING)
    )

    # 2b. Events whose only rule left is `key=value` in text, in plain strings (query
    # strings, URLs): that rule as a regex over the JSON text instead of the walk (which
    # costs several times as much).
    payload, masks = _quick_key_values(payload, masks)

    # 3. The walk, for those events only.
    selected = (masks > 0).arg_true()
    if selected.len():
        key_needles = _key_value_needles(payload, selected, masks.gather(selected))
        scrubbers: dict[tuple[int, int], _Scrubber] = {}
        scrubbed: list[str] = []
        for row, project_id, ip, text, mask in zip(
            selected.to_list(), project.gather(selected).to_list(),
            client_ip.gather(selected).to_list(), payload.gather(selected).to_list(),
            masks.gather(selected).to_list(), strict=True,
        ):
            scrubber = scrubbers.get((project_id, mask))
            if scrubber is None:
                scrubber = _Scrubber(configs.get(project_id, _DEFAULT), mask)
                scrubbers[(project_id, mask)] = scrubber
            # Events that get every rule (odd escapes, safe fields) are searched everywhere.
            needles: _Needles = (None, None) if mask & _PATTERNS else (
                key_needles.get(row, ()), number_needles.get(row, ()))
            scrubbed.append(_scrub_json(text, scrubber, ip or "", needles))
        payload = payload.clone()
        payload.scatter(selected, pl.Series(scrubbed, dtype=pl.String))

    return frame.with_columns(payload.alias("payload"), _client_ips(frame, configs))


def _quick_key_values(payload: pl.Series, masks: pl.Series) -> tuple[pl.Series, pl.Series]:
    """The payloads with the `key=value` rule applied to the events it can be applied to as
    a regex, and the masks with those events taken off the walk. An event comes out as the
    walk's does once parsed; its text keeps the SDK's layout (re-serializing it as the walk
    does cost more than the rule itself), and a value repeated under the same key is filtered
    in every copy, where the walk sees only the last."""
    key_value_only = masks == _KEY_VALUE
    quick = key_value_only & ~_where(key_value_only, payload, _QUICK_KEY_VALUE_EXCLUDED)
    # Deeper nesting than the walk accepts gets cut by it (_MAX_DEPTH): never that deep.
    quick &= payload.str.count_matches(r"[\[{]").fill_null(_MAX_DEPTH + 1) <= _MAX_DEPTH
    indices = quick.fill_null(False).arg_true()
    if indices.len() == 0:
        return payload, masks
    # Outside JSON strings a key is followed by `"`, never by `=` or `:`, so the pattern only
    # matches inside strings, and the value it replaces stops before the string's end.
    # (The events concerned hold no control character, so no sentinel.)
    payload = _replace_marked(payload, quick, None, _JSON_KEY_VALUE, _MARKED_KEY_VALUE,
                              f"${{1}}${{2}}${{3}}{MARKER}")
    masks = masks.clone()
    masks.scatter(indices, 0)
    return payload, masks


def _where(rows: pl.Series, texts: pl.Series, pattern: str) -> pl.Series:
    """`rows & texts.str.contains(pattern)`, running the regex on those rows only."""
    rows = rows.fill_null(False)
    indices = rows.arg_true()
    if indices.len() == 0:
        return rows
    if indices.len() == rows.len():
        # Every row (common: most events hold a sensitive key name): without the gather and
        # scatter, which copy all the text twice.
        return texts.str.contains(pattern).fill_null(False).alias(rows.name)
    found = rows.clone()
    found.scatter(indices, texts.gather(indices).str.contains(pattern).fill_null(False))
    return found


def _replace(texts: pl.Series, rows: pl.Series, pattern: str, replacement: str) -> pl.Series:
    """`str.replace_all` on the rows selected only."""
    indices = rows.fill_null(False).arg_true()
    if indices.len() == 0:
        return texts
    if indices.len() == texts.len():
        return texts.str.replace_all(pattern, replacement)  # every row: no copies, see _where
    result = texts.clone()
    result.scatter(indices, texts.gather(indices).str.replace_all(pattern, replacement))
    return result


def _replace_marked(texts: pl.Series, rows: pl.Series, sentinels: pl.Series | None,
                    pattern: str, marked: str, replacement: str) -> pl.Series:
    """`_replace` of `pattern` (whose replacement keeps groups) in two passes, see
    _MARKED_SENSITIVE_VALUE: `marked` reads the matches wrapped in sentinels into the same
    groups. The `sentinels` rows (those holding one already; None: no row does) take one
    pass."""
    rows = rows.fill_null(False)
    if sentinels is not None and (sentinels := sentinels & rows).any():
        texts = _replace(texts, sentinels, pattern, replacement)
        rows &= ~sentinels
    indices = rows.arg_true()
    if indices.len() == 0:
        return texts
    every = indices.len() == texts.len()
    before = texts if every else texts.gather(indices)
    selected = _two_passes(before, pattern, marked, replacement)
    # A marked match the second pass could not read (none is known) must neither keep its
    # value nor leave a sentinel in the event (no longer JSON): such rows take one pass.
    unread = selected.str.contains(_SENTINELS).arg_true()
    if unread.len():
        selected = selected.scatter(
            unread, before.gather(unread).str.replace_all(pattern, replacement))
    if every:
        return selected
    result = texts.clone()
    result.scatter(indices, selected)
    return result


def _two_passes(texts: pl.Series, pattern: str, marked: str, replacement: str) -> pl.Series:
    """Every text's matches of `pattern` wrapped in sentinels, then read by `marked`."""
    texts = texts.str.replace_all(_marked_pattern(pattern), f"{_OPEN}${{0}}{_CLOSE}")
    return texts.str.replace_all(marked, replacement)


@lru_cache(maxsize=8)
def _marked_pattern(pattern: str) -> str:
    return _ungrouped(pattern)


def _bits(rows: pl.Series, bits: int) -> pl.Series:
    return rows.fill_null(False).cast(pl.UInt8) * bits


def _key_value_needles(payload: pl.Series, selected: pl.Series,
                       masks: pl.Series) -> dict[int, tuple[str, ...]]:
    """For the walked events (`selected` rows, their `masks`) that run the `key=value` rule
    with needles, the first letters of the keys that may be sensitive (by row): the strings
    to run the rule on hold them. Worked out here, for these events only, as most events with
    such pairs take the quick path (their bit comes from a `contains`, which stops at the
    first pair, where listing every pair reads all the text)."""
    rows = selected.filter((masks & (_KEY_VALUE | _PATTERNS)) == _KEY_VALUE)
    if rows.len() == 0:
        return {}
    found = payload.gather(rows).str.extract_all(_TRIGGER_KEY_VALUE).to_list()
    return {row: tuple({match[:3] for match in matches})  # stems have 3+ letters
            for row, matches in zip(rows.to_list(), found, strict=True) if matches}


def _number_bits(rows: pl.Series,
                 payload: pl.Series) -> tuple[pl.Series, dict[int, tuple[str, ...]]]:
    """Walk bits for the events holding a card number, SSN or IBAN that passes its checks,
    and for each such event (by row) the candidates, so that the walk looks only for them."""
    masks = pl.Series([0] * rows.len(), dtype=pl.UInt8)
    needles: dict[int, tuple[str, ...]] = {}
    indices = rows.arg_true()
    if indices.len() == 0:
        return masks, needles
    candidates = payload.gather(indices).str.extract_all(_JSON_NUMBER_CANDIDATES)
    # Decimal fractions (".0955050338666239", timestamps' digits: most candidates) hold no
    # card number, SSN or IBAN: the rules start none after a `.` or a digit; nor does a
    # surrogate pair (an emoji, as Python's json writes it). Only events with another
    # candidate are checked, on those candidates (needles are all of them).
    with_candidates = candidates.list.eval(
        pl.element().str.contains(_NO_CANDIDATE).not_()).list.any().fill_null(False)
    selected = indices.filter(with_candidates)
    bits = []
    for row, found in zip(selected.to_list(), candidates.filter(with_candidates).to_list(),
                          strict=True):
        mask = 0
        for candidate in found:
            if candidate[0] == "." and candidate[1:].isdigit():
                continue
            if _UNREADABLE_RE.fullmatch(candidate) or _digit_count(candidate) > 308:
                # What orjson refuses (or a number as long as one beyond a double): every rule
                # in Python, whose parser reads it and writes it back readable.
                if not _SURROGATE_PAIR_RE.fullmatch(candidate):
                    mask |= _EVERYTHING
                continue
            plain = _ESCAPE_RE.sub(" ", candidate)  # the escape before it stands for a space
            if _numbers(plain) != plain:
                mask |= _NUMBERS
            if _ibans(plain) != plain:
                mask |= _IBAN
        if mask:
            # A candidate's end is as it appears decoded (its start may be inside an escape).
            needles[row] = tuple({candidate[-8:] for candidate in found})
        bits.append(mask)
    if bits:
        masks.scatter(selected, pl.Series(bits, dtype=pl.UInt8))
    return masks, needles


_ESCAPE_RE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")
_NO_CANDIDATE = rf"^(?:\.[0-9]+|{_SURROGATE_PAIR})$"


def _fill_auto_ips(payload: pl.Series, rows: pl.Series, project: pl.Series,
                   client_ip: pl.Series, configs: Mapping[int, ScrubConfig]) -> pl.Series:
    """`"ip_address": "{{auto}}"` (SDKs ask the server to fill in the sender's IP) becomes the
    sender's IP, its hash or "", per the project's ip mode."""
    indices = _where(rows, payload, r"\{\{").arg_true()
    if indices.len() == 0:
        return payload
    values = []
    for project_id, ip in zip(project.gather(indices).to_list(),
                              client_ip.gather(indices).to_list(), strict=True):
        config = configs.get(project_id, _DEFAULT)
        values.append(orjson.dumps(_apply_ip_mode(ip or "", config, "")).decode())
    selected = pl.DataFrame({"payload": payload.gather(indices), "ip": values})
    filled = selected.select(pl.col("payload").str.replace_all(
        _JSON_AUTO_IP, pl.lit("${1}") + pl.col("ip"))).to_series()
    result = payload.clone()
    result.scatter(indices, filled)
    return result


@lru_cache(maxsize=65536)
def _apply_ip_mode(value: str, config: ScrubConfig, dropped: str) -> str:
    """An IP field's value (an address, or several as in X-Forwarded-For) under the ip mode.
    What a mode leaves is left as it is, so that scrubbing again changes nothing."""
    if config.ip_mode == "keep" or value in ("", dropped, MARKER):
        return value
    if config.ip_mode == "drop":
        return dropped
    return value if _HASH_RE.fullmatch(value) else hash_ip(value, config.hash_salt)


_HASH_RE = re.compile(r"[0-9a-f]{32}")


def _client_ips(frame: pl.DataFrame, configs: Mapping[int, ScrubConfig]) -> pl.Series:
    client_ip = frame.get_column("client_ip").clone()
    project = frame.get_column("project_id")
    for project_id, config in configs.items():
        if config.ip_mode == "keep":
            continue
        indices = ((project == project_id) & (client_ip != "")).fill_null(False).arg_true()
        if indices.len() == 0:
            continue
        ips = client_ip.gather(indices)
        distinct = ips.unique().to_list()
        replaced = [_apply_ip_mode(ip, config, "") for ip in distinct]
        client_ip.scatter(indices, ips.replace_strict(distinct, replaced, return_dtype=pl.String))
    return client_ip
