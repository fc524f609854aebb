"""Issues numbered per project (`issues.short_id`: PROJECT-1, PROJECT-2, ... as Sentry shows
them), from a counter per project (`project_issue_counters`) that a trigger advances for every
new issue. Existing issues are numbered in the order they were made.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per project, locked by the transaction that makes an issue until it commits: two
# runners making issues of one project at once take their numbers in turn.
NEXT_SHORT_ID_FUNCTION = """
CREATE FUNCTION issues_next_short_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_issue_counters AS counter (project_id, last_short_id)
    VALUES (NEW.project_id, 1)
    ON CONFLICT (project_id) DO UPDATE SET last_short_id = counter.last_short_id + 1
    RETURNING last_short_id INTO NEW.short_id;
    RETURN NEW;
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "project_issue_counters",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("last_short_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_issue_counters"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name="fk_project_issue_counters_project_id_projects",
                                ondelete="CASCADE"),
    )
    op.add_column("issues", sa.Column("short_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE issues SET short_id = numbered.n FROM ("
        " SELECT id, row_number() OVER (PARTITION BY project_id ORDER BY id) AS n FROM issues"
        ") AS numbered WHERE issues.id = numbered.id"
    )
    op.execute(
        "INSERT INTO project_issue_counters (project_id, last_short_id)"
        " SELECT project_id, max(short_id) FROM issues GROUP BY project_id"
    )
    op.alter_column("issues", "short_id", nullable=False)
    op.create_unique_constraint("uq_issues_project_id_short_id", "issues",
                                ["project_id", "short_id"])
    op.execute(NEXT_SHORT_ID_FUNCTION)
    op.execute(
        "CREATE TRIGGER issues_next_short_id BEFORE INSERT ON issues"
        " FOR EACH ROW EXECUTE FUNCTION issues_next_short_id()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER issues_next_short_id ON issues")
    op.execute("DROP FUNCTION issues_next_short_id()")
    op.drop_constraint("uq_issues_project_id_short_id", "issues")
    op.drop_column("issues", "short_id")
    op.drop_table("project_issue_counters")
