"""How long `pulsetrace up` takes to become healthy, and what the idle stack holds in memory.

Goal (issue 3): healthy in under 30 s; under 1.5 GB resident for the whole stack at idle.
Runs `up` RUNS times (first run on an empty data dir, the rest restarting on it) and prints
medians. Usage: .venv/bin/python bench/startup.py [RUNS]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from core.embedded.process import free_port

PULSETRACE = str(Path(sys.executable).parent / "pulsetrace")


def resident_bytes(root: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) summed over the process and all its descendants. The RSS sum counts shared
    library pages once per process, so it overstates; PSS shares them out fairly."""
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += info.pss
    return rss, pss


def one_run(data_dir: Path, env: dict[str, str]) -> tuple[float, tuple[int, int]]:
    log = data_dir.parent / "up.log"
    started = time.monotonic()
    with log.open("w") as out:
        up = subprocess.Popen(
            [PULSETRACE, "up", "--data-dir", str(data_dir)], env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # `up` says when every service passed its health check; polling `pulsetrace status`
        # instead would add its own start-up (a Python process with its imports) each time.
        while "running; press Ctrl-C" not in log.read_text():
            if up.poll() is not None:
                raise SystemExit(f"up exited early:\n{log.read_text()}")
            time.sleep(0.05)
        healthy_after = time.monotonic() - started
        status = subprocess.run([PULSETRACE, "status", "--data-dir", str(data_dir)], env=env,
                                capture_output=True, text=True)
        if status.returncode != 0:
            raise SystemExit(f"up said healthy but status disagrees:\n{status.stdout}")
        time.sleep(5)  # let start-up allocations settle before reading idle memory
        memory = resident_bytes(psutil.Process(up.pid))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    return healthy_after, memory


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    env = dict(os.environ)
    for name in ("POSTGRES_PORT", "REDIS_PORT", "WAREHOUSE_PORT", "INGEST_PORT",
                 "DASHBOARD_PORT", "DAGSTER_PORT"):
        env[name] = str(free_port())
    times, memories = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        for i in range(runs):
            seconds, (rss, pss) = one_run(data_dir, env)
            label = "fresh data dir" if i == 0 else "restart"
            print(f"run {i + 1} ({label}): healthy after {seconds:.2f} s, idle resident "
                  f"{rss / 2**20:.0f} MiB summed RSS, {pss / 2**20:.0f} MiB PSS")
            times.append(seconds)
            memories.append((rss, pss))
    print(f"time to healthy: first {times[0]:.2f} s, median {statistics.median(times):.2f} s "
          f"(goal < 30 s)")
    rss = statistics.median(m[0] for m in memories)
    pss = statistics.median(m[1] for m in memories)
    print(f"idle resident memory: median {rss / 2**20:.0f} MiB summed RSS (an overstatement: "
          f"shared pages counted per process), {pss / 2**20:.0f} MiB PSS "
          f"(goal < 1536 MiB; ratios {rss / 2**30 / 1.5:.2f} and {pss / 2**30 / 1.5:.2f})")


if __name__ == "__main__":
    main()
