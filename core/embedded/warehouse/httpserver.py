"""A small HTTP/1.1 server for the warehouse's WSGI app: one thread per connection.

Why not waitress: every warehouse query pays the HTTP server's cost, and waitress spent about
0.4 ms of CPU per request here (its event loop hands each request to a worker thread and
back), against 0.08 ms for a blocking thread per connection. That difference alone was a
quarter of the 2 ms the warehouse may add to a trivial query. So this server does what
ClickHouse itself does: a thread per connection reads a request, runs it, writes the answer
and waits for the next one on the same keep-alive connection, with no hand-offs.

What it guarantees: TCP_NODELAY on every connection (without it each response waits ~40 ms
for a delayed ACK); at most `threads` requests running the app at once (the others wait for a
slot), at most `max_connections` open connections; bodies up to `max_body_bytes`, chunked ones
dechunked, read from the connection as the app reads them (see RequestBody); idle connections
closed after `idle_timeout`; a clean stop that lets running requests finish.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import unquote

from core.embedded.warehouse import errors
from core.embedded.warehouse.errors import WarehouseError
from core.embedded.warehouse.protocol import too_large

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_LINE = 64 * 1024  # request line or one header line
MAX_HEADERS = 200
COPY_CHUNK = 1024 * 1024


class HttpError(Exception):
    """A request the server refuses before the app sees it; the connection is then closed."""

    def __init__(self, status: int, error: WarehouseError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


def _bad_request(message: str) -> HttpError:
    return HttpError(400, WarehouseError(errors.BAD_ARGUMENTS, message, 400))


class HttpServer:
    def __init__(
        self,
        app: WsgiApp,
        host: str,
        port: int,
        *,
        threads: int,
        max_body_bytes: int,
        version: str,
        max_connections: int = 512,
        idle_timeout: float = 60.0,
        io_timeout: float = 60.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.version = version  # ClickHouse version, for error bodies
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.io_timeout = io_timeout
        self._listener = socket.create_server((host, port), backlog=1024)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(threads)  # requests in the app at once
        self._lock = threading.Lock()
        self._idle: set[socket.socket] = set()  # connections waiting for their next request
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._date = (0.0, "")

    # --- lifecycle ------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Accept connections until `stop()`; then let running requests finish (10 s)."""
        self._listener.settimeout(0.5)  # to notice stop() without a signal-safe wake-up
        try:
            while not self._stopping.is_set():
                try:
                    sock, address = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError as exc:  # e.g. out of file descriptors: back off a little
                    if self._stopping.is_set():
                        break
                    log.warning("accept failed: %s", exc)
                    time.sleep(0.1)
                    continue
                self._start_connection(sock, address)
        finally:
            self._listener.close()
            self._drain(timeout=10.0)

    def stop(self) -> None:
        """Safe to call from a signal handler: only sets a flag."""
        self._stopping.set()

    def _drain(self, timeout: float) -> None:
        with self._lock:
            idle = list(self._idle)
            threads = list(self._threads)
        for sock in idle:  # wakes their threads, which then exit
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = sum(thread.is_alive() for thread in threads)
        if busy:
            log.warning("%d connection(s) still busy at shutdown", busy)

    def _start_connection(self, sock: socket.socket, address: Any) -> None:
        with self._lock:
            if len(self._threads) >= self.max_connections:
                full = True
            else:
                full = False
                thread = threading.Thread(
                    target=self._serve_connection, args=(sock,), name="http", daemon=True
                )
                self._threads.add(thread)
        if full:
            error = WarehouseError(
                errors.HTTP_CONNECTION_LIMIT_REACHED,
                f"The server has {self.max_connections} connections, its limit",
                503,
            )
            self._send_error(sock, 503, error)
            sock.close()
            return
        thread.start()

    # --- one connection -------------------------------------------------------------------
    def _serve_connection(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb", buffering=256 * 1024)
        try:
            while not self._stopping.is_set():
                with self._lock:
                    self._idle.add(sock)
                sock.settimeout(self.idle_timeout)
                try:
                    first = reader.readline(MAX_LINE + 1)
                finally:
                    with self._lock:
                        self._idle.discard(sock)
                if not first:
                    break  # the client closed, or shutdown woke us
                sock.settimeout(self.io_timeout)
                try:
                    keep_alive = self._serve_request(sock, reader, first)
                except HttpError as exc:
                    self._send_error(sock, exc.status, exc.error)
                    _linger(sock, reader)
                    break
                if not keep_alive:
                    break
        except (OSError, ValueError):
            pass  # timeouts, resets, a reader closed by shutdown: just drop the connection
        except Exception:
            log.exception("unexpected error on an HTTP connection")
        finally:
            reader.close()
            sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _serve_request(self, sock: socket.socket, reader: BinaryIO, first: bytes) -> bool:
        while first in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112)
            first = reader.readline(MAX_LINE + 1)
        method, target, protocol = _request_line(first)
        headers = _headers(reader)
        connection = headers.get("connection", "").lower()
        keep_alive = (
            "keep-alive" in connection if protocol == "HTTP/1.0" else "close" not in connection
        )
        body = self._body(sock, reader, headers, protocol)

        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": headers.pop("content-type", ""),
            "CONTENT_LENGTH": headers.get("content-length", ""),
            "SERVER_NAME": self.host,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": protocol,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        headers.pop("content-length", None)
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value

        reply: list[Any] = []

        def start_response(
            status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            reply[:] = [status, response_headers]
            return lambda data: None  # the legacy write() callable; this app never uses it

        with self._slots:
            result = self.app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        status, response_headers = reply
        # What the app left unread is read past, so that the next request on the connection
        # starts where it should; a body that broke cannot be found the end of: close.
        intact = body.finish()
        keep_alive = keep_alive and intact and not self._stopping.is_set()
        lines = [f"{protocol} {status}\r\n"]
        for name, value in response_headers:
            if "\n" in value or "\r" in value:  # echoed input (a query_id) must not split lines
                value = value.replace("\r", " ").replace("\n", " ")
            lines.append(f"{name}: {value}\r\n")
        if not any(name.lower() == "content-length" for name, _ in response_headers):
            lines.append(f"Content-Length: {len(payload)}\r\n")
        lines.append(f"Date: {self._http_date()}\r\nServer: PulseTrace warehouse\r\n")
        lines.append(
            "Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n"
        )
        head = "".join(lines).encode("latin-1", "replace")
        if len(payload) < 64 * 1024:
            sock.sendall(head + payload)  # one segment for the common small answer
        else:
            sock.sendall(head)
            sock.sendall(payload)
        if not intact:
            _linger(sock, reader)  # the client may still be sending: let it read the answer
        return keep_alive

    def _body(
        self, sock: socket.socket, reader: BinaryIO, headers: dict[str, str], protocol: str
    ) -> RequestBody:
        """The request body, refused at once when its Content-Length exceeds the limit."""
        chunked = headers.get("transfer-encoding", "").lower()
        length_header = headers.get("content-length")
        if chunked and chunked != "chunked":
            raise HttpError(
                501,
                WarehouseError(
                    errors.NOT_IMPLEMENTED, f"Transfer-Encoding {chunked!r} is not supported", 501
                ),
            )
        length: int | None = None  # chunked
        if not chunked and length_header is not None:
            if not length_header.isdigit():
                raise _bad_request(f"Invalid Content-Length: {length_header!r}")
            length = int(length_header)
            if length > self.max_body_bytes:
                raise HttpError(413, too_large(self.max_body_bytes, "received"))
        elif not chunked:
            length = 0
        if length != 0 and protocol == "HTTP/1.1" and headers.get(
                "expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        return RequestBody(reader, length, self.max_body_bytes)

    # --- responses the server writes itself -----------------------------------------------
    def _send_error(self, sock: socket.socket, status: int, error: WarehouseError) -> None:
        body = error.body(self.version)
        head = (
            f"HTTP/1.1 {status_text(status)}\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\n"
            f"X-ClickHouse-Exception-Code: {error.code}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            sock.sendall(head.encode("latin-1") + body)

    def _http_date(self) -> str:
        now = time.time()
        cached_at, text = self._date
        if now - cached_at >= 1.0:
            text = formatdate(now, usegmt=True)
            self._date = (now, text)
        return text


class RequestBody:
    """A request's body as the app reads it (`read`, as wsgi.input), straight from the
    connection: an insert streams into the engine a chunk at a time. Read whole before the app
    ran, an insert of 8,000 processed events (30 MB) went through a temporary file, a fifth
    of the warehouse's CPU for that insert.

    `length`: the Content-Length, or None for a chunked body (dechunked here, `limit` enforced
    as it comes). A body that ends early, breaks its chunking or exceeds the limit raises a
    WarehouseError in the app, which answers it; the connection is then closed.
    """

    def __init__(self, reader: BinaryIO, length: int | None, limit: int) -> None:
        self._reader = reader
        self._chunked = length is None
        self._left = length or 0  # of the body, or of the current chunk when chunked
        self._received = 0
        self._limit = limit
        self._done = length == 0
        self._broken = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(COPY_CHUNK), b""))
        if self._done or self._broken or size == 0:
            return b""
        try:
            return self._read_chunked(size) if self._chunked else self._read(size)
        except HttpError as exc:
            self._broken = True
            raise exc.error from None
        except (OSError, ValueError) as exc:  # a timeout, a reset
            self._broken = True
            raise _bad_request(f"Reading the request body failed: {exc!r}").error from None

    def _read(self, size: int) -> bytes:
        data = self._take(size, "The request body ended before its Content-Length")
        self._done = self._left == 0
        return data

    def _take(self, size: int, ended: str) -> bytes:
        wanted = min(size, self._left)
        data = self._reader.read(wanted)
        if len(data) != wanted:
            raise _bad_request(ended)
        self._left -= wanted
        return data

    def _read_chunked(self, size: int) -> bytes:
        if not self._left:
            size_line = self._reader.readline(MAX_LINE + 1)
            digits = size_line.split(b";", 1)[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):  # int() takes -5, 0x5
                raise _bad_request(f"Malformed chunk size line: {size_line[:80]!r}")
            self._left = int(digits, 16)
            if not self._left:
                _headers(self._reader)  # trailers, ignored
                self._done = True
                return b""
            self._received += self._left
            if self._received > self._limit:
                raise HttpError(413, too_large(self._limit, "received"))
        data = self._take(size, "The chunked request body ended early")
        if not self._left and self._reader.readline(MAX_LINE + 1).strip():
            raise _bad_request("Missing CRLF after a chunk")
        return data

    def finish(self) -> bool:
        """Read past what the app left unread; False when the body broke (the connection
        cannot serve another request)."""
        try:
            while self.read(COPY_CHUNK):
                pass
        except WarehouseError:
            pass
        return not self._broken


def _request_line(line: bytes) -> tuple[str, str, str]:
    if len(line) > MAX_LINE:
        raise HttpError(
            414, WarehouseError(errors.BAD_ARGUMENTS, "The request line is too long", 414)
        )
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise _bad_request(f"Malformed HTTP request line: {line[:100]!r}")
    method, target, protocol = parts
    if protocol not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, WarehouseError(errors.BAD_ARGUMENTS, f"Unsupported {protocol}", 505))
    return method.upper(), target, protocol


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise HttpError(431, WarehouseError(errors.BAD_ARGUMENTS, "A header is too long", 431))
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise _bad_request("The connection closed inside the request headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise _bad_request(f"Malformed header line: {line[:100]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise HttpError(431, WarehouseError(errors.BAD_ARGUMENTS, "Too many request headers", 431))


def status_text(status: int) -> str:
    """`200` -> `200 OK`."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def _linger(sock: socket.socket, reader: BinaryIO, seconds: float = 5.0) -> None:
    """After an early error answer, read what the client still sends before closing.

    Closing a socket with unread data makes the kernel send a reset, and the client may
    then lose our error answer; a client that sends its whole body before reading (most do)
    reads the answer once the body is through.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        sock.settimeout(0.5)
        while time.monotonic() < deadline and reader.read1(COPY_CHUNK):  # type: ignore[attr-defined]
            pass
    except OSError:
        pass
