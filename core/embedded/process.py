"""A managed child process: start it, wait until it is healthy, stream its log, stop it.

`pulsetrace up` and the test suite both start the embedded services through this, so the
way a service is launched in tests is the way it is launched for users.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

HealthCheck = Callable[[], bool]


class ServiceFailed(RuntimeError):
    """A service exited or did not become healthy in time."""


@dataclass
class ServiceSpec:
    name: str
    argv: Sequence[str]
    health: HealthCheck
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    run_as: str | None = None  # system user to drop to (PostgreSQL refuses to run as root)
    log_file: Path | None = None
    startup_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    prepare: Callable[[], object] | None = None  # one-time set-up run just before start


class ManagedProcess:
    def __init__(self, spec: ServiceSpec, log_sink: IO[str] | None = None) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_sink = log_sink
        self._log_thread: threading.Thread | None = None

    def start(self) -> None:
        spec = self.spec
        if spec.prepare is not None:
            spec.prepare()
        env = {**os.environ, **spec.env}
        preexec: Callable[[], None] | None = None
        if spec.run_as is not None:
            user = pwd.getpwnam(spec.run_as)

            def preexec() -> None:  # runs in the child between fork and exec
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

            env["HOME"] = user.pw_dir
        # Its own process group, so stopping it also stops anything it forked.
        self.proc = subprocess.Popen(
            list(spec.argv),
            env=env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            start_new_session=True,
        )
        self._log_thread = threading.Thread(
            target=self._pump_log, name=f"log-{spec.name}", daemon=True
        )
        self._log_thread.start()

    def _pump_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        log_file = None
        if self.spec.log_file is not None:
            self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            log_file = self.spec.log_file.open("ab")
        prefix = f"[{self.spec.name}] "
        try:
            for raw in iter(self.proc.stdout.readline, b""):
                if log_file is not None:
                    log_file.write(raw)
                    log_file.flush()
                if self._log_sink is not None:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    self._log_sink.write(prefix + line + "\n")
                    self._log_sink.flush()
        finally:
            if log_file is not None:
                log_file.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout
        while time.monotonic() < deadline:
            if not self.running():
                code = self.proc.returncode if self.proc else None
                raise ServiceFailed(f"{self.spec.name} exited with code {code} while starting")
            try:
                if self.spec.health():
                    return
            except Exception:  # noqa: BLE001 - any failure just means "not yet"
                pass
            time.sleep(0.1)
        raise ServiceFailed(
            f"{self.spec.name} was not healthy after {self.spec.startup_timeout:.0f} s"
        )

    def stop(self, timeout: float = 20.0) -> int | None:
        """Signal the whole process group, then SIGKILL whatever is left after the timeout.
        Returns the exit code (None if it never started)."""
        if self.proc is None:
            return None
        # start_new_session made the child its group's leader: the group id is its pid, and
        # stays valid after the leader died (a killed worker's beat child lives on in it).
        group = self.proc.pid
        members = _group_members(group)
        _signal_group(group, self.spec.stop_signal)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Grandchildren that outlive the leader (workers of a pre-fork server) go too.
        _, alive = psutil.wait_procs(members, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self._log_thread is not None:
            self._log_thread.join(timeout=2)
        return self.proc.returncode


def start_healthy(spec: ServiceSpec, log_sink: IO[str] | None = None) -> ManagedProcess:
    """Start one service and return once it is healthy; on failure nothing is left running."""
    process = ManagedProcess(spec, log_sink)
    process.start()
    try:
        process.wait_healthy()
    except Exception:
        process.stop()
        raise
    return process


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _group_members(group: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == group:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_module_argv(module: str, *args: str) -> list[str]:
    """Run a module of this project with the interpreter that runs us (the venv's)."""
    return [sys.executable, "-m", module, *args]
