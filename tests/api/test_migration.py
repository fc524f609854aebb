"""Migration 0002 (sign-in sessions, refresh tokens, issue comments, audit-entry guard) goes up
and down cleanly on a real PostgreSQL, and 0007 numbers the issues there are; the full chain's
drift check against the models is in tests/foundation/test_relational_model.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from core import db
from tests.foundation.conftest import fresh_database_url  # noqa: F401 - a fixture

NEW_TABLES = {"auth_sessions", "refresh_tokens", "issue_comments"}


def _tables(engine: Engine) -> set[str]:
    inspector = inspect(engine)
    inspector.clear_cache()
    return set(inspector.get_table_names())


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log_entries'::regclass"
            " AND NOT tgisinternal")))


def test_0002_upgrades_and_downgrades(fresh_database_url: str) -> None:  # noqa: F811
    engine = db.make_engine(fresh_database_url)
    try:
        db.upgrade(fresh_database_url, "0001")
        assert not NEW_TABLES & _tables(engine)
        db.upgrade(fresh_database_url)
        assert _tables(engine) >= NEW_TABLES
        assert _triggers(engine) == {"audit_log_entries_append_only"}
        db.downgrade(fresh_database_url, "0001")
        assert not NEW_TABLES & _tables(engine)
        assert _triggers(engine) == set()
        db.upgrade(fresh_database_url)
        assert _tables(engine) >= NEW_TABLES
    finally:
        engine.dispose()


def test_audit_entries_refuse_updates_and_deletes_but_follow_a_deleted_actor(
    fresh_database_url: str,  # noqa: F811
) -> None:
    db.upgrade(fresh_database_url)
    engine = db.make_engine(fresh_database_url)
    try:
        with engine.begin() as conn:
            org = conn.scalar(text("INSERT INTO organizations (slug, name) VALUES ('o', 'O')"
                                   " RETURNING id"))
            user = conn.scalar(text("INSERT INTO users (email, name, password_hash)"
                                    " VALUES ('a@b.c', 'A', 'x') RETURNING id"))
            entry = conn.scalar(text(
                "INSERT INTO audit_log_entries (organization_id, actor_user_id, action)"
                " VALUES (:o, :u, 'member.add') RETURNING id"), {"o": org, "u": user})
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE audit_log_entries SET data = '{\"forged\": 1}'"
                              " WHERE id = :id"), {"id": entry})
        with pytest.raises(DBAPIError, match="DELETE refused"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log_entries WHERE id = :id"), {"id": entry})
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": user})
            actor = conn.scalar(text("SELECT actor_user_id FROM audit_log_entries"
                                     " WHERE id = :id"), {"id": entry})
        assert actor is None
        with engine.begin() as conn:  # deleting the organization takes its log with it
            conn.execute(text("DELETE FROM organizations WHERE id = :o"), {"o": org})
            assert conn.scalar(text("SELECT count(*) FROM audit_log_entries")) == 0
    finally:
        engine.dispose()


def test_0007_numbers_each_projects_issues_and_new_ones_go_on_from_there(
    fresh_database_url: str,  # noqa: F811
) -> None:
    db.upgrade(fresh_database_url, "0006")
    engine = db.make_engine(fresh_database_url)

    def new_issue(conn: Any, org: int, project: int) -> int:
        return int(conn.scalar(text(
            "INSERT INTO issues (organization_id, project_id, fingerprint_hash, title)"
            " VALUES (:o, :p, md5(random()::text), 't') RETURNING id"), {"o": org, "p": project}))

    def short_ids(conn: Any) -> dict[int, int]:
        return {i: s for i, s in conn.execute(text("SELECT id, short_id FROM issues"))}

    try:
        with engine.begin() as conn:
            org = conn.scalar(text("INSERT INTO organizations (slug, name) VALUES ('o', 'O')"
                                   " RETURNING id"))
            web, app, empty = (conn.scalar(text(
                "INSERT INTO projects (organization_id, slug, name) VALUES (:o, :s, :s)"
                " RETURNING id"), {"o": org, "s": slug}) for slug in ("web", "app", "empty"))
            first, other, second = (new_issue(conn, org, p) for p in (web, app, web))
        db.upgrade(fresh_database_url)
        with engine.begin() as conn:
            assert short_ids(conn) == {first: 1, other: 1, second: 2}  # in the order made
            third, in_empty = new_issue(conn, org, web), new_issue(conn, org, empty)
            assert short_ids(conn)[third] == 3 and short_ids(conn)[in_empty] == 1
        db.downgrade(fresh_database_url, "0006")
        with engine.connect() as conn:
            assert "project_issue_counters" not in _tables(engine)
            assert new_issue(conn, org, web)  # inserts go on without the trigger
            conn.rollback()
    finally:
        engine.dispose()
