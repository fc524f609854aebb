"""Just enough of ClickHouse's lexer to route a query without parsing it.

The server needs four facts about a statement: its kind (first keyword), its output format
(`FORMAT X`, for the response headers), whether it is an `INSERT … FORMAT X` followed by inline
data (which must bypass chDB's SQL path, see engine.py), and whether it is really several
statements (ClickHouse's HTTP interface refuses those). Strings, quoted identifiers, comments
and parentheses are skipped so that a `FORMAT` or `;` inside them does not count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.embedded.warehouse.errors import SYNTAX_ERROR, WarehouseError

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*|\#[\ !][^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>'(?:[^'\\]|\\.|'')*(?:'|\Z))
    | (?P<quoted>"(?:[^"\\]|\\.|"")*(?:"|\Z)|`(?:[^`\\]|\\.|``)*(?:`|\Z))
    | (?P<heredoc>\$(?P<tag>\w*)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Statements whose response carries a result set (and so an X-ClickHouse-Format header).
_RESULT_KINDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "("}
)


@dataclass(frozen=True)
class Statement:
    kind: str  # first keyword, upper-case ("(" for a parenthesised SELECT, "" if empty)
    format: str | None = None  # canonical name of the FORMAT clause, if any
    format_start: int | None = None  # offset of the FORMAT keyword
    data_start: int | None = None  # INSERT … FORMAT X only: where the inline data begins
    temporary: bool = False  # CREATE [OR REPLACE] TEMPORARY …: adds a table to the session

    @property
    def has_result(self) -> bool:
        return self.kind in _RESULT_KINDS

    @property
    def changes_session(self) -> bool:
        """Leaves state in the session beyond the statement (settings, database, tables)."""
        return self.kind in ("SET", "USE") or self.temporary

    @property
    def is_insert_with_data(self) -> bool:
        return self.kind == "INSERT" and self.data_start is not None


def scan(text: str, formats: Mapping[str, str]) -> Statement:
    """Find the kind, FORMAT clause and (for INSERT) the inline data of one statement.

    `formats` maps lower-case format names to their canonical spelling. For an INSERT the scan
    stops right after `FORMAT X`, so `text` may continue with binary data (decode it as
    latin-1 so that offsets are byte offsets).
    """
    kind = ""
    depth = 0
    ended = False  # a top-level ";" was seen: only blanks may follow
    pending_format: int | None = None  # offset of a top-level FORMAT keyword awaiting its name
    found: tuple[str, int] | None = None
    temporary = False
    create_prefix = True  # still within "CREATE [OR REPLACE]", where TEMPORARY may come
    for match in _TOKEN.finditer(text):
        group = match.lastgroup
        if group in ("space", "comment"):
            continue
        value = match.group()
        if ended and value != ";":
            raise WarehouseError(
                SYNTAX_ERROR,
                "Syntax error (Multi-statements are not allowed): failed at position "
                f"{match.start() + 1}: {value!r}",
            )
        if not kind:
            kind = value.upper() if group == "word" else value
        if pending_format is not None:
            start, pending_format = pending_format, None
            if group == "word":
                canonical = formats.get(value.lower())
                if kind == "INSERT":
                    return Statement(
                        kind, canonical or value, start, _data_start(text, match.end())
                    )
                if canonical:
                    found = (canonical, start)
                    continue
        if group == "word" and depth == 0:
            upper = value.upper()
            if create_prefix and kind == "CREATE":
                temporary = temporary or upper == "TEMPORARY"
                create_prefix = upper in ("CREATE", "OR", "REPLACE")
            if upper == "FORMAT":
                pending_format = match.start()
            elif kind == "INSERT" and upper in ("VALUES", "SELECT", "WITH"):
                # Inline VALUES are SQL that chDB parses safely; INSERT … SELECT has no data
                # (chDB cannot stream into `input()`, so such a query runs as plain SQL).
                return Statement(kind)
        elif group == "other":
            if value == "(":
                depth += 1
            elif value == ")":
                depth = max(0, depth - 1)
            elif value == ";" and depth == 0:
                ended = True
    if not kind:
        raise WarehouseError(SYNTAX_ERROR, "Empty query")
    if found:
        return Statement(kind, found[0], found[1], temporary=temporary)
    return Statement(kind, temporary=temporary)


def _data_start(text: str, end_of_format_name: int) -> int:
    """Inline data starts after the newline following `FORMAT X`, else after the blanks.

    This is ClickHouse's own rule: a binary payload may begin with a byte that looks like
    whitespace, so only one newline is eaten once the spaces before it are skipped.
    """
    pos = end_of_format_name
    while pos < len(text) and text[pos] in " \t\f":
        pos += 1
    if pos < len(text) and text[pos] == "\r":
        pos += 1
    if pos < len(text) and text[pos] == "\n":
        pos += 1
    return pos


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
