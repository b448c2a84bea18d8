#!/usr/bin/env python3
"""Benchmark ``tsos-rules check`` in ONE process against the plain-Python baseline.

    python bench/bench_check.py /tmp/snap100k.json          # an existing snapshot
    python bench/bench_check.py --opportunities 100000      # generate one first (seed 7)
    python bench/bench_check.py /tmp/snap100k.json --skip-agreement   # time only

What is compared (issue 13: "single process, 100k deals: <= 1.5x the plain-Python baseline,
same rules, whole process"): the same rules on both sides, the built-in ``tsos`` pack, which
``baseline.py`` re-implements. So ``tsos-rules`` runs with every third-party plugin disabled
(``TSOS_RULES_DISABLE_PLUGINS``): contrib packs have no counterpart in the baseline and are
left out of the ratio. ``--contrib`` adds a row with every installed pack, for information.

First, the agreement check: both commands run once on the file with ``--include-info``

    python bench/baseline.py FILE --include-info
    tsos-rules check FILE --format json --include-info --executor local

and the ``tsos.*`` findings of tsos-rules, counted by (rule, reason), must equal the baseline's
``by_reason``. If any count differs the script prints each differing (rule, reason, baseline
count, tsos count) and exits 2 without timing anything: a baseline that gives other answers is
no baseline. ``--skip-agreement`` leaves the check out (quick runs). The findings are counted in
a child process so that this driver stays small: on Linux a child's peak RSS starts from its
parent's.

Then ``--runs`` paired runs (default 5): in each, the commands run one right after the other,
each as its own child process, whole process (start-up, imports, parse, judge, output):

    python bench/baseline.py FILE
    tsos-rules check FILE --format json --executor local      # one process, no workers

with stdout sent to /dev/null; the order within a pair alternates, so load that comes and goes
on a shared machine hits both alike. For every run the driver records the wall time (spawn to
reap), the CPU time (user + system, from ``os.wait4``) and the peak resident set size. Each pair
gives a ratio tsos/baseline of wall time and of CPU time; the verdict is on the median of the
paired CPU ratios (CPU time moves far less than wall time with other processes' load; on an
idle machine the two agree for a single process), and the median paired wall ratio is shown
beside it. Targets: time at most 1.5x, peak RSS at most 3x.

``tsos-rules check`` exits 1 when it finds ``block`` findings; that is a successful run here.
Exit status of this script: 0 both targets met, 1 a target missed, 2 a command failed,
``tsos-rules`` is not installed, or the baseline and tsos-rules disagree.
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
#: issue 13, item 5: one process, same rules, whole process, at most 1.5x the baseline.
TIME_TARGET = 1.5
RSS_TARGET = 3.0
COUNT_SCRIPT = (
    "import json, sys\n"
    "with open(sys.argv[1], encoding='utf-8') as f:\n"
    "    d = json.load(f)\n"
    "names = ('users', 'partners', 'accounts', 'leads', 'opportunities', 'activities')\n"
    "print(sum(len(d.get(n) or ()) for n in names))\n"
)
#: Counts the ``tsos.*`` findings of a ``tsos-rules check --format json`` document by rule and
#: reason, in a child process (the document of a 100k-deal snapshot is tens of megabytes).
TALLY_SCRIPT = (
    "import json, sys\n"
    "with open(sys.argv[1], encoding='utf-8') as f:\n"
    "    d = json.load(f)\n"
    "counts = {}\n"
    "for x in d['findings']:\n"
    "    if x['rule'].startswith('tsos.'):\n"
    "        reasons = counts.setdefault(x['rule'], {})\n"
    "        reasons[x['reason']] = reasons.get(x['reason'], 0) + 1\n"
    "print(json.dumps(counts))\n"
)


class BenchError(Exception):
    """A command could not be run or failed; the message says which and why."""


@dataclass
class Series:
    label: str
    command: list[str]
    ok_codes: tuple[int, ...]
    walls: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    env: dict[str, str] | None = None

    @property
    def median_wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpus)

    @property
    def peak_rss_mb(self) -> float:
        return max(self.rss_kb) / 1024


def run_once(series: Series) -> None:
    """Run the command once; record its wall time and peak RSS (children reaped with wait4)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        try:
            child = subprocess.Popen(
                series.command, stdout=subprocess.DEVNULL, stderr=stderr, env=series.env
            )
        except OSError as exc:
            raise BenchError(f"{series.label}: cannot start {series.command[0]}: {exc}") from None
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in series.ok_codes:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise BenchError(
                f"{series.label} exited {code}: {' '.join(series.command)}\n  "
                + "\n  ".join(tail or ["(no error output)"])
            )
    series.walls.append(wall)
    series.rss_kb.append(usage.ru_maxrss)  # kilobytes on Linux
    # User + system CPU of the command and the workers it reaped (wait4 reports both).
    series.cpus.append(usage.ru_utime + usage.ru_stime)


def find_tsos(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    beside_python = Path(sys.executable).parent / "tsos-rules"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("tsos-rules")


def generate(opportunities: int, seed: int, out: Path) -> int:
    """Write a snapshot with bench/generate.py in a child process; return its record count."""
    command = [
        sys.executable,
        str(HERE / "generate.py"),
        "--opportunities",
        str(opportunities),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"generate.py exited {done.returncode}: {done.stderr.strip()}")
    sys.stderr.write(done.stderr)
    counts = json.loads(done.stdout)["counts"]
    return sum(n for name, n in counts.items() if name != "close_date_changes")


def count_records(path: Path) -> int:
    """Records in a snapshot, counted in a child process so this driver stays small."""
    done = subprocess.run(
        [sys.executable, "-c", COUNT_SCRIPT, str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"cannot read {path}: {done.stderr.strip().splitlines()[-1:]}")
    return int(done.stdout)


def run_to_file(
    label: str, command: list[str], out: Path, ok_codes: tuple[int, ...], env: dict[str, str] | None
) -> None:
    """Run a command once with its stdout written to ``out``; fail on an unexpected exit."""
    with out.open("wb") as stdout:
        try:
            done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            raise BenchError(f"{label}: cannot start {command[0]}: {exc}") from None
    if done.returncode not in ok_codes:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise BenchError(
            f"{label} exited {done.returncode}: {' '.join(command)}\n  "
            + "\n  ".join(tail or ["(no error output)"])
        )


Disagreement = tuple[str, str, int, int]


def check_agreement(file: Path, tsos_path: str, scratch: Path) -> tuple[list[Disagreement], int]:
    """Run both commands once with ``--include-info`` and compare their counts by (rule, reason).

    Returns the (rule, reason, baseline count, tsos count) rows that differ, and the number of
    findings the baseline counted.
    """
    baseline_out = scratch / "agreement-baseline.json"
    tsos_out = scratch / "agreement-tsos.json"
    run_to_file(
        "baseline",
        [sys.executable, str(HERE / "baseline.py"), str(file), "--include-info"],
        baseline_out,
        (0,),
        None,
    )
    run_to_file(
        "tsos-rules check",
        [
            tsos_path,
            "check",
            str(file),
            "--format",
            "json",
            "--include-info",
            "--executor",
            "local",
        ],
        tsos_out,
        (0, 1),
        core_only_environment(),
    )
    try:
        baseline_result = json.loads(baseline_out.read_text(encoding="utf-8"))
        baseline: dict[str, dict[str, int]] = baseline_result["by_reason"]
        done = subprocess.run(
            [sys.executable, "-c", TALLY_SCRIPT, str(tsos_out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:]
            raise BenchError(f"cannot read the output of tsos-rules check: {tail}")
        tsos: dict[str, dict[str, int]] = json.loads(done.stdout)
    finally:
        tsos_out.unlink(missing_ok=True)
        baseline_out.unlink(missing_ok=True)
    differing: list[Disagreement] = []
    for rule in sorted(baseline.keys() | tsos.keys()):
        ours, theirs = baseline.get(rule, {}), tsos.get(rule, {})
        for reason in sorted(ours.keys() | theirs.keys()):
            if ours.get(reason, 0) != theirs.get(reason, 0):
                differing.append((rule, reason, ours.get(reason, 0), theirs.get(reason, 0)))
    return differing, int(baseline_result["findings"])


def report_disagreement(differing: list[Disagreement]) -> None:
    header = f"{'rule':<38} {'reason':<28} {'baseline':>9} {'tsos':>9}"
    print("baseline and tsos-rules disagree (--include-info, counts by rule and reason):\n")
    print(header)
    print("-" * len(header))
    for rule, reason, ours, theirs in differing:
        print(f"{rule:<38} {reason:<28} {ours:>9} {theirs:>9}")


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "FAIL"


def paired_ratios(tsos: Series, baseline: Series) -> tuple[list[float], list[float]]:
    """Per pair of runs, tsos/baseline of wall time and of CPU time."""
    walls = [t / b for t, b in zip(tsos.walls, baseline.walls, strict=True)]
    cpus = [t / b for t, b in zip(tsos.cpus, baseline.cpus, strict=True)]
    return walls, cpus


def report(
    file: Path, records: int, baseline: Series, tsos: Series | None, contrib: Series | None = None
) -> bool:
    size_mb = file.stat().st_size / 1e6
    print(f"snapshot: {file} ({size_mb:,.1f} MB, {records:,} records)")
    print(
        f"runs: {len(baseline.walls)} pairs, order alternating within a pair; stdout to /dev/null; "
        "tsos-rules in one process (--executor local)\n"
    )
    header = (
        f"{'command':<34} {'median wall s':>13} {'median CPU s':>12} {'peak RSS MB':>12} "
        f"{'records/s':>10}"
    )
    print(header)
    print("-" * len(header))
    rows = [baseline] + [series for series in (tsos, contrib) if series is not None]
    for series in rows:
        rate = records / series.median_wall if series.median_wall else float("inf")
        print(
            f"{series.label:<34} {series.median_wall:>13.2f} {series.median_cpu:>12.2f} "
            f"{series.peak_rss_mb:>12.0f} {rate:>10,.0f}"
        )
    if tsos is None:
        return False
    wall_ratios, cpu_ratios = paired_ratios(tsos, baseline)
    cpu_ratio = statistics.median(cpu_ratios)
    wall_ratio = statistics.median(wall_ratios)
    rss_ratio = tsos.peak_rss_mb / baseline.peak_rss_mb
    print()
    print(
        f"time  tsos/baseline, median of paired CPU ratios {cpu_ratio:5.2f}x  "
        f"(target <= {TIME_TARGET:g}x)  {verdict(cpu_ratio, TIME_TARGET)}"
    )
    print(f"      median of paired wall ratios {wall_ratio:5.2f}x (for information)")
    print(
        f"RSS   tsos/baseline {rss_ratio:5.2f}x  (target <= {RSS_TARGET:g}x)  "
        f"{verdict(rss_ratio, RSS_TARGET)}"
    )
    print(f"paired CPU ratios: {_ratios(cpu_ratios)}; wall ratios: {_ratios(wall_ratios)}")
    print(f"CPU s: baseline {_values(baseline.cpus)}; tsos {_values(tsos.cpus)}")
    print(f"wall s: baseline {_values(baseline.walls)}; tsos {_values(tsos.walls)}")
    if contrib is not None:
        _, contrib_cpu = paired_ratios(contrib, baseline)
        print(
            f"with every installed pack (contrib included; the baseline has no such rules): "
            f"{statistics.median(contrib_cpu):5.2f}x the baseline's CPU (for information)"
        )
    return cpu_ratio <= TIME_TARGET and rss_ratio <= RSS_TARGET


def _ratios(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _values(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python bench/bench_check.py /tmp/snap100k.json\n"
        "  python bench/bench_check.py --opportunities 100000 --runs 5\n"
        "  python bench/bench_check.py /tmp/snap100k.json --skip-agreement --runs 1",
    )
    parser.add_argument("file", nargs="?", help="snapshot JSON file to check")
    parser.add_argument("--opportunities", type=int, help="generate a snapshot of N deals first")
    parser.add_argument("--seed", type=int, default=7, help="seed for --opportunities (default 7)")
    parser.add_argument("--out", help="where --opportunities writes (default: a temp file)")
    parser.add_argument("--runs", type=int, default=5, help="paired runs (default 5)")
    parser.add_argument("--tsos", help="path of the tsos-rules executable (default: found)")
    parser.add_argument(
        "--skip-agreement",
        action="store_true",
        help="do not first check that the baseline and tsos-rules count the same findings",
    )
    parser.add_argument(
        "--contrib",
        action="store_true",
        help="also time tsos-rules with every installed pack (for information, not judged)",
    )
    args = parser.parse_args(argv)
    if (args.file is None) == (args.opportunities is None):
        parser.error("give a snapshot FILE or --opportunities N (one of them)")
    if args.runs < 1:
        parser.error("--runs must be 1 or more")

    with tempfile.TemporaryDirectory(prefix="tsos-bench-") as scratch:
        try:
            if args.file is not None:
                file = Path(args.file)
                if not file.is_file():
                    raise BenchError(f"{file}: no such file")
                records = count_records(file)
            else:
                file = Path(args.out) if args.out else Path(scratch) / "snapshot.json"
                records = generate(args.opportunities, args.seed, file)
            return bench(
                file,
                records,
                args.runs,
                find_tsos(args.tsos),
                scratch=Path(scratch),
                agreement=not args.skip_agreement,
                with_contrib=args.contrib,
            )
        except BenchError as exc:
            print(f"bench_check: {exc}", file=sys.stderr)
            return 2


def core_only_environment() -> dict[str, str]:
    """The environment with every installed third-party plugin disabled: the built-in doctrine
    pack is what the baseline re-implements, so it alone is measured."""
    from importlib.metadata import entry_points

    names = sorted({ep.name for ep in entry_points(group="tsos_rules")})
    return {**os.environ, "TSOS_RULES_DISABLE_PLUGINS": ",".join(names)}


def bench(
    file: Path,
    records: int,
    runs: int,
    tsos_path: str | None,
    *,
    scratch: Path,
    agreement: bool = True,
    with_contrib: bool = False,
) -> int:
    if agreement and tsos_path is not None:
        print("  checking that baseline and tsos-rules agree ...", file=sys.stderr)
        differing, findings = check_agreement(file, tsos_path, scratch)
        if differing:
            report_disagreement(differing)
            print("bench_check: baseline and tsos-rules disagree; nothing timed", file=sys.stderr)
            return 2
        print(
            f"agreement: baseline and tsos-rules count the same {findings:,} findings "
            "(tsos pack, --include-info, by rule and reason)\n"
        )
    baseline = Series(
        "baseline (plain Python)",
        [sys.executable, str(HERE / "baseline.py"), str(file)],
        ok_codes=(0,),
    )
    tsos = contrib = None
    if tsos_path is not None:
        one_process = [tsos_path, "check", str(file), "--format", "json", "--executor", "local"]
        tsos = Series(
            "tsos-rules check (tsos pack)",
            one_process,
            ok_codes=(0, 1),
            env=core_only_environment(),
        )
        if with_contrib:
            contrib = Series("tsos-rules check (all packs)", one_process, ok_codes=(0, 1))
    for run in range(runs):
        pair = [series for series in (baseline, tsos, contrib) if series is not None]
        if run % 2:  # alternate which goes first, so neither always runs on a warmer machine
            pair.reverse()
        for series in pair:
            run_once(series)
            print(
                f"  run {run + 1}/{runs} {series.label}: {series.walls[-1]:.2f} s wall, "
                f"{series.cpus[-1]:.2f} s CPU, {series.rss_kb[-1] / 1024:.0f} MB",
                file=sys.stderr,
            )
    passed = report(file, records, baseline, tsos, contrib)
    if tsos is None:
        print(
            "\ntsos-rules is not installed (no `tsos-rules` beside this Python or on PATH): "
            "only the baseline was measured. Install the package (pip install -e .) or pass "
            "--tsos PATH, then re-run.",
            file=sys.stderr,
        )
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
