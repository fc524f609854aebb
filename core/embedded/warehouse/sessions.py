"""HTTP sessions (`session_id`): one chDB connection per session, kept until it idles out.

As in ClickHouse: a session keeps its `SET`s, `USE` and temporary tables; a request on a
session that is busy with another request fails with code 373; `session_check=1` on an
unknown session fails with code 372; idle sessions are closed after `session_timeout`
seconds (default 60). Requests without a session get a connection of their own: a pooled one
that no earlier request left any state in (opening one costs a query's time, ~1 ms).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from core.embedded.warehouse.engine import Connection, Engine
from core.embedded.warehouse.errors import (
    INVALID_SESSION_TIMEOUT,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    WarehouseError,
)

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0  # ClickHouse's default max_session_timeout


class Session:
    def __init__(self, session_id: str, connection: Connection, timeout: float) -> None:
        self.id = session_id
        self.connection = connection
        self.timeout = timeout
        self.lock = threading.Lock()  # held while a request uses the session
        self.last_used = time.monotonic()


class SessionManager:
    def __init__(
        self,
        engine: Engine,
        default_timeout: float = DEFAULT_SESSION_TIMEOUT,
        reap_interval: float = 1.0,
        pool_size: int = 8,
    ) -> None:
        self.engine = engine
        self.default_timeout = default_timeout
        self.pool_size = pool_size
        self._idle: list[Connection] = []  # clean connections for sessionless requests
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()  # guards _sessions and every session.lock acquisition
        self._stop = threading.Event()
        self._reaper = threading.Thread(
            target=self._reap_loop, args=(reap_interval,), name="session-reaper", daemon=True
        )

    def start(self) -> None:
        self._reaper.start()

    @contextmanager
    def fresh(self) -> Iterator[Connection]:
        """A connection with no session state for one sessionless request.

        It goes back to the pool afterwards unless the request left state in it (a SET, USE
        or temporary table marks it `reusable = False`) or failed unexpectedly. URL settings
        and `database` need no cleaning: Connection.prepare undoes them on the next use.
        """
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self.engine.connect()
        keep = False
        try:
            yield connection
            keep = connection.reusable
        except WarehouseError:
            keep = connection.reusable  # a failed statement changes nothing
            raise
        finally:
            with self._lock:
                if keep and not self._stop.is_set() and len(self._idle) < self.pool_size:
                    self._idle.append(connection)
                    connection = None
            if connection is not None:
                connection.close()

    @contextmanager
    def session(
        self, session_id: str, timeout: str | None, check: bool, close: bool = False
    ) -> Iterator[Connection]:
        """The session's connection, locked for this request."""
        seconds = self._parse_timeout(timeout)
        session = self._acquire(session_id, seconds, check)
        try:
            yield session.connection
        finally:
            session.last_used = time.monotonic()
            if close:
                with self._lock:
                    self._sessions.pop(session.id, None)
                session.connection.close()
            session.lock.release()

    def _parse_timeout(self, raw: str | None) -> float | None:
        if raw is None or raw == "":
            return None
        try:
            seconds = float(raw)
        except ValueError:
            raise WarehouseError(
                INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{raw}'"
            ) from None
        if not 0 <= seconds <= MAX_SESSION_TIMEOUT:
            raise WarehouseError(
                INVALID_SESSION_TIMEOUT,
                f"Session timeout '{raw}' is larger than max_session_timeout: "
                f"{MAX_SESSION_TIMEOUT:.0f}. Maximum session timeout could be modified "
                "in configuration file.",
            )
        return seconds

    def _acquire(self, session_id: str, timeout: float | None, check: bool) -> Session:
        # Taking session.lock under the manager lock (never blocking) means the reaper can
        # never close a session between a request finding it and locking it.
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise WarehouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
                session = Session(
                    session_id,
                    self.engine.connect(),
                    self.default_timeout if timeout is None else timeout,
                )
                self._sessions[session_id] = session
            if not session.lock.acquire(blocking=False):
                raise WarehouseError(
                    SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                )
            if timeout is not None:
                session.timeout = timeout
            return session

    def reap(self) -> int:
        """Close sessions idle for longer than their timeout; returns how many."""
        now = time.monotonic()
        expired: list[Session] = []
        with self._lock:
            for session in list(self._sessions.values()):
                if now - session.last_used < session.timeout:
                    continue
                if session.lock.acquire(blocking=False):  # busy ones are not idle
                    del self._sessions[session.id]
                    expired.append(session)
        for session in expired:
            session.connection.close()
            session.lock.release()
        if expired:
            log.debug("closed %d idle session(s)", len(expired))
        return len(expired)

    def _reap_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reap()
            except Exception:  # the reaper must survive anything
                log.exception("session reaper failed")

    def __len__(self) -> int:
        return len(self._sessions)

    def close_all(self, wait: float = 5.0) -> None:
        """Stop reaping and close every session, waiting a little for busy ones."""
        self._stop.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        deadline = time.monotonic() + wait
        for session in sessions:
            if session.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                session.connection.close()
                session.lock.release()
            else:
                log.warning("session %s still busy at shutdown; left open", session.id)
