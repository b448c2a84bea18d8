#!/usr/bin/env python3
"""Where one ``tsos-rules sync`` of the demo CRM spends its CPU: read, judge, totals, writes.

    python bench/bench_sync.py _seed DIR 200000                  # an org (once)
    python bench/bench_sync_parts.py DIR full                    # a full sync of DIR/crm.sqlite3
    python bench/bench_sync.py _change DIR 0.01 0                # 1 % of the deals changed
    python bench/bench_sync_parts.py DIR incremental             # the incremental sync after it

Times the sync job's steps in place (CPU and wall seconds, summed over the run; a nested step
is counted in its caller too: ``rejudge_readers`` holds its own reads, judging and commits).
The state is ``DIR/state.sqlite3``; annotate mode, every installed pack. Prints one line per
step (with the bytes it caused to be written to storage, on Linux), largest first, then the
run's totals. A measuring aid, not a target: bench_sync.py is.
``BENCH_BATCH_SIZE=N`` sets ``[sync] batch_size`` (default: the sync's own).
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

AS_OF = dt.date(2026, 11, 24)

CPU: collections.Counter[str] = collections.Counter()
WALL: collections.Counter[str] = collections.Counter()
WRITTEN: collections.Counter[str] = collections.Counter()
_IO = Path("/proc/self/io")


def _io_fd() -> int | None:
    try:
        return os.open(_IO, os.O_RDONLY)
    except OSError:
        return None


#: Kept open: a step timed per item (judging, per record) reads it twice an item, and opening
#: it each time cost about 0.3 s of a million-deal incremental run.
_IO_FD = _io_fd()


def _written() -> int:
    """Bytes this process has caused to be written to storage (Linux; 0 elsewhere)."""
    if _IO_FD is None:
        return 0
    try:
        text = os.pread(_IO_FD, 4096, 0).decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        cpu, wall, written = time.process_time(), time.perf_counter(), _written()
        try:
            return function(*args, **kwargs)
        finally:
            CPU[label] += time.process_time() - cpu
            WALL[label] += time.perf_counter() - wall
            WRITTEN[label] += _written() - written

    return timed


def _timed_iter(function: Callable[..., Iterator[Any]], label: str) -> Callable[..., Any]:
    """A generator's own time, not its consumer's: each ``next`` is timed alone."""

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        items = function(*args, **kwargs)
        while True:
            cpu, wall, written = time.process_time(), time.perf_counter(), _written()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                CPU[label] += time.process_time() - cpu
                WALL[label] += time.perf_counter() - wall
                WRITTEN[label] += _written() - written
            yield item

    return timed


def _instrument() -> None:
    from tsos_rules.engine.engine import Engine
    from tsos_rules.sync import job
    from tsos_rules.sync.state.store import StateStore

    steps: list[tuple[Any, str, str, bool]] = [
        (job._Job, "_batches", "read (the run's batches)", True),
        (job._Job, "_readers", "read (readers of moved totals)", True),
        (job._Job, "_org_totals", "org totals (incl. an incremental read)", False),
        (job._Job, "_verdicts", "judge", True),
        (Engine, "index", "index", False),
        (job._Job, "_add_sections", "report sections", False),
        (job._Job, "_write", "write (CRM; nested: the state's journal)", False),
        (StateStore, "journal", "journal of the writes (state)", False),
        (job.Planner, "plan", "plan", False),
        (StateStore, "commit_batch", "commit (state)", False),
        (StateStore, "open_findings_for", "open findings of judged records", False),
        (StateStore, "save_aggregate_shares", "save aggregate shares", False),
        (StateStore, "build_deferred_indexes", "build deferred indexes (first run)", False),
        (job._Job, "_rejudge_readers", "rejudge readers (nested: all of it)", False),
        (job._Job, "_sweep", "sweep (full run)", False),
        (job._Job, "_final_counts", "final counts and charts", False),
    ]
    for owner, name, label, iterates in steps:
        function = getattr(owner, name)
        setattr(owner, name, (_timed_iter if iterates else _timed)(function, label))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("full", "incremental"):
        print(__doc__, file=sys.stderr)
        return 2
    workdir = Path(argv[0])
    from tsos_rules.plugins import get_plugin_manager
    from tsos_rules.sync.job import run_sync

    get_plugin_manager()
    _instrument()
    config = {
        "connector": {"type": "local", "path": str(workdir / "crm.sqlite3")},
        "state": {"path": str(workdir / "state.sqlite3")},
        "sync": {"mode": "annotate"},
    }
    if os.environ.get("BENCH_BATCH_SIZE"):
        config["sync"]["batch_size"] = int(os.environ["BENCH_BATCH_SIZE"])
    cpu, wall, written = time.process_time(), time.perf_counter(), _written()
    summary = run_sync(config, as_of=AS_OF, full=argv[1] == "full").to_dict()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    written = _written() - written
    for label, seconds in CPU.most_common():
        print(
            f"{label:40s} {seconds:8.2f} s CPU {WALL[label]:8.2f} s wall "
            f"{WRITTEN[label] / 1e6:9.0f} MB written"
        )
    records = summary["records"]
    print(
        f"{'the whole run':40s} {cpu:8.2f} s CPU {wall:8.2f} s wall {written / 1e6:9.0f} MB "
        f"written (full: {summary['full']}, {records['read']:,} read, "
        f"{records['judged']:,} judged)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
