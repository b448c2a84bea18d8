#!/usr/bin/env python3
"""Time a full sync's write side: the demo CRM's task writes, the state's journal and batch
commits, and the planner, beside the whole sync (wall and CPU seconds).

    python bench/bench_sync.py _seed DIR 200000             # once: a seeded org in DIR
    python bench/bench_sync_writes.py DIR --workdir /tmp/w  # copies DIR/crm.sqlite3, syncs it

To compare with another version of the code, run the same command with that version first on
``PYTHONPATH`` (its ``src`` directory): the methods timed have the same names. ``--keep`` keeps
the synced CRM and state in the workdir, to compare their rows.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import functools
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AS_OF = dt.date(2026, 11, 24)


def _timed(cls: type, name: str, wall: collections.Counter[str], cpu: collections.Counter[str]):
    method: Callable[..., Any] = getattr(cls, name)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            wall[name] += time.perf_counter() - start
            cpu[name] += time.process_time() - start_cpu

    setattr(cls, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seeded", type=Path, help="directory holding a seeded crm.sqlite3")
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/sync-writes"))
    parser.add_argument("--mode", default="annotate", choices=["annotate", "enforce"])
    parser.add_argument("--keep", action="store_true", help="keep the CRM and state files")
    args = parser.parse_args(argv)

    import tsos_rules
    from tsos_rules.connectors.local.connector import LocalConnector
    from tsos_rules.plugins import get_plugin_manager
    from tsos_rules.sync.job import run_sync
    from tsos_rules.sync.planner import Planner
    from tsos_rules.sync.state.store import StateStore

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    shutil.copy(args.seeded / "crm.sqlite3", args.workdir / "crm.sqlite3")
    get_plugin_manager()  # plugin imports are a start-up cost, not the sync's
    wall: collections.Counter[str] = collections.Counter()
    cpu: collections.Counter[str] = collections.Counter()
    for cls, name in (
        (LocalConnector, "write"),
        (StateStore, "journal"),
        (StateStore, "commit_batch"),
        (Planner, "plan"),
    ):
        _timed(cls, name, wall, cpu)
    config = {
        "connector": {"type": "local", "path": str(args.workdir / "crm.sqlite3")},
        "state": {"path": str(args.workdir / "state.sqlite3")},
        "sync": {"mode": args.mode},
    }
    start, start_cpu = time.perf_counter(), time.process_time()
    summary = run_sync(config, as_of=AS_OF, full=True).to_dict()
    result = {
        "code": str(Path(tsos_rules.__file__).parent),
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(time.process_time() - start_cpu, 2),
        "write_side_wall_s": round(sum(wall.values()), 2),
        "write_side_cpu_s": round(sum(cpu.values()), 2),
        "by_step": {name: [round(wall[name], 2), round(cpu[name], 2)] for name in wall},
        "writes": summary["actions"]["written"],
        "findings_open": summary["findings"]["open"],
    }
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
