"""Fingerprinting: which issue an event belongs to, plus the issue's title and culprit.

`fingerprint_events(frame)` adds four Utf8 columns to the raw-events frame (README.md):
`fingerprint_hash` (32 lowercase hex, an MD5), `fingerprint_strategy`, `title`, `culprit`.

Which rule makes the hash (the first that applies; the name is `fingerprint_strategy`):

- `custom`: the SDK sent `fingerprint`, a list of strings hashed as given.
  `custom+default`: the list holds `{{ default }}` (or `{{default}}`), which stands for the
  default grouping below; `["{{ default }}"]` alone hashes exactly like the default grouping,
  so turning it on in an SDK does not split existing issues. `{{ transaction }}`,
  `{{ type }}` (`{{ error.type }}`), `{{ level }}` and `{{ logger }}` are filled in as well;
  any other `{{ … }}` is kept as literal text.
- `stacktrace`: the exception carries frames. Every exception of a chain counts (see below),
  each as its type (with its module when the SDK sends one) plus its in-app frames. A frame is
  its module, or else its normalized file name, plus its normalized function, plus its
  normalized source line: never line or column numbers, so a release that moves code keeps
  the issue. A frame seen twice counts once, so the depth of a recursion does not matter.
  If no frame of any exception is in-app, all frames count.
- `exception`: no frames anywhere: each exception's type plus its normalized value.
- `message`: no exception: the normalized log template (`logentry.message`), else the
  formatted message, else `message`.
- `fallback`: nothing of the above: level + logger + platform, so e.g. all empty
  `warning` events from one logger and platform share one issue.

Decisions worth knowing:

- Chained exceptions (`exception.values`, oldest first, the last one caught): the whole chain
  is hashed, as Sentry does, not only the last exception. A wrapper such as
  `raise PaymentFailed(...) from exc` is raised from the same place for every cause; hashing
  only it would merge "card declined" with "provider unreachable" into one issue. The title
  comes from the last (main) exception; the culprit from its frames, or from the nearest
  exception before it that has frames.
- Exception groups (Python `ExceptionGroup`, JS `AggregateError`; marked by
  `mechanism.is_exception_group`, linked by `exception_id`/`parent_id`): the top-level
  exception plus the set of distinct leaves (members of a group that are not groups
  themselves), sorted; nested groups and the causes of a leaf are not hashed. So how many
  tasks failed, and in which order they are listed, does not split the issue. When all leaves
  are alike, the title and culprit come from the leaf (what a developer has to fix), else from
  the top-level group.
- In-app: the SDK's `in_app` decides; when it is missing, frames from `node_modules`,
  `site-packages`, Python's standard library, Node internals, browser extensions, the webpack
  runtime, vendor bundles and JDK/Android packages are not in-app, everything else is.
- Minified JavaScript (not symbolicated): one- and two-letter names such as `t` or `e.n` change
  with every build, so they are dropped from function names; source lines longer than 150
  characters (minified code) are ignored. If that leaves the innermost in-app frame of an
  exception with neither a function nor a source line, that frame cannot tell bugs in one
  bundle apart, so the exception's normalized value is added. Bundles named `vendors~…`,
  `vendor.…`, `chunk-vendors…` and Next.js `framework-…` hold libraries: not in-app.
- Messages and exception values are normalized by `normalize_message`: see its docstring.
  Quoted values that are a plain identifier (`'NoneType'`, `(reading 'email')`) are code, not
  data, and are kept, so `... has no attribute 'id'` and `... has no attribute 'name'` stay two
  issues; any other quoted value becomes `'<str>'`.
- Messages are normalized on their first 4096 characters only, bounding the cost of huge
  messages.
- The top-level `stacktrace` and the crashed/current thread stand in for an exception that has
  no frames of its own. Message events are grouped by message even when a stack trace was
  attached (SDK `attach_stacktrace`), so different log lines in one function stay apart.
- `GROUPING_VERSION` is part of every hash: changing a rule in a way that moves events
  between issues should bump it, and the issue layer then sees new hashes.

Rows other than `item_type == "event"`: the hash and strategy are empty strings; the title is
the transaction name (`transaction`), the feedback message (`feedback`) or the comments
(`user_report`); the culprit is empty. A payload that is not a JSON object gets the `fallback`
strategy with one shared hash and the title `<invalid event>`.

Speed: each payload is decoded by msgspec into small structs holding only what grouping
reads (about twice as fast as parsing all of it). A bug's events mostly share their stack
trace, and line numbers are not decoded, so the description of a whole stack trace (frame keys,
in-app flags, culprit) is cached, as are single frames, the normalizers and default hashes.
The common event, one exception with frames and nothing else to hash, takes its hash and
culprit from a cache keyed by its frames, platform, type and module (`_quick_fingerprint`);
one exception that is no group skips the bookkeeping of chains and groups
(`_single_exception_grouping`). A transaction's title is read by a typed decode of its name.
Python calls are what costs here (several hundred instructions each on this interpreter), so
those paths make few. Polars expressions would not speed any of it up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import msgspec
import orjson
import polars as pl

log = logging.getLogger(__name__)

GROUPING_VERSION = "1"
TITLE_MAX_CHARS = 200
MESSAGE_MAX_CHARS = 4096
CONTEXT_LINE_MAX_CHARS = 150

Json = dict[str, Any]


class Fingerprint(NamedTuple):
    fingerprint_hash: str
    strategy: str
    title: str
    culprit: str


# ---------------------------------------------------------------------------------------------
# Message normalization
# ---------------------------------------------------------------------------------------------

# Each kind of data has its own pattern, applied in order from the most specific (a URL before
# the numbers in it, a date before its digits) and only when a cheap test says the text can
# hold it. Patterns start with a concrete character and check what comes before it with a
# lookbehind placed after that character, so the regex engine can skip ahead to candidates;
# one combined pattern was five times slower. Quoted values go first, and no placeholder holds
# digits, `@` or `://`, so a later pattern never rewrites an earlier replacement.

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
_ZONE = r"(?:\s?(?:Z|UTC|GMT)?[+-]\d{2}:?\d{2}|\s?(?:Z|UTC|GMT))"

_QUOTED = re.compile(
    r"'(?<!\w')[^'\n]*'(?!\w)"  # an apostrophe inside a word (can't) opens nothing
    r'|"(?<!\w")[^"\n]*"(?!\w)'
    r"|`[^`\n]*`|“[^”\n]*”|‘[^’\n]*’|„[^“”\n]*[“”]|«[^»\n]*»|「[^」\n]*」|『[^』\n]*』"
)
_JWT = re.compile(r"eyJ[\w\-]+\.[\w\-]+(?:\.[\w\-]*)?")
_MAC = re.compile(
    r"[0-9A-Fa-f](?<![\w:\-][0-9A-Fa-f])[0-9A-Fa-f](?:([:\-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}"
    r"(?![\w:\-])"
)
# Kubernetes pod names: <deployment>-<replica set hash>-<5 random characters>.
_POD_SUFFIX = re.compile(r"(?<=[a-z0-9])-[0-9a-f]{8,10}-[0-9a-z]{5}(?![\w\-])")
_SIGN = re.compile(r"(?<![\w.\-])-(?=\d)")  # balance -5: the same message as balance 7
_GROUPED_NUMBER = re.compile(r"\d(?<![\d,]\d)\d{0,2}(?:,\d{3})+(?:\.\d+)?(?![\d,])")
# Ids of nanoid, Stripe and the like hold `_` and `-`: judged whole, not piece by piece.
_DASHED_TOKEN = re.compile(r"[A-Za-z0-9](?<![\w\-][A-Za-z0-9])[\w\-]{15,}(?![\w\-])")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"`<>()\[\]{}]+")
_EMAIL = re.compile(r"(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_UUID = re.compile(
    r"[0-9a-fA-F](?<![0-9A-Za-z][0-9a-fA-F])[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9A-Za-z])"
)
_ISO_DATE = re.compile(rf"\d(?<!\d\d)\d{{3}}-\d{{2}}-\d{{2}}(?:[T ]{_CLOCK}{_ZONE}?)?(?!\d)")
_MONTH_NAME = re.compile(r"Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec")
_WORD_DATE = re.compile(
    rf"\b(?:{_WEEKDAY}\s+)?(?:\d{{1,2}}\s+{_MONTH}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?),?"
    rf"\s+\d{{4}}(?:\s+{_CLOCK}{_ZONE}?(?:\s\([^)\n]*\))?)?"
)
_SLASH_DATE = re.compile(r"\d(?<!\d\d)(?:\d?/\d{1,2}/\d{4}|\d{3}/\d{1,2}/\d{1,2})(?!\d)")
_TIME = re.compile(
    r"\d(?<![\w:]\d)\d?:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp][Mm]\b)?(?![\w:])")
_IPV6 = re.compile(  # candidates; `_replace_ipv6` checks them
    r"(?<![\w:.])(?:[0-9a-fA-F]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{1,4})?"
    r"(?:%[\w.]+)?(?![\w:])"
)
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?::\d{1,5})?(?!\.?\d)")
_HASH = re.compile(  # MD5, SHA-1, SHA-256 in hex
    r"[0-9a-fA-F](?<![A-Za-z0-9][0-9a-fA-F])"
    r"(?:[0-9a-f]{63}|[0-9A-F]{63}|[0-9a-f]{39}|[0-9A-F]{39}|[0-9a-f]{31}|[0-9A-F]{31})"
    r"(?![A-Za-z0-9])"
)
_HEX = re.compile(  # 0x1f, and runs of 7+ hex digits holding both digits and letters
    r"[0-9a-fA-F](?<![A-Za-z0-9][0-9a-fA-F])(?:(?<=0)[xX][0-9a-fA-F]+"
    r"|[0-9a-fA-F]{6,})(?![A-Za-z0-9])"
)
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{10,}")  # whole runs: a run matches from its start
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_HAS_DIGIT = re.compile(r"\d")
_CAMEL = re.compile(r"[a-z][A-Z]")
_QUOTE_CHARS = ("'", '"', "`", "“", "‘", "„", "«", "「", "『")

# Quoted text kept as is: a single identifier without digits, e.g. 'NoneType' or 'email'.
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z_$]{0,39}")
_LONG_DIGITS = re.compile(r"\d{4,}")
_DIGIT_RUN = re.compile(r"\d+")


def _char_class(char: str) -> int:
    if char.isdigit():
        return 0
    return 1 if char.isupper() else 2


def looks_random(token: str) -> bool:
    """Whether an alphanumeric token looks like a generated id rather than a word or a name.

    Generated ids (base62, base64) have several separate runs of digits, or switch between
    lower case, upper case and digits far more often than words and camelCase names do
    (`getElementById` switches 3 times in 14 characters, a random id about every other one).
    Tuned for recall on ids with digits (about 1 in 1000 random 12+ character ids is missed);
    the price is that a few names with digits (`Int32Array`) read as ids too. Random ids
    without any digit are missed more often (about 1 in 20 of 12 characters).
    """
    if len(token) < 8:
        return False
    if len(_DIGIT_RUN.findall(token)) >= 2:
        return True
    switches = 0
    previous = _char_class(token[0])
    for char in token[1:]:
        current = _char_class(char)
        # Upper to lower is how every capitalized word starts, so it is not a switch.
        if current != previous and not (previous == 1 and current == 2):
            switches += 1
        previous = current
    has_digit = any(char.isdigit() for char in token)
    return switches >= (0.15 if has_digit else 0.25) * (len(token) - 1)


def _replace_quoted(match: re.Match[str]) -> str:
    text = match.group()
    inner = text[1:-1]
    if _IDENTIFIER.fullmatch(inner) and not looks_random(inner):
        return text
    return f"{text[0]}<str>{text[-1]}"


def _replace_date(match: re.Match[str]) -> str:
    return "<datetime>" if ":" in match.group() else "<date>"


def _replace_ipv6(match: re.Match[str]) -> str:
    text = match.group()
    address = text.split("%", 1)[0]
    if not any(char.isdigit() for char in address):
        return text  # e.g. `Ab::Cd`, a namespace
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return text
    return "<ip>"


def _replace_hex(match: re.Match[str]) -> str:
    text = match.group()
    if text[1:2] in ("x", "X"):
        return "<hex>"
    if text.isdigit() or text.isalpha() or (not text.islower() and not text.isupper()):
        # A number, a word such as `deadbeef`, or letters of both cases: no hex digest, but
        # maybe a random id, as the alphanumeric runs judge (`AbCdEf123456`).
        return text
    return "<hex>"


def _replace_alnum_run(match: re.Match[str]) -> str:
    text = match.group()
    if text.isalpha() and not _CAMEL.search(text):
        return text  # a word
    if text.isdigit():
        return "<int>"
    if looks_random(text):
        return "<id>"
    return _LONG_DIGITS.sub("<int>", text)  # e.g. ORD20241127 -> ORD<int>


def _replace_dashed_token(match: re.Match[str]) -> str:
    text = match.group()
    return "<id>" if ("_" in text or "-" in text) and looks_random(text) else text


def _replace_number(match: re.Match[str]) -> str:
    text = match.group()
    start = match.start()
    before = match.string[start - 1] if start else " "
    if before.isascii() and before.isalnum() and before != "v":
        # Part of a name (Float64Array, utf8, x86), unless it is a long number (A12345).
        return "<int>" if text.isdigit() and len(text) >= 4 else text
    if before == "v" and start >= 2 and match.string[start - 2].isalnum():
        return text  # dev2, not a version
    return "<float>" if "." in text else "<int>"


def normalize_message(text: str) -> str:
    """Replace the variable data in a message with placeholders, so that two messages that
    differ only in data are equal and different wordings stay different.

    Placeholders: `<url>` (whole URLs: hosts carry tenants, shards and presigned buckets, and
    the stack trace or wording already tells call sites apart), `<email>`, `<uuid>`,
    `<datetime>` / `<date>` / `<time>` (ISO 8601, RFC 2822, JavaScript `Date`, `11/27/2024`,
    `03:13:00`), `<ip>` (IPv4 with optional port, IPv6), `<hash>` (32, 40 or 64 hex digits:
    MD5, SHA-1, SHA-256), `<hex>` (`0x…` and hex runs of 7+ with digits and letters of one case,
    e.g. short commit ids), `<jwt>`, `<mac>` (MAC addresses), `<id>` (long random-looking
    tokens, also with `_` or `-` as nanoids have), `<pod>` (the suffix of a Kubernetes pod
    name), `<int>` and `<float>` (numbers with their
    sign and thousands separators: `-5`, `1,234.56`; versions
    such as `v1.4.2` -> `v<float>`, and runs of 4+ digits inside words, e.g. `order_12345`,
    `ORD20241127`), and `'<str>'` for quoted values (single, double, back, typographic and
    CJK quotes), except a quoted plain identifier without digits (`'NoneType'`), which is code and
    kept. Whitespace runs become one space; case is kept.
    """
    if not text:
        return ""
    if any(quote in text for quote in _QUOTE_CHARS):
        text = _QUOTED.sub(_replace_quoted, text)
    if "://" in text:
        text = _URL.sub("<url>", text)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    if "eyJ" in text:
        text = _JWT.sub("<jwt>", text)
    if _HAS_DIGIT.search(text):
        if "-" in text:
            text = _UUID.sub("<uuid>", text)
            text = _ISO_DATE.sub(_replace_date, text)
        if ":" in text or "-" in text:
            text = _MAC.sub("<mac>", text)
        if "-" in text:
            text = _POD_SUFFIX.sub("-<pod>", text)
        if _MONTH_NAME.search(text):
            text = _WORD_DATE.sub(_replace_date, text)
        if "/" in text:
            text = _SLASH_DATE.sub("<date>", text)
        if ":" in text:
            text = _TIME.sub("<time>", text)
            if text.count(":") >= 2:
                text = _IPV6.sub(_replace_ipv6, text)
        if "." in text:
            text = _IPV4.sub("<ip>", text)
        text = _HASH.sub("<hash>", text)
        text = _HEX.sub(_replace_hex, text)
        if "," in text:
            text = _GROUPED_NUMBER.sub(lambda m: "<float>" if "." in m.group() else "<int>",
                                       text)
        if "-" in text:
            text = _SIGN.sub("", text)
    if "_" in text or "-" in text:
        text = _DASHED_TOKEN.sub(_replace_dashed_token, text)
    text = _ALNUM_RUN.sub(_replace_alnum_run, text)
    text = _NUMBER.sub(_replace_number, text)
    return " ".join(text.split())


@lru_cache(maxsize=4096)
def _normalize_message_cached(text: str) -> str:
    return normalize_message(text[:MESSAGE_MAX_CHARS])


# ---------------------------------------------------------------------------------------------
# Frame normalization
# ---------------------------------------------------------------------------------------------

_SCHEME_AND_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/]*")
_VERSION_IN_NAME = re.compile(r"[-.@_]v?\d+(?:\.\d+)+(?=$|[-./@])")
_VERSION_SEGMENT = re.compile(r"v?\d+(?:[._\-]\d+)*(?:[._\-]?[A-Za-z]+\d*)?")
_HEX_WITH_DIGIT = re.compile(r"(?=[0-9a-fA-F]*\d)(?:[0-9a-f]{5,}|[0-9A-F]{5,})")
# A content hash glued to a name: main-3F9C1A2B, page-3c9a2f1e4b5d6a7f, index-CgRLMpJD,
# index-D-Ghq_1a (Rollup/Vite hashes are 8 base64url characters and may hold - and _).
_HEX_SUFFIX = re.compile(r"^(.+?)[-_](?=[0-9a-fA-F]*\d)(?:[0-9a-f]{5,}|[0-9A-F]{5,})$")
_BASE64_SUFFIX = re.compile(r"^(.+?)-([A-Za-z0-9_\-]{8})$")
_ALNUM_SUFFIX = re.compile(r"^(.+?)[-_]([A-Za-z0-9]{8,})$")


def _is_hash_part(part: str) -> bool:
    """A dot- or slash-separated piece of a path that is a build artefact, not a name."""
    return bool(_HEX_WITH_DIGIT.fullmatch(part)) or (len(part) >= 8 and part.isalnum()
                                                     and looks_random(part))


def _looks_like_base64_hash(part: str) -> bool:
    if any(char.isdigit() or char in "-_" for char in part):
        return True
    return any(char.isupper() for char in part[1:]) and not part.isupper()


def _strip_name_hash(name: str) -> str:
    """`main-3F9C1A2B` -> `main`, `index-CgRLMpJD` -> `index`; `page-settings` stays."""
    match = _HEX_SUFFIX.match(name)
    if match:
        return match.group(1)
    match = _BASE64_SUFFIX.match(name)
    if match and _looks_like_base64_hash(match.group(2)):
        return match.group(1)
    match = _ALNUM_SUFFIX.match(name)
    if match and looks_random(match.group(2)):
        return match.group(1)
    return name


@lru_cache(maxsize=65536)
def normalize_filename(path: str) -> str:
    """A file name that stays the same across hosts, builds and releases.

    Drops the query string and fragment, the scheme and host (`https://cdn.example.com`,
    `webpack://app`, `app://`), `~/`, `./` and leading slashes, version segments (`1.4.2/`,
    `v12/`, `react@18.2.0` -> `react`, `jquery-3.6.0.min.js` -> `jquery.min.js`), build-id
    directories, and content hashes in the file name (`app.3f9c1a2b.js` -> `app.js`,
    `index-CgRLMpJD.js` -> `index.js`); numeric chunk names become `<int>` (`123.js`).
    """
    path = path.strip().replace("\\", "/")
    for mark in ("?", "#"):
        path = path.split(mark, 1)[0]
    path = _SCHEME_AND_HOST.sub("", path)
    path = _VERSION_IN_NAME.sub("", path)
    segments: list[str] = []
    raw_segments = path.split("/")
    for index, segment in enumerate(raw_segments):
        if segment in ("", ".", "~"):
            continue
        is_basename = index == len(raw_segments) - 1
        if not is_basename:
            if _VERSION_SEGMENT.fullmatch(segment) or _is_hash_part(segment):
                continue
            segments.append(_strip_name_hash(segment))  # /srv/app-3f9c1a2/ per deploy
            continue
        parts = segment.split(".")
        kept: list[str] = []
        for position, part in enumerate(parts):
            if position > 0 and _is_hash_part(part):
                continue  # app.3f9c1a2b.js
            kept.append("<int>" if part.isdigit() else part)
        if kept:
            kept[0] = _strip_name_hash(kept[0])
        segments.append(".".join(kept))
    return "/".join(segments)


# Java/Kotlin classes generated at run time carry a counter or a hash in their name.
_GENERATED_CLASS = re.compile(
    r"\$\$Lambda(?:\$\d+)?(?:/(?:0x)?[0-9a-fA-F]+)?"  # Foo$$Lambda$123/0x0000000800c1
    r"|\$\$(?:EnhancerBy|FastClassBy)?\w*?(?:CGLIB|Proxy)\$\$\w+"  # $$EnhancerBySpringCGLIB$$1a2b
    r"|\$HibernateProxy\$\w+"
)


def _generated_class_name(match: re.Match[str]) -> str:
    text = match.group()
    if text.startswith("$$Lambda"):
        return "$$Lambda"
    return text.rsplit("$", 1)[0].rstrip("$")


@lru_cache(maxsize=65536)
def normalize_module(module: str) -> str:
    """A module or class name without generated parts (lambda counters, proxy hashes) and
    without dotted parts that are content hashes (`main.3f9c1a2b` -> `main`)."""
    module = module.strip()
    if "$" in module:
        module = _GENERATED_CLASS.sub(_generated_class_name, module)
    if any(char.isdigit() for char in module):
        module = ".".join(part for part in module.split(".") if not _is_hash_part(part))
    return module


_ANONYMOUS_FUNCTIONS = frozenset({
    "?", "<anonymous>", "anonymous", "<unknown>", "unknown", "(anonymous function)",
    "<anonymous function>", "anonymous function", "{anonymous}", "<computed>",
})
_JS_FUNCTION_PREFIXES = ("async ", "new ", "Object.", "Module.", "module.exports.", "exports.")
_JS_ALIAS = re.compile(r"\s*\[as [^\]]*\]$")  # Object.foo [as bar]
_JS_FIREFOX_INNER = re.compile(r"/<.*$")  # Firefox: checkout/< and checkout/<.then
_JAVA_SYNTHETIC_SUFFIX = re.compile(r"(?:\$\d+)+$")  # lambda$process$0, access$000
_JS_PLATFORMS = frozenset({"javascript", "node"})


@lru_cache(maxsize=65536)
def normalize_function(name: str, platform: str = "") -> str:
    """A function name without the parts that change between builds or call styles.

    Anonymous markers become empty. JavaScript: `async `, `new `, `Object.`, `Module.`,
    `exports.` prefixes, ` [as alias]` and Firefox's `/<` go, and so do minified parts of one
    or two letters (`t.default` -> `default`, `e` -> empty): a minifier renames them in every
    build. Java: synthetic counters (`lambda$process$0` -> `lambda$process`).
    """
    name = name.strip()
    if name in _ANONYMOUS_FUNCTIONS:
        return ""
    if platform in _JS_PLATFORMS:
        name = _JS_ALIAS.sub("", _JS_FIREFOX_INNER.sub("", name))
        stripped = True
        while stripped:
            stripped = False
            for prefix in _JS_FUNCTION_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    stripped = True
        # Node code is seldom minified: only its one-letter parts are taken for a minifier's.
        shortest = 2 if platform == "node" else 3
        parts = [part for part in name.split(".") if len(part) >= shortest
                 and part not in _ANONYMOUS_FUNCTIONS]
        return ".".join(parts)
    if "$" in name:
        name = _JAVA_SYNTHETIC_SUFFIX.sub("", name)
    return name


@lru_cache(maxsize=65536)
def normalize_context_line(line: str) -> str:
    """The source line with its whitespace collapsed; empty for minified lines (too long)."""
    if len(line) > CONTEXT_LINE_MAX_CHARS * 4:
        return ""
    line = " ".join(line.split())
    return "" if len(line) > CONTEXT_LINE_MAX_CHARS else line


_SYSTEM_PATH = re.compile(
    r"node_modules/|site-packages/|dist-packages/|/lib/python\d|/lib64/python\d|/usr/lib/"
    r"|^<frozen |^node:|^internal/|^(?:chrome|moz|safari|safari-web)-extension://"
    r"|webpack/bootstrap|webpack/runtime/|^\[native code\]$|^<anonymous>$"
    r"|/vendors?[~.\-][^/]*$|/chunk-vendors[^/]*$|/framework-[^/]*$"  # bundled libraries
    r"|/jre/lib/|/jdk[^/]*/"
)
_SYSTEM_MODULE = re.compile(
    r"^(?:java|javax|jdk|sun|com\.sun|kotlin|kotlinx|scala|android|androidx|dalvik"
    r"|com\.android)\."
)


@lru_cache(maxsize=65536)
def _path_is_in_app(path: str, module: str) -> bool:
    path = path.replace("\\", "/")
    return not (_SYSTEM_PATH.search(path) or _SYSTEM_MODULE.match(module))


# ---------------------------------------------------------------------------------------------
# Reading the event
# ---------------------------------------------------------------------------------------------
# Payloads are decoded into these structs: only the fields grouping reads are decoded, the
# rest (breadcrumbs, request, frame variables, line numbers...) is skipped without building
# Python objects, about twice as fast as parsing everything. Leaf fields are `Any` because a
# payload is the SDK's JSON as sent; `_text` turns them into strings where one is needed.


# gc=False: decoded JSON holds no reference cycles, and untracked structs spare the collector
# (about 3k instructions an event). frozen: hashable, so whole frames are cached.
class _Frame(msgspec.Struct, frozen=True, gc=False):
    module: Any = None
    filename: Any = None
    abs_path: Any = None
    function: Any = None
    context_line: Any = None
    in_app: Any = None
    platform: Any = None


class _Stacktrace(msgspec.Struct, gc=False):
    frames: list[_Frame | None] | None = None


class _Exception(msgspec.Struct, gc=False):
    type: Any = None
    value: Any = None
    module: Any = None
    mechanism: Any = None
    stacktrace: _Stacktrace | None = None
    thread_id: Any = None


class _ExceptionInterface(msgspec.Struct, gc=False):
    values: list[_Exception | None] | None = None


class _Event(msgspec.Struct, gc=False):
    exception: _ExceptionInterface | list[_Exception | None] | None = None
    message: Any = None
    logentry: Any = None
    fingerprint: Any = None
    platform: Any = None
    level: Any = None
    logger: Any = None
    transaction: Any = None
    threads: Any = None
    stacktrace: _Stacktrace | None = None


_EVENT_DECODER = msgspec.json.Decoder(_Event)
_FRAME_FIELDS = frozenset(_Frame.__struct_fields__)
_EXCEPTION_FIELDS = frozenset(_Exception.__struct_fields__) - {"stacktrace"}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return ""


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _stacktrace_from_json(value: Any) -> _Stacktrace | None:
    """A stack trace from plain JSON, keeping the frames that are objects."""
    frames = _dict(value).get("frames")
    if not isinstance(frames, list):
        return None
    return _Stacktrace([
        _Frame(**{name: field for name, field in frame.items() if name in _FRAME_FIELDS})
        for frame in frames if isinstance(frame, dict)
    ])


def _exception_from_json(value: Json) -> _Exception:
    fields = {name: field for name, field in value.items() if name in _EXCEPTION_FIELDS}
    return _Exception(**fields, stacktrace=_stacktrace_from_json(value.get("stacktrace")))


def _lenient_event(event: Json) -> _Event:
    """An event whose shape is not what SDKs send (a frame that is a string, say): keep the
    parts that fit instead of failing the whole batch."""
    interface = event.get("exception")
    values = interface.get("values") if isinstance(interface, dict) else interface
    exceptions = ([_exception_from_json(value) for value in values if isinstance(value, dict)]
                  if isinstance(values, list) else None)
    fields = {name: event.get(name) for name in _Event.__struct_fields__
              if name not in ("exception", "stacktrace")}
    return _Event(**fields, exception=exceptions,
                  stacktrace=_stacktrace_from_json(event.get("stacktrace")))


def _event_from_json(event: Json) -> _Event:
    try:
        return msgspec.convert(event, _Event)
    except msgspec.ValidationError:
        return _lenient_event(event)


def _decode(payload: str | bytes) -> _Event | None:
    """The event of a payload; None when the payload is not a JSON object."""
    try:
        return _EVENT_DECODER.decode(payload)
    except msgspec.ValidationError:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        return _lenient_event(event) if isinstance(event, dict) else None
    except (msgspec.DecodeError, RecursionError):  # not JSON, or deeper than it can read
        return None


def _exceptions(event: _Event) -> list[_Exception]:
    """`exception.values` (or a bare list), oldest first, as the SDKs send them."""
    interface = event.exception
    values = interface.values if isinstance(interface, _ExceptionInterface) else interface
    return [value for value in values or () if value is not None]


Frames = tuple[_Frame | None, ...]  # as sent, oldest call first; None for a `null` frame


def _frames(stacktrace: _Stacktrace | None) -> Frames:
    if stacktrace is None or not stacktrace.frames:
        return ()
    return tuple(stacktrace.frames)


def _thread_frames(event: _Event, thread_id: Any) -> Frames:
    """The frames of the exception's thread, or of the crashed (else current) thread."""
    threads = event.threads
    values = threads.get("values") if isinstance(threads, dict) else threads
    if not isinstance(values, list):
        return ()
    candidates = [thread for thread in values if isinstance(thread, dict)]
    for wanted in (
        [thread for thread in candidates
         if thread_id is not None and thread.get("id") == thread_id],
        [thread for thread in candidates if thread.get("crashed") is True],
        [thread for thread in candidates if thread.get("current") is True],
    ):
        for thread in wanted:
            frames = _frames(_stacktrace_from_json(thread.get("stacktrace")))
            if frames:
                return frames
    return ()


def _exception_frames(event: _Event, exceptions: list[_Exception]) -> list[Frames]:
    """Frames per exception; the main (last) one borrows the top-level stack trace or its
    thread's when the SDK put the frames there instead."""
    per_exception = [_frames(exc.stacktrace) for exc in exceptions]
    if exceptions and not per_exception[-1]:
        per_exception[-1] = (_frames(event.stacktrace)
                             or _thread_frames(event, exceptions[-1].thread_id))
    return per_exception


def _mechanism(exc: _Exception) -> Json:
    return _dict(exc.mechanism)


def _type_key(exc: _Exception) -> str:
    exc_type = _text(exc.type)
    module = _text(exc.module)
    return f"{module}.{exc_type}" if module and exc_type else exc_type


def _logentry(event: _Event) -> Json:
    if isinstance(event.logentry, dict):
        return event.logentry
    return _dict(event.message)  # some SDKs send the log entry as `message`


def _message_template(event: _Event) -> str:
    """The log template when there is one (`User %s not found`), else the message."""
    entry = _logentry(event)
    for value in (entry.get("message"), entry.get("formatted"), event.message):
        text = _text(value)
        if text.strip():
            return text
    return ""


def _formatted_message(event: _Event) -> str:
    """The message as a person reads it, for the title."""
    entry = _logentry(event)
    formatted = _text(entry.get("formatted"))
    if formatted.strip():
        return formatted
    template = _text(entry.get("message"))
    params = entry.get("params")
    if template and isinstance(params, list | dict) and params:
        try:
            return template % (tuple(params) if isinstance(params, list) else params)
        except (TypeError, ValueError, KeyError):
            return template
    return template or _text(event.message)


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------

FrameKey = tuple[str, str, str]  # location, function, source line


class _FrameInfo(NamedTuple):
    in_app: bool
    key: FrameKey | None  # None: the frame carries nothing usable


def _describe_frame(frame: _Frame, platform: str) -> _FrameInfo:
    module = _text(frame.module)
    filename = _text(frame.filename) or _text(frame.abs_path)
    if isinstance(frame.in_app, bool):
        in_app = frame.in_app
    else:
        # The SDK did not say: not in-app when it comes from a known library location.
        in_app = _path_is_in_app(_text(frame.abs_path) or filename, module)
    if module:
        location = normalize_module(module)
    else:
        location = normalize_filename(filename) if filename else ""
    function = normalize_function(_text(frame.function), _text(frame.platform) or platform)
    context = normalize_context_line(_text(frame.context_line))
    key = (location, function, context) if (location or function or context) else None
    return _FrameInfo(in_app, key)


_K = TypeVar("_K")
_V = TypeVar("_V")


class _BoundedCache(dict[_K, _V]):
    """A cache that empties itself when full: what recurs (a bug's frames, stacks, hashes)
    is back in it within a few events, and a clear costs less than tracking recency."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: _K, value: _V) -> _V:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


# The same frame (minus line numbers and variables, which are not decoded) recurs in every
# event of a bug and across bugs of an app, so its description is computed once.
_FRAME_CACHE: _BoundedCache[tuple[_Frame, str], _FrameInfo] = _BoundedCache(50_000)


def _frame_info(frame: _Frame, platform: str) -> _FrameInfo:
    cache_key = (frame, platform)
    try:
        return _FRAME_CACHE[cache_key]
    except KeyError:
        return _FRAME_CACHE.remember(cache_key, _describe_frame(frame, platform))
    except TypeError:  # a field holds a list or an object: unusual, not worth caching
        return _describe_frame(frame, platform)


class _Stack(NamedTuple):
    """What grouping needs from one stack trace."""

    has_in_app: bool
    in_app_keys: tuple[FrameKey, ...]  # each distinct key once: recursion depth does not count
    all_keys: tuple[FrameKey, ...]
    culprit: str  # `function in location` of the innermost in-app frame


_NO_STACK = _Stack(False, (), (), "")


def _unique(keys: list[FrameKey | None]) -> tuple[FrameKey, ...]:
    return tuple(dict.fromkeys(key for key in keys if key is not None))


def _culprit(frame: _Frame) -> str:
    filename = _text(frame.filename) or _text(frame.abs_path)
    location = _text(frame.module).strip() or (normalize_filename(filename) if filename else "")
    function = _text(frame.function).strip()
    if function and location:
        return _truncate(f"{function} in {location}")
    return _truncate(function or location)


def _describe_stack(frames: Frames, platform: str) -> _Stack:
    present = [frame for frame in frames if frame is not None]
    infos = [_frame_info(frame, platform) for frame in present]
    in_app = [info.key for info in infos if info.in_app]
    culprit = ""
    for frame, info in zip(reversed(present), reversed(infos), strict=True):
        if info.in_app:
            culprit = _culprit(frame)
            break
    return _Stack(bool(in_app), _unique(in_app), _unique([info.key for info in infos]), culprit)


# A bug's events mostly come through the same code path, so the same tuple of frames recurs.
# A few KB each: tens of MB at most.
_STACK_CACHE: _BoundedCache[tuple[Frames, str], _Stack] = _BoundedCache(10_000)


def _stack(frames: Frames, platform: str) -> _Stack:
    if not frames:
        return _NO_STACK
    cache_key = (frames, platform)
    try:
        return _STACK_CACHE[cache_key]
    except KeyError:
        return _STACK_CACHE.remember(cache_key, _describe_stack(frames, platform))
    except TypeError:  # a field holds a list or an object: unusual, not worth caching
        return _describe_stack(frames, platform)


# ---------------------------------------------------------------------------------------------
# Default grouping
# ---------------------------------------------------------------------------------------------


class _Grouping(NamedTuple):
    strategy: str
    components: list[Any]
    # Where the title and culprit come from:
    main_exception: _Exception | None = None
    main_stack: _Stack = _NO_STACK
    # The hash of (strategy, components) when it came from the cache of default hashes.
    fingerprint_hash: str = ""


def _group_members(exceptions: list[_Exception]) -> tuple[list[int], int | None]:
    """For an exception group: the indices of the exceptions to hash (the top-level one
    first, then the leaves: every exception that is a member of a group without being a group
    itself) and the index of the top-level one; ([], None) if it is no group. The causes of a
    leaf are not hashed: the leaf is what failed."""
    if not any(isinstance(exc.mechanism, dict) and exc.mechanism.get("is_exception_group")
               for exc in exceptions):
        return [], None
    mechanisms = [_mechanism(exc) for exc in exceptions]
    # Ids are numbers; anything else (unhashable lists included) links nothing.
    groups = {mechanism.get("exception_id") for mechanism in mechanisms
              if mechanism.get("is_exception_group") is True
              and isinstance(mechanism.get("exception_id"), int | str)}
    top = len(exceptions) - 1
    for index, mechanism in enumerate(mechanisms):
        if mechanism.get("exception_id") == 0:
            top = index
    leaves = [
        index for index, mechanism in enumerate(mechanisms)
        if index != top and mechanism.get("is_exception_group") is not True
        and isinstance(mechanism.get("parent_id"), int | str)
        and mechanism.get("parent_id") in groups
    ]
    return [top, *leaves], top


# Default hashes by their components: the events of a bug share them, and an MD5 over the JSON
# of a whole stack trace costs more than the lookup. Keys hold the cached stack's own tuple
# of frame keys, so a hit is mostly compared by identity.
_HASH_CACHE: _BoundedCache[tuple[Any, ...], str] = _BoundedCache(20_000)


def _cached_hash(strategy: str, components: list[Any], cache_key: tuple[Any, ...]) -> str:
    try:
        return _HASH_CACHE[cache_key]
    except KeyError:
        return _HASH_CACHE.remember(cache_key, _hash(strategy, components))


def _single_exception_grouping(event: _Event, exc: _Exception) -> _Grouping | None:
    """`_exception_grouping` for one exception that is not an exception group, the common
    case, without the bookkeeping of chains and groups (the same parts, title and culprit)."""
    frames = _frames(exc.stacktrace) or _frames(event.stacktrace) or _thread_frames(
        event, exc.thread_id)
    stack = _stack(frames, _text(event.platform))
    keys = stack.in_app_keys if stack.has_in_app else stack.all_keys
    type_key = _type_key(exc)
    part: list[Any]
    if keys:
        strategy = "stacktrace"
        part = [type_key, keys]
        # Why the value joins the frames: see _exception_grouping.
        if not (keys[-1][1] or keys[-1][2]) or _mechanism(exc).get("synthetic") is True:
            part.append(_normalize_message_cached(_text(exc.value)))
    else:
        strategy = "exception"
        part = [type_key, _normalize_message_cached(_text(exc.value))]
        if not (type_key or part[1]):
            return None  # no type, value or frames: try the message
    components = [part]
    fingerprint_hash = _cached_hash(strategy, components, (strategy, *part))
    return _Grouping(strategy, components, exc, stack, fingerprint_hash)


def _exception_grouping(event: _Event, exceptions: list[_Exception]) -> _Grouping | None:
    if len(exceptions) == 1:
        mechanism = exceptions[0].mechanism
        if mechanism is None or (isinstance(mechanism, dict)
                                 and not mechanism.get("is_exception_group")):
            return _single_exception_grouping(event, exceptions[0])
    return _chain_grouping(event, exceptions)


def _chain_grouping(event: _Event, exceptions: list[_Exception]) -> _Grouping | None:
    """The parts of a chain or an exception group (of any event: tests hold the quick path
    of `_single_exception_grouping` to it)."""
    platform = _text(event.platform)
    stacks = [_stack(frames, platform) for frames in _exception_frames(event, exceptions)]
    members, top = _group_members(exceptions)
    indices = members or range(len(exceptions))

    in_app_only = any(stacks[index].has_in_app for index in indices)
    keys = {index: stacks[index].in_app_keys if in_app_only else stacks[index].all_keys
            for index in indices}
    has_frames = any(keys[index] for index in indices)

    parts: list[list[Any]] = []
    for index in indices:
        exc = exceptions[index]
        value = _text(exc.value)
        part: list[Any] = [_type_key(exc)]
        if has_frames:
            exc_keys = keys[index]
            part.append(exc_keys)
            # The frame that raised has neither a function name nor a source line (minified,
            # unsymbolicated): it cannot tell bugs in one bundle apart, the message can. A
            # synthetic exception's frames are where the SDK captured it, not the error's.
            weak = bool(exc_keys) and not (exc_keys[-1][1] or exc_keys[-1][2])
            if weak or _mechanism(exc).get("synthetic") is True:
                part.append(_normalize_message_cached(value))
        else:
            part.append(_normalize_message_cached(value))
        parts.append(part)

    if not any(part[0] or any(part[1:]) for part in parts):
        return None  # exceptions without type, value or frames: try the message
    if members:
        # The top-level group, then each distinct leaf once, in a stable order.
        leaves = {orjson.dumps(part): part for part in parts[1:]}
        parts = [parts[0], *(leaves[key] for key in sorted(leaves))]

    if top is not None:
        # A group whose leaves are all alike is named by the leaf (what to fix), else by the
        # group itself.
        main = members[1] if len(parts) == 2 and len(members) > 1 else top
        culprit_index = main
    else:
        # A chain is named by its last exception (the one caught); the culprit comes from the
        # nearest exception with frames.
        main = culprit_index = len(exceptions) - 1
        while culprit_index > 0 and not stacks[culprit_index].all_keys:
            culprit_index -= 1
    strategy = "stacktrace" if has_frames else "exception"
    return _Grouping(strategy, parts, exceptions[main], stacks[culprit_index])


def _default_grouping(event: _Event) -> _Grouping:
    exceptions = _exceptions(event)
    if exceptions:
        grouping = _exception_grouping(event, exceptions)
        if grouping is not None:
            return grouping
    template = _message_template(event)
    if template:
        message = _normalize_message_cached(template)
        components = [message]
        return _Grouping("message", components, fingerprint_hash=_cached_hash(
            "message", components, ("message", message)))
    return _Grouping("fallback", [_text(event.level), _text(event.logger), _text(event.platform)])


def default_grouping(event: Json) -> tuple[str, list[Any]]:
    """The default strategy's name and the components it hashes, for an event as JSON
    (e.g. to show a user why two events were grouped together)."""
    grouping = _default_grouping(_event_from_json(event))
    return grouping.strategy, orjson.loads(orjson.dumps(grouping.components))


def _hash(kind: str, components: Any) -> str:
    return hashlib.md5(orjson.dumps([GROUPING_VERSION, kind, components])).hexdigest()


def _default_hash(grouping: _Grouping) -> str:
    return grouping.fingerprint_hash or _hash(grouping.strategy, grouping.components)


# ---------------------------------------------------------------------------------------------
# Custom fingerprints
# ---------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def _fingerprint_values(event: _Event) -> list[str]:
    values = event.fingerprint
    if not isinstance(values, list):
        return []
    return [_text(value) for value in values
            if isinstance(value, str | int | float) and not isinstance(value, bool)]


def _fill_variable(name: str, event: _Event) -> str | None:
    """The value of `{{ name }}` for this event; None for `default` and unknown names."""
    if name == "transaction":
        return _text(event.transaction)
    if name in ("type", "error.type"):
        exceptions = _exceptions(event)
        return _text(exceptions[-1].type) if exceptions else ""
    if name == "level":
        return _text(event.level)
    if name == "logger":
        return _text(event.logger)
    return None


def _is_default(value: str) -> bool:
    match = _VARIABLE.fullmatch(value.strip())
    return bool(match) and match.group(1) == "default"


# ---------------------------------------------------------------------------------------------
# Titles and culprits
# ---------------------------------------------------------------------------------------------


def _truncate(text: str) -> str:
    """The first line, at most TITLE_MAX_CHARS characters."""
    line = text.strip().split("\n", 1)[0].strip()
    if len(line) > TITLE_MAX_CHARS:
        return line[: TITLE_MAX_CHARS - 1].rstrip() + "…"
    return line


def _exception_title(exc: _Exception) -> str:
    exc_type = _text(exc.type).strip()
    value = _text(exc.value).strip()
    if exc_type and value:
        return _truncate(f"{exc_type}: {value}")
    return _truncate(exc_type or value) or "<unknown error>"


# ---------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------


def _fingerprint(event: _Event) -> Fingerprint:
    grouping = _default_grouping(event)
    if grouping.main_exception is not None:
        title = _exception_title(grouping.main_exception)
        culprit = grouping.main_stack.culprit
    elif grouping.strategy == "message":
        title = _truncate(_formatted_message(event)) or "<unlabeled event>"
        culprit = ""
    else:
        title, culprit = "<unlabeled event>", ""
    culprit = culprit or _truncate(_text(event.transaction))

    values = _fingerprint_values(event)
    if not values:
        fingerprint_hash = _default_hash(grouping)
        return Fingerprint(fingerprint_hash, grouping.strategy, title, culprit)

    if all(_is_default(value) for value in values):
        # Same hash as no fingerprint at all: enabling it in the SDK keeps existing issues.
        fingerprint_hash = _default_hash(grouping)
        return Fingerprint(fingerprint_hash, "custom+default", title, culprit)

    components: list[Any] = []
    uses_default = False
    for value in values:
        match = _VARIABLE.fullmatch(value.strip())
        if match and match.group(1) == "default":
            uses_default = True
            components.append([grouping.strategy, grouping.components])
            continue
        filled = _fill_variable(match.group(1), event) if match else None
        components.append(value if filled is None else filled)
    strategy = "custom+default" if uses_default else "custom"
    return Fingerprint(_hash("custom", components), strategy, title, culprit)


# The hash and culprit of one exception without a mechanism that has frames, by its frames
# (as decoded: no line numbers), the platform, its type and its module: all that the grouping
# of such an exception reads but its value, which is hashed only when the innermost in-app
# frame is weak, itself a matter of the frames (such keys are stored as None: the general
# path groups them). The platform, type and module are text or null: as keys True == 1 == 1.0,
# which `_text` tells apart (frames are keys of `_STACK_CACHE` as they are already).
_QuickKey = tuple[Frames, str | None, str | None, str | None]
# A stack trace each: a few KB.
_QUICK_CACHE: _BoundedCache[_QuickKey, tuple[str, str] | None] = _BoundedCache(10_000)


def _quick_fingerprint(event: _Event) -> Fingerprint | None:
    """`_fingerprint` of the common event, one exception with its frames and nothing else to
    hash; None for any other (or one that has to be hashed with its value)."""
    if event.fingerprint is not None:
        return None
    interface = event.exception
    values = interface.values if isinstance(interface, _ExceptionInterface) else interface
    if values.__class__ is not list or len(values) != 1:
        return None
    exc = values[0]
    if exc is None or exc.mechanism is not None or exc.stacktrace is None:
        return None
    frames = exc.stacktrace.frames
    platform, exc_type, module = event.platform, exc.type, exc.module
    if (not frames or (platform is not None and platform.__class__ is not str)
            or (exc_type is not None and exc_type.__class__ is not str)
            or (module is not None and module.__class__ is not str)):
        return None
    cache_key = (tuple(frames), platform, exc_type, module)
    try:
        cached = _QUICK_CACHE[cache_key]
    except KeyError:
        grouping = _single_exception_grouping(event, exc)
        cached = None
        if (grouping is not None and grouping.strategy == "stacktrace"
                and len(grouping.components[0]) == 2):
            cached = (grouping.fingerprint_hash, grouping.main_stack.culprit)
        _QUICK_CACHE.remember(cache_key, cached)
    except TypeError:  # a frame field holds a list or an object
        return None
    if cached is None:
        return None
    fingerprint_hash, culprit = cached
    # `_exception_title` of a text type and value, without its calls: both stripped and not
    # empty, "type: value" has no outer whitespace, so it is its own first line unless it
    # holds a line break.
    value = exc.value
    title = ""
    if exc_type is not None and value.__class__ is str:
        title_type = exc_type.strip()
        title_value = value.strip()
        if title_type and title_value:
            title = f"{title_type}: {title_value}"
            if len(title) > TITLE_MAX_CHARS or "\n" in title:
                title = _truncate(title)
    return Fingerprint(fingerprint_hash, "stacktrace", title or _exception_title(exc),
                       culprit or _truncate(_text(event.transaction)))


def fingerprint_event(event: Json) -> Fingerprint:
    """Hash, strategy, title and culprit of one error or message event given as JSON."""
    return _fingerprint(_event_from_json(event))


_INVALID = Fingerprint(_hash("fallback", ["<invalid event>"]), "fallback", "<invalid event>", "")


class _TransactionName(msgspec.Struct):
    transaction: Any = None


# A transaction's title is its name: a typed decode skips the spans and measurements instead
# of building them.
_TRANSACTION_NAME_DECODER = msgspec.json.Decoder(_TransactionName)


def _other_item_title(item_type: str, payload: str | bytes | None) -> str:
    if item_type == "transaction" and payload:
        try:
            name = _TRANSACTION_NAME_DECODER.decode(payload).transaction
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            pass  # not JSON, not an object, too deep: as orjson reads it below
        else:
            # orjson reads a number as msgspec does only for text; any other value is left to
            # it. (A number beyond a double elsewhere, 1e400, makes orjson refuse the whole
            # payload, msgspec not: such a transaction keeps its name, as its row does.)
            if isinstance(name, str):
                return _truncate(name)
    try:
        item = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        return ""
    item = _dict(item)
    if item_type == "transaction":
        return _truncate(_text(item.get("transaction")))
    if item_type == "feedback":
        feedback = _dict(_dict(item.get("contexts")).get("feedback"))
        return _truncate(_text(feedback.get("message")))
    if item_type == "user_report":
        return _truncate(_text(item.get("comments")))
    return ""


def fingerprint_payload(item_type: str, payload: str | bytes | None) -> Fingerprint:
    """`Fingerprint` of one row of the raw-events frame."""
    if item_type != "event":
        return Fingerprint("", "", _other_item_title(item_type, payload), "")
    event = _decode(payload) if payload else None
    if event is None:
        return _INVALID
    try:
        return _quick_fingerprint(event) or _fingerprint(event)
    except Exception:
        # A shape this code did not foresee must not fail the batch of everyone's events.
        log.exception("fingerprinting fell back for an event it could not read")
        return _INVALID


_OUTPUT_COLUMNS = ("fingerprint_hash", "fingerprint_strategy", "title", "culprit")


def fingerprint_events(frame: pl.DataFrame) -> pl.DataFrame:
    """The raw-events frame with `fingerprint_hash`, `fingerprint_strategy`, `title` and
    `culprit` added (or replaced), in the same row order."""
    item_types: Iterable[str] = frame.get_column("item_type").to_list()
    payloads: Iterable[str] = frame.get_column("payload").to_list()
    results = [fingerprint_payload(item_type, payload)
               for item_type, payload in zip(item_types, payloads, strict=True)]
    columns = list(zip(*results, strict=True)) if results else [(), (), (), ()]
    return frame.with_columns(
        pl.Series(name, list(values), dtype=pl.Utf8)
        for name, values in zip(_OUTPUT_COLUMNS, columns, strict=True)
    )
