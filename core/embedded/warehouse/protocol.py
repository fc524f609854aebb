"""The request side of ClickHouse's HTTP interface: parameters, credentials, body, query.

A request is turned into a `Work`: either SQL to run, or an INSERT head plus a stream of
data chunks. The rules follow ClickHouse: the query is the URL's `query` parameter followed
by the body; when that text is `INSERT … FORMAT X`, whatever follows it is the data.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import gzip
import hmac
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol
from urllib.parse import unquote_plus

import lz4.frame
import zstandard

from core.embedded.warehouse import errors
from core.embedded.warehouse.errors import WarehouseError
from core.embedded.warehouse.sql import Statement, scan

CHUNK = 1024 * 1024
# The INSERT text before inline data is looked for in the first 256 KiB of the body
# (ClickHouse's default max_query_size, which limits query text the same way).
MAX_HEAD = 256 * 1024

# URL parameters the HTTP interface consumes itself: never passed to the engine as settings.
HTTP_PARAMS = frozenset(
    {
        "query", "database", "default_format", "session_id", "session_timeout",
        "session_check", "close_session", "user", "password", "query_id", "compress",
        "decompress", "buffer_size", "wait_end_of_query", "quota_key",
        "client_protocol_version", "role", "stacktrace", "with_stacktrace",
    }
)  # fmt: skip
# Real ClickHouse settings that only steer its HTTP handler (compression, progress headers,
# buffering). They are valid names, but nothing in chDB reads them, so skip the SET.
HTTP_HANDLER_SETTINGS = frozenset(
    {
        "enable_http_compression", "http_zlib_compression_level", "send_progress_in_http_headers",
        "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query", "http_response_buffer_size", "add_http_cors_header",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)  # fmt: skip


@dataclass
class Parameters:
    """A request's URL (and form) parameters, sorted by what consumes them."""

    http: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] = field(default_factory=dict)  # param_x -> x

    @classmethod
    def parse(
        cls, pairs: Mapping[str, str], external_tables: frozenset[str] = frozenset()
    ) -> Parameters:
        result = cls()
        for name, value in pairs.items():
            if name.startswith("param_"):
                result.query_params[name[len("param_") :]] = value
            elif name in HTTP_PARAMS or (
                external_tables and _is_external_table_param(name, external_tables)
            ):
                result.http[name] = value
            elif name not in HTTP_HANDLER_SETTINGS:
                result.settings[name] = value
        return result


def _is_external_table_param(name: str, tables: frozenset[str]) -> bool:
    base, _, suffix = name.rpartition("_")
    return suffix in ("structure", "types", "format") and base in tables


def url_parameters(query_string: str) -> dict[str, str]:
    """The URL's parameters (the last value wins), decoding only what is encoded."""
    params: dict[str, str] = {}
    for piece in query_string.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in piece or "+" in piece:  # parse_qsl does this for every piece, 3x slower
            name, value = unquote_plus(name), unquote_plus(value)
        params[name] = value
    return params


# --- authentication -----------------------------------------------------------------------
def credentials(environ: Mapping[str, object], params: Mapping[str, str]) -> tuple[str, str]:
    """The user and password a request presents, in ClickHouse's three ways (default: none)."""
    header = str(environ.get("HTTP_AUTHORIZATION") or "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            raise WarehouseError(
                errors.AUTHENTICATION_FAILED, f"Unsupported authentication scheme: {scheme}"
            )
        try:
            user, _, password = base64.b64decode(token.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise WarehouseError(
                errors.AUTHENTICATION_FAILED, "Malformed Basic authorization header"
            ) from None
        return user, password
    if environ.get("HTTP_X_CLICKHOUSE_USER") is not None:
        return str(environ["HTTP_X_CLICKHOUSE_USER"]), str(environ.get("HTTP_X_CLICKHOUSE_KEY", ""))
    return params.get("user", "default"), params.get("password", "")


def check_credentials(presented: tuple[str, str], user: str, password: str) -> None:
    """Accept anything when no password is configured, as a fresh ClickHouse does."""
    if not password:
        return
    user_ok = hmac.compare_digest(presented[0].encode(), user.encode())
    password_ok = hmac.compare_digest(presented[1].encode(), password.encode())
    if not (user_ok and password_ok):
        raise WarehouseError(
            errors.AUTHENTICATION_FAILED,
            f"{presented[0]}: Authentication failed: password is incorrect, "
            "or there is no user with such name.",
        )


# --- the body -------------------------------------------------------------------------------
class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _ZlibReader:
    """A file-like inflater (HTTP "deflate", zlib-wrapped), bounded per read like gzip's.

    Streams may follow one another (one per block, as clients do with lz4 and zstd frames).
    """

    _WBITS = zlib.MAX_WBITS | 32  # accepts a zlib or a gzip header

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(self._WBITS)
        self._pending = b""
        self._in_stream = False  # inside a stream that has not ended yet

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._inflater.eof:
                self._pending = self._inflater.unused_data + self._pending
                self._inflater = zlib.decompressobj(self._WBITS)
                self._in_stream = False
            if not self._pending:
                self._pending = self._raw.read(CHUNK)
                if not self._pending:
                    if self._in_stream:
                        raise EOFError("compressed stream ended before the end-of-stream marker")
                    return b""
            self._in_stream = True
            out = self._inflater.decompress(self._pending, size if size > 0 else 0)
            self._pending = self._inflater.unconsumed_tail
            if out:
                return out


class _BrotliReader:
    def __init__(self, raw: BinaryIO) -> None:
        import brotli  # optional: only needed for Content-Encoding: br

        self._raw = raw
        self._decoder = brotli.Decompressor()

    def read(self, size: int = -1) -> bytes:
        while not self._decoder.is_finished():
            data = self._raw.read(CHUNK)
            if not data:
                raise EOFError("brotli stream is truncated")
            out = self._decoder.process(data)
            if out:
                return out
        return b""


_DECODE_ERROR_CODES = {"gzip": 354, "deflate": 354, "br": 448, "zstd": 561, "lz4": 618}


def _decoder(raw: BinaryIO, encoding: str) -> _Readable:
    if encoding in ("", "identity", "none"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if encoding == "deflate":
        return _ZlibReader(raw)
    if encoding == "lz4":  # clickhouse-connect's default for inserts: one frame per block
        return lz4.frame.LZ4FrameFile(raw, mode="rb")
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if encoding == "br":
        try:
            return _BrotliReader(raw)
        except ImportError:
            raise WarehouseError(
                errors.UNKNOWN_COMPRESSION_METHOD,
                "Content-Encoding: br needs the 'brotli' Python package, which is not "
                "installed on the warehouse server; use lz4, zstd, gzip or deflate",
            ) from None
    raise WarehouseError(
        errors.UNKNOWN_COMPRESSION_METHOD,
        f"Unknown Content-Encoding '{encoding}'. Supported: gzip, deflate, br, zstd, lz4",
    )


def too_large(limit: int, what: str) -> WarehouseError:
    return WarehouseError(
        errors.QUERY_IS_TOO_LARGE,
        f"The {what} request body exceeds the warehouse limit of {limit} bytes "
        "(--max-body-bytes / WAREHOUSE_MAX_BODY_BYTES)",
    )


class Body:
    """The request body, decompressed chunk by chunk with the size limit enforced as it goes.

    Its first bytes can be taken (`take_prefix`) to find the query text, and the rest then
    streams on (`rest`) so that large INSERT data is never held in memory whole.
    """

    def __init__(self, raw: BinaryIO, encoding: str, limit: int) -> None:
        self.encoding = encoding.strip().lower()
        self.limit = limit
        self._chunks = self._decode(_decoder(raw, self.encoding))

    def _decode(self, reader: _Readable) -> Iterator[bytes]:
        produced = 0
        while True:
            try:
                chunk = reader.read(CHUNK)
            except WarehouseError:  # reading the body from the connection failed
                raise
            except Exception as exc:  # each codec has its own error types
                code = _DECODE_ERROR_CODES.get(self.encoding, errors.CANNOT_DECOMPRESS)
                raise WarehouseError(
                    code,
                    f"Cannot decode the request body (Content-Encoding: {self.encoding}): "
                    f"{type(exc).__name__}: {exc}",
                ) from None
            if not chunk:
                return
            produced += len(chunk)
            if produced > self.limit:
                raise too_large(self.limit, "decompressed")
            yield chunk

    def take_prefix(self, size: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        for chunk in self._chunks:
            parts.append(chunk)
            total += len(chunk)
            if total >= size:
                break
        return b"".join(parts)

    def rest(self) -> Iterator[bytes]:
        return self._chunks

    def read_all(self) -> bytes:
        return b"".join(self._chunks)


# --- forms (clickhouse-connect switches to multipart when bound parameters are long) -------
def parse_form(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields (query, param_*) and file fields (external tables) of a multipart form."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise WarehouseError(errors.BAD_ARGUMENTS, "Malformed multipart/form-data body")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is None:
            fields[str(name)] = payload.decode("utf-8", "replace")
        else:
            files[str(name)] = payload
    return fields, files


# --- query assembly -------------------------------------------------------------------------
@dataclass(frozen=True)
class Work:
    statement: Statement
    sql: str  # the whole query, or for an insert with data the INSERT without FORMAT
    data: Iterator[bytes] | None = None  # INSERT … FORMAT X: the data chunks

    @property
    def format(self) -> str | None:
        return self.statement.format


def assemble(url_query: str, body: Body, formats: Mapping[str, str]) -> Work:
    """Build the statement from the URL query and the body, as ClickHouse does."""
    # ClickHouse reads the URL query, a newline, then the body as one stream; the newline
    # keeps inline data that starts with a blank byte from being eaten.
    head = (url_query + "\n").encode() if url_query else b""
    if head:
        work = _split(head, body, formats, complete=False)
        if work is not None:
            return work
    prefix = body.take_prefix(MAX_HEAD)
    text = head + prefix
    work = _split(text, body, formats, complete=len(prefix) < MAX_HEAD)
    if work is not None:
        return work
    text += body.read_all()
    work = _split(text, body, formats, complete=True)
    assert work is not None
    return work


def _split(text: bytes, body: Body, formats: Mapping[str, str], complete: bool) -> Work | None:
    """An insert with inline data, else (once the text is complete) a plain query."""
    # latin-1 maps bytes 1:1 to characters, so offsets stay byte offsets past binary data.
    # Kind and format come out the same as from the UTF-8 text: keywords are ASCII.
    statement = scan(text.decode("latin-1"), formats)
    if statement.is_insert_with_data:
        assert statement.format_start is not None and statement.data_start is not None
        inline = text[statement.data_start :]
        return Work(
            statement,
            _utf8(text[: statement.format_start]).rstrip(),
            _chain(inline, body.rest()),
        )
    if not complete:
        return None
    return Work(statement, _utf8(text))


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WarehouseError(
            errors.BAD_ARGUMENTS, f"The query text is not valid UTF-8: {exc}"
        ) from None


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
