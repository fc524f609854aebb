"""When the runner rebuilds the dbt marts: after processed data changed, at most every
interval, and not while it works through a backlog (for at most the deferral limit)."""

from __future__ import annotations

import sys
import time

from orchestration.runner import MartsBuilder, MartsRefresher


class CountingRefresher(MartsRefresher):
    """The real scheduling; the build itself only records when it started."""

    def __init__(self, interval: float, defer_seconds: float) -> None:
        super().__init__(interval=interval, defer_seconds=defer_seconds)
        self.builds: list[float] = []

    def refresh(self) -> bool:
        self.builds.append(time.monotonic())
        return True


def wait_for_builds(refresher: CountingRefresher, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(refresher.builds) >= count:
            return True
        time.sleep(0.02)
    return False


def test_builds_wait_while_the_runner_catches_up() -> None:
    refresher = CountingRefresher(interval=0.2, defer_seconds=30)
    refresher.thread.start()
    try:
        assert wait_for_builds(refresher, 1, 5)  # at start: data may have changed while down
        refresher.catching_up.set()
        refresher.data_changed()
        time.sleep(1.0)  # five intervals: without the backlog it would have built by now
        assert len(refresher.builds) == 1
        refresher.catching_up.clear()  # caught up: the build follows within a poll
        caught_up = time.monotonic()
        assert wait_for_builds(refresher, 2, 5)
        assert refresher.builds[1] - caught_up < 1.0
        time.sleep(0.5)
        assert len(refresher.builds) == 2  # nothing new changed: no build
    finally:
        refresher.stop()
        refresher.thread.join(5)


def test_a_long_backlog_defers_builds_only_so_long() -> None:
    refresher = CountingRefresher(interval=0.2, defer_seconds=1.5)
    refresher.thread.start()
    try:
        assert wait_for_builds(refresher, 1, 5)
        refresher.catching_up.set()
        refresher.data_changed()
        assert wait_for_builds(refresher, 2, 5)  # still catching up, but 1.5 s have passed
        assert refresher.builds[1] - refresher.builds[0] >= 1.5
    finally:
        refresher.stop()
        refresher.thread.join(5)


# Speaks the builder's protocol as serve_marts_builds does: the first build passes, the second
# fails, and the process dies on the third request without answering it.
FLAKY_BUILDER = """
import sys
for answer in ("passed", "failed"):
    sys.stdin.readline()
    print(answer, flush=True)
sys.stdin.readline()
"""


def test_builds_are_served_by_one_child_started_again_after_it_died() -> None:
    builder = MartsBuilder(command=(sys.executable, "-c", FLAKY_BUILDER))
    try:
        assert builder.build() is True
        assert builder.process is not None
        first = builder.process.pid
        assert builder.build() is False  # a failed build: the child lives on
        assert builder.process is not None and builder.process.pid == first
        assert builder.build() is False  # the child died with this build
        assert builder.process is None
        assert builder.build() is True  # a new child for the next build
        assert builder.process is not None and builder.process.pid != first
    finally:
        builder.close()
    assert builder.process is None
