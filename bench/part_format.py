"""The warehouse's CPU per stored event, by the format of the parts inserts write.

    .venv/bin/python bench/part_format.py [--rows 40000] [--runs 3]

Starts a warehouse in a temporary data dir and applies the migrations. Per run, for each
table and each part format (interleaved, so that a change in the shared machine's speed
touches each alike): empties the table, inserts `--rows` rows in inserts of the size the
product makes under load (raw events as the landing worker lands them, 20,000 rows; processed
events as the runner stores a chunk of a window, 5,000 rows per worker part), and measures
the warehouse process's CPU during the inserts and until its merges are done. `wide` forces
a part per column file (min_bytes_for_wide_part = 0), `table` uses the table's own setting
(migration 0010: compact up to 128 MiB). Prints medians in µs per row. Figures only.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

# Run as `python bench/part_format.py`, this folder comes first on sys.path, where
# bench/ingest.py would hide the ingest package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import polars as pl  # noqa: E402
from clickhouse_connect.driver.client import Client  # noqa: E402

from core.embedded.process import free_port  # noqa: E402
from core.embedded.warehouse_service import start_warehouse  # noqa: E402
from core.warehouse import connect, migrate  # noqa: E402
from ingest.landing import COLUMNS  # noqa: E402
from pipelines.batch import process_isolating  # noqa: E402
from pipelines.scrubbing import ScrubConfig  # noqa: E402


def _bench(name: str) -> ModuleType:
    """Another bench script of this folder, as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cpu_seconds = _bench("landing").cpu_seconds
_pipeline_bench = _bench("pipeline")  # its realistic raw events

FORMATS = ("wide", "table")
INSERT_ROWS = {"raw_events": 20_000, "events": 5_000}
QUIET_CPU_SECONDS = 0.03  # per 1.5 s: the merges are done


def settle(pid: int) -> None:
    """Until the warehouse is idle (its merges done)."""
    before = cpu_seconds(pid)
    while True:
        time.sleep(1.5)
        now = cpu_seconds(pid)
        if now - before < QUIET_CPU_SECONDS:
            return
        before = now


def store(client: Client, pid: int, table: str, rows: pl.DataFrame, wide: bool,
          table_setting: str) -> tuple[float, float]:
    """µs of warehouse CPU per row: during the inserts, and with the merges after them."""
    client.command(f"TRUNCATE TABLE {table}")
    client.command(f"ALTER TABLE {table} MODIFY SETTING min_bytes_for_wide_part = "
                   f"{0 if wide else table_setting}")
    settle(pid)
    started = cpu_seconds(pid)
    size = INSERT_ROWS[table]
    for offset in range(0, rows.height, size):
        client.insert_arrow(table, rows.slice(offset, size).to_arrow())
    inserted = cpu_seconds(pid)
    settle(pid)
    merged = cpu_seconds(pid)
    return ((inserted - started) / rows.height * 1e6,
            (merged - started) / rows.height * 1e6)


def wide_part_threshold(client: Client, table: str) -> str:
    """The table's min_bytes_for_wide_part as the migrations left it, else the server's."""
    own = client.command(
        "SELECT extract(create_table_query, 'min_bytes_for_wide_part = (\\\\d+)')"
        " FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": table})
    return str(own or client.command(
        "SELECT value FROM system.merge_tree_settings WHERE name = 'min_bytes_for_wide_part'"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    raw = _pipeline_bench.raw_frame(args.rows)
    configs = {project: ScrubConfig() for project in (1, 2, 3)}
    tables = {"raw_events": raw.select(COLUMNS),
              "events": process_isolating(raw, configs, _pipeline_bench.NoSourceMaps()).events}
    with tempfile.TemporaryDirectory(prefix="pulsetrace-bench-parts-") as tmp:
        port = free_port()
        warehouse = start_warehouse(Path(tmp) / "warehouse", port)
        try:
            url = f"http://default:@127.0.0.1:{port}/default"
            migrate(url)
            client = connect(url)
            pid = warehouse.pid
            assert pid is not None
            settings = {table: wide_part_threshold(client, table) for table in tables}
            figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for run in range(args.runs):
                for table, rows in tables.items():
                    for fmt in FORMATS:
                        result = store(client, pid, table, rows, fmt == "wide", settings[table])
                        figures.setdefault((table, fmt), []).append(result)
                        print(f"run {run + 1}: {table} ({rows.height:,} rows, inserts of "
                              f"{INSERT_ROWS[table]:,}), {fmt} parts: {result[0]:.1f} µs per "
                              f"row inserting, {result[1]:.1f} with the merges", flush=True)
            print(f"\nmedians of {args.runs} runs, warehouse µs of CPU per row stored")
            print(f"{'table':<12} {'parts':<22} {'inserting':>10} {'+ merges':>9}")
            for (table, fmt), values in figures.items():
                label = "wide" if fmt == "wide" else f"table's ({settings[table]} B)"
                print(f"{table:<12} {label:<22} "
                      f"{statistics.median(v[0] for v in values):>10.1f} "
                      f"{statistics.median(v[1] for v in values):>9.1f}")
        finally:
            warehouse.stop()


if __name__ == "__main__":
    main()
