"""The relational model (PostgreSQL): who the tenants are, and what each of them owns.

Reading guide:
- `Organization` is the tenant. `User` is global: one person may belong to several
  organizations through `Membership`.
- Every other table is a tenant table: its class mixes in `TenantScoped`, so each row carries
  `organization_id` itself (not only through a parent). One column is enough to scope any query,
  and `core.db.tenant_session` adds that filter to every ORM statement automatically.
- A tenant row that points at another tenant row (an issue at its project, an artifact at its
  release, ...) does so with a composite foreign key `(parent_id, organization_id)`, so the
  database itself refuses a child whose organization differs from its parent's.
- Every integer is a BIGINT and every timestamp is timezone-aware (see `Base`).

The schema is created by the hand-written Alembic migrations in `core/migrations/versions/`;
the test suite checks that they and these classes describe the same schema.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

# Explicit constraint names, so migrations can refer to (and drop) every constraint by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact); plain JSON elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Python annotation -> column type. BIGINT everywhere: ids and counters never overflow,
    # and a foreign key always has the type of the key it points to.
    type_annotation_map = {
        int: BigInteger(),
        str: Text(),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[dict[str, Any]]: JSONType,
    }


def _string_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    """A Python Enum stored as its value in a VARCHAR with a CHECK (no PostgreSQL ENUM type,
    so adding a value later is a one-line CHECK change, not an ALTER TYPE)."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Role(enum.StrEnum):
    admin = "admin"
    developer = "developer"


class IssueStatus(enum.StrEnum):
    unresolved = "unresolved"
    resolved = "resolved"
    ignored = "ignored"


class IssueSubstatus(enum.StrEnum):
    new = "new"
    ongoing = "ongoing"
    regressed = "regressed"
    escalating = "escalating"
    archived_until_escalating = "archived_until_escalating"
    archived_forever = "archived_forever"


class TenantScoped:
    """Marks a table whose rows belong to one organization.

    `core.db.tenant_session` filters every ORM statement on these classes by
    `organization_id`, and a plain Session refuses to touch them at all.
    """

    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )


# --- tenants and people -----------------------------------------------------------------------


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    projects: Mapped[list[Project]] = relationship(
        back_populates="organization", passive_deletes=True
    )
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="organization", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Organization {self.id} {self.slug!r}>"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower_case"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str]  # argon2id, see core.security
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", passive_deletes=True
    )

    @validates("email")
    def _normalise_email(self, _key: str, email: str) -> str:
        # Lower-case here so lookups by email (login, bootstrap) match however it was typed;
        # the CHECK constraint catches anything written around the ORM.
        return email.strip().lower()

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email!r}>"


class Membership(TenantScoped, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_string_enum(Role, "role"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    organization: Mapped[Organization] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")


# --- projects and their DSN keys --------------------------------------------------------------


class Project(TenantScoped, Base):
    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("organization_id", "slug"),
        # Target of the composite foreign keys that keep children in their project's org.
        UniqueConstraint("id", "organization_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(64), server_default="javascript")
    # CORS origins the ingest accepts browser events from; ["*"] allows any.
    allowed_origins: Mapped[list[str]] = mapped_column(
        default=lambda: ["*"], server_default=text("'[\"*\"]'")
    )
    # Per-project options, e.g. {"scrubbing": {"ip_mode": "hash", "extra_patterns": [...],
    # "safe_fields": [...]}}.
    settings: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    organization: Mapped[Organization] = relationship(back_populates="projects")
    keys: Mapped[list[ProjectKey]] = relationship(
        back_populates="project", foreign_keys="ProjectKey.project_id", passive_deletes=True
    )
    issues: Mapped[list[Issue]] = relationship(
        back_populates="project", foreign_keys="Issue.project_id", passive_deletes=True
    )
    releases: Mapped[list[Release]] = relationship(
        secondary="release_projects", back_populates="projects", viewonly=True
    )

    def __repr__(self) -> str:
        return f"<Project {self.id} {self.slug!r}>"


class ProjectKey(TenantScoped, Base):
    """A DSN public key: `https://<public_key>@<host>/<project_id>`."""

    __tablename__ = "project_keys"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "organization_id"],
            ["projects.id", "projects.organization_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("public_key ~ '^[0-9a-f]{32}$'", name="public_key_hex"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(index=True)
    public_key: Mapped[str] = mapped_column(String(32), unique=True)
    label: Mapped[str] = mapped_column(String(200), server_default="Default")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    # Events per minute for this key; None means the ingest's default limit.
    rate_limit_per_minute: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]

    project: Mapped[Project] = relationship(back_populates="keys", foreign_keys=[project_id])


# --- releases and their files -----------------------------------------------------------------


class Release(TenantScoped, Base):
    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("organization_id", "version"),
        UniqueConstraint("id", "organization_id"),  # composite foreign key target
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(250))
    ref: Mapped[str | None] = mapped_column(String(250))  # e.g. the git commit
    date_released: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    # Read through the link table; add a ReleaseProject row to link a project.
    projects: Mapped[list[Project]] = relationship(
        secondary="release_projects", back_populates="releases", viewonly=True
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="release", foreign_keys="Artifact.release_id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Release {self.id} {self.version!r}>"


class ReleaseProject(TenantScoped, Base):
    """Which projects a release belongs to (a release may span several projects).

    A mapped class rather than a bare association table, because the row needs its
    organization_id like every tenant row and a bare `secondary` cannot fill it in.
    """

    __tablename__ = "release_projects"
    __table_args__ = (
        ForeignKeyConstraint(
            ["release_id", "organization_id"],
            ["releases.id", "releases.organization_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["project_id", "organization_id"],
            ["projects.id", "projects.organization_id"],
            ondelete="CASCADE",
        ),
    )

    release_id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(primary_key=True, index=True)

    release: Mapped[Release] = relationship(foreign_keys=[release_id])
    project: Mapped[Project] = relationship(foreign_keys=[project_id])


class Artifact(TenantScoped, Base):
    """A file uploaded for a release, e.g. a source map; the bytes live in the blob store."""

    __tablename__ = "artifacts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["release_id", "organization_id"],
            ["releases.id", "releases.organization_id"],
            ondelete="CASCADE",
        ),
        # dist is '' rather than NULL when absent: a UNIQUE treats NULLs as all different.
        UniqueConstraint("release_id", "dist", "name"),
        # Source maps are found by the debug id the bundler wrote into bundle and map.
        Index("ix_artifacts_organization_id_debug_id", "organization_id", "debug_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column()
    name: Mapped[str]  # e.g. "~/static/js/app.min.js"
    dist: Mapped[str] = mapped_column(String(64), default="", server_default="")
    blob_key: Mapped[str]
    sha1: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    content_type: Mapped[str] = mapped_column(
        String(255), server_default="application/octet-stream"
    )
    debug_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    release: Mapped[Release] = relationship(back_populates="artifacts", foreign_keys=[release_id])


class EventAttachment(TenantScoped, Base):
    """A file an SDK sent with an event (a screenshot, a log file, a view hierarchy); the bytes
    live in the blob store. Its id is derived from the event and the file's place in the
    envelope, so an envelope sent again stores it once."""

    __tablename__ = "event_attachments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "organization_id"],
            ["projects.id", "projects.organization_id"],
            ondelete="CASCADE",
        ),
        Index("ix_event_attachments_project_id_event_id", "project_id", "event_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    project_id: Mapped[int] = mapped_column()
    event_id: Mapped[str] = mapped_column(String(32))  # 32 lowercase hex digits
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    attachment_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    sha1: Mapped[str] = mapped_column(String(40))
    blob_key: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


# --- issues -----------------------------------------------------------------------------------


class Issue(TenantScoped, Base):
    """A group of events with the same fingerprint in one project."""

    __tablename__ = "issues"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "organization_id"],
            ["projects.id", "projects.organization_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["first_release_id", "organization_id"],
            ["releases.id", "releases.organization_id"],
        ),
        ForeignKeyConstraint(
            ["resolved_in_release_id", "organization_id"],
            ["releases.id", "releases.organization_id"],
        ),
        ForeignKeyConstraint(
            ["regressed_in_release_id", "organization_id"],
            ["releases.id", "releases.organization_id"],
        ),
        UniqueConstraint("project_id", "fingerprint_hash"),
        UniqueConstraint("project_id", "short_id"),
        # The issue stream: one project's issues of a status, most recent first.
        Index("ix_issues_project_id_status_last_seen", "project_id", "status", "last_seen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column()
    # The issue's number in its project (1, 2, ...: PROJECT-1 as users see it), set by the
    # database on insert (a trigger, migration 0007; see ProjectIssueCounter).
    short_id: Mapped[int] = mapped_column(server_default=FetchedValue())
    fingerprint_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str]
    culprit: Mapped[str | None]
    level: Mapped[str] = mapped_column(String(16), server_default="error")
    status: Mapped[IssueStatus] = mapped_column(
        _string_enum(IssueStatus, "status"), server_default=IssueStatus.unresolved.value
    )
    substatus: Mapped[IssueSubstatus | None] = mapped_column(
        _string_enum(IssueSubstatus, "substatus"), server_default=IssueSubstatus.new.value
    )
    first_seen: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen: Mapped[datetime] = mapped_column(server_default=func.now())
    times_seen: Mapped[int] = mapped_column(server_default="1")
    first_release_id: Mapped[int | None] = mapped_column()
    # When the event that gave first_release_id happened: an event that arrives later but
    # happened before it, and names a release, replaces it ("introduced in" whatever the order).
    first_release_seen: Mapped[datetime | None]
    resolved_in_release_id: Mapped[int | None] = mapped_column()
    resolved_at: Mapped[datetime | None]
    # The release whose event reopened a resolved issue (substatus regressed).
    regressed_in_release_id: Mapped[int | None] = mapped_column()
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    project: Mapped[Project] = relationship(back_populates="issues", foreign_keys=[project_id])
    first_release: Mapped[Release | None] = relationship(foreign_keys=[first_release_id])
    resolved_in_release: Mapped[Release | None] = relationship(
        foreign_keys=[resolved_in_release_id]
    )
    assignee: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<Issue {self.id} {self.title!r}>"


# --- alerts, audit, API tokens ----------------------------------------------------------------


class AlertRule(TenantScoped, Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "organization_id"],
            ["projects.id", "projects.organization_id"],
            ondelete="CASCADE",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(200))
    condition: Mapped[dict[str, Any]]  # what makes it fire, e.g. {"type": "new_issue"}
    actions: Mapped[list[dict[str, Any]]]  # where to notify, e.g. [{"type": "email", ...}]
    is_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    # At most one notification per rule (and issue) in this many minutes.
    frequency_minutes: Mapped[int] = mapped_column(server_default="30")
    last_fired_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    project: Mapped[Project] = relationship(foreign_keys=[project_id])


class AuditLogEntry(TenantScoped, Base):
    """Who did what, e.g. action="issue.resolve", target_type="issue", target_id="42"."""

    __tablename__ = "audit_log_entries"
    __table_args__ = (
        Index("ix_audit_log_entries_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for actions of the system itself (pipeline, bootstrap).
    actor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    ip_address: Mapped[str | None] = mapped_column(String(45))  # long enough for IPv6
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiToken(TenantScoped, Base):
    """A bearer token for the management API. Only its SHA-256 is stored (core.security)."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        # Tokens belong to a member of the org: removing the member deletes their tokens.
        ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            ondelete="CASCADE",
        ),
        # A hex digest, so a plaintext token can never be stored here by mistake.
        CheckConstraint("token_hash ~ '^[0-9a-f]{64}$'", name="token_hash_hex"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: never expires

    user: Mapped[User] = relationship(foreign_keys=[user_id])



class PipelineCursor(Base):
    """Where a processing pipeline has got to in raw_events (system data, not a tenant's)."""

    __tablename__ = "pipeline_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ProjectIssueCounter(Base):
    """The last short id given to an issue of each project (system data, not a tenant's).

    Issues are numbered per project, as Sentry's PROJECT-1, PROJECT-2 are: a trigger on
    `issues` (migration 0007) takes the next number for every new issue, whatever inserts
    it. A number taken by an insert that then does not happen (it conflicts with the same
    issue made meanwhile, and updates that one) is skipped; one rolled back is given again."""

    __tablename__ = "project_issue_counters"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    last_short_id: Mapped[int]


class ReprocessingPreviousIssue(Base):
    """The issue an event was counted in before a reprocessing attempt that has not committed
    (system data, not a tenant's).

    Reprocessing replaces an event's row in ClickHouse (naming its issue now) before its
    transaction here commits, and reads an event's previous issue from that row. Should the
    transaction fail, the row names the new issue, and the attempt run again would take the
    event as counted there already: its count would never move. So an attempt first commits
    here, in a transaction of its own, the issue each event it moves was counted in, reads
    these before the rows, and deletes them in its own transaction."""

    __tablename__ = "reprocessing_previous_issues"

    project_id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    issue_id: Mapped[int]  # 0: counted in none (it had no row)



# --- sign-in sessions and issue comments (management API) --------------------------------------


class AuthSession(Base):
    """One sign-in: the family of rotating refresh tokens it goes through.

    Access tokens name their session, so revoking it (logout, or a refresh token presented a
    second time) ends every token of the family at once. Users are global, so this is not a
    tenant table.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The family ends here whatever the rotations: a stolen chain cannot live for ever.
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))  # logout, reuse, ...
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship()


class RefreshToken(Base):
    """A refresh token of a session; only its SHA-256 is stored, and each is used once."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        CheckConstraint("token_hash ~ '^[0-9a-f]{64}$'", name="token_hash_hex"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]  # set when exchanged; a second use revokes the session

    session: Mapped[AuthSession] = relationship()


class IssueComment(TenantScoped, Base):
    """A note a member left on an issue while triaging it."""

    __tablename__ = "issue_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    text: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    author: Mapped[User | None] = relationship()


# Importing the models installs the session guard too, whichever of core.models / core.db a
# program imports first: a plain Session must never reach tenant rows unscoped.
import core.db  # noqa: E402, F401, I001
