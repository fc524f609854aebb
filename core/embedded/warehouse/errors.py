"""ClickHouse-style errors: the code, the body text and the HTTP status a client expects.

Clients (clickhouse-connect, dbt-clickhouse) read the `X-ClickHouse-Exception-Code` header and
the `Code: N. DB::Exception: …` body, so every failure the server reports goes through here.
"""

from __future__ import annotations

import re

# The ClickHouse error codes this server raises itself (names as in ClickHouse's ErrorCodes).
CODE_NAMES: dict[int, str] = {
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    73: "UNKNOWN_FORMAT",
    81: "UNKNOWN_DATABASE",
    89: "UNKNOWN_COMPRESSION_METHOD",
    115: "UNKNOWN_SETTING",
    164: "READONLY",
    194: "REQUIRED_PASSWORD",
    229: "QUERY_IS_TOO_LARGE",
    271: "CANNOT_DECOMPRESS",
    354: "ZLIB_INFLATE_FAILED",
    372: "SESSION_NOT_FOUND",
    373: "SESSION_IS_LOCKED",
    374: "INVALID_SESSION_TIMEOUT",
    448: "BROTLI_READ_FAILED",
    516: "AUTHENTICATION_FAILED",
    561: "ZSTD_DECODER_FAILED",
    618: "LZ4_DECODER_FAILED",
    762: "HTTP_CONNECTION_LIMIT_REACHED",
    1: "UNSUPPORTED_METHOD",
    1001: "STD_EXCEPTION",
}

UNSUPPORTED_METHOD = 1
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_FORMAT = 73
UNKNOWN_COMPRESSION_METHOD = 89
UNKNOWN_SETTING = 115
READONLY = 164
QUERY_IS_TOO_LARGE = 229
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
AUTHENTICATION_FAILED = 516
HTTP_CONNECTION_LIMIT_REACHED = 762
STD_EXCEPTION = 1001

# ClickHouse answers some errors with a 4xx status instead of 500 (its HTTPHandler does the
# same mapping); clients only look at the code header, but curl users see the status.
_BAD_REQUEST = {
    6, 25, 26, 27, 32, 33, 36, 38, 41, 53, 62, 69, 72, 117, 131, 354, 448, 456, 457, 561, 618,
}  # fmt: skip
_NOT_FOUND = {46, 47, 50, 60, 63, 73, 81, 83, 115, 204, 511}
_FORBIDDEN = {164, 497}
_UNAUTHORIZED = {192, 193, 194, 516}

_CODE_PREFIX = re.compile(r"Code: (\d+)\. DB::Exception: ")
_NESTED_TRAILERS = re.compile(r"(?: \([A-Z_]+\) \(version [\d.]+\)\.)+(?= \([A-Z_]+\)$)")


class WarehouseError(Exception):
    """An error to report to the client as `Code: N. DB::Exception: message`."""

    def __init__(self, code: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or http_status_for(code)

    def body(self, version: str) -> bytes:
        name = CODE_NAMES.get(self.code)
        text = self.message
        # Messages from chDB already end with "(NAME)"; ours get it added here.
        if name and not text.rstrip(". ").endswith(f"({name})"):
            text = f"{text.rstrip()}. ({name})"
        return f"Code: {self.code}. DB::Exception: {text} (version {version})\n".encode()


def http_status_for(code: int) -> int:
    if code in _UNAUTHORIZED:
        return 401
    if code in _FORBIDDEN:
        return 403
    if code in _NOT_FOUND:
        return 404
    if code in _BAD_REQUEST:
        return 400
    if code == QUERY_IS_TOO_LARGE:
        return 413
    if code == NOT_IMPLEMENTED:
        return 501
    return 500


def from_engine_message(message: str) -> WarehouseError:
    """Turn a chDB exception text (`Code: 60. DB::Exception: …`) into a WarehouseError."""
    start = message.find("Code: ")
    text = message[start:].strip() if start >= 0 else message.strip()
    match = _CODE_PREFIX.match(text)
    if match is None:
        return WarehouseError(STD_EXCEPTION, text or "unknown engine error")
    code = int(match.group(1))
    # chDB sometimes nests the same prefix several times ("Code: 73. …: Code: 73. …").
    prefix = match.group(0)
    while text.startswith(prefix + prefix):
        text = text[len(prefix) :]
    text = text[len(prefix) :]
    # Drop the repeated "(NAME) (version …)." trailers; body() adds one version trailer itself.
    text = _NESTED_TRAILERS.sub("", text)
    text = re.sub(r" \(version [\d.]+\)$", "", text)
    return WarehouseError(code, text)
