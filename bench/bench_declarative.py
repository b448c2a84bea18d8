#!/usr/bin/env python3
"""Benchmark the two declarative backends: durable-rules (the reference) and the Python one.

    python bench/bench_declarative.py                     # 20,000 generated deals, 3 runs
    python bench/bench_declarative.py --opportunities 50000 --runs 5 --json

Generates an org (``tsos_rules.connectors.local.demo``, seed 7), indexes it, and builds every
deal's facts once; then judges each deal with the shipped declarative packs
(contrib pipeline-hygiene and tests/data/packs/hygiene.yaml: 6 rules) on each backend, timing
each record's ``evaluate`` calls with ``perf_counter_ns``, two ways:

- *prepared*: each deal's ``facts.flat()`` is built once beforehand (and timed on its own), so
  the figures are the backend's evaluation only;
- *from facts*: each run judges fresh facts, so the figures include computing the fact values
  the rules and their messages read (backends read records through a ``FlatView``, never the
  whole ``flat()`` dict): what a ``check`` pays.

Reports µs per record (mean, p50, p99) per backend and way, best of ``--runs``. Exit 1 when the
backends' findings differ; durable-rules is skipped (and said so) where it cannot load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tsos_rules import load_declarative_pack
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.facts import build_index
from tsos_rules.rules.declarative.backend import durable_problem
from tsos_rules.rules.declarative.interpreter import InterpretedDeclarativePack
from tsos_rules.rules.spec import RulePack
from tsos_rules.snapshot.document import snapshot_from_dict

ROOT = Path(__file__).resolve().parents[1]
PACKS = (
    ROOT
    / "contrib/tsos-rules-pipeline-hygiene/src/tsos_rules_pipeline_hygiene/pipeline-hygiene.yaml",
    ROOT / "tests/data/packs/hygiene.yaml",
)
AS_OF = dt.date(2026, 11, 24)


class _Prepared:
    """One deal's facts with ``flat()`` built once (what every backend reads)."""

    def __init__(self, record_id: str, flat: dict[str, Any]) -> None:
        self.record_id = record_id
        self._flat = flat

    def flat(self) -> dict[str, Any]:
        return self._flat

    def flat_value(self, name: str, default: Any = None) -> Any:
        return self._flat.get(name, default)


def build(backend: str, packs: list[RulePack]) -> list[Any]:
    """Every pack compiled with its defaults for ``backend``."""
    if backend == "durable-rules":
        from tsos_rules.rules.declarative.runtime import CompiledDeclarativePack

        return [
            CompiledDeclarativePack.build(p, p.declarative_rules, p.resolve_parameters(None))
            for p in packs
        ]
    return [
        InterpretedDeclarativePack.build(p, p.declarative_rules, p.resolve_parameters(None))
        for p in packs
    ]


def run(backend: str, packs: list[RulePack], facts: list[Any]) -> tuple[list[int], list[Any]]:
    """Per-record nanoseconds and every finding, judging ``facts`` once."""
    compiled = build(backend, packs)
    timings: list[int] = []
    found: list[Any] = []
    clock = time.perf_counter_ns
    try:
        for item in facts:
            started = clock()
            for pack in compiled:
                found.extend(pack.evaluate("opportunity", item))
            timings.append(clock() - started)
    finally:
        for pack in compiled:
            pack.close()
    return timings, found


def summary(timings: list[int]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "mean_us": statistics.fmean(ordered) / 1000,
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)] / 1000,
        "records_per_s": len(ordered) / (sum(ordered) / 1e9),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=20_000, help="deals (default 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per backend, best kept (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.opportunities < 1 or args.runs < 1:
        parser.error("--opportunities and --runs must be 1 or more")

    packs = [load_declarative_pack(path) for path in PACKS]
    snapshot, _ = snapshot_from_dict(
        generate_org(opportunities=args.opportunities, seed=7, as_of=AS_OF)
    )
    index = build_index(snapshot)
    built = [index.opportunity(deal) for deal in snapshot.opportunities]
    started = time.perf_counter_ns()
    flats = [item.flat() for item in built]
    flat_us = (time.perf_counter_ns() - started) / 1000 / len(built)
    prepared = [_Prepared(item.record_id, flat) for item, flat in zip(built, flats, strict=True)]

    backends = ["python"]
    problem = durable_problem()
    if problem is None:
        backends.insert(0, "durable-rules")
    results: dict[str, Any] = {}
    findings: dict[str, list[Any]] = {}
    ways = {
        "prepared": lambda: prepared,
        "from facts": lambda: [index.opportunity(deal) for deal in snapshot.opportunities],
    }
    for way, facts_of_run in ways.items():
        for backend in backends:
            best: dict[str, float] | None = None
            for _ in range(args.runs):
                timings, found = run(backend, packs, facts_of_run())
                figures = summary(timings)
                if best is None or figures["mean_us"] < best["mean_us"]:
                    best = figures
            findings[f"{backend}, {way}"] = found
            results[f"{backend}, {way}"] = {**(best or {}), "findings": len(found)}
    same = len({json.dumps([repr(f) for f in found]) for found in findings.values()}) == 1
    report = {
        "python": platform.python_version(),
        "records": len(prepared),
        "rules": sum(len(p.declarative_rules) for p in packs),
        "flat_us": flat_us,
        "backends": results,
        "durable_rules": "loaded" if problem is None else f"cannot load: {problem}",
        "same_findings": same,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"Python {report['python']}: {report['records']} deals, {report['rules']} rules "
            f"(best of {args.runs} runs)"
        )
        for backend, figures in results.items():
            print(
                f"  {backend:<26} {figures['mean_us']:8.2f} µs/record mean  "
                f"p50 {figures['p50_us']:7.2f}  p99 {figures['p99_us']:7.2f}  "
                f"{figures['records_per_s']:>10,.0f} records/s  {figures['findings']} findings"
            )
        print(f"  (building facts.flat() once: {flat_us:.2f} µs/record, not in 'prepared')")
        if problem is not None:
            print(f"  durable-rules: not measured ({problem})")
        print("  same findings on every backend:", "yes" if same else "NO")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
