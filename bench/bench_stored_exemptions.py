#!/usr/bin/env python3
"""What reading the ``exempt add`` exemptions costs ``check`` and in-line.

    python bench/bench_stored_exemptions.py [--exemptions N] [--calls N]

Builds a state file in a temporary folder with N active exemptions (and as many revoked ones),
then times one read of the file (what ``check`` does once, and in-line once per refresh
window) and a call of the in-line cache within its window (what every judged change with a
finding pays).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from tsos_rules.sync.state import StateStore
from tsos_rules.sync.state.stored_exemptions import StoredExemptions, read_active


def _fill(path: Path, count: int) -> None:
    store = StateStore(path)
    until = dt.date.today() + dt.timedelta(days=90)
    for n in range(count * 2):
        new = store.add_exemption(
            "local",
            rule="tsos.next-step-*",
            record_type="opportunity",
            record_id=f"o{n}",
            reason="bench",
            approver="bench",
            expires=until,
        )
        if n % 2:
            store.revoke_exemption("local", new, by="bench")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exemptions", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.sqlite3"
        _fill(path, args.exemptions)
        today = dt.date.today()
        reads = 20
        start = time.perf_counter()
        for _ in range(reads):
            found = read_active(path, "local", today)
        read_ms = (time.perf_counter() - start) / reads * 1000
        assert len(found) == args.exemptions, len(found)
        cached = StoredExemptions(path, "local", refresh_seconds=3600)
        cached()
        start = time.perf_counter()
        for _ in range(args.calls):
            cached()
        call_ns = (time.perf_counter() - start) / args.calls * 1e9
    print(f"{args.exemptions} active exemptions (+{args.exemptions} revoked)")
    print(f"read of the state file: {read_ms:.2f} ms (check: once; in-line: once per window)")
    print(f"in-line cache call within the window: {call_ns:.0f} ns")


if __name__ == "__main__":
    main()
