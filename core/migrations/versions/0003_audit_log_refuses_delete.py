"""Audit log entries refuse DELETE too, except when their organization is deleted.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The rule 0002 put in place: an UPDATE is refused unless it is the ON DELETE SET NULL of the
# actor, the only change an entry may undergo.
UPDATE_RULE = """
    IF NEW.actor_user_id IS NULL AND OLD.actor_user_id IS NOT NULL
       AND (to_jsonb(NEW) - 'actor_user_id') = (to_jsonb(OLD) - 'actor_user_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit log entries are append-only (UPDATE refused)'
        USING ERRCODE = 'insufficient_privilege';
"""

DELETE_RULE = """
    IF TG_OP = 'DELETE' THEN
        -- Only the organization's own deletion (ON DELETE CASCADE) takes its log with it.
        IF NOT EXISTS (SELECT 1 FROM organizations WHERE id = OLD.organization_id) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit log entries are append-only (DELETE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
"""


def _function(body: str) -> str:
    return (
        "CREATE OR REPLACE FUNCTION audit_log_entries_append_only() RETURNS trigger\n"
        f"LANGUAGE plpgsql AS $$\nBEGIN{body}END;\n$$"
    )


def _trigger(events: str) -> None:
    op.execute("DROP TRIGGER audit_log_entries_append_only ON audit_log_entries")
    op.execute(
        f"CREATE TRIGGER audit_log_entries_append_only BEFORE {events} "
        "ON audit_log_entries FOR EACH ROW EXECUTE FUNCTION audit_log_entries_append_only()"
    )


def upgrade() -> None:
    op.execute(_function(DELETE_RULE + UPDATE_RULE))
    _trigger("UPDATE OR DELETE")


def downgrade() -> None:
    op.execute(_function(UPDATE_RULE))
    _trigger("UPDATE")
