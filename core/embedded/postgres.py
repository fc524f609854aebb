"""Embedded PostgreSQL: Debian's server binaries when installed, else those in `pgserver`'s wheel.

The cluster lives in `<data dir>/postgres`, listens on 127.0.0.1 only and requires the
password kept in `<data dir>/secrets/postgres_password`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psycopg

from core.embedded.process import ServiceSpec
from core.settings import Settings

SUPERUSER = "pulsetrace"
DATABASE = "pulsetrace"
# PostgreSQL refuses to run as root; as root we run it as this unprivileged user.
SYSTEM_USER_CANDIDATES = ("postgres", "pulsetrace")


def find_binaries() -> Path:
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if debian:
        return debian[0].parent
    import pgserver  # the wheel carries a full PostgreSQL 16 build

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if (bundled / "postgres").exists():
        return bundled
    raise RuntimeError("no PostgreSQL server binaries found (install postgresql or pgserver)")


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in SYSTEM_USER_CANDIDATES:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pulsetrace"],
        check=True,
        capture_output=True,
    )
    return "pulsetrace"


def _allow_traversal(path: Path) -> None:
    """Let the unprivileged server user reach its data dir through root-owned parents."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _run_as(argv: list[str], user: str | None) -> None:
    def drop() -> None:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

    result = subprocess.run(argv, preexec_fn=drop, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr or result.stdout}")


def prepare(settings: Settings) -> Path:
    """initdb on first use; returns the cluster directory."""
    pgdata = settings.data_dir / "postgres"
    socket_dir = settings.data_dir / "run"
    user = _system_user()
    bin_dir = find_binaries()
    socket_dir.mkdir(parents=True, exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)  # a half-made cluster from an interrupted first start
        pgdata.mkdir(parents=True, mode=0o700)
        pwfile = settings.data_dir / "secrets" / "postgres_password"
        settings.local_secret("postgres_password")
        staged_pwfile = pgdata.parent / ".initdb_pw"
        shutil.copyfile(pwfile, staged_pwfile)
        try:
            if user is not None:
                _allow_traversal(pgdata.parent)
                _chown_tree(pgdata, user)
                os.chown(staged_pwfile, pwd.getpwnam(user).pw_uid, -1)
            _run_as(
                [
                    str(bin_dir / "initdb"),
                    "-D", str(pgdata),
                    "-U", SUPERUSER,
                    "--pwfile", str(staged_pwfile),
                    "--auth", "scram-sha-256",
                    "-E", "UTF8",
                    "--locale", "C",
                ],
                user,
            )
        finally:
            staged_pwfile.unlink(missing_ok=True)
    if user is not None:
        _allow_traversal(socket_dir)
        _chown_tree(socket_dir, user)
    return pgdata


def service(settings: Settings) -> ServiceSpec:
    pgdata = settings.data_dir / "postgres"
    bin_dir = find_binaries()
    argv = [
        str(bin_dir / "postgres"),
        "-D", str(pgdata),
        "-p", str(settings.postgres_port),
        "-h", "127.0.0.1",
        "-k", str(settings.data_dir / "run"),
        "-c", "max_connections=200",
        "-c", "shared_buffers=64MB",
        "-c", "fsync=on",
    ]
    return ServiceSpec(
        name="postgres",
        argv=argv,
        health=lambda: _healthy(settings),
        url=f"postgresql://127.0.0.1:{settings.postgres_port}/{DATABASE}",
        run_as=_system_user(),
        prepare=lambda: prepare(settings),
        stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM would wait for every client
        log_file=settings.data_dir / "logs" / "postgres.log",
    )


def _admin_dsn(settings: Settings, database: str) -> str:
    password = settings.local_secret("postgres_password")
    return (
        f"host=127.0.0.1 port={settings.postgres_port} user={SUPERUSER} "
        f"password={password} dbname={database} connect_timeout=2"
    )


def _healthy(settings: Settings) -> bool:
    """Healthy once it accepts connections and the product database exists (made on first start)."""
    with psycopg.connect(_admin_dsn(settings, "postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')  # a constant name, not user input
    return True
