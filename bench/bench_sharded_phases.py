#!/usr/bin/env python3
"""Where a sharded ``check``'s wall time goes in its driver: each phase, the gap between them
and the tail after the last verdict (collect, print, exit), with the driver's own CPU.

    python bench/bench_sharded_phases.py /tmp/snap1m-dir            # 2 workers
    python bench/bench_sharded_phases.py /tmp/snap1m-dir --jobs 4

Runs ``tsos-rules check DIR --format json --executor processes --jobs N`` in this process
(third-party plugins disabled, stdout discarded), timing ``engine.sharded._phase`` and exit.
The gap and the tail are the driver's serial part: what keeps 2 workers from 2×.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from typing import Any, NoReturn

PLUGINS_OFF = "channel-economics,hubspot,mutual-operating-period,pipeline-hygiene,sell-through"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="a sharded snapshot (tsos-rules snapshot split)")
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    os.environ.setdefault("TSOS_RULES_DISABLE_PLUGINS", PLUGINS_OFF)

    from tsos_rules.cli import console
    from tsos_rules.engine import sharded

    marks: list[tuple[str, float, float]] = [("start", time.perf_counter(), time.process_time())]
    phase = sharded._phase

    def timed_phase(*args: Any, **kwargs: Any) -> Any:
        name = args[3].__name__
        marks.append((f"{name} sent", time.perf_counter(), time.process_time()))
        result = phase(*args, **kwargs)
        marks.append((f"{name} back", time.perf_counter(), time.process_time()))
        return result

    sharded._phase = timed_phase  # type: ignore[assignment]
    exit_now = os._exit

    def report_and_exit(code: int) -> NoReturn:
        if os.getpid() == driver:  # a forked worker's exit is not the run's
            marks.append(("exit", time.perf_counter(), time.process_time()))
            for (a, wall_a, cpu_a), (b, wall_b, cpu_b) in itertools.pairwise(marks):
                print(
                    f"{a:>18} -> {b:<18} {wall_b - wall_a:7.2f} s wall "
                    f"{cpu_b - cpu_a:7.2f} s driver CPU",
                    file=sys.stderr,
                )
            sys.stderr.flush()
        exit_now(code)

    driver = os.getpid()
    os._exit = report_and_exit  # type: ignore[assignment]
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (held until exit)
    sys.argv = ["tsos-rules", "check", options.directory, "--format", "json",
                "--executor", "processes", "--jobs", str(options.jobs)]  # fmt: skip
    console()


if __name__ == "__main__":
    main()
