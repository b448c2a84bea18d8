#!/usr/bin/env python3
"""Write a synthetic org snapshot (docs/contract.md JSON) for benchmarks and demos.

    python bench/generate.py --opportunities 100000 --seed 7 --out /tmp/snap100k.json
    python bench/generate.py --opportunities 100000 --shards 8 --out /tmp/snap100k-dir

With ``--shards N`` the snapshot is written to a temporary file, then split by company group
into the directory ``--out`` (a sharded snapshot, docs/contract.md), as
``tsos-rules snapshot split`` does.

Prints the record counts as one JSON line on stdout (bench_check.py reads it) and a summary
on stderr. The same arguments always write the same file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

from tsos_rules.connectors.local.demo import write_org_json
from tsos_rules.errors import SnapshotError

DEFAULT_AS_OF = dt.date(2026, 11, 24)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=100_000, help="deals (default 100000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=DEFAULT_AS_OF,
        help=f"the snapshot's evaluation date (default {DEFAULT_AS_OF})",
    )
    parser.add_argument("--out", required=True, help="file (or, with --shards, directory) to write")
    parser.add_argument(
        "--shards", type=int, default=0, help="write a sharded directory of N shard files"
    )
    args = parser.parse_args(argv)
    if args.opportunities < 0:
        parser.error("--opportunities must be 0 or more")

    if not 0 <= args.shards <= 255:
        parser.error("--shards must be from 0 (one file) to 255")
    # Refused before minutes of generating, as split and the file write would refuse it after.
    if args.shards and os.path.exists(args.out) and not _empty_dir(args.out):
        parser.error(f"--out {args.out}: exists and is not an empty directory")
    if not args.shards and os.path.isdir(args.out):
        parser.error(f"--out {args.out}: is a directory (a sharded snapshot needs --shards)")
    started = time.perf_counter()
    target = f"{args.out}.whole.json" if args.shards else args.out
    try:
        counts = write_org_json(
            target, opportunities=args.opportunities, seed=args.seed, as_of=args.as_of
        )
        if args.shards:
            split(target, args.shards, args.out)
    except (OSError, SnapshotError) as exc:
        print(f"generate.py: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    size_mb = _size(args.out) / 1e6
    print(json.dumps({"file": args.out, "as_of": args.as_of.isoformat(), "counts": counts}))
    summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
    print(f"wrote {args.out} ({size_mb:,.1f} MB) in {seconds:.1f} s: {summary}", file=sys.stderr)
    return 0


def split(whole: str, shards: int, out: str) -> None:
    """Split the snapshot file ``whole`` into the sharded directory ``out``, then delete it."""
    from tsos_rules.engine.sharding import split_snapshot
    from tsos_rules.snapshot import bulk_allocation, load_snapshot

    with bulk_allocation():
        snapshot, _ = load_snapshot(whole)
        os.remove(whole)
        split_snapshot(snapshot, shards, out)


def _empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.listdir(path)


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(entry.stat().st_size for entry in os.scandir(path))
    return os.path.getsize(path)


if __name__ == "__main__":
    sys.exit(main())
