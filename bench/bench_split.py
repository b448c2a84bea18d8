#!/usr/bin/env python3
"""Time and peak memory of ``tsos-rules snapshot split``: the whole read against the stream.

    python bench/bench_split.py /tmp/snap100k.json --shards 8 --runs 2

Paired runs, each command as its own child process under ``/usr/bin/time -v`` (wall time and
peak RSS), one right after the other, with the load average printed beside each figure:

- ``whole``: what ``split`` did before it streamed: ``load_snapshot`` then ``split_snapshot``;
- ``stream``: ``tsos-rules snapshot split FILE --shards N --out DIR``.

Each pair's two directories must be identical file by file, or the script exits 2.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WHOLE = """
import sys
from tsos_rules.engine.sharding import split_snapshot
from tsos_rules.snapshot import bulk_allocation, load_snapshot
with bulk_allocation():
    snapshot, _ = load_snapshot(sys.argv[1])
    split_snapshot(snapshot, int(sys.argv[2]), sys.argv[3])
"""


def _timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``command`` under ``/usr/bin/time -v``."""
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True
    )
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    assert wall and rss, result.stderr
    hours, minutes, seconds = wall.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), int(rss.group(1)) / 1024


def _same(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    script = shutil.which("tsos-rules") or str(Path(sys.executable).with_name("tsos-rules"))
    with tempfile.TemporaryDirectory(dir=Path(args.file).resolve().parent) as scratch:
        for run in range(1, args.runs + 1):
            whole, stream = Path(scratch, f"whole-{run}"), Path(scratch, f"stream-{run}")
            for name, command in (
                ("whole", [sys.executable, "-c", WHOLE, args.file, str(args.shards), str(whole)]),
                ("stream", [script, "snapshot", "split", args.file, "--shards",
                            str(args.shards), "--out", str(stream)]),
            ):  # fmt: skip
                load = Path("/proc/loadavg").read_text().split()[:3]
                seconds, megabytes = _timed(command)
                print(f"run {run} {name:6} {seconds:6.1f} s {megabytes:7,.0f} MB  load {load}")
            if not _same(whole, stream):
                print(f"run {run}: the directories differ", file=sys.stderr)
                return 2
            shutil.rmtree(whole)
            shutil.rmtree(stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
