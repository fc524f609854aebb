"""Files SDKs send with events (envelope items of type `attachment`: screenshots, log files,
view hierarchies): a row per file in `event_attachments`, the bytes in the blob store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "organization_id",
            sa.BigInteger(),
            sa.ForeignKey("organizations.id",
                          name="fk_event_attachments_organization_id_organizations",
                          ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("attachment_type", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("blob_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_attachments"),
        sa.ForeignKeyConstraint(
            ["project_id", "organization_id"], ["projects.id", "projects.organization_id"],
            name="fk_event_attachments_project_id_projects", ondelete="CASCADE"),
    )
    op.create_index("ix_event_attachments_organization_id", "event_attachments",
                    ["organization_id"])
    op.create_index("ix_event_attachments_project_id_event_id", "event_attachments",
                    ["project_id", "event_id"])


def downgrade() -> None:
    op.drop_table("event_attachments")
