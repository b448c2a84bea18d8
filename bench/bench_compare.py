"""Compare two ``tsos-rules`` installations on one snapshot, in alternating paired runs.

Answers "is this change slower?" on a shared machine: the two commands run one after the
other, N times, so load that comes and goes hits both alike; CPU time (user + system, workers
included) is reported beside wall time, since it moves far less with other processes' load.
Both must print the same findings, or nothing is timed.

    python bench/bench_compare.py /tmp/snap100k.json \\
        --before ../base-before/.venv/bin/tsos-rules --after .venv/bin/tsos-rules --runs 7

Exit status: 0 when the after/before ratio of median CPU time is within ``--tolerance``
(default 5 %), 1 when it is not, 2 when a command failed or the outputs differ.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (children) and the output's digest of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise SystemExit(f"bench_compare: {command[0]} exited {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, hashlib.sha256(done.stdout).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("--before", required=True, help="the baseline tsos-rules executable")
    parser.add_argument("--after", required=True, help="the tsos-rules executable to judge")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--as-of", default="2026-11-24")
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument(
        "--args",
        default="--format json --jobs 1",
        help="extra check arguments, the same for both (default: %(default)s)",
    )
    options = parser.parse_args(argv)
    extra = options.args.split()
    commands = {
        name: [exe, "check", str(options.snapshot), "--as-of", options.as_of, *extra]
        for name, exe in (("before", options.before), ("after", options.after))
    }
    env_note = os.environ.get("TSOS_RULES_DISABLE_PLUGINS", "")
    walls: dict[str, list[float]] = {"before": [], "after": []}
    cpus: dict[str, list[float]] = {"before": [], "after": []}
    digests: dict[str, set[str]] = {"before": set(), "after": set()}
    for _ in range(options.runs):
        for name, command in commands.items():
            wall, cpu, digest = _run(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
            digests[name].add(digest)
    if digests["before"] != digests["after"] or len(digests["before"]) != 1:
        print("bench_compare: the two commands printed different findings", file=sys.stderr)
        return 2
    print(
        f"snapshot {options.snapshot} ({options.snapshot.stat().st_size / 1e6:.0f} MB), "
        f"{options.runs} paired runs, check {' '.join(extra)}"
        + (f", plugins disabled: {env_note}" if env_note else "")
    )
    print(f"{'':8} {'median wall':>12} {'median CPU':>11} {'min CPU':>8}")
    for name in ("before", "after"):
        print(
            f"{name:8} {statistics.median(walls[name]):11.2f}s "
            f"{statistics.median(cpus[name]):10.2f}s {min(cpus[name]):7.2f}s"
        )
    ratio = statistics.median(cpus["after"]) / statistics.median(cpus["before"])
    wall_ratio = statistics.median(walls["after"]) / statistics.median(walls["before"])
    verdict = "PASS" if ratio <= 1 + options.tolerance else "FAIL"
    print(
        f"after/before: CPU {ratio:.3f}, wall {wall_ratio:.3f} "
        f"(tolerance {options.tolerance:.0%} on CPU): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
