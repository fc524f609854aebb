"""The relational model: organizations, users, projects and everything they own.

Written by hand, table by table, to read like the schema it creates; the test suite checks it
against core/models.py (autogenerate must find no difference).

Conventions (as in core/models.py):
- BIGINT ids and counters; TIMESTAMPTZ with DEFAULT now(); JSONB for JSON.
- Every tenant table carries organization_id (NOT NULL, indexed, ON DELETE CASCADE).
- A tenant row pointing at another tenant row uses a composite foreign key
  (parent_id, organization_id) -> parent (id, organization_id), so a child can never belong
  to a different organization than its parent.
- Python enums are VARCHAR(32) with a CHECK listing the values.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dropped in reverse order by downgrade().
TABLES = (
    "organizations",
    "users",
    "memberships",
    "projects",
    "project_keys",
    "releases",
    "release_projects",
    "artifacts",
    "issues",
    "alert_rules",
    "audit_log_entries",
    "api_tokens",
    "pipeline_cursors",
)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), primary_key=True)


def _organization_id(table: str) -> sa.Column:
    return sa.Column(
        "organization_id",
        sa.BigInteger(),
        sa.ForeignKey(
            "organizations.id",
            name=f"fk_{table}_organization_id_organizations",
            ondelete="CASCADE",
        ),
        nullable=False,
    )


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    """TIMESTAMPTZ; the NOT NULL ones default to the time of the insert."""
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _user_fk(table: str, column: str, *, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey("users.id", name=f"fk_{table}_{column}_users", ondelete=ondelete)


def _in_org(
    table: str, column: str, parent: str, *, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    """The composite foreign key that keeps `column` inside the row's own organization."""
    return sa.ForeignKeyConstraint(
        [column, "organization_id"],
        [f"{parent}.id", f"{parent}.organization_id"],
        name=f"fk_{table}_{column}_{parent}",
        ondelete=ondelete,
    )


def _check(condition: str, name: str) -> sa.CheckConstraint:
    # op.f(): the name is final. Without it the models' naming convention (which env.py
    # hands to Alembic) would prefix "ck_<table>_" a second time.
    return sa.CheckConstraint(condition, name=op.f(name))


def _check_in(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return _check(f"{column} IN ({listed})", f"ck_{table}_{column}")


def _index_organization_id(table: str) -> None:
    op.create_index(f"ix_{table}_organization_id", table, ["organization_id"])


def upgrade() -> None:
    # --- tenants and people -------------------------------------------------------------------
    op.create_table(
        "organizations",
        _id(),
        sa.Column("slug", sa.String(50), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("slug", name="uq_organizations_slug"),
    )

    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        _check("email = lower(email)", "ck_users_email_lower_case"),
    )

    op.create_table(
        "memberships",
        _id(),
        _organization_id("memberships"),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            _user_fk("memberships", "user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(32), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
        sa.UniqueConstraint(
            "organization_id", "user_id", name="uq_memberships_organization_id_user_id"
        ),
        _check_in("memberships", "role", ["admin", "developer"]),
    )
    _index_organization_id("memberships")
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])

    # --- projects and their DSN keys ----------------------------------------------------------
    op.create_table(
        "projects",
        _id(),
        _organization_id("projects"),
        sa.Column("slug", sa.String(50), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("platform", sa.String(64), server_default="javascript", nullable=False),
        sa.Column(
            "allowed_origins",
            postgresql.JSONB(),
            server_default=sa.text("""'["*"]'"""),
            nullable=False,
        ),
        sa.Column("settings", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("organization_id", "slug", name="uq_projects_organization_id_slug"),
        # Target of the composite foreign keys of the project's children.
        sa.UniqueConstraint("id", "organization_id", name="uq_projects_id_organization_id"),
    )
    _index_organization_id("projects")

    op.create_table(
        "project_keys",
        _id(),
        _organization_id("project_keys"),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("public_key", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), server_default="Default", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("rate_limit_per_minute", sa.BigInteger(), nullable=True),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_project_keys"),
        _in_org("project_keys", "project_id", "projects", ondelete="CASCADE"),
        sa.UniqueConstraint("public_key", name="uq_project_keys_public_key"),
        _check("public_key ~ '^[0-9a-f]{32}$'", "ck_project_keys_public_key_hex"),
    )
    _index_organization_id("project_keys")
    op.create_index("ix_project_keys_project_id", "project_keys", ["project_id"])

    # --- releases and their files -------------------------------------------------------------
    op.create_table(
        "releases",
        _id(),
        _organization_id("releases"),
        sa.Column("version", sa.String(250), nullable=False),
        sa.Column("ref", sa.String(250), nullable=True),
        _timestamp("date_released", nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint(
            "organization_id", "version", name="uq_releases_organization_id_version"
        ),
        sa.UniqueConstraint("id", "organization_id", name="uq_releases_id_organization_id"),
    )
    _index_organization_id("releases")

    op.create_table(
        "release_projects",
        sa.Column("release_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        _organization_id("release_projects"),
        sa.PrimaryKeyConstraint("release_id", "project_id", name="pk_release_projects"),
        _in_org("release_projects", "release_id", "releases", ondelete="CASCADE"),
        _in_org("release_projects", "project_id", "projects", ondelete="CASCADE"),
    )
    _index_organization_id("release_projects")
    op.create_index("ix_release_projects_project_id", "release_projects", ["project_id"])

    op.create_table(
        "artifacts",
        _id(),
        _organization_id("artifacts"),
        sa.Column("release_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        # '' rather than NULL when absent: UNIQUE treats NULLs as all different.
        sa.Column("dist", sa.String(64), server_default="", nullable=False),
        sa.Column("blob_key", sa.Text(), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "content_type",
            sa.String(255),
            server_default="application/octet-stream",
            nullable=False,
        ),
        sa.Column("debug_id", sa.String(64), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        _in_org("artifacts", "release_id", "releases", ondelete="CASCADE"),
        sa.UniqueConstraint("release_id", "dist", "name", name="uq_artifacts_release_id_dist_name"),
    )
    _index_organization_id("artifacts")
    op.create_index("ix_artifacts_organization_id_debug_id", "artifacts",
                    ["organization_id", "debug_id"])

    # --- issues -------------------------------------------------------------------------------
    op.create_table(
        "issues",
        _id(),
        _organization_id("issues"),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint_hash", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("culprit", sa.Text(), nullable=True),
        sa.Column("level", sa.String(16), server_default="error", nullable=False),
        sa.Column("status", sa.String(32), server_default="unresolved", nullable=False),
        sa.Column("substatus", sa.String(32), server_default="new", nullable=True),
        _timestamp("first_seen"),
        _timestamp("last_seen"),
        sa.Column("times_seen", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("first_release_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_in_release_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("regressed_in_release_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "assignee_id",
            sa.BigInteger(),
            _user_fk("issues", "assignee_id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_issues"),
        _in_org("issues", "project_id", "projects", ondelete="CASCADE"),
        _in_org("issues", "first_release_id", "releases"),
        _in_org("issues", "resolved_in_release_id", "releases"),
        _in_org("issues", "regressed_in_release_id", "releases"),
        sa.UniqueConstraint(
            "project_id", "fingerprint_hash", name="uq_issues_project_id_fingerprint_hash"
        ),
        _check_in("issues", "status", ["unresolved", "resolved", "ignored"]),
        _check_in(
            "issues",
            "substatus",
            [
                "new",
                "ongoing",
                "regressed",
                "escalating",
                "archived_until_escalating",
                "archived_forever",
            ],
        ),
    )
    _index_organization_id("issues")
    op.create_index("ix_issues_assignee_id", "issues", ["assignee_id"])
    # The issue stream: one project's issues of a status, most recent first.
    op.create_index(
        "ix_issues_project_id_status_last_seen", "issues", ["project_id", "status", "last_seen"]
    )

    # --- alerts, audit, API tokens ------------------------------------------------------------
    op.create_table(
        "alert_rules",
        _id(),
        _organization_id("alert_rules"),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("condition", postgresql.JSONB(), nullable=False),
        sa.Column("actions", postgresql.JSONB(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("frequency_minutes", sa.BigInteger(), server_default="30", nullable=False),
        _timestamp("last_fired_at", nullable=True),
        sa.Column(
            "created_by_id",
            sa.BigInteger(),
            _user_fk("alert_rules", "created_by_id", ondelete="SET NULL"),
            nullable=True,
        ),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        _in_org("alert_rules", "project_id", "projects", ondelete="CASCADE"),
    )
    _index_organization_id("alert_rules")
    op.create_index("ix_alert_rules_project_id", "alert_rules", ["project_id"])
    op.create_index("ix_alert_rules_created_by_id", "alert_rules", ["created_by_id"])

    op.create_table(
        "audit_log_entries",
        _id(),
        _organization_id("audit_log_entries"),
        sa.Column(
            "actor_user_id",
            sa.BigInteger(),
            _user_fk("audit_log_entries", "actor_user_id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("data", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("ip_address", sa.String(45), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log_entries"),
    )
    _index_organization_id("audit_log_entries")
    op.create_index("ix_audit_log_entries_actor_user_id", "audit_log_entries", ["actor_user_id"])
    op.create_index(
        "ix_audit_log_entries_organization_id_created_at",
        "audit_log_entries",
        ["organization_id", "created_at"],
    )

    op.create_table(
        "api_tokens",
        _id(),
        _organization_id("api_tokens"),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            _user_fk("api_tokens", "user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", postgresql.JSONB(), server_default=sa.text("'[]'"), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        # Tokens belong to a member of the org: removing the member deletes their tokens.
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_api_tokens_organization_id_memberships",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        _check("token_hash ~ '^[0-9a-f]{64}$'", "ck_api_tokens_token_hash_hex"),
    )
    _index_organization_id("api_tokens")
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


    # Not tenant data: where each processing pipeline has got to in raw_events.
    op.create_table(
        "pipeline_cursors",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("position", sa.Text(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_pipeline_cursors"),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    for table in reversed(TABLES):
        op.drop_table(table)
