"""Progress sums count each item's bytes once, although a landed item is reported in full twice.

A connector reports an item's bytes as they land; ``connectors.checked_fetch`` reports them again,
in full, once the landed file is checked. The CLI bar and the Dagster run log keep running sums (flat
memory at any item count), so the second report must replace what was counted, not add to it.
"""

from __future__ import annotations

import io

from connectors.cli.progress_bar import ProgressBar
from connectors.landing.progress import RecentlyFinished
from connectors.syncing.progress_log import ProgressLog


def report_twice(listener: object, items: int, size: int) -> None:
    for index in range(items):
        name = f"f{index}.csv"
        listener(name, size // 2, size)  # type: ignore[operator]  # while landing
        listener(name, size, size)  # type: ignore[operator]  # the connector's own final report
        listener(name, size, size)  # type: ignore[operator]  # checked_fetch's report of the checked file


def test_the_run_log_counts_each_landed_item_once() -> None:
    lines: list[str] = []
    log = ProgressLog(lines.append, total_items=4, interval=3600)
    report_twice(log.on_bytes, 4, 1024)
    for _ in range(4):
        log.item_done()
    assert log.summary().startswith("4/4 items, 4.0 KB")


def test_the_cli_bar_counts_each_landed_item_once() -> None:
    bar = ProgressBar(io.StringIO(), items=4, width=120)
    report_twice(bar, 4, 1024)
    assert "4.0 KiB/4.0 KiB" in bar.render()


def test_what_is_remembered_of_finished_items_is_bounded() -> None:
    recent = RecentlyFinished(size=100)
    for index in range(10_000):
        recent.add(f"f{index}", 1)
    assert recent.pop("f9999") == 1 and recent.pop("f0") == 0
    assert len(recent._done) == 99  # noqa: SLF001 - the bound is the point
