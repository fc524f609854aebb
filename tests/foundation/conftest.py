"""Fixtures for the relational model: a fresh database per test on the session's real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url

from core import db


def _admin_connection(server: URL) -> psycopg.Connection:
    # CREATE/DROP DATABASE cannot run inside a transaction, hence autocommit.
    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.username,
        password=server.password,
        dbname=server.database,
        autocommit=True,
    )


@pytest.fixture
def fresh_database_url(postgres_url: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database that lives for one test."""
    server = make_url(postgres_url)
    name = f"t_{uuid.uuid4().hex}"
    with _admin_connection(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connection(server) as conn:
            # FORCE: a connection a failed test left open must not keep the database alive.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def migrated_engine(fresh_database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to the latest revision."""
    db.upgrade(fresh_database_url)
    engine = db.make_engine(fresh_database_url)
    try:
        yield engine
    finally:
        engine.dispose()
