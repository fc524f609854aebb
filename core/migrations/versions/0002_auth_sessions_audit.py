"""Management API: sign-in sessions with rotating refresh tokens, issue comments, and an
append-only audit log.

- `auth_sessions`: one row per sign-in (the refresh-token family); `refresh_tokens`: the
  SHA-256 of each refresh token of a session, used at most once.
- `issue_comments`: notes left while triaging.
- `audit_log_entries`: a trigger refuses UPDATE, so an entry cannot be rewritten after the
  fact; the one change the foreign keys make on their own stays possible (deleting a user sets
  `actor_user_id` to NULL). DELETE is not refused here: the relational-model tests delete
  audit rows to check tenant scoping; the API has no route that deletes them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False, default: bool = True) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if default else None,
        nullable=False,
    )


APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_log_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- ON DELETE SET NULL of the actor: the only change an entry may undergo.
    IF NEW.actor_user_id IS NULL AND OLD.actor_user_id IS NOT NULL
       AND (to_jsonb(NEW) - 'actor_user_id') = (to_jsonb(OLD) - 'actor_user_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit log entries are append-only (UPDATE refused)'
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("users.id", name="fk_auth_sessions_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        _timestamp("created_at"),
        _timestamp("expires_at", default=False),
        _timestamp("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_auth_sessions"),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "session_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "auth_sessions.id",
                name="fk_refresh_tokens_session_id_auth_sessions",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at", default=False),
        _timestamp("used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        sa.CheckConstraint(
            "token_hash ~ '^[0-9a-f]{64}$'", name=op.f("ck_refresh_tokens_token_hash_hex")
        ),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])

    op.create_table(
        "issue_comments",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "organizations.id",
                name="fk_issue_comments_organization_id_organizations",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "issue_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "issues.id", name="fk_issue_comments_issue_id_issues", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column(
            "author_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "users.id", name="fk_issue_comments_author_id_users", ondelete="SET NULL"
            ),
            nullable=True,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_issue_comments"),
    )
    op.create_index("ix_issue_comments_organization_id", "issue_comments", ["organization_id"])
    op.create_index("ix_issue_comments_issue_id", "issue_comments", ["issue_id"])
    op.create_index("ix_issue_comments_author_id", "issue_comments", ["author_id"])

    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_log_entries_append_only BEFORE UPDATE "
        "ON audit_log_entries FOR EACH ROW EXECUTE FUNCTION audit_log_entries_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_entries_append_only ON audit_log_entries")
    op.execute("DROP FUNCTION audit_log_entries_append_only()")
    op.drop_table("issue_comments")
    op.drop_table("refresh_tokens")
    op.drop_table("auth_sessions")
