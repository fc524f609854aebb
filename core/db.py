"""The relational store: engines, migrations, and sessions that are scoped to a tenant.

Every ORM session the product opens says which data it may touch:

    with tenant_session(engine, org_id) as session, session.begin():
        session.scalars(select(Issue))          # only this organization's issues

    with system_session(engine) as session, session.begin():
        ...                                     # everything: pipeline jobs, bootstrap

A tenant session filters every ORM SELECT, UPDATE and DELETE on a `TenantScoped` model by
its organization (relationship loads included) and refuses to write rows of another one.
A plain `Session` that touches a tenant model raises `TenantScopeError`, so forgetting the
scope fails loudly instead of leaking another organization's data.

What the scoping cannot see: raw SQL (`text()`, `session.connection()`, Core statements on
`Model.__table__`). In a tenant session, filter such statements by organization_id yourself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Select, Table, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.sql import visitors

from core.models import Base, Organization, TenantScoped

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")


class TenantScopeError(RuntimeError):
    """A session was about to read or write tenant rows outside of its scope."""


# --- engines and migrations -------------------------------------------------------------------


def make_engine(url: str | URL, **engine_options: Any) -> Engine:
    """An engine for `url`; plain `postgresql://` / `postgres://` URLs get the psycopg 3 driver
    (SQLAlchemy would otherwise look for psycopg2, which is not installed)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # pre_ping: long-lived processes survive a database restart without a failed request.
    return create_engine(parsed, pool_pre_ping=True, **engine_options)


def _alembic_config(connection: Connection) -> Config:
    """Alembic's configuration in code, so running the migrations needs no alembic.ini.

    Alembic is imported here, not with this module: every process that only queries loads
    this module, the pipeline's spawned workers too, and Alembic took them ~0.5 s of CPU."""
    from alembic.config import Config

    config = Config()
    # ConfigParser would read a '%' in the path as interpolation.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection  # env.py runs on it
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (all of it in one transaction)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            from alembic import command

            command.upgrade(_alembic_config(connection), revision)
    finally:
        engine.dispose()


def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" removes every table)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            from alembic import command

            command.downgrade(_alembic_config(connection), revision)
    finally:
        engine.dispose()


# --- scoped sessions --------------------------------------------------------------------------

_SCOPE_KEY = "pulsetrace_scope"  # where a session's scope lives in Session.info


@dataclass(frozen=True)
class _Scope:
    organization_id: int | None  # None: a system session, unscoped on purpose


def tenant_session(engine: Engine, organization_id: int, **session_options: Any) -> Session:
    """A Session that sees and writes only rows of `organization_id`.

    New tenant rows added without an organization_id get this one; rows of another
    organization are refused at flush. `session_options` go to `Session` (e.g.
    `expire_on_commit=False`).
    """
    if isinstance(organization_id, bool) or not isinstance(organization_id, int):
        raise TypeError(f"organization_id must be an int, got {organization_id!r}")
    return _scoped(engine, _Scope(organization_id), session_options)


def system_session(engine: Engine, **session_options: Any) -> Session:
    """A Session that sees every organization: for system jobs (pipeline, bootstrap) only.

    Anything reached through it on behalf of a user must be filtered by hand.
    """
    return _scoped(engine, _Scope(None), session_options)


class _ScopedSession(Session):
    """A Session whose legacy bulk_* methods respect the tenant scope: they bypass both the
    flush and the statement events, so a tenant session refuses them."""

    def _refuse_in_tenant_scope(self, method: str) -> None:
        scope = _scope_of(self)
        if scope is not None and scope.organization_id is not None:
            raise TenantScopeError(
                f"Session.{method}() bypasses the tenant filter; use session.add() or "
                "update().where() in a tenant session"
            )

    def bulk_save_objects(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_in_tenant_scope("bulk_save_objects")
        super().bulk_save_objects(*args, **kwargs)

    def bulk_insert_mappings(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_in_tenant_scope("bulk_insert_mappings")
        super().bulk_insert_mappings(*args, **kwargs)

    def bulk_update_mappings(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_in_tenant_scope("bulk_update_mappings")
        super().bulk_update_mappings(*args, **kwargs)


def _scoped(engine: Engine, scope: _Scope, session_options: dict[str, Any]) -> Session:
    info = {**session_options.pop("info", {}), _SCOPE_KEY: scope}
    return _ScopedSession(engine, info=info, **session_options)


def _scope_of(session: Session) -> _Scope | None:
    return session.info.get(_SCOPE_KEY)


@cache
def _tenant_tables() -> frozenset[Table]:
    """The tables of every TenantScoped model (computed once, after the models are defined)."""
    return frozenset(
        mapper.local_table
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, TenantScoped)
    )


def _touches_tenant_table(statement: Any) -> bool:
    """Whether a statement names a tenant table anywhere: selected, joined or in a subquery."""
    tenant_tables = _tenant_tables()
    roots = [statement]
    if isinstance(statement, Select):
        # ORM joins along a relationship (`.join(Organization.projects)`) name their target
        # table only once the FROM list is computed.
        roots.extend(statement.get_final_froms())
    # ORM statements hold "annotated" copies of tables; they compare and hash like the table.
    return any(
        isinstance(element, Table) and element in tenant_tables
        for root in roots
        for element in visitors.iterate(root)
    )


def _unscopable(state: ORMExecuteState) -> str | None:
    """Why a tenant session cannot scope this statement on a tenant table, or None if it can."""
    target = state.bind_mapper
    if target is None or not issubclass(target.class_, TenantScoped):
        return None
    if state.is_insert:
        return "an INSERT statement carries its rows in the statement; use session.add()"
    if state.is_from_statement:
        return "from_statement() runs hand-written SQL"
    if state.is_update and isinstance(state.parameters, (list, tuple)):
        # Bulk UPDATE by primary key goes straight to "WHERE id = ..." and ignores the
        # loader criteria (SQLAlchemy 2.1), which would write another organization's rows.
        return "a bulk UPDATE by primary key ignores the tenant filter; use update().where()"
    # SQLAlchemy has no public accessor for an UPDATE's SET clause; `_values` is it.
    set_clause = getattr(state.statement, "_values", None) or {}
    if state.is_update and any(
        getattr(column, "key", column) == "organization_id" for column in set_clause
    ):
        return "rows never move between organizations"
    return None


@event.listens_for(Session, "do_orm_execute")
def _scope_orm_statement(state: ORMExecuteState) -> None:
    """Runs before every ORM statement of every Session (lazy loads and refreshes included)."""
    scope = _scope_of(state.session)
    if scope is None:
        if _touches_tenant_table(state.statement):
            raise TenantScopeError(
                "a plain Session touched a tenant table; open the session with "
                "core.db.tenant_session(engine, organization_id) or, for system jobs, "
                "core.db.system_session(engine)"
            )
        return
    organization_id = scope.organization_id
    if organization_id is None:
        return  # system session: unscoped on purpose

    reason = _unscopable(state)
    if reason is not None:
        raise TenantScopeError(
            f"not allowed in a tenant session: {reason} (system jobs use system_session)"
        )
    if state.is_select or state.is_update or state.is_delete:
        # The lambdas' closure variable becomes a bound parameter, so SQLAlchemy's statement
        # cache is shared by all organizations without mixing their filters. Relationship
        # loads usually inherit these options from the query that loaded the parent; adding
        # them again covers parents that were never queried (e.g. just added) and costs only
        # a repeated WHERE term.
        state.statement = state.statement.options(
            with_loader_criteria(
                TenantScoped,
                lambda cls: cls.organization_id == organization_id,
                include_aliases=True,
            ),
            # The tenant itself: other organizations' names and slugs are not for it to see.
            with_loader_criteria(
                Organization, lambda cls: cls.id == organization_id, include_aliases=True
            ),
        )


@event.listens_for(Session, "before_flush")
def _check_flush(session: Session, _flush_context: UOWTransaction, _instances: Any) -> None:
    """Refuses to write tenant rows outside the session's scope (the ORM's own INSERT/UPDATE/
    DELETE at flush do not pass through do_orm_execute)."""
    scope = _scope_of(session)
    if scope is not None and scope.organization_id is None:
        return  # system session
    new = set(session.new)
    for obj in (*new, *session.dirty, *session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        if scope is None:
            raise TenantScopeError(
                f"a plain Session tried to write {obj!r}; use core.db.tenant_session or "
                "core.db.system_session"
            )
        if obj in new and obj.organization_id is None:
            obj.organization_id = scope.organization_id
        elif obj.organization_id != scope.organization_id:
            raise TenantScopeError(
                f"a session scoped to organization {scope.organization_id} tried to write "
                f"{obj!r} of organization {obj.organization_id}"
            )
