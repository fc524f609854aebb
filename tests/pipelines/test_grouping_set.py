"""The grouping test set (tests/pipelines/grouping_set.py): every bug becomes exactly one
fingerprint, and no two bugs share one."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import orjson
import polars as pl
import pytest

from pipelines.fingerprinting import fingerprint_events
from tests.pipelines.grouping_set import (
    BUGS,
    EVENTS_PER_BUG,
    RELEASES,
    Bug,
    generate,
    raw_events_frame,
)

Json = dict[str, object]


@pytest.fixture(scope="module")
def grouped() -> tuple[list[tuple[Bug, Json]], pl.DataFrame]:
    events = generate()
    return events, fingerprint_events(raw_events_frame([event for _, event in events]))


def test_the_set_is_big_enough() -> None:
    events = generate()
    per_bug: dict[str, int] = defaultdict(int)
    for bug, _ in events:
        per_bug[bug.name] += 1
    assert len(BUGS) >= 30
    assert len(per_bug) == len(BUGS)
    assert set(per_bug.values()) == {EVENTS_PER_BUG}
    assert EVENTS_PER_BUG >= 20


def test_every_bug_is_one_issue_and_no_two_bugs_share_one(
        grouped: tuple[list[tuple[Bug, Json]], pl.DataFrame]) -> None:
    events, out = grouped
    hashes_of: dict[str, set[str]] = defaultdict(set)
    bugs_of: dict[str, set[str]] = defaultdict(set)
    for (bug, _), fingerprint_hash in zip(events, out["fingerprint_hash"], strict=True):
        hashes_of[bug.name].add(fingerprint_hash)
        bugs_of[fingerprint_hash].add(bug.name)
    split = {name: len(hashes) for name, hashes in hashes_of.items() if len(hashes) != 1}
    merged = [sorted(names) for names in bugs_of.values() if len(names) > 1]
    assert not split, f"bugs split into several issues: {split}"
    assert not merged, f"bugs merged into one issue: {merged}"
    assert len(bugs_of) == len(BUGS)


def test_each_bug_is_grouped_by_the_expected_rule(
        grouped: tuple[list[tuple[Bug, Json]], pl.DataFrame]) -> None:
    events, out = grouped
    strategies: dict[str, set[str]] = defaultdict(set)
    for (bug, _), strategy in zip(events, out["fingerprint_strategy"], strict=True):
        strategies[bug.name].add(strategy)
    assert strategies == {bug.name: {bug.strategy} for bug in BUGS}
    assert {bug.strategy for bug in BUGS} == {
        "custom", "custom+default", "stacktrace", "exception", "message", "fallback"}


def test_titles_and_culprits_are_filled(
        grouped: tuple[list[tuple[Bug, Json]], pl.DataFrame]) -> None:
    events, out = grouped
    for (bug, _), title, culprit in zip(events, out["title"], out["culprit"], strict=True):
        assert title, bug.name
        assert culprit, bug.name  # in-app frame, else the transaction


def _naive_hash(event: Json) -> str:
    """What grouping by the raw error would give: exceptions and message as sent."""
    raw = {key: event.get(key) for key in ("exception", "message", "logentry")}
    return hashlib.md5(orjson.dumps(raw)).hexdigest()


def test_the_set_is_hard() -> None:
    """The data really varies inside each bug: grouping by the raw error splits nearly every
    bug, and every release (with its line shifts and bundle hashes) appears in every bug."""
    events = generate()
    naive: dict[str, set[str]] = defaultdict(set)
    releases: dict[str, set[object]] = defaultdict(set)
    for bug, event in events:
        naive[bug.name].add(_naive_hash(event))
        releases[bug.name].add(event["release"])
    constant = [name for name, hashes in naive.items() if len(hashes) == 1]
    assert len(constant) <= 4, constant  # errors with no data and no stack trace at all
    assert all(len(seen) == len(RELEASES) for seen in releases.values())


def test_the_generator_is_deterministic() -> None:
    first = [orjson.dumps(event) for _, event in generate()]
    second = [orjson.dumps(event) for _, event in generate()]
    assert first == second
    assert first != [orjson.dumps(event) for _, event in generate(seed=1)]


@pytest.mark.bench
def test_bench_fingerprinting_throughput() -> None:
    """Events per second of CPU time for `fingerprint_events` on the set's events (~2.8 KB).
    Run with `pytest -m bench -s`; no assertion on speed, machines differ."""
    frame = raw_events_frame([event for _, event in generate(seed=7, events_per_bug=500)])
    fingerprint_events(frame.head(1000))  # warm the caches as a running pipeline has them
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        fingerprint_events(frame)
        best = min(best, time.process_time() - started)
    size = frame["payload"].str.len_bytes().mean()
    print(f"\nfingerprint_events: {frame.height / best:,.0f} events/s "
          f"({frame.height} events, {size:,.0f} bytes on average)")
