#!/usr/bin/env python3
"""Write a synthetic org snapshot (docs/contract.md JSON) for benchmarks and demos.

    python bench/generate.py --opportunities 100000 --seed 7 --out /tmp/snap100k.json

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
    parser.add_argument("--out", required=True, help="file to write")
    args = parser.parse_args(argv)
    if args.opportunities < 0:
        parser.error("--opportunities must be 0 or more")

    started = time.perf_counter()
    counts = write_org_json(
        args.out, opportunities=args.opportunities, seed=args.seed, as_of=args.as_of
    )
    seconds = time.perf_counter() - started
    size_mb = os.path.getsize(args.out) / 1e6
    print(json.dumps({"file": args.out, "as_of": args.as_of.isoformat(), "counts": counts}))
    summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
    print(f"wrote {args.out} ({size_mb:,.1f} MB) in {seconds:.1f} s: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
