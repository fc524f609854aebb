"""The landing queue against a real Redis: concurrent requests share script calls (group
commit) and still get exactly the answers they would get one by one; the drain into the real
warehouse inserts in batches."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from cli.bootstrap import BootstrapResult
from core.redis import redis_client
from core.warehouse import connect
from ingest.landing import LandingRow, drain, encode_row, entry_rows
from ingest.queue import (
    ACCEPTED,
    COMPRESS_MIN_ROWS,
    COMPRESSED_ROWS_FIELD,
    DROPPED_ROWS_FIELD,
    DUPLICATE,
    ENTRY_MAX_BYTES,
    ROW_COUNT_FIELD,
    ROWS_FIELD,
    EnqueueResult,
    LandingQueue,
)
from tests.stack import IngestStack, silent_server


def a_row(project_id: int, event_id: str, org_id: int = 1, message: str = "queued") -> bytes:
    payload = json.dumps({"message": message}).encode()
    return encode_row(LandingRow(org_id, project_id, event_id, "event", time.time(), "", "", "",
                                 "", "", "", "", "", "", payload))


class GatedQueue(LandingQueue):
    """Holds its first script call until `release` is set, and records how many requests
    each call carried, so a test can make requests pile up behind a call in flight."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        super().__init__(client, 60.0, stream=stream)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.requests_per_call: list[int] = []

    def _run(self, keys: list[str], args: list[str | bytes | int]) -> list:
        self.requests_per_call.append(len(keys) - 1)
        if len(self.requests_per_call) == 1:
            self.entered.set()
            assert self.release.wait(10)
        return super()._run(keys, args)


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    name = f"pulsetrace:test-landing:{uuid.uuid4().hex}"
    yield name
    redis_client(redis_url).delete(name)


def landed_ids(client: redis.Redis, stream: str) -> list[str]:
    return [row.event_id for _, fields in client.xrange(stream) for row in entry_rows(fields)]


def run_concurrently(queue: LandingQueue, calls: list[tuple[int, int, int, list[str]]]
                     ) -> list[EnqueueResult]:
    """Each call (key id, project id, limit per minute, event ids) in its own thread, all
    started while the queue's first call is held; returns their results in order."""
    results: list[EnqueueResult | None] = [None] * len(calls)

    def send(index: int) -> None:
        key_id, project_id, per_minute, ids = calls[index]
        results[index] = queue.enqueue(key_id, project_id, per_minute,
                                       [(i, a_row(project_id, i)) for i in ids])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_requests_arriving_during_a_call_share_the_next_one(redis_url: str, stream: str) -> None:
    client = redis_client(redis_url)
    queue = GatedQueue(client, stream)
    first_id = uuid.uuid4().hex
    blocker = threading.Thread(
        target=queue.enqueue, args=(1, 7001, 10**6, [(first_id, a_row(7001, first_id))]))
    blocker.start()
    assert queue.entered.wait(10)

    ids = [uuid.uuid4().hex for _ in range(8)]
    # Three requests repeat an id (SDK retries racing each other and the held call).
    calls = [(1, 7001, 10**6, [event_id]) for event_id in ids]
    calls += [(1, 7001, 10**6, [ids[0]]), (1, 7001, 10**6, [ids[3], ids[5]]),
              (1, 7001, 10**6, [first_id])]
    threading.Timer(0.5, queue.release.set).start()
    results = run_concurrently(queue, calls)
    blocker.join(10)

    # The held call carried one request; everything that queued behind it went in ONE call.
    assert queue.requests_per_call == [1, len(calls)]
    statuses = [r.statuses for r in results]
    # Arrival order within the call decides which copy of a repeated id is "first", so
    # count: every id accepted exactly once over all requests, the rest are duplicates.
    accepted: dict[str, int] = {}
    for (_, _, _, sent), status in zip(calls, statuses, strict=True):
        assert len(status) == len(sent)
        for event_id, s in zip(sent, status, strict=True):
            assert s in (ACCEPTED, DUPLICATE)
            accepted[event_id] = accepted.get(event_id, 0) + (s == ACCEPTED)
    assert accepted == {**{i: 1 for i in ids}, first_id: 0}
    assert sorted(landed_ids(client, stream)) == sorted([first_id, *ids])


def test_the_rate_limit_counts_across_requests_in_one_call(redis_url: str, stream: str) -> None:
    client = redis_client(redis_url)
    queue = GatedQueue(client, stream)
    key_id, other_key = 10_000 + int(time.time()) % 10_000, 30_000 + int(time.time()) % 10_000
    held = uuid.uuid4().hex
    blocker = threading.Thread(
        target=queue.enqueue, args=(key_id, 7002, 5, [(held, a_row(7002, held))]))
    blocker.start()
    assert queue.entered.wait(10)
    # Limit 5 a minute on key_id: the held request took 1; 6 single-event requests follow
    # in one call, and a request of 3 on another key with its own limit of 2.
    calls = [(key_id, 7002, 5, [uuid.uuid4().hex]) for _ in range(6)]
    calls.append((other_key, 7003, 2, [uuid.uuid4().hex for _ in range(3)]))
    threading.Timer(0.5, queue.release.set).start()
    results = run_concurrently(queue, calls)
    blocker.join(10)

    assert queue.requests_per_call == [1, 7]
    same_key = results[:6]
    assert sum(len(r.statuses) for r in same_key) == 4  # 5 - the held one
    assert sum(r.rate_limited for r in same_key) == 2
    assert all(r.retry_after_seconds > 0 for r in same_key if r.rate_limited)
    assert all(r.retry_after_seconds == 0 for r in same_key if not r.rate_limited)
    other = results[6]
    assert other.statuses == [ACCEPTED, ACCEPTED] and other.rate_limited == 1
    assert len(landed_ids(client, stream)) == 1 + 4 + 2


def test_every_request_is_answered_once_under_concurrent_load(redis_url: str,
                                                              stream: str) -> None:
    # Requests keep arriving while calls are in flight, so leadership of the next call is
    # handed from thread to thread; a lost wake-up would hang a thread (the join times out).
    client = redis_client(redis_url)
    queue = LandingQueue(client, 60.0, stream=stream)
    sent: list[list[str]] = [[uuid.uuid4().hex for _ in range(150)] for _ in range(8)]
    answers: list[list[list[int]]] = [[] for _ in sent]

    def send(index: int) -> None:
        for event_id in sent[index]:
            answers[index].append(queue.enqueue(
                1, 7006, 10**9, [(event_id, a_row(7006, event_id))]).statuses)

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(sent))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert answers == [[[ACCEPTED]] * len(ids) for ids in sent]
    assert sorted(landed_ids(client, stream)) == sorted(i for ids in sent for i in ids)


class FailingOnceQueue(GatedQueue):
    """The first call is held, then fails with an error that is not Redis's (a bug)."""

    def _run(self, keys: list[str], args: list[str | bytes | int]) -> list:
        if not self.requests_per_call:
            self.requests_per_call.append(len(keys) - 1)
            self.entered.set()
            assert self.release.wait(10)
            raise ValueError("unexpected")
        return super()._run(keys, args)


def test_an_unexpected_error_answers_its_call_and_the_next_call_runs(redis_url: str,
                                                                   stream: str) -> None:
    client = redis_client(redis_url)
    queue = FailingOnceQueue(client, stream)
    leader_error: list[BaseException] = []

    def lead() -> None:
        event_id = uuid.uuid4().hex
        try:
            queue.enqueue(1, 7007, 10**6, [(event_id, a_row(7007, event_id))])
        except ValueError as exc:
            leader_error.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    assert queue.entered.wait(10)
    # Queued behind the failing call: they are carried by the next one, which succeeds.
    waiting = [uuid.uuid4().hex for _ in range(4)]
    threading.Timer(0.5, queue.release.set).start()
    results = run_concurrently(queue, [(1, 7007, 10**6, [i]) for i in waiting])
    leader.join(10)
    assert len(leader_error) == 1
    assert [r.statuses for r in results] == [[ACCEPTED]] * 4
    assert sorted(landed_ids(client, stream)) == sorted(waiting)


def sender(queue: LandingQueue, project_id: int) -> tuple[Callable[[], None],
                                                         list[BaseException]]:
    """A function that sends one event through the queue, and the Redis errors it met."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            queue.enqueue(1, project_id, 10**6, [(uuid.uuid4().hex, a_row(project_id, "x"))])
        except redis.RedisError as exc:
            errors.append(exc)

    return send, errors


def test_a_redis_error_reaches_every_request_of_the_call(stream: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # no server
    queue = LandingQueue(client, 60.0, stream=stream)
    send, errors = sender(queue, 7004)
    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(errors) == 5


def test_a_silent_redis_fails_the_call_after_the_read_timeout(stream: str) -> None:
    # Connected, but no reply ever comes: the call must fail (ingest answers 503), not hang
    # every request of the process behind it.
    with silent_server() as url:
        queue = LandingQueue(redis.Redis.from_url(url, socket_connect_timeout=2), 60.0,
                             stream=stream, read_timeout=0.5)
        send, errors = sender(queue, 7005)
        started = time.monotonic()
        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        thread.join(20)
        elapsed = time.monotonic() - started
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], redis.TimeoutError)
    assert elapsed < 2.5  # two reads of 0.5 s (one reconnect), not redis-py's 5 s each


class ArrivalsDuringInserts:
    """The real warehouse client, but each insert also sees new events arrive in the queue,
    as under steady load; it records how many rows each insert carried."""

    def __init__(self, warehouse_url: str, queue: LandingQueue, org_id: int,
                 project_id: int) -> None:
        self.client = connect(warehouse_url)
        self.queue = queue
        self.org_id = org_id
        self.project_id = project_id
        self.inserts: list[int] = []

    def insert(self, table: str, columns: list[list[object]], column_names: list[str],
               column_oriented: bool) -> None:
        assert column_oriented
        self.inserts.append(len(columns[0]))
        self.client.insert(table, columns, column_names=column_names, column_oriented=True)
        ids = [uuid.uuid4().hex for _ in range(30)]
        self.queue.enqueue(1, self.project_id, 10**6,
                           [(i, a_row(self.project_id, i, self.org_id)) for i in ids])


def test_a_drain_lands_full_batches_and_leaves_a_trickle_for_the_next(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, stream: str
) -> None:
    # Rows of a real project: the processing runner of a later test will meet them.
    client = redis_client(ingest_stack.settings.redis_url)
    queue = LandingQueue(client, 60.0, stream=stream)
    org_id, project_id = fresh_project.org_id, fresh_project.project_id
    for _ in range(5):  # 500 events waiting
        ids = [uuid.uuid4().hex for _ in range(100)]
        queue.enqueue(1, project_id, 10**6, [(i, a_row(project_id, i, org_id)) for i in ids])
    warehouse = ArrivalsDuringInserts(ingest_stack.settings.clickhouse_url, queue, org_id,
                                      project_id)

    first = drain(client, warehouse, "test-consumer", batch_size=200,  # type: ignore[arg-type]
                  stream=stream)
    # Full batches while the backlog lasts; the first partial batch (the backlog's end and
    # what arrived during the inserts) ends the drain, instead of chasing each trickle.
    assert warehouse.inserts[:2] == [200, 200]
    assert warehouse.inserts[-1] < 200 and len(warehouse.inserts) == 3
    assert first.rows == sum(warehouse.inserts)
    waiting = len(landed_ids(client, stream))
    assert waiting == 30  # arrived during the last insert: left for the next drain
    second = drain(client, warehouse, "test-consumer", batch_size=200,  # type: ignore[arg-type]
                   stream=stream)
    assert second.rows == 30 and len(warehouse.inserts) == 4
    landed = warehouse.client.query(
        "SELECT count() FROM raw_events FINAL WHERE project_id = {p:UInt64}",
        parameters={"p": project_id}).result_rows[0][0]
    assert landed == first.rows + second.rows


def test_stream_entries_are_bounded_by_bytes(redis_url: str, stream: str) -> None:
    client = redis_client(redis_url)
    queue = LandingQueue(client, 60.0, stream=stream)
    ids = [uuid.uuid4().hex for _ in range(100)]
    rows = [(i, a_row(7006, i, message="m" * 50_000)) for i in ids]
    huge = uuid.uuid4().hex  # larger than an entry's bound: an entry of its own
    rows.insert(50, (huge, a_row(7006, huge, message="h" * (ENTRY_MAX_BYTES + 1000))))
    queue.enqueue(1, 7006, 10**6, rows)
    entries = client.xrange(stream)
    sizes = [sum(len(encode_row(row)) for row in entry_rows(fields)) for _, fields in entries]
    counts = [int(fields[ROW_COUNT_FIELD]) for _, fields in entries]
    assert sum(counts) == 101 and 1 in counts
    assert len(entries) >= 6  # ~20 rows of 50 KB per entry, not 100 rows in one of 5 MB
    assert all(size <= ENTRY_MAX_BYTES + 16 for size, n in zip(sizes, counts, strict=True)
               if n > 1)
    assert landed_ids(client, stream) == [i for i, _ in rows]  # in order


class RecordingWarehouse:
    """The real warehouse client, recording the payload bytes of each insert."""

    def __init__(self, warehouse_url: str) -> None:
        self.client = connect(warehouse_url)
        self.inserts: list[int] = []

    def insert(self, table: str, columns: list[list[object]], column_names: list[str],
               column_oriented: bool) -> None:
        assert column_oriented
        payloads = columns[column_names.index("payload")]
        self.inserts.append(sum(len(payload) for payload in payloads))
        self.client.insert(table, columns, column_names=column_names, column_oriented=True)


def test_a_drain_bounds_each_insert_by_bytes(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, stream: str
) -> None:
    client = redis_client(ingest_stack.settings.redis_url)
    queue = LandingQueue(client, 60.0, stream=stream)
    org_id, project_id = fresh_project.org_id, fresh_project.project_id
    ids = [uuid.uuid4().hex for _ in range(60)]
    queue.enqueue(1, project_id, 10**6,
                  [(i, a_row(project_id, i, org_id, "q" * 50_000)) for i in ids])
    # An entry queued before entries were bounded by bytes: 40 rows of 50 KB in one.
    old_ids = [uuid.uuid4().hex for _ in range(40)]
    old = [a_row(project_id, i, org_id, "o" * 50_000) for i in old_ids]
    client.xadd(stream, {ROW_COUNT_FIELD: 40, ROWS_FIELD: bytes([0xDC, 0, 40]) + b"".join(old)})
    warehouse = RecordingWarehouse(ingest_stack.settings.clickhouse_url)

    result = drain(client, warehouse, "test-consumer", stream=stream,  # type: ignore[arg-type]
                   max_bytes=600_000)
    # One drain lands it all (a batch cut short by bytes is not the end of the backlog), in
    # inserts of at most 600 KB, though 100 rows would make one batch by rows.
    assert result.rows == 100
    assert len(warehouse.inserts) >= 9 and max(warehouse.inserts) <= 600_000
    assert landed_ids(client, stream) == []
    landed = warehouse.client.command(
        "SELECT count() FROM raw_events FINAL WHERE project_id = {p:UInt64}",
        parameters={"p": project_id})
    assert landed == 100


def test_a_request_with_events_seen_before_lands_only_its_new_ones(redis_url: str,
                                                                     stream: str) -> None:
    """The request's rows reach Redis as one piece; the script cuts out the duplicates."""
    client = redis_client(redis_url)
    queue = LandingQueue(client, 60.0, stream=stream)
    ids = [uuid.uuid4().hex for _ in range(5)]
    rows = {event_id: a_row(7007, event_id, message=f"event {n}") for n, event_id in enumerate(ids)}
    queue.enqueue(1, 7007, 10**6, [(ids[1], rows[ids[1]]), (ids[3], rows[ids[3]])])
    result = queue.enqueue(1, 7007, 10**6, [(i, rows[i]) for i in [*ids, ids[0]]])
    assert result.statuses == [ACCEPTED, DUPLICATE, ACCEPTED, DUPLICATE, ACCEPTED, DUPLICATE]
    entries = client.xrange(stream)
    assert all(ROWS_FIELD in fields for _, fields in entries)  # fewer than COMPRESS_MIN_ROWS
    landed = [row for _, fields in entries for row in entry_rows(fields)]
    order = [1, 3, 0, 2, 4]
    assert [row.event_id for row in landed] == [ids[n] for n in order]
    assert [row.payload for row in landed] == [
        json.dumps({"message": f"event {n}"}).encode() for n in order
    ]


def test_a_batch_travels_compressed_and_lands_only_what_was_accepted(
    ingest_stack: IngestStack, fresh_project: BootstrapResult, stream: str
) -> None:
    """A batch's rows go to Redis as one LZ4 piece that the script cannot cut: it names the
    rows it dropped (seen before, repeated in the batch, over the limit), and the drain
    lands exactly the accepted ones, in order."""
    client = redis_client(ingest_stack.settings.redis_url)
    queue = LandingQueue(client, 60.0, stream=stream)
    org_id, project_id = fresh_project.org_id, fresh_project.project_id
    key_id = uuid.uuid4().int % 10**9  # a rate-limit window of its own
    ids = [uuid.uuid4().hex for _ in range(30)]
    rows = {i: a_row(project_id, i, org_id, f"checkout failed for order {n}")
            for n, i in enumerate(ids)}
    queue.enqueue(key_id, project_id, 10**6, [(ids[2], rows[ids[2]]), (ids[5], rows[ids[5]])])
    entries_before = len(client.xrange(stream))
    batch = [(i, rows[i]) for i in ids[:20]] + [(ids[7], rows[ids[7]])] + [
        (i, rows[i]) for i in ids[20:]]
    # 2 taken before in this key's window: 25 more fit, so the last 6 of 31 are over it.
    result = queue.enqueue(key_id, project_id, 27, batch)
    assert len(result.statuses) == 25 and result.rate_limited == 6
    assert [n for n, status in enumerate(result.statuses) if status == DUPLICATE] == [2, 5, 20]
    accepted = [event_id for (event_id, _), status in zip(batch, result.statuses, strict=False)
                if status == ACCEPTED]
    assert len(accepted) == 22

    entries = client.xrange(stream)[entries_before:]
    assert len(entries) == 1 and COMPRESSED_ROWS_FIELD in entries[0][1]
    fields = entries[0][1]
    # Positions in the piece: the duplicates 2, 5 and 20, and the six over the limit.
    assert fields[DROPPED_ROWS_FIELD] == b"2,5,20,25,26,27,28,29,30"
    assert int(fields[ROW_COUNT_FIELD]) == 22
    assert len(fields[COMPRESSED_ROWS_FIELD]) < sum(len(row) for _, row in batch) / 2
    assert len(batch) >= COMPRESS_MIN_ROWS
    assert landed_ids(client, stream) == [ids[2], ids[5], *accepted]

    warehouse = RecordingWarehouse(ingest_stack.settings.clickhouse_url)
    drained = drain(client, warehouse, "test-consumer", stream=stream)  # type: ignore[arg-type]
    assert drained.rows == 2 + 22
    landed = warehouse.client.query(
        "SELECT replaceAll(toString(event_id), '-', ''), payload FROM raw_events FINAL"
        " WHERE project_id = {p:UInt64}", parameters={"p": project_id}).result_rows
    assert sorted(landed) == sorted(
        (i, json.dumps({"message": f"checkout failed for order {ids.index(i)}"}))
        for i in [ids[2], ids[5], *accepted])
