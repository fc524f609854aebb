"""Reprocessing's record of the issue each event it moves was counted in, kept until its
transaction commits (`ReprocessingPreviousIssue`), so that an attempt that fails after its
rows reached ClickHouse is run again as if it never ran.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reprocessing_previous_issues",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("issue_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "event_id", name="pk_reprocessing_previous_issues"),
    )


def downgrade() -> None:
    op.drop_table("reprocessing_previous_issues")
