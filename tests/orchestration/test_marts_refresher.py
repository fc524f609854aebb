"""When the runner rebuilds the dbt marts: after processed data changed, at most every
interval, and not while it works through a backlog (for at most the deferral limit)."""

from __future__ import annotations

import time

from orchestration.runner import MartsRefresher


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
