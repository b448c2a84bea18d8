#!/usr/bin/env python3
"""``tsos-rules check`` on one process against 2 worker processes, side by side in one run.

    python bench/bench_scale.py --opportunities 200000           # generate (seed 7), then run
    python bench/bench_scale.py /tmp/snap1m.json --workers 2     # an existing snapshot
    python bench/bench_scale.py /tmp/snap1m-dir                  # a sharded snapshot
    python bench/bench_scale.py --opportunities 1000000 --shards 8   # generate one, then run

A sharded snapshot (a directory, docs/contract.md) is run as ``check DIR --executor local``
(one process reads every shard) against ``check DIR --executor processes --jobs W`` (each
worker reads, indexes and judges its own shards); the per-partition run is skipped.

Each executor runs as its own child process, in turn, ``--runs`` times (default 1):

    tsos-rules check FILE --format json --executor local
    tsos-rules check FILE --format json --executor processes --jobs W
    tsos-rules check FILE --format json --executor dask --jobs W        # a new LocalCluster

(third-party plugins disabled), stdout to a file. While a command runs, its process tree is
sampled every 0.1 s (psutil): the driver's peak RSS, the largest worker's peak RSS and the
peak of their sum, and the driver's CPU time (its last sample); the CPU time of the whole tree
(user + system of the command and every worker it reaped) comes from ``os.wait4``. For every
executor it prints the median wall time, CPU, RSS and the speed-up over ``local``, and checks
every executor printed the same bytes.

Then, in one more child, the per-partition cost (what docs/scale.md extrapolates from): the
snapshot is loaded and indexed (timed), cut into ``2 x W`` partitions, and each partition is
pickled (the bytes a worker receives), then judged alone in that process (aggregates share,
then findings), timed. Printed per partition: records, pickled MB, seconds, µs per record.

Exit status: 0 the 2-worker target (``--target``, default 1.7x faster than one process) met by
``processes`` or ``dask``, 1 missed, 2 a command failed or the executors disagreed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SAMPLE_SECONDS = 0.1

#: Run in a child: load, index, assign owners, cut into partitions, then pickle and judge each
#: alone (cut, as a Dask worker does), and judge each from the whole index in a forked child
#: (as a forked ``processes`` worker does, its copy-on-write page faults included).
PARTITION_COST = r"""
import gc, json, os, pickle, sys, time
from tsos_rules.engine import Engine
from tsos_rules.engine.aggregates import combine, finalize
from tsos_rules.engine.executors import judge_task, partial_task
from tsos_rules.engine.partitions import assign_owners, cut, shared_partitions
from tsos_rules.snapshot.document import load_snapshot

def forked_cpu(fn):
    # user + system CPU seconds of fn() in a forked child: what a forked worker pays
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = os.times()
        fn()
        after = os.times()
        spent = [after.user - before.user, after.system - before.system]
        os.write(write, json.dumps(spent).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        spent = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return spent

path, count = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
engine = Engine.from_config(None)
snapshot, _ = load_snapshot(path)
t1 = time.perf_counter()
c1 = time.process_time()
index = engine.index(snapshot, None)
t2 = time.perf_counter()
c2 = time.process_time()
engine.recipe.adopt(engine)
ownership = assign_owners(index, count)
t3 = time.perf_counter()
c3 = time.process_time()
partitions = [p for p in cut(index, ownership) if p.size]
t3b = time.perf_counter()
c3b = time.process_time()
shared = {p.number: p for p in shared_partitions(index, ownership)}
shares = [partial_task(p, engine.aggregates) for p in partitions]
totals = finalize(engine.aggregates, combine(shares)) if engine.aggregates else {}
t4 = time.perf_counter()
rows = []
for p in partitions:
    started = time.perf_counter()
    size = len(pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL))
    pickled = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    partial_task(p, engine.aggregates)
    findings = judge_task(p, engine.recipe, totals, index.as_of)
    judged = time.perf_counter() - started
    judge_cpu = time.process_time() - cpu
    mine = shared[p.number]
    user, system = forked_cpu(lambda: judge_task(mine, engine.recipe, totals, index.as_of))
    rows.append({"number": p.number + 1, "records": p.size, "pickled_bytes": size,
                 "pickle_s": pickled, "judge_s": judged, "findings": len(findings),
                 "judge_cpu_s": judge_cpu, "forked_user_s": user, "forked_sys_s": system})
gc.collect()
cpu = time.process_time()
engine.judge(index)
whole = time.process_time() - cpu
print(json.dumps({"load_s": t1 - t0, "load_cpu_s": c1, "index_s": t2 - t1, "assign_s": t3 - t2,
                  "cut_s": t3b - t3, "index_cpu_s": c2 - c1, "assign_cpu_s": c3 - c2,
                  "cut_cpu_s": c3b - c3, "whole_judge_cpu_s": whole,
                  "aggregates_s": t4 - t3b, "records": sum(r["records"] for r in rows),
                  "partitions": rows}))
"""


@dataclass
class Sample:
    """One run of one executor: wall, CPU and memory of its process tree."""

    wall: float
    cpu: float
    driver_cpu: float
    driver_rss: int
    worker_rss: int
    total_rss: int
    digest: str
    #: the busiest worker's CPU seconds (its last sample)
    worker_cpu: float = 0.0
    #: every worker's CPU seconds together
    workers_cpu: float = 0.0


@dataclass
class Series:
    name: str
    command: list[str]
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(s, attribute) for s in self.samples)

    def peak(self, attribute: str) -> int:
        return max(getattr(s, attribute) for s in self.samples)


def find_tsos(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "tsos-rules"
    return str(beside) if beside.exists() else shutil.which("tsos-rules")


def core_only_environment() -> dict[str, str]:
    """This environment with every installed third-party plugin disabled."""
    from importlib.metadata import entry_points

    names = sorted({ep.name for ep in entry_points(group="tsos_rules")})
    env = {k: v for k, v in os.environ.items() if k != "TSOS_RULES_CONFIG"}
    env["TSOS_RULES_DISABLE_PLUGINS"] = ",".join(names)
    return env


def run_once(command: list[str], out: Path, env: dict[str, str]) -> Sample:
    """Run ``command`` with stdout to ``out``, sampling its process tree until it exits."""
    import psutil

    cpu: dict[int, float] = {}
    driver_rss = worker_rss = total_rss = 0
    started = time.perf_counter()
    errors = out.with_suffix(".err")
    with out.open("wb") as sink, errors.open("wb") as stderr:
        child = subprocess.Popen(command, stdout=sink, stderr=stderr, env=env)
        root = psutil.Process(child.pid)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for process in tree:
                try:
                    with process.oneshot():
                        rss = process.memory_info().rss
                        times = process.cpu_times()
                except psutil.Error:
                    continue
                cpu[process.pid] = times.user + times.system
                total += rss
                if process.pid == child.pid:
                    driver_rss = max(driver_rss, rss)
                else:
                    worker_rss = max(worker_rss, rss)
            total_rss = max(total_rss, total)
            time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        sys.stderr.write(errors.read_text(errors="replace"))
        raise SystemExit(f"command failed with exit {child.returncode}: {' '.join(command)}")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return Sample(
        wall,
        usage.ru_utime + usage.ru_stime,  # the command and every worker it reaped
        cpu.get(child.pid, 0.0),
        driver_rss,
        worker_rss,
        total_rss,
        digest,
        max((spent for pid, spent in cpu.items() if pid != child.pid), default=0.0),
        sum(spent for pid, spent in cpu.items() if pid != child.pid),
    )


def partition_cost(file: Path, partitions: int, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-c", PARTITION_COST, str(file), str(partitions)]
    result = subprocess.run(command, capture_output=True, env=env, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode(errors="replace"))
        raise SystemExit("the per-partition cost run failed")
    cost: dict[str, Any] = json.loads(result.stdout)
    return cost


def mb(size: float) -> str:
    return f"{size / 1e6:,.0f} MB"


def report(series: list[Series], cost: dict[str, Any] | None, target: float, workers: int) -> bool:
    base = series[0].median("wall")
    print(
        f"{'executor':<22}{'wall s':>8}{'speed-up':>10}{'CPU s':>8}{'driver CPU s':>14}"
        f"{'worker CPU s':>14}{'idle-core x':>13}{'driver RSS':>12}{'worker RSS':>12}"
        f"{'all RSS':>10}"
    )
    alone_cpu = series[0].median("cpu")
    met = False
    for one in series:
        wall = one.median("wall")
        speedup = base / wall
        if one is not series[0] and speedup >= target:
            met = True
        worker = mb(one.peak("worker_rss")) if one.peak("worker_rss") else "-"
        # On idle cores a run takes the CPU outside its workers (the driver's, serial) plus
        # its busiest worker's (the workers run side by side).
        critical = one.median("cpu") - one.median("workers_cpu") + one.median("worker_cpu")
        print(
            f"{one.name:<22}{wall:>8.1f}{speedup:>9.2f}x{one.median('cpu'):>8.1f}"
            f"{one.median('driver_cpu'):>14.1f}{one.median('worker_cpu'):>14.1f}"
            f"{alone_cpu / critical:>12.2f}x{mb(one.peak('driver_rss')):>12}"
            f"{worker:>12}{mb(one.peak('total_rss')):>10}"
        )
    if cost:
        print(
            f"\none process, before judging: load {cost['load_s']:.1f} s, index "
            f"{cost['index_s']:.1f} s, assign owners {cost['assign_s']:.1f} s, cut into "
            f"partitions {cost['cut_s']:.1f} s, aggregates {cost['aggregates_s']:.1f} s "
            f"({cost['records']:,} records)"
        )
        print(
            f"{'partition':>10}{'records':>10}{'pickled':>10}{'pickle s':>10}{'judge s':>9}"
            f"{'µs/record':>11}{'forked CPU s':>14}"
        )
        for row in cost["partitions"]:
            per = row["judge_s"] / max(1, row["records"]) * 1e6
            print(
                f"{row['number']:>10}{row['records']:>10,}{mb(row['pickled_bytes']):>10}"
                f"{row['pickle_s']:>10.2f}{row['judge_s']:>9.2f}{per:>11.1f}"
                f"{row['forked_user_s']:>7.2f}+{row['forked_sys_s']:.2f}"
            )
        judged = sum(r["judge_s"] for r in cost["partitions"])
        cpu = sum(r["judge_cpu_s"] for r in cost["partitions"])
        print(
            f"judging all partitions one by one: {judged:.1f} s ({cpu:.1f} s CPU, "
            f"{cpu / max(1, cost['records']) * 1e6:.1f} µs CPU per record); CPU before "
            f"judging: load {cost['load_cpu_s']:.1f} s, index {cost['index_cpu_s']:.1f} s, "
            f"assign owners {cost['assign_cpu_s']:.1f} s, cut {cost['cut_cpu_s']:.1f} s"
        )
        forked = sum(r["forked_user_s"] + r["forked_sys_s"] for r in cost["partitions"])
        serial = cost["load_cpu_s"] + cost["index_cpu_s"]
        alone = serial + cost["whole_judge_cpu_s"]
        best = serial + cost["assign_cpu_s"] + forked / workers
        print(
            f"forked workers (partitions masked over the inherited index): {forked:.1f} s CPU "
            f"(user + system: copy-on-write faults) against {cost['whole_judge_cpu_s']:.1f} s "
            f"judging the whole index in one process; so on {workers} idle cores at best "
            f"{alone:.1f} / {best:.1f} s CPU = {alone / best:.2f}x (the driver's load and "
            f"index stay serial)"
        )
    print(
        "\nidle-core x: one process's CPU over this run's CPU outside its workers plus its "
        "busiest worker's:\nthe speed-up on idle cores (wall times on a shared machine are "
        "inflated)"
    )
    print(f"\ntarget: 2 workers >= {target:.1f}x faster than one process: ", end="")
    print("met" if met else "MISSED")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", type=Path, help="a snapshot (else one is generated)")
    parser.add_argument("--opportunities", type=int, default=200_000, help="deals to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each executor (median)")
    parser.add_argument("--target", type=float, default=1.7, help="speed-up to meet (1.7)")
    parser.add_argument(
        "--executors",
        help="comma-separated, the first is the baseline (default local,processes,dask; "
        "local,processes for a sharded snapshot)",
    )
    parser.add_argument(
        "--shards", type=int, default=0, help="generate a sharded snapshot of N shard files"
    )
    parser.add_argument("--skip-partition-cost", action="store_true")
    parser.add_argument("--tsos", help="a tsos-rules executable other than the one beside this")
    args = parser.parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("bench_scale.py needs psutil: pip install 'tsos-rules[dask]'", file=sys.stderr)
        return 2
    tsos = find_tsos(args.tsos)
    if tsos is None:
        print("tsos-rules is not installed beside this Python (or use --tsos)", file=sys.stderr)
        return 2
    env = core_only_environment()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        file = args.file
        if file is None:
            file = Path(scratch) / f"snap{args.opportunities}"
            file = file if args.shards else file.with_suffix(".json")
            subprocess.run(
                [sys.executable, str(HERE / "generate.py"), "--opportunities",
                 str(args.opportunities), "--seed", str(args.seed), "--out", str(file),
                 "--shards", str(args.shards)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        sharded = file.is_dir()
        size = sum(p.stat().st_size for p in file.iterdir()) if sharded else file.stat().st_size
        kind = (
            f"sharded snapshot, {len(list(file.glob('shard-*.json')))} shards"
            if sharded
            else "snapshot"
        )
        print(f"{kind} {file} ({size / 1e6:,.0f} MB), {args.workers} workers")
        executors = args.executors or ("local,processes" if sharded else "local,processes,dask")
        series = []
        for name in executors.split(","):
            command = [tsos, "check", str(file), "--format", "json", "--executor", name]
            if name != "local":
                command += ["--jobs", str(args.workers)]
                name = f"{name} ({args.workers} workers)"
            else:
                name = "local (1 process)"
            series.append(Series(name, command))
        for _ in range(args.runs):
            for one in series:  # in turn, so load on the machine hits each alike
                one.samples.append(run_once(one.command, Path(scratch) / "out.json", env))
                print(f"  {one.name}: {one.samples[-1].wall:.1f} s", file=sys.stderr)
        digests = {s.digest for one in series for s in one.samples}
        cost = None
        if not (args.skip_partition_cost or sharded):
            cost = partition_cost(file, 2 * args.workers, env)
    met = report(series, cost, args.target, args.workers)
    if len(digests) != 1:
        print("the executors printed different findings", file=sys.stderr)
        return 2
    print("every executor printed the same bytes")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
