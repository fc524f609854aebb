"""A poison event (one that makes a stage raise, a bug meeting a shape nobody foresaw) is set
aside with its error, and every other event of its batch is processed as it would be alone;
a storage failure is never blamed on an event."""

from __future__ import annotations

import uuid
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import pipelines.batch as batch
from pipelines.batch import (
    FAILED_SCHEMA,
    ProcessedRows,
    StorageUnavailable,
    process_isolating,
    process_raw_events,
)
from pipelines.scrubbing import ScrubConfig
from pipelines.symbolication import artifact_names_for_url
from tests.pipelines.grouping_set import raw_events_frame

POISON = "poison-7c1f"  # in the message of an event the injected fault fails on
CONFIGS = {1: ScrubConfig()}


class CountingSourceMaps:
    """Storage with no maps, counting lookups: every run of the pipeline looks up the one
    bundle of the batch's JavaScript events once (no shared cache), so the count is the
    number of runs. `failing`: the error every lookup raises, as storage that is down."""

    def __init__(self, failing: Exception | None = None) -> None:
        self.failing = failing
        self.lookups = 0

    def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
        return self.by_release(organization_id, "", None, "")

    def by_release(
        self, organization_id: int, release: str, dist: str | None, url: str
    ) -> bytes | None:
        artifact_names_for_url(url)
        self.lookups += 1
        if self.failing is not None:
            raise self.failing
        return None


def js_event(message: str) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "timestamp": 1_790_000_000.0, "level": "error",
            "platform": "javascript", "release": "shop@1",
            "exception": {"values": [{"type": "TypeError", "value": message, "stacktrace": {
                "frames": [{"abs_path": "https://shop.example.com/app.min.js", "lineno": 1,
                            "colno": 10, "function": "a", "in_app": True}]}}]}}


def events(count: int, poison_at: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [js_event(f"{POISON} in cart {i}" if i in poison_at else f"cart {i} is empty")
            for i in range(count)]


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fingerprinting raises for a batch holding a poison event; returns the run count."""
    runs = [0]
    fingerprint = batch.fingerprint_events

    def failing(frame: pl.DataFrame) -> pl.DataFrame:
        runs[0] += 1
        if frame["payload"].str.contains(POISON, literal=True).any():
            raise KeyError("exception.values[0].mechanism")
        return fingerprint(frame)

    monkeypatch.setattr(batch, "fingerprint_events", failing)
    return runs


def alone(raw: pl.DataFrame) -> ProcessedRows:
    """Each good event processed in a batch of its own."""
    return ProcessedRows.concat([
        process_raw_events(raw.slice(i, 1), CONFIGS, CountingSourceMaps())
        for i in range(raw.height)
        if POISON not in raw["payload"][i]])


def assert_same_rows(got: ProcessedRows, expected: ProcessedRows) -> None:
    for name in ("events", "transactions", "feedback"):
        assert_frame_equal(getattr(got, name), getattr(expected, name))


def test_one_poison_event_is_set_aside_and_the_rest_processed(poison: list[int]) -> None:
    raw = raw_events_frame(events(40, poison_at=(17,)))
    rows = process_isolating(raw, CONFIGS, CountingSourceMaps())
    runs = poison[0]
    assert rows.failed.schema == pl.Schema(FAILED_SCHEMA)
    assert rows.failed["event_id"].to_list() == [raw["event_id"][17]]
    failure = rows.failed.row(0, named=True)
    assert (failure["organization_id"], failure["project_id"], failure["item_type"]) == (
        1, 1, "event")
    assert failure["received_at"] == raw["received_at"][17]
    assert (failure["stage"], failure["error_type"]) == ("fingerprinting", "KeyError")
    assert "mechanism" in failure["error_message"]
    assert rows.events.height == 39
    assert raw["event_id"][17] not in rows.events["event_id"].to_list()
    assert_same_rows(rows, alone(raw))
    # About 2·k·log2(n) runs (and one of no event, for the rows' types), not one per event.
    assert runs <= 2 + 2 * 6


def test_several_poison_events_are_each_set_aside(poison: list[int]) -> None:
    raw = raw_events_frame(events(100, poison_at=(0, 1, 50, 99)))
    rows = process_isolating(raw, CONFIGS, CountingSourceMaps())
    assert poison[0] <= 4 + 4 * 2 * 7
    assert sorted(rows.failed["event_id"]) == sorted(raw["event_id"].gather([0, 1, 50, 99]))
    assert rows.events.height == 96
    assert_same_rows(rows, alone(raw))


def test_a_batch_of_poison_events_sets_them_all_aside(poison: list[int]) -> None:
    raw = raw_events_frame(events(5, poison_at=(0, 1, 2, 3, 4)))
    rows = process_isolating(raw, CONFIGS, CountingSourceMaps())
    assert sorted(rows.failed["event_id"]) == sorted(raw["event_id"])
    assert rows.events.height == rows.transactions.height == rows.feedback.height == 0
    # Typed as any batch's rows: they concatenate with a good batch's.
    good = process_isolating(raw_events_frame(events(2)), CONFIGS, CountingSourceMaps())
    assert ProcessedRows.concat([rows, good]).events.height == 2


def test_a_bug_every_event_meets_fails_the_batch_instead_of_setting_all_aside(
        poison: list[int]) -> None:
    # Every event fails the same way: a bad deploy, not poison. The batch fails (the window is
    # retried and the runner shows unhealthy) after a sample, rather than setting all 40 aside
    # one by one (~70 ms each: 1,000 took 70 s).
    raw = raw_events_frame(events(40, poison_at=tuple(range(40))))
    with pytest.raises(KeyError, match="mechanism"):
        process_isolating(raw, CONFIGS, CountingSourceMaps())
    assert poison[0] == 1 + batch.SYSTEMIC_SAMPLE


def test_a_flood_of_poison_with_good_events_among_them_is_set_aside(poison: list[int]) -> None:
    # 60 of 64 events are poison, but one the sample runs alone goes through: poison, not a
    # bug every event meets, so each is set aside and the 4 good events are processed.
    good = (4, 21, 38, 55)
    raw = raw_events_frame(events(64, poison_at=tuple(i for i in range(64) if i not in good)))
    rows = process_isolating(raw, CONFIGS, CountingSourceMaps())
    assert rows.failed.height == 60
    assert sorted(rows.events["event_id"]) == sorted(raw["event_id"].gather(list(good)))
    assert_same_rows(rows, alone(raw))


def test_a_batch_without_poison_runs_once(poison: list[int]) -> None:
    raw = raw_events_frame(events(30))
    storage = CountingSourceMaps()
    rows = process_isolating(raw, CONFIGS, storage)
    assert (poison[0], storage.lookups) == (1, 1)
    assert rows.failed.is_empty()
    assert_same_rows(rows, process_raw_events(raw, CONFIGS, CountingSourceMaps()))


@pytest.mark.parametrize("error", [ConnectionRefusedError("blob store at 127.0.0.1:9000"),
                                   TimeoutError("statement timeout"),
                                   ValueError("what a driver may raise too")])
def test_a_storage_failure_fails_the_batch_and_sets_nothing_aside(
    poison: list[int], error: Exception
) -> None:
    """Whatever the source-map store raises means storage failed (SourceMapProvider's
    contract): the window must be retried, not its events set aside."""
    raw = raw_events_frame(events(30, poison_at=(3,)))
    storage = CountingSourceMaps(failing=error)
    with pytest.raises(StorageUnavailable) as raised:
        process_isolating(raw, CONFIGS, storage)
    assert raised.value.error is error
    assert storage.lookups == 1  # not retried event by event


def test_out_of_memory_is_never_blamed_on_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(frame: pl.DataFrame) -> pl.DataFrame:
        raise MemoryError

    monkeypatch.setattr(batch, "fingerprint_events", exhausted)
    with pytest.raises(MemoryError):
        process_isolating(raw_events_frame(events(4)), CONFIGS, CountingSourceMaps())


def test_the_landing_time_is_kept_when_the_frame_has_it(poison: list[int]) -> None:
    raw = raw_events_frame(events(6, poison_at=(4,))).with_columns(
        pl.Series("landed_at", [1_790_000_000_000_000 + i for i in range(6)],
                  pl.Int64).cast(pl.Datetime("us", "UTC")))
    rows = process_isolating(raw, CONFIGS, CountingSourceMaps())
    assert rows.failed["landed_at"].to_list() == [raw["landed_at"][4]]
