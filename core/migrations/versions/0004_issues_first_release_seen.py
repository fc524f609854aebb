"""Issues remember when the event that gave their first release happened
(`issues.first_release_seen`), so that an event arriving late but older, of an older release,
becomes the release that introduced the issue whatever the order events arrive in.

Existing issues with a first release get their `first_seen`: what the first release was
compared with until now, so they behave as before (an event older than the issue's first one
replaces it, a later one does not).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "issues", sa.Column("first_release_seen", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE issues SET first_release_seen = first_seen WHERE first_release_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("issues", "first_release_seen")
