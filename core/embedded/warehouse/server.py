"""The warehouse server: ClickHouse's HTTP interface over the chDB engine this process owns.

A plain WSGI app (no framework: every warehouse query passes through it), served by the small
thread-per-connection HTTP server in httpserver.py (see there why not waitress). The request
flow: parameters and credentials (protocol.py) -> the statement and its data (protocol.py,
sql.py) -> a chDB connection, the session's or a pooled one (sessions.py, engine.py) -> the
response with ClickHouse's X-ClickHouse-* headers, or a `Code: N. DB::Exception` error.
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from core.embedded.warehouse import errors
from core.embedded.warehouse.engine import Connection, Engine, EngineUnavailable, Outcome
from core.embedded.warehouse.errors import WarehouseError
from core.embedded.warehouse.httpserver import HttpServer, status_text
from core.embedded.warehouse.protocol import (
    Body,
    Parameters,
    Work,
    assemble,
    check_credentials,
    credentials,
    parse_form,
    too_large,
    url_parameters,
)
from core.embedded.warehouse.sessions import DEFAULT_SESSION_TIMEOUT, SessionManager
from core.embedded.warehouse.sql import quote_identifier
from core.settings import Settings

log = logging.getLogger("pulsetrace.warehouse")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Response = tuple[int, list[tuple[str, str]], bytes]

_BINARY_FORMATS = (
    "native", "rowbinary", "arrow", "parquet", "orc", "avro", "protobuf", "msgpack",
    "capnproto", "npy", "bson", "raw",
)  # fmt: skip
_READ_ONLY_KINDS = frozenset({"USE"})  # besides statements that return a result


def content_type(fmt: str) -> str:
    name = fmt.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        header = "present" if "withnames" in name else "absent"
        return f"text/csv; charset=UTF-8; header={header}"
    if name.startswith("json") and "eachrow" in name:
        return "application/x-ndjson; charset=UTF-8"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name == "xml":
        return "application/xml; charset=UTF-8"
    if name.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


class WarehouseApp:
    """The WSGI application: one request in, one ClickHouse-style response out."""

    def __init__(
        self,
        engine: Engine,
        sessions: SessionManager,
        user: str,
        password: str,
        max_body_bytes: int,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.user = user
        self.password = password
        self.max_body_bytes = max_body_bytes
        self.display_name = socket.gethostname()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query_id = ""
        try:
            path = environ.get("PATH_INFO") or "/"
            if path in ("/ping", "/replicas_status"):
                response: Response = (200, [("Content-Type", "text/html; charset=UTF-8")], b"Ok.\n")
            elif path == "/":
                params = url_parameters(environ.get("QUERY_STRING", ""))
                query_id = params.get("query_id") or str(uuid.uuid4())
                response = self._query(environ, params, query_id)
            else:
                response = (
                    404,
                    [("Content-Type", "text/plain; charset=UTF-8")],
                    f"There is no handle {path}\n\nUse / or /ping for health checks.\n".encode(),
                )
        except WarehouseError as exc:
            log.debug("request failed: Code %d: %s", exc.code, exc.message)
            response = self._error(exc, query_id)
        except Exception as exc:  # a bug here must not take the server down or leak a traceback
            log.exception("unexpected error while serving a request")
            error = WarehouseError(errors.STD_EXCEPTION, f"{type(exc).__name__}: {exc}")
            response = self._error(error, query_id)
        status, headers, body = response
        headers.append(("Content-Length", str(len(body))))
        headers.append(("X-ClickHouse-Server-Display-Name", self.display_name))
        start_response(status_text(status), headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _error(self, exc: WarehouseError, query_id: str) -> Response:
        headers = [
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Exception-Code", str(exc.code)),
        ]
        if query_id:
            headers.append(("X-ClickHouse-Query-Id", query_id))
        return exc.http_status, headers, exc.body(self.engine.version)

    # --- the query endpoint ---------------------------------------------------------------
    def _query(self, environ: dict[str, Any], pairs: dict[str, str], query_id: str) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST", "HEAD"):
            raise WarehouseError(
                errors.UNSUPPORTED_METHOD, f"HTTP method {method} is not supported", 405
            )
        check_credentials(credentials(environ, pairs), self.user, self.password)

        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > self.max_body_bytes:  # the HTTP server refuses these first; a backstop
            raise too_large(self.max_body_bytes, "received")
        body = Body(
            environ["wsgi.input"], environ.get("HTTP_CONTENT_ENCODING", ""), self.max_body_bytes
        )
        tables: dict[str, bytes] = {}
        if environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            fields, tables = parse_form(body.read_all(), environ["CONTENT_TYPE"])
            pairs.update(fields)
            body = Body(io.BytesIO(b""), "", self.max_body_bytes)
        params = Parameters.parse(pairs, frozenset(tables))
        for name in ("compress", "decompress"):
            if params.http.get(name, "0") not in ("", "0"):
                raise WarehouseError(
                    errors.NOT_IMPLEMENTED,
                    f"{name}=1 (ClickHouse's internal compression format) is not supported; "
                    "use Content-Encoding (lz4, zstd, gzip, deflate) instead",
                )
        # GET is read-only in ClickHouse. readonly is checked here, never SET in chDB: a
        # session could not undo it (chDB refuses to change readonly once it is set).
        readonly = params.settings.pop("readonly", "2" if method != "POST" else "0")

        work = assemble(params.http.get("query", ""), body, self.engine.formats)
        _check_readonly(work, readonly, method)
        fmt = work.format or self._default_format(params)
        with self._connection(params) as connection:
            outcome = _execute(connection, work, fmt, params, tables)

        timezone = params.settings.get("session_timezone") or self.engine.timezone
        has_result = work.statement.has_result or bool(outcome.body)
        headers = [
            ("Content-Type", content_type(fmt) if has_result else "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Query-Id", query_id),
            ("X-ClickHouse-Timezone", timezone),
            ("X-ClickHouse-Summary", _summary(outcome, work)),
        ]
        if has_result:
            # clickhouse-connect's command() tells "empty result" from "no result" by this.
            headers.append(("X-ClickHouse-Format", fmt))
        return 200, headers, outcome.body

    def _default_format(self, params: Parameters) -> str:
        requested = params.http.get("default_format") or "TabSeparated"
        canonical = self.engine.formats.get(requested.lower())
        if canonical is None:  # also keeps chDB's Python-only "formats" (DataFrame…) out
            raise WarehouseError(errors.UNKNOWN_FORMAT, f"Unknown format {requested}")
        return canonical

    def _connection(self, params: Parameters) -> AbstractContextManager[Connection]:
        session_id = params.http.get("session_id")
        if not session_id:
            return self.sessions.fresh()
        return self.sessions.session(
            session_id,
            params.http.get("session_timeout"),
            check=params.http.get("session_check") == "1",
            close=params.http.get("close_session") == "1",
        )


def _check_readonly(work: Work, level: str, method: str) -> None:
    statement = work.statement
    if level in ("", "0") or statement.has_result or statement.kind in _READ_ONLY_KINDS:
        return
    if level == "2" and statement.kind == "SET":
        return
    hint = (
        " For queries over HTTP, method GET implies readonly. You should use method POST for "
        "modifying queries."
        if method != "POST"
        else ""
    )
    raise WarehouseError(errors.READONLY, f"Cannot execute query in readonly mode.{hint}")


def _execute(
    connection: Connection,
    work: Work,
    fmt: str,
    params: Parameters,
    tables: Mapping[str, bytes],
) -> Outcome:
    kind = work.statement.kind
    if work.statement.changes_session or tables:
        connection.reusable = False
    # A SET statement runs without the URL settings, so the session keeps only its own.
    connection.prepare(
        params.http.get("database") or None, {} if kind == "SET" else params.settings
    )
    with _external_tables(connection, tables, params.http):
        if work.data is not None:
            assert work.format is not None
            outcome = connection.insert(work.sql, work.format, work.data)
        else:
            outcome = connection.run(work.sql, fmt, params.query_params)
    connection.statement_done(kind)
    return outcome


@contextmanager
def _external_tables(
    connection: Connection, tables: Mapping[str, bytes], http_params: Mapping[str, str]
) -> Iterator[None]:
    """ClickHouse's "external data": uploaded files visible to one query as tables."""
    created: list[str] = []
    try:
        for name, payload in tables.items():
            structure = http_params.get(f"{name}_structure")
            if not structure and http_params.get(f"{name}_types"):
                types = http_params[f"{name}_types"].split(",")
                structure = ", ".join(f"_{i} {t.strip()}" for i, t in enumerate(types, 1))
            if not structure:
                raise WarehouseError(
                    errors.BAD_ARGUMENTS,
                    f"No structure given for the external table {name}: "
                    f"send {name}_structure or {name}_types",
                )
            table = quote_identifier(name)
            connection.run(f"CREATE TEMPORARY TABLE {table} ({structure})", "TabSeparated")
            created.append(table)
            fmt = http_params.get(f"{name}_format", "TabSeparated")
            connection.insert(f"INSERT INTO {table}", fmt, iter([payload]))
        yield
    finally:
        for table in created:
            try:
                connection.run(f"DROP TEMPORARY TABLE IF EXISTS {table}", "TabSeparated")
            except WarehouseError:
                log.warning("could not drop external table %s", table)


def _summary(outcome: Outcome, work: Work) -> str:
    # chDB does not report the result rows of a SELECT; ClickHouse counts inserts as results.
    if work.statement.kind == "INSERT":
        result_rows, result_bytes = outcome.written_rows, outcome.written_bytes
    else:
        result_rows, result_bytes = 0, len(outcome.body)
    return (
        f'{{"read_rows":"{outcome.read_rows}","read_bytes":"{outcome.read_bytes}",'
        f'"written_rows":"{outcome.written_rows}","written_bytes":"{outcome.written_bytes}",'
        f'"total_rows_to_read":"{outcome.read_rows}","result_rows":"{result_rows}",'
        f'"result_bytes":"{result_bytes}","elapsed_ns":"{int(outcome.elapsed * 1e9)}"}}'
    )


def build_server(
    app: WarehouseApp, host: str, port: int, threads: int, max_body_bytes: int
) -> HttpServer:
    """An HTTP server for `app` (not yet running); `port=0` picks a free port."""
    return HttpServer(
        app,
        host,
        port,
        threads=threads,
        max_body_bytes=max_body_bytes,
        version=app.engine.version,
    )


def serve(
    data_dir: Path,
    host: str,
    port: int,
    user: str,
    password: str,
    threads: int,
    max_body_bytes: int,
    session_timeout: float = DEFAULT_SESSION_TIMEOUT,
) -> None:
    """Run the warehouse until SIGTERM or SIGINT, then close chDB cleanly."""
    stopping = threading.Event()
    server: HttpServer | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if server is not None:
            server.stop()  # only sets a flag: the accept loop notices within 0.5 s

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    engine = Engine(data_dir)
    sessions = SessionManager(engine, default_timeout=session_timeout, pool_size=threads)
    try:
        sessions.start()
        app = WarehouseApp(engine, sessions, user, password, max_body_bytes)
        server = build_server(app, host, port, threads, max_body_bytes)
        log.info(
            "warehouse (ClickHouse %s via chDB) on http://%s:%s, data in %s",
            engine.version, host, server.port, engine.path,
        )  # fmt: skip
        if not stopping.is_set():  # a signal during start-up
            server.serve_forever()  # returns after stop(), once running requests finish
    finally:
        sessions.close_all()
        engine.close()
        log.info("warehouse stopped")


def build_arg_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """`--data-dir --port --host --user --password --threads --max-body-bytes`."""
    settings = settings or Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m core.embedded.warehouse",
        description="Serve a chDB data directory over the ClickHouse HTTP interface.",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=settings.data_dir / "warehouse",
        help="chDB data directory (created if missing; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--host", default=settings.host, help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=settings.warehouse_port, help="default: %(default)s"
    )
    parser.add_argument("--user", default=settings.warehouse_user, help="default: %(default)s")
    parser.add_argument(
        "--password", default=settings.warehouse_password,
        help="checked when non-empty (default: WAREHOUSE_PASSWORD)",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        default=settings.warehouse_threads,
        help="worker threads (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=settings.warehouse_max_body_bytes,
        help="largest request body, received or decompressed (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--session-timeout", type=float, default=DEFAULT_SESSION_TIMEOUT,
        help="seconds before an idle session is closed (default: %(default)s)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        serve(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            user=args.user,
            password=args.password,
            threads=args.threads,
            max_body_bytes=args.max_body_bytes,
            session_timeout=args.session_timeout,
        )
    except (EngineUnavailable, OSError) as exc:  # data dir locked or port taken: say so
        log.error("%s", exc)
        sys.exit(1)
