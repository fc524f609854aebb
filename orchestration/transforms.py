"""The dbt project (transforms/) as Dagster assets, downstream of the processing assets.

The project is read when the definitions load (`dbt parse`), so a model a data team adds under
`transforms/models/` becomes an asset on the next start without code changes. Builds run dbt
in process (`build_in_process`) and turn its events into Dagster materializations and asset
checks with dagster-dbt's own translation. dbt reaches the warehouse through the environment
variables its profiles.yml reads; `dbt_environment` derives them from the settings, the one
place that does. A project that does not parse is logged and left out: a broken model must
never stop events from being processed.
"""

# No `from __future__ import annotations`: Dagster reads the asset's context annotation.
import hashlib
import importlib.metadata
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, dbt_assets
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from core.settings import Settings
from core.warehouse import database_of

log = logging.getLogger("pulsetrace.transforms")

VENV_BIN = Path(sys.executable).parent
DBT = str(VENV_BIN / "dbt")
LAYERS = ("staging", "intermediate", "marts")


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The variables transforms/profiles.yml reads, for the warehouse at CLICKHOUSE_URL."""
    url = settings.clickhouse_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"dbt needs an http:// or https:// CLICKHOUSE_URL, not {parts.scheme}://")
    return {
        "DBT_TARGET": settings.dbt_target,
        "PULSETRACE_DBT_HOST": parts.hostname or "127.0.0.1",
        "PULSETRACE_DBT_PORT": str(parts.port or (8443 if parts.scheme == "https" else 8123)),
        "PULSETRACE_DBT_USER": unquote(parts.username or "default"),
        "PULSETRACE_DBT_PASSWORD": unquote(parts.password or ""),
        "PULSETRACE_DBT_SECURE": "true" if parts.scheme == "https" else "false",
        "PULSETRACE_DBT_SOURCE_DATABASE": database_of(url),
        "PULSETRACE_DBT_SCHEMA": settings.marts_database,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def dbt_work_dir(settings: Settings) -> Path:
    """Where dbt's artifacts and logs go: the data dir, never the project folder."""
    return settings.data_dir / "dbt"


def run_dbt(
    settings: Settings, args: Sequence[str], timeout: float = 900.0
) -> subprocess.CompletedProcess[str]:
    """Run the dbt CLI on the project as PulseTrace does (tests, bench, a data team's shell)."""
    work = dbt_work_dir(settings)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dbt_environment(settings),
           "DBT_TARGET_PATH": str(work / "target"), "DBT_LOG_PATH": str(work / "logs")}
    return subprocess.run(
        [DBT, *args, "--project-dir", settings.transforms_dir,
         "--profiles-dir", settings.transforms_dir],
        env=env, cwd=work, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def load_manifest(settings: Settings) -> dict[str, Any] | None:
    """The project's manifest, None (and an error in the log) when it does not parse.

    `dbt parse` takes seconds of CPU, and the runner, the UI's code server and every run
    worker load the definitions: the manifest is kept in the data dir under a hash of the
    project's files and the variables it is rendered with, and parsed again when they change.
    """
    work = dbt_work_dir(settings)
    work.mkdir(parents=True, exist_ok=True)
    environment = dbt_environment(settings)
    cached = work / f"manifest-{_project_fingerprint(settings, environment)}.json"
    if cached.exists():
        loaded: dict[str, Any] = json.loads(cached.read_bytes())
        return loaded
    # A folder per parse: several processes may parse at once.
    target = Path(tempfile.mkdtemp(prefix="parse-", dir=work))
    try:
        env = {**os.environ, **environment, "DBT_TARGET_PATH": str(target),
               "DBT_LOG_PATH": str(target)}
        done = subprocess.run(
            [DBT, "parse", "--quiet", "--project-dir", settings.transforms_dir,
             "--profiles-dir", settings.transforms_dir],
            env=env, cwd=work, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        manifest = target / "manifest.json"
        if done.returncode != 0 or not manifest.exists():
            log.error("the dbt project in %s does not parse; its models are left out:\n%s%s",
                      settings.transforms_dir, done.stdout[-4000:], done.stderr[-2000:])
            return None
        for old in work.glob("manifest-*.json"):
            old.unlink(missing_ok=True)
        os.replace(manifest, cached)  # atomic: a reader sees the whole file or none
        loaded = json.loads(cached.read_bytes())
        return loaded
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _project_fingerprint(settings: Settings, environment: Mapping[str, str]) -> str:
    digest = hashlib.sha256(importlib.metadata.version("dbt-core").encode())
    skip = {"target", "logs", "dbt_packages"}
    root = Path(settings.transforms_dir)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not skip & set(relative.parts):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    rendered = {k: v for k, v in environment.items() if k not in ("PULSETRACE_DBT_PASSWORD",
                                                                   "PATH")}
    digest.update(json.dumps(rendered, sort_keys=True).encode())
    return digest.hexdigest()[:20]


class LayerTranslator(DagsterDbtTranslator):
    """Models are grouped by their layer folder (staging, intermediate, marts)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        folders = dbt_resource_props.get("fqn", [])[1:-1]
        layer = next((f for f in folders if f in LAYERS), None)
        return f"transforms_{layer}" if layer else "transforms"


# dbt's in-process runner keeps global state (flags, adapters, event callbacks): one at a time.
_dbt_lock = threading.Lock()
_DONE = object()


def build_in_process(settings: Settings, args: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Run dbt inside this process and yield its structured events as they happen.

    The long-lived runner builds the marts every MARTS_REFRESH_SECONDS: a `dbt` subprocess
    would spend most of each build importing dbt (about 5 CPU-seconds); in process that is
    paid once. dbt runs in a thread of its own so the events can be yielded while it works.
    """
    from dbt.cli.main import dbtRunner  # a heavy import, needed only where dbt runs
    from dbt_common.events.functions import msg_to_dict

    # dbt reads the profile's variables from this process's environment.
    os.environ.update(dbt_environment(settings))
    target = _process_target_path(settings)
    events: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        try:
            runner = dbtRunner(callbacks=[lambda message: events.put(msg_to_dict(message))])
            outcome["result"] = runner.invoke([
                *args, "--project-dir", settings.transforms_dir,
                "--profiles-dir", settings.transforms_dir, "--target-path", str(target),
                "--log-path", str(target), "--no-send-anonymous-usage-stats",
            ])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            events.put(_DONE)

    with _dbt_lock:
        thread = threading.Thread(target=invoke, name="dbt", daemon=True)
        thread.start()
        while (event := events.get()) is not _DONE:
            yield event
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    if not result.success:
        raise DbtBuildFailed(f"dbt {' '.join(args)} failed"
                             + (f": {result.exception}" if result.exception else ""))


class DbtBuildFailed(RuntimeError):
    pass


def _process_target_path(settings: Settings) -> Path:
    """dbt's artifacts (and the partial-parse state that makes the next build start fast), one
    folder per process; folders of processes that are gone are removed."""
    work = dbt_work_dir(settings)
    for folder in work.glob("build-*"):
        pid = folder.name.removeprefix("build-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return work / f"build-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _selection(context: dg.AssetExecutionContext, manifest: Mapping[str, Any],
               translator: DagsterDbtTranslator) -> list[str]:
    """dbt's --select for the assets this run materializes (all of them unless a subset)."""
    if not context.is_subset:
        return []
    wanted = context.selected_asset_keys
    names = [node["name"] for node in manifest["nodes"].values()
             if node["resource_type"] in ("model", "seed", "snapshot")
             and translator.get_asset_key(node) in wanted]
    return ["--select", *names]


def transforms_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The project's seeds, models and tests as one multi-asset (empty if it does not parse)."""
    manifest = load_manifest(settings)
    if manifest is None:
        return []
    translator = LayerTranslator()

    @dbt_assets(manifest=manifest, dagster_dbt_translator=translator, name="transforms")
    def transforms(context: dg.AssetExecutionContext) -> Iterator[Any]:
        args = ["build", *_selection(context, manifest, translator)]
        context.log.info(f"dbt {' '.join(args)} (in process)")
        for raw in build_in_process(settings, args):
            event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
            if raw["info"].get("level") in ("warn", "error") and raw["info"].get("msg"):
                context.log.warning(raw["info"]["msg"])
            yield from event.to_default_asset_events(
                manifest=manifest, dagster_dbt_translator=translator, context=context)

    return [transforms]
