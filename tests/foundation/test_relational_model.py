"""The relational model on a real PostgreSQL: migrations, tenant scoping, constraints, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload, selectinload

from core import db
from core.db import TenantScopeError, system_session, tenant_session
from core.models import (
    AlertRule,
    ApiToken,
    Artifact,
    AuditLogEntry,
    Base,
    Issue,
    IssueStatus,
    Membership,
    Organization,
    Project,
    ProjectKey,
    Release,
    ReleaseProject,
    Role,
    User,
)
from core.security import (
    hash_api_token,
    hash_password,
    new_api_token,
    new_public_key,
    verify_password,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCT_TABLES = {table.name for table in Base.metadata.sorted_tables}


# --- migrations -------------------------------------------------------------------------------


def _schema_drift(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_server_default": True})
        return compare_metadata(context, Base.metadata)


def _check_constraints(engine: Engine) -> set[str]:
    inspector = inspect(engine)
    return {
        check["name"]
        for table in PRODUCT_TABLES
        for check in inspector.get_check_constraints(table)
    }


def _model_check_constraints() -> set[str]:
    return {
        str(constraint.name)
        for table in Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }


def test_migrations_apply_match_the_models_and_downgrade_cleanly(fresh_database_url: str) -> None:
    engine = db.make_engine(fresh_database_url)
    try:
        db.upgrade(fresh_database_url)
        assert set(inspect(engine).get_table_names()) == PRODUCT_TABLES | {"alembic_version"}
        assert _schema_drift(engine) == []
        # Autogenerate does not compare CHECK constraints; compare their names instead.
        assert _check_constraints(engine) == _model_check_constraints()

        db.downgrade(fresh_database_url, "base")
        inspect(engine).clear_cache()
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        db.upgrade(fresh_database_url)
        assert _schema_drift(engine) == []
    finally:
        engine.dispose()


def test_developer_alembic_ini_works(fresh_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_database_url}

    def alembic(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", "core/alembic.ini", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    alembic("upgrade", "head")
    newest = sorted((db.MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))[-1]
    assert f"{newest.name[:4]} (head)" in alembic("current")


# --- two tenants with one of everything -------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    org_id: int
    project_id: int
    key_id: int
    issue_id: int
    release_id: int
    artifact_id: int
    alert_rule_id: int


@dataclass(frozen=True)
class World:
    a: Tenant
    b: Tenant
    shared_user_id: int  # a member of both organizations


def _add(session: Session, row: Any) -> Any:
    session.add(row)
    session.flush()  # assigns the id the next rows refer to
    return row


def _seed_tenant(session: Session, slug: str, member: User) -> Tenant:
    org = _add(session, Organization(slug=slug, name=slug.upper()))
    _add(session, Membership(organization_id=org.id, user_id=member.id, role=Role.admin))
    project = _add(session, Project(organization_id=org.id, slug="web", name="Web"))
    key = _add(
        session,
        ProjectKey(organization_id=org.id, project_id=project.id, public_key=new_public_key()),
    )
    release = _add(session, Release(organization_id=org.id, version="1.0.0"))
    _add(
        session,
        ReleaseProject(organization_id=org.id, release_id=release.id, project_id=project.id),
    )
    artifact = _add(
        session,
        Artifact(
            organization_id=org.id,
            release_id=release.id,
            name="~/static/js/app.min.js.map",
            blob_key=f"{slug}/app.map",
            sha1="0" * 40,
            size=123,
        ),
    )
    issue = _add(
        session,
        Issue(
            organization_id=org.id,
            project_id=project.id,
            fingerprint_hash="f" * 64,
            title="TypeError: x is undefined",
            first_release_id=release.id,
        ),
    )
    rule = _add(
        session,
        AlertRule(
            organization_id=org.id,
            project_id=project.id,
            name="new issues",
            condition={"type": "new_issue"},
            actions=[{"type": "email"}],
        ),
    )
    for action in ("project.create", "issue.resolve"):
        _add(session, AuditLogEntry(organization_id=org.id, actor_user_id=member.id, action=action))
    _, token_hash = new_api_token()
    _add(
        session,
        ApiToken(organization_id=org.id, user_id=member.id, name="ci", token_hash=token_hash),
    )
    return Tenant(org.id, project.id, key.id, issue.id, release.id, artifact.id, rule.id)


@pytest.fixture
def world(migrated_engine: Engine) -> World:
    with system_session(migrated_engine) as session, session.begin():
        shared = _add(session, User(email="shared@example.com", name="Shared", password_hash="x"))
        a = _seed_tenant(session, "org-a", shared)
        b = _seed_tenant(session, "org-b", shared)
        return World(a=a, b=b, shared_user_id=shared.id)


TENANT_MODELS = [
    Membership,
    Project,
    ProjectKey,
    Release,
    ReleaseProject,
    Artifact,
    Issue,
    AlertRule,
    AuditLogEntry,
    ApiToken,
]


# --- tenant scoping ---------------------------------------------------------------------------


def test_tenant_session_queries_see_only_their_organization(
    migrated_engine: Engine, world: World
) -> None:
    both = {world.a.org_id, world.b.org_id}
    for model in TENANT_MODELS:
        with system_session(migrated_engine) as session:
            everything = session.scalars(select(model)).all()
        assert {row.organization_id for row in everything} == both, model.__name__

        # Both in turn: the cached statement must not keep the first organization's filter.
        for org_id in (world.a.org_id, world.b.org_id):
            with tenant_session(migrated_engine, org_id) as session:
                rows = session.scalars(select(model)).all()
                assert rows, model.__name__
                assert {row.organization_id for row in rows} == {org_id}, model.__name__
                count = session.scalar(select(func.count()).select_from(model))
                assert count == len(rows), model.__name__


def test_tenant_session_get_joins_subqueries_and_aliases(
    migrated_engine: Engine, world: World
) -> None:
    a, b = world.a, world.b
    with tenant_session(migrated_engine, a.org_id) as session:
        assert session.get(Project, b.project_id) is None
        assert session.get(Issue, b.issue_id) is None
        assert session.get(Issue, a.issue_id) is not None
        # The tenant itself is the only organization it can see.
        assert session.get(Organization, b.org_id) is None
        assert [o.id for o in session.scalars(select(Organization))] == [a.org_id]

        # Both organizations have a project called "web".
        joined = select(Issue.id).join(Issue.project).where(Project.slug == "web")
        assert session.scalars(joined).all() == [a.issue_id]
        from_org = select(Project.id).select_from(Organization).join(Organization.projects)
        assert session.scalars(from_org).all() == [a.project_id]
        in_subquery = select(Project.id).where(Project.id.in_(select(Issue.project_id)))
        assert session.scalars(in_subquery).all() == [a.project_id]
        other = aliased(Issue)
        self_join = select(other.id).join(Project, Project.id == other.project_id)
        assert session.scalars(self_join).all() == [a.issue_id]


def test_tenant_session_relationship_loads(migrated_engine: Engine, world: World) -> None:
    a = world.a
    with tenant_session(migrated_engine, a.org_id) as session:
        shared = session.get(User, world.shared_user_id)  # users are global
        assert shared is not None
        assert [m.organization_id for m in shared.memberships] == [a.org_id]  # lazy load

        project = session.get(Project, a.project_id)
        assert project is not None
        assert [issue.id for issue in project.issues] == [a.issue_id]
        assert [key.id for key in project.keys] == [a.key_id]
        assert [release.id for release in project.releases] == [a.release_id]
        issue = session.get(Issue, a.issue_id)
        assert issue is not None and issue.first_release is not None
        assert [artifact.id for artifact in issue.first_release.artifacts] == [a.artifact_id]

    for loader in (selectinload, joinedload):
        with tenant_session(migrated_engine, a.org_id) as session:
            users = (
                session.scalars(
                    select(User)
                    .options(loader(User.memberships))
                    .execution_options(populate_existing=True)
                )
                .unique()
                .all()
            )
            assert [m.organization_id for user in users for m in user.memberships] == [a.org_id]


def test_tenant_bulk_update_and_delete_touch_only_their_organization(
    migrated_engine: Engine, world: World
) -> None:
    a, b = world.a, world.b
    with tenant_session(migrated_engine, a.org_id) as session, session.begin():
        resolved = session.execute(update(Issue).values(status=IssueStatus.resolved))
        assert resolved.rowcount == 1
        deleted = session.execute(delete(AlertRule))
        assert deleted.rowcount == 1
        # Naming B's row explicitly changes nothing either.
        session.execute(update(Project).where(Project.id == b.project_id).values(name="pwned"))
        session.execute(delete(ProjectKey).where(ProjectKey.id == b.key_id))

    with system_session(migrated_engine) as session:
        statuses = dict(session.execute(select(Issue.organization_id, Issue.status)).all())
        assert statuses == {a.org_id: IssueStatus.resolved, b.org_id: IssueStatus.unresolved}
        rule_orgs = session.scalars(select(AlertRule.organization_id)).all()
        assert rule_orgs == [b.org_id]
        assert session.get_one(Project, b.project_id).name == "Web"
        assert session.get(ProjectKey, b.key_id) is not None


def test_tenant_session_refuses_rows_of_another_organization(
    migrated_engine: Engine, world: World
) -> None:
    a, b = world.a, world.b

    with tenant_session(migrated_engine, a.org_id) as session, session.begin():
        session.add(Project(organization_id=b.org_id, slug="intruder", name="Intruder"))
        with pytest.raises(TenantScopeError, match="organization"):
            session.flush()
        session.rollback()

    with tenant_session(migrated_engine, a.org_id) as session, session.begin():
        project = session.get_one(Project, a.project_id)
        project.organization_id = b.org_id
        with pytest.raises(TenantScopeError):
            session.flush()
        session.rollback()

    # Statements the tenant filter cannot reach are refused rather than run unfiltered.
    with tenant_session(migrated_engine, a.org_id) as session, session.begin():
        with pytest.raises(TenantScopeError, match="never move"):
            session.execute(update(Release).values(organization_id=b.org_id))
        with pytest.raises(TenantScopeError, match="INSERT"):
            session.execute(insert(Release).values(organization_id=b.org_id, version="9"))
        with pytest.raises(TenantScopeError, match="from_statement"):
            session.scalars(select(Issue).from_statement(text("SELECT * FROM issues")))
        with pytest.raises(TenantScopeError, match="bulk UPDATE by primary key"):
            session.execute(update(Issue), [{"id": b.issue_id, "title": "pwned"}])
        with pytest.raises(TenantScopeError, match="bulk_update_mappings"):
            session.bulk_update_mappings(Issue, [{"id": b.issue_id, "title": "pwned"}])
    with system_session(migrated_engine) as session:
        assert session.get_one(Issue, b.issue_id).title == "TypeError: x is undefined"
        releases = select(Release.organization_id).order_by(Release.id)
        assert session.scalars(releases).all() == [a.org_id, b.org_id]

    # A new row without an organization gets the session's.
    with tenant_session(migrated_engine, a.org_id) as session, session.begin():
        added = Project(slug="mobile", name="Mobile")
        session.add(added)
        session.flush()
        assert added.organization_id == a.org_id


def test_a_child_cannot_point_at_a_parent_of_another_organization(
    migrated_engine: Engine, world: World
) -> None:
    # Even a system session cannot mix organizations: the composite foreign keys refuse it.
    with system_session(migrated_engine) as session, session.begin():
        session.add(
            Issue(
                organization_id=world.a.org_id,
                project_id=world.b.project_id,
                fingerprint_hash="x",
                title="mixed",
            )
        )
        with pytest.raises(IntegrityError, match="fk_issues_project_id_projects"):
            session.flush()


def test_a_plain_session_on_a_tenant_model_raises(migrated_engine: Engine, world: World) -> None:
    with Session(migrated_engine) as session:
        with pytest.raises(TenantScopeError, match="tenant_session"):
            session.scalars(select(Issue)).all()
        with pytest.raises(TenantScopeError):
            session.get(Project, world.a.project_id)
        with pytest.raises(TenantScopeError):  # the tenant table is only joined
            session.scalars(select(Organization).join(Organization.projects)).all()
        with pytest.raises(TenantScopeError):
            session.execute(delete(AuditLogEntry))

        # Global tables are fine, but a relationship into a tenant table is not.
        org = session.get_one(Organization, world.a.org_id)
        with pytest.raises(TenantScopeError):
            _ = org.projects

        session.add(Project(organization_id=world.a.org_id, slug="p", name="P"))
        with pytest.raises(TenantScopeError, match="plain Session"):
            session.flush()


# --- constraints ------------------------------------------------------------------------------


def _violates(session: Session, row: Any, constraint: str) -> None:
    with pytest.raises(IntegrityError, match=constraint), session.begin_nested():
        session.add(row)
        session.flush()


def test_uniqueness_constraints(migrated_engine: Engine, world: World) -> None:
    a, b = world.a, world.b
    with system_session(migrated_engine) as session, session.begin():
        key_a = session.get_one(ProjectKey, a.key_id).public_key
        _violates(
            session,
            ProjectKey(organization_id=b.org_id, project_id=b.project_id, public_key=key_a),
            "uq_project_keys_public_key",
        )
        _violates(
            session,
            Issue(
                organization_id=a.org_id,
                project_id=a.project_id,
                fingerprint_hash="f" * 64,
                title="again",
            ),
            "uq_issues_project_id_fingerprint_hash",
        )
        _violates(
            session,
            Release(organization_id=a.org_id, version="1.0.0"),
            "uq_releases_organization_id_version",
        )
        _violates(
            session,
            Project(organization_id=a.org_id, slug="web", name="Web again"),
            "uq_projects_organization_id_slug",
        )
        # No dist is '' (not NULL), so a second artifact without dist is a duplicate too.
        _violates(
            session,
            Artifact(
                organization_id=a.org_id,
                release_id=a.release_id,
                name="~/static/js/app.min.js.map",
                blob_key="k",
                sha1="1" * 40,
                size=1,
            ),
            "uq_artifacts_release_id_dist_name",
        )

        # The same values are fine in another project, organization or dist.
        other_project = _add(session, Project(organization_id=a.org_id, slug="api", name="API"))
        _add(
            session,
            Issue(
                organization_id=a.org_id,
                project_id=other_project.id,
                fingerprint_hash="f" * 64,
                title="same fingerprint elsewhere",
            ),
        )
        _add(session, Release(organization_id=b.org_id, version="2.0.0"))
        _add(
            session,
            Artifact(
                organization_id=a.org_id,
                release_id=a.release_id,
                dist="ios",
                name="~/static/js/app.min.js.map",
                blob_key="k",
                sha1="1" * 40,
                size=1,
            ),
        )


def test_enums_and_emails_are_checked_in_the_database(
    migrated_engine: Engine, world: World
) -> None:
    with system_session(migrated_engine) as session, session.begin():
        user = _add(session, User(email="  Alice@Example.COM ", name="Alice", password_hash="x"))
        assert session.scalar(select(User.email).where(User.id == user.id)) == "alice@example.com"
        membership = session.scalars(select(Membership)).first()
        assert membership is not None and membership.role is Role.admin

        for statement, constraint in [
            ("UPDATE users SET email = 'Bob@Example.com'", "ck_users_email_lower_case"),
            ("UPDATE memberships SET role = 'owner'", "ck_memberships_role"),
            ("UPDATE issues SET status = 'closed'", "ck_issues_status"),
            ("UPDATE project_keys SET public_key = 'not-hex'", "ck_project_keys_public_key_hex"),
        ]:
            with pytest.raises(IntegrityError, match=constraint), session.begin_nested():
                session.execute(text(statement))


def test_deleting_an_organization_or_member_cascades(migrated_engine: Engine, world: World) -> None:
    a, b = world.a, world.b
    with system_session(migrated_engine) as session, session.begin():
        session.execute(
            delete(Membership).where(
                Membership.organization_id == a.org_id,
                Membership.user_id == world.shared_user_id,
            )
        )
        # A removed member's API tokens go with the membership.
        assert session.scalars(select(ApiToken.organization_id)).all() == [b.org_id]

        session.delete(session.get_one(Organization, b.org_id))
        session.flush()
        for model in TENANT_MODELS:
            orgs = set(session.scalars(select(model.organization_id)))
            assert b.org_id not in orgs, model.__name__
        assert session.get(Issue, a.issue_id) is not None


# --- secrets ----------------------------------------------------------------------------------


def test_passwords_verify_and_a_wrong_one_fails() -> None:
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse battery staple")
    assert not verify_password(hashed, "Correct horse battery staple")
    assert not verify_password("not a hash", "correct horse battery staple")
    assert hash_password("same") != hash_password("same")  # salted


def test_api_tokens_store_only_their_hash(migrated_engine: Engine, world: World) -> None:
    plaintext, token_hash = new_api_token()
    assert plaintext.startswith("ptk_") and len(plaintext) > 40
    assert token_hash == hash_api_token(plaintext) and len(token_hash) == 64
    assert new_api_token()[0] != plaintext

    with tenant_session(migrated_engine, world.a.org_id) as session, session.begin():
        session.add(ApiToken(user_id=world.shared_user_id, name="deploy", token_hash=token_hash))
        session.flush()
        found = session.scalar(
            select(ApiToken).where(ApiToken.token_hash == hash_api_token(plaintext))
        )
        assert found is not None and found.name == "deploy"
        # The plaintext appears nowhere in the table; storing it by mistake is refused.
        leaked = session.scalar(
            text("SELECT count(*) FROM api_tokens t WHERE t::text LIKE :p"),
            {"p": f"%{plaintext[4:]}%"},
        )
        assert leaked == 0
        with (
            pytest.raises(IntegrityError, match="ck_api_tokens_token_hash_hex"),
            session.begin_nested(),
        ):
            session.add(
                ApiToken(user_id=world.shared_user_id, name="oops", token_hash=plaintext[:64])
            )
            session.flush()


def test_public_keys_are_32_hex_characters() -> None:
    keys = {new_public_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(key) == 32 and int(key, 16) >= 0 and key == key.lower() for key in keys)
