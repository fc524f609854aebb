"""Alembic environment for the relational model (core/models.py).

Two ways in:
- `core.db.upgrade()` / `core.db.downgrade()` hand over an open connection in
  `config.attributes["connection"]`; no alembic.ini is involved.
- Developers: `alembic -c core/alembic.ini upgrade head` (or `revision --autogenerate -m ...`)
  connects to `sqlalchemy.url` from the ini if set, else to `DATABASE_URL`.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool, text

from core.db import make_engine
from core.models import Base

config = context.config
target_metadata = Base.metadata

# Two processes migrating at once (two `pulsetrace up`, or the CLI next to one) must not
# both create the same tables: the second waits on this lock, then finds nothing to do.
# An arbitrary constant that only this purpose uses ("puls").
MIGRATION_LOCK_ID = 0x70756C73


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("set DATABASE_URL (or sqlalchemy.url in the ini) to migrate")
    return url


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    # With a connection already in a transaction (core.db) this joins it; PostgreSQL's
    # transactional DDL then applies all of a run, or none of it.
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
            connection.commit()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the DDL instead of running it."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if config.config_file_name is not None:  # only the CLI has an ini (with logging settings)
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
