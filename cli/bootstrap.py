"""`pulsetrace bootstrap`: make sure an organization, its admin, a project and a DSN key exist.

Idempotent: running it again finds the same org, user, project and key (an existing user's
password is left as it is); each run issues a fresh API token, since only token hashes are kept.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import db
from core.models import ApiToken, Membership, Organization, Project, ProjectKey, Role, User
from core.security import dsn_for, hash_password, new_api_token, new_public_key
from core.settings import Settings

RowT = TypeVar("RowT")

DEMO_ORG = "demo"
DEMO_PROJECT = "demo-web"
DEMO_EMAIL = "demo@pulsetrace.local"


@dataclass(frozen=True)
class BootstrapResult:
    org: str
    org_id: int
    project: str
    project_id: int
    email: str
    public_key: str
    dsn: str
    token: str


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    if not slug:
        raise ValueError(f"{name!r} has no letters or digits to make a slug from")
    return slug[:50]


def _added(session: Session, row: RowT) -> RowT:
    session.add(row)
    session.flush()  # assigns the id the next rows refer to
    return row


def bootstrap(
    settings: Settings, org: str, project: str, email: str, password: str
) -> BootstrapResult:
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    email = email.strip().lower()
    if "@" not in email:
        raise ValueError(f"{email!r} is not an email address")
    engine = db.make_engine(settings.database_url)
    try:
        with db.system_session(engine) as session, session.begin():
            org_slug, project_slug = slugify(org), slugify(project)
            organization = session.scalar(
                select(Organization).where(Organization.slug == org_slug)
            ) or _added(session, Organization(slug=org_slug, name=org))
            user = session.scalar(select(User).where(User.email == email)) or _added(
                session,
                User(email=email, name=email.split("@")[0], password_hash=hash_password(password)),
            )
            membership = session.scalar(
                select(Membership).where(
                    Membership.organization_id == organization.id, Membership.user_id == user.id
                )
            ) or _added(
                session,
                Membership(organization_id=organization.id, user_id=user.id, role=Role.admin),
            )
            membership.role = Role.admin
            proj = session.scalar(
                select(Project).where(
                    Project.organization_id == organization.id, Project.slug == project_slug
                )
            ) or _added(
                session,
                Project(
                    organization_id=organization.id, slug=project_slug, name=project,
                    platform="javascript",
                ),
            )
            key = session.scalar(
                select(ProjectKey)
                .where(ProjectKey.project_id == proj.id, ProjectKey.is_active.is_(True))
                .order_by(ProjectKey.id)
                .limit(1)
            ) or _added(
                session,
                ProjectKey(
                    organization_id=organization.id, project_id=proj.id,
                    public_key=new_public_key(), label="Default", is_active=True,
                ),
            )
            token, token_hash = new_api_token()
            session.add(
                ApiToken(
                    organization_id=organization.id, user_id=user.id, name="bootstrap",
                    token_hash=token_hash, scopes=["org:admin"],
                )
            )
            return BootstrapResult(
                org=organization.slug, org_id=organization.id, project=proj.slug,
                project_id=proj.id, email=email, public_key=key.public_key,
                dsn=dsn_for(settings.ingest_public_url, key.public_key, proj.id), token=token,
            )
    finally:
        engine.dispose()


def as_json_dict(result: BootstrapResult) -> dict[str, object]:
    return asdict(result)


def bootstrap_demo(settings: Settings) -> str:
    """Create the demo org on a running stack; returns what to tell the user."""
    password = settings.local_secret("demo_password")
    result = bootstrap(settings, DEMO_ORG, DEMO_PROJECT, DEMO_EMAIL, password)
    return (
        f"demo org {result.org!r}, project {result.project!r} (id {result.project_id})\n"
        f"  DSN:   {result.dsn}\n"
        f"  login: {result.email} / {password}"
    )
