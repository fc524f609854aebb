"""The chDB engine this process owns, and the connections (ClickHouse sessions) opened on it.

chDB lets only one OS process open a data directory, but inside that process every
`chdb.connect(path)` is a separate ClickHouse session over the same data: its own `SET`s,
current database and temporary tables. The server gives each HTTP session one connection and
each sessionless request a fresh one, so state never leaks between clients.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import chdb
from chdb.state.sqlitelike import Connection as ChdbConnection

from core.embedded.warehouse.errors import (
    UNKNOWN_SETTING,
    WarehouseError,
    from_engine_message,
)
from core.embedded.warehouse.sql import quote_identifier, quote_string

# chDB raises ChdbError from query() and RuntimeError from its streaming inserter.
ENGINE_ERRORS = (chdb.ChdbError, RuntimeError)

DEFAULT_DATABASE = "pulsetrace"


@dataclass(frozen=True)
class Outcome:
    """What one statement returned, for the response body and X-ClickHouse-Summary."""

    body: bytes
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    elapsed: float = 0.0  # seconds


class EngineUnavailable(RuntimeError):
    """The data directory cannot be opened (most often: another process has it)."""


class Engine:
    """Opens the data directory once (the "anchor" connection) and hands out connections."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = str(data_dir.resolve())
        # chDB's connect/close touch process-wide state; they are cheap, so serialise them.
        self._lock = threading.Lock()
        try:
            self._anchor = chdb.connect(self.path)
        except ENGINE_ERRORS as exc:
            raise EngineUnavailable(
                f"cannot open the chDB data directory {self.path} (only one process may): {exc}"
            ) from exc
        self._anchor.query(f"CREATE DATABASE IF NOT EXISTS {DEFAULT_DATABASE}", "TabSeparated")
        version, timezone = self._rows("SELECT version(), timezone()")[0]
        self.version: str = version
        self.timezone: str = timezone
        # Lower-case name -> canonical spelling, to recognise `FORMAT json` as JSON.
        self.formats: dict[str, str] = {
            name.lower(): name for (name,) in self._rows("SELECT name FROM system.formats")
        }
        # Every setting name (aliases included) with its default, to validate URL settings.
        self.setting_defaults: dict[str, str] = dict(
            self._rows("SELECT name, value FROM system.settings")
        )

    def _rows(self, sql: str) -> list[list[str]]:
        result = self._anchor.query(sql, "JSONCompact")
        return json.loads(result.bytes())["data"]

    def connect(self) -> Connection:
        with self._lock:
            return Connection(self, chdb.connect(self.path))

    def release(self, raw: ChdbConnection) -> None:
        with self._lock:
            raw.close()

    def close(self) -> None:
        with self._lock:
            self._anchor.close()


class Connection:
    """One ClickHouse session, plus the bookkeeping that makes URL settings per-request.

    In ClickHouse, settings and `database` given as URL parameters apply to that one query,
    while a `SET` or `USE` statement changes the session. chDB only has the session, so the
    URL ones are applied with `SET`/`USE` and undone on the next request that does not repeat
    them. A client usually repeats the same settings every time, so in the steady state a
    request costs no extra statements at all.
    """

    def __init__(self, engine: Engine, raw: ChdbConnection) -> None:
        self.engine = engine
        self.raw = raw
        self.home_database = "default"  # chosen by the session's own USE statements
        self.current_database = "default"
        self.overrides: dict[str, str] = {}  # URL settings now applied on top of the session's
        # Session values the overrides hide (None: the default). Needed only once the session
        # ran a SET of its own; before that every other setting is at its default.
        self.saved: dict[str, str | None] = {}
        self.session_changed_settings = False
        self.reusable = True  # for sessionless pooling: no statement left session state

    # --- per-request state ----------------------------------------------------------------
    def prepare(self, database: str | None, settings: Mapping[str, str]) -> None:
        """Switch to this request's database and settings, undoing the previous request's."""
        target = database or self.home_database
        if target != self.current_database:
            self._execute(f"USE {quote_identifier(target)}")
            self.current_database = target

        defaults = self.engine.setting_defaults
        new = {name: value for name, value in settings.items() if self.overrides.get(name) != value}
        for name in new:
            if name not in defaults:
                raise WarehouseError(UNKNOWN_SETTING, f"Unknown setting '{name}'")
        if self.session_changed_settings:
            unseen = [name for name in new if name not in self.overrides and name not in self.saved]
            if unseen:
                self.saved.update(self._session_values(unseen))

        changes: dict[str, str | None] = {}
        for name in self.overrides.keys() - settings.keys():
            changes[name] = self.saved.get(name)
        overrides = {name: value for name, value in self.overrides.items() if name in settings}
        for name, value in new.items():
            at_default = not self.session_changed_settings and name not in self.overrides
            if at_default and defaults[name] == value:
                continue  # nothing to change, and nothing to undo later
            changes[name] = value
            overrides[name] = value
        if changes:
            assignments = ", ".join(
                f"{name} = {'DEFAULT' if value is None else quote_string(value)}"
                for name, value in changes.items()
            )
            self._execute(f"SET {assignments}")  # all or nothing: ClickHouse checks first
        self.overrides = overrides
        self.saved = {name: value for name, value in self.saved.items() if name in overrides}

    def _session_values(self, names: Iterable[str]) -> dict[str, str | None]:
        listed = ", ".join(quote_string(name) for name in names)
        sql = f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})"
        rows = json.loads(self.run(sql, "JSONCompact").body)["data"]
        return {name: (value if changed else None) for name, value, changed in rows}

    def statement_done(self, kind: str) -> None:
        """Track what a successful USE or SET statement changed in the session."""
        if kind == "USE":
            (self.current_database,) = json.loads(
                self.run("SELECT currentDatabase()", "JSONCompact").body
            )["data"][0]
            self.home_database = self.current_database
        elif kind == "SET":
            # The request ran with no overrides (see server.py), so the session now holds
            # exactly what the statement set; values saved before it are stale.
            self.session_changed_settings = True
            self.saved.clear()

    # --- statements -----------------------------------------------------------------------
    def _execute(self, sql: str) -> None:
        self.run(sql, "TabSeparated")

    def run(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> Outcome:
        try:
            result = self.raw.query(sql, fmt, params=dict(params) if params else None)
        except ENGINE_ERRORS as exc:
            raise from_engine_message(str(exc)) from None
        return Outcome(
            body=result.bytes() or b"",
            read_rows=result.rows_read(),
            read_bytes=result.bytes_read(),
            written_rows=result.rows_written(),
            written_bytes=result.bytes_written(),
            elapsed=result.elapsed(),
        )

    def insert(self, head: str, fmt: str, data: Iterable[bytes]) -> Outcome:
        """Stream `data` into `head` (an INSERT without its FORMAT clause).

        chDB's SQL path cuts inline insert data at the first blank line (a `\\n\\n` byte
        pair, common in binary formats), so data never goes through query text: chDB's
        streaming inserter takes it chunk by chunk. Leaving the `with` block on an error
        cancels the insert, so a broken body inserts nothing.
        """
        try:
            with self.raw.send_insert(head, fmt) as inserter:
                for chunk in data:
                    inserter.append(chunk)
                result = inserter.finish()
        except ENGINE_ERRORS as exc:
            raise from_engine_message(str(exc)) from None
        return Outcome(
            body=b"",
            written_rows=result.rows_written,
            written_bytes=result.bytes_written,
            elapsed=result.elapsed,
        )

    def close(self) -> None:
        self.engine.release(self.raw)
