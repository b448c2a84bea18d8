"""What history per owner and retention cost on a big state store.

Fills a state file with N findings (default 1,000,000, 500 owners: ``bench_findings.fill``),
then times: the per-owner GROUP BY every sync runs at its end (``open_by_owner``); storing one
run's per-owner counts; ``history --by owner`` over 30 runs; and the retention pass over a
run log of R runs (default 2,000 runs x 500 owners = 1M per-owner rows) of which half are
older than the cut, with half the findings resolved long ago: one sync's bounded share, then
``history --prune`` for the rest.

    python bench/bench_history.py
    python bench/bench_history.py --findings 200000 --runs 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from bench_findings import CONNECTOR, fill

from tsos_rules.sync.state import OwnerTally, StateStore
from tsos_rules.sync.state.store import PRUNED_PER_RUN

OWNERS = 500


def _timed(label: str, action: object) -> float:
    started = time.perf_counter()
    result = action() if callable(action) else None
    took = time.perf_counter() - started
    print(f"{took * 1000:9.1f} ms  {label}" + (f"  ({result})" if result is not None else ""))
    return took


def _fill_runs(store: StateStore, runs: int, now: dt.datetime) -> None:
    """``runs`` finished runs, one every 6 hours back from now, each with 500 owner rows."""
    db = store.db
    db.execute("BEGIN")
    for k in range(runs):
        started = (now - dt.timedelta(hours=6 * (runs - k))).isoformat(timespec="microseconds")
        cur = db.execute(
            "INSERT INTO runs (connector, pid, started_at, finished_at, as_of, mode, full, "
            "dry_run, outcome, exit_code, counts) VALUES (?, 1, ?, ?, ?, 'annotate', 0, 0, "
            "'ok', 1, '{}')",
            (CONNECTOR, started, started, started[:10]),
        )
        db.executemany(
            "INSERT INTO run_owner_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (cur.lastrowid, CONNECTOR, f"u{o:04d}", f"Owner {o}", 3, 2, 40, 9)
                for o in range(OWNERS)
            ],
        )
    db.execute("COMMIT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite3"
        took = fill(path, args.findings, args.seed)
        print(f"filled {args.findings:,} findings in {took:.1f} s")
        store = StateStore(path)
        try:
            _fill_runs(store, args.runs, now)
            print(f"filled {args.runs:,} runs x {OWNERS} owners of per-owner counts")
            _timed(
                "open findings per owner (end of every sync)",
                lambda: f"{len(store.open_by_owner(CONNECTOR))} owners",
            )
            tallies = [OwnerTally(f"u{o:04d}", f"Owner {o}", 1, 1, 40, 9) for o in range(OWNERS)]
            run_id = store.start_run(
                CONNECTOR, as_of=now.date(), mode="annotate", full=False, dry_run=False,
                watermark_from=None,
            )  # fmt: skip
            _timed(
                "store one run's per-owner counts (finish_run)",
                lambda: store.finish_run(
                    run_id, CONNECTOR, outcome="ok", exit_code=1, counts={}, owners=tallies
                ),
            )
            last = [r["id"] for r in store.runs(CONNECTOR, limit=30)]
            _timed(
                "history --by owner --runs 30 (read)",
                lambda: (
                    f"{sum(len(v) for v in store.owner_history(CONNECTOR, last).values()):,} rows"
                ),
            )
            db = store.db
            db.execute(
                "UPDATE findings SET status = 'resolved', resolved_at = ? WHERE rowid % 2 = 0",
                ((now - dt.timedelta(days=500)).isoformat(),),
            )
            cut = now - dt.timedelta(hours=6 * (args.runs // 2))
            _timed(
                f"one sync's retention share (at most {PRUNED_PER_RUN:,} runs and findings)",
                lambda: store._prune(CONNECTOR, cut, keep_run=None, limit=PRUNED_PER_RUN),
            )
            _timed("history --prune (all the rest)", lambda: store.prune(CONNECTOR, cut))
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
