"""The `pulsetrace` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.settings import SERVICES, Settings


def _settings_for_running_stack(data_dir: str | None) -> Settings:
    """Settings that point at the stack `pulsetrace up` runs on this data dir."""
    from cli.stack import load_stack_environment

    root = Settings.from_env(data_dir).data_dir
    os.environ.update(load_stack_environment(root))
    return Settings.from_env(root)


def cmd_up(args: argparse.Namespace) -> int:
    from cli.stack import run_up

    try:
        settings = Settings.from_env(args.data_dir)
        if args.services is not None:
            settings = replace(settings, services=tuple(
                name.strip() for name in args.services.split(",") if name.strip()))
    except ValueError as exc:  # a setting that does not parse: say which, not a traceback
        print(f"pulsetrace up: {exc}", file=sys.stderr)
        return 2
    return run_up(settings, demo=args.demo)


def cmd_status(args: argparse.Namespace) -> int:
    from cli.stack import health_of

    try:
        settings = _settings_for_running_stack(args.data_dir)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    reports = health_of(settings)
    for report in reports:
        state = "healthy" if report.healthy else "UNHEALTHY"
        detail = f"  ({report.detail})" if report.detail else ""
        print(f"{report.name:<10} {state:<9} {report.url}{detail}")
    if any(r.name == "warehouse" and r.healthy for r in reports):
        _print_dead_letter_count(settings)
    return 0 if all(r.healthy for r in reports) else 1


def _print_dead_letter_count(settings: Settings) -> None:
    """Events set aside in the last 24 h, if any: one query on a small table."""
    from core.warehouse import connect
    from orchestration.processing import dead_letters_since

    try:
        count = dead_letters_since(connect(settings.clickhouse_url),
                                   datetime.now(UTC) - timedelta(hours=24))
    except Exception as exc:  # noqa: BLE001 - status reports health; this is a side note
        print(f"(could not count events set aside: {exc})", file=sys.stderr)
        return
    if count:
        print(f"{count} events set aside by processing in the last 24 h: "
              "see `pulsetrace dead-letters`")


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from cli.bootstrap import as_json_dict, bootstrap

    try:
        settings = _settings_for_running_stack(args.data_dir)
        result = bootstrap(settings, args.org, args.project, args.email, args.password)
    except (FileNotFoundError, ValueError) as exc:
        print(f"bootstrap failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(as_json_dict(result)))
    else:
        print(f"org {result.org}, project {result.project} (id {result.project_id})")
        print(f"DSN:   {result.dsn}")
        print(f"token: {result.token}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from cli.stack import apply_migrations

    try:
        apply_migrations(_settings_for_running_stack(args.data_dir))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("migrations applied (PostgreSQL and warehouse)")
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from core import db
    from core.blobs import blob_store
    from core.warehouse import connect
    from orchestration.processing import read_cursor, reprocess_window

    try:
        start, end = (datetime.fromisoformat(v) for v in (args.start, args.end))
    except ValueError as exc:
        print(f"pulsetrace reprocess: --from and --to take ISO times: {exc}", file=sys.stderr)
        return 2
    start, end = (v if v.tzinfo else v.replace(tzinfo=UTC) for v in (start, end))
    if start >= end:
        print(f"pulsetrace reprocess: the range is empty: --from {start.isoformat()} is not "
              f"before --to {end.isoformat()}", file=sys.stderr)
        return 2
    try:
        settings = _settings_for_running_stack(args.data_dir)
    except FileNotFoundError as exc:
        print(f"reprocess failed: {exc}", file=sys.stderr)
        return 1
    engine = db.make_engine(settings.database_url)
    processed_until = read_cursor(engine)
    result = reprocess_window(connect(settings.clickhouse_url), engine, blob_store(settings),
                              start, end)
    print(f"reprocessed {result.raw} raw events: {result.events} events, "
          f"{result.transactions} transactions, {result.feedback} feedback, "
          f"{result.new_issues} new issues, {result.regressions} regressions")
    if result.retried:
        print(f"{result.retried} events set aside before went through this time")
    if result.dead_lettered:
        print(f"{result.dead_lettered} events failed processing again and stay set aside "
              "(`pulsetrace dead-letters` lists them with their error)")
    if processed_until < end:
        print(f"(events landed after {processed_until.isoformat()} are not processed yet; "
              "the running stack processes them as they come)")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from core import db
    from core.models import Project
    from core.warehouse import connect
    from orchestration.processing import dead_letters

    try:
        settings = _settings_for_running_stack(args.data_dir)
    except FileNotFoundError as exc:
        print(f"dead-letters failed: {exc}", file=sys.stderr)
        return 1
    with db.system_session(db.make_engine(settings.database_url)) as session:
        slugs = dict(session.execute(select(Project.id, Project.slug)).all())
    project_ids = None
    if args.project is not None:
        project_ids = [int(args.project)] if args.project.isdigit() else [
            project_id for project_id, slug in slugs.items() if slug == args.project]
        if not project_ids:
            print(f"pulsetrace dead-letters: no project {args.project!r}", file=sys.stderr)
            return 2
    found = dead_letters(connect(settings.clickhouse_url), project_ids, limit=args.limit)
    if not found:
        print("no events set aside" + (f" in project {args.project}" if args.project else ""))
        return 0
    print(f"{'project':<24} {'event id':<32}  {'landed (UTC)':<26}  {'failed in':<14}  error")
    for letter in found:
        project = f"{letter.project_id} ({slugs.get(letter.project_id, 'deleted')})"
        error = f"{letter.error_type}: {letter.error_message}".replace("\n", " ")
        print(f"{project:<24} {letter.event_id:<32}  {letter.landed_at.isoformat():<26}  "
              f"{letter.stage:<14}  {error[:160]}")
    first = min(letter.landed_at for letter in found)
    last = max(letter.landed_at for letter in found) + timedelta(microseconds=1)
    print(f"\n{len(found)} events set aside (latest failures first). After a fix, process "
          f"them again:\n  pulsetrace reprocess --from {first.isoformat()} "
          f"--to {last.isoformat()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulsetrace", description="Self-hosted error tracking and performance monitoring."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--data-dir", help="where the embedded stack keeps its data (default ./.pulsetrace)"
        )
        return p

    up = with_data_dir(commands.add_parser("up", help="start the whole stack and stream its logs"))
    up.add_argument("--demo", action="store_true", help="create a demo org and print its DSN")
    up.add_argument(
        "--services", metavar="NAMES",
        help=f"start only these of {','.join(SERVICES)} (default: all; PULSETRACE_SERVICES), "
             "e.g. ingest,worker for an ingest node",
    )
    up.set_defaults(func=cmd_up)

    status = with_data_dir(
        commands.add_parser("status", help="exit 0 when every service is healthy")
    )
    status.set_defaults(func=cmd_status)

    boot = with_data_dir(
        commands.add_parser("bootstrap", help="create an org, its admin, a project and a DSN key")
    )
    boot.add_argument("--org", required=True)
    boot.add_argument("--project", required=True)
    boot.add_argument("--email", required=True)
    boot.add_argument("--password", required=True)
    boot.add_argument("--json", action="store_true", help="print the result as JSON")
    boot.set_defaults(func=cmd_bootstrap)

    migrate = with_data_dir(
        commands.add_parser("migrate", help="apply PostgreSQL and warehouse migrations")
    )
    migrate.set_defaults(func=cmd_migrate)

    reprocess = with_data_dir(commands.add_parser(
        "reprocess", help="run the processing pipeline again over raw events landed in a range"
    ))
    reprocess.add_argument("--from", dest="start", required=True,
                           help="ISO time, e.g. 2026-11-27T10:00 (UTC unless it says)")
    reprocess.add_argument("--to", dest="end", required=True, help="ISO time (exclusive)")
    reprocess.set_defaults(func=cmd_reprocess)

    letters = with_data_dir(commands.add_parser(
        "dead-letters", help="list events processing set aside because they failed on their own"
    ))
    letters.add_argument("--project", help="only this project's (id or slug)")
    letters.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    letters.set_defaults(func=cmd_dead_letters)

    wh = commands.add_parser("warehouse", help="the embedded ClickHouse (chDB) warehouse")
    wh_commands = wh.add_subparsers(dest="warehouse_command", required=True)
    wh_commands.add_parser(
        "serve", add_help=False, help="serve a chDB data dir over ClickHouse's HTTP protocol"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["warehouse", "serve"]:
        # The warehouse owns its options; `pulsetrace warehouse serve --help` lists them.
        from core.embedded.warehouse.server import main as serve_warehouse

        serve_warehouse(argv[2:])
        return 0
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
