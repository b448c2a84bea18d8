#!/usr/bin/env python3
"""Benchmark in-process ``check_change`` with a realistic in-line context.

    python bench/bench_inline.py                 # 100,000 calls per case (the target's count)
    python bench/bench_inline.py --calls 20000 --json

The context is what a CRM hook sends with one deal: its account, its source lead, its partner,
its owner, 10 close-date history rows and 5 activities. The change edits the deal's next step
and moves its close date (an unlocked deal, so it is allowed); a second case moves a locked
deal's date without approval (refused). Each case runs:

* ``dict``: the before/after records and the context as parsed JSON (what the HTTP service and a
  Python hook holding JSON pass): validation and structuring included;
* ``records``: model records and a ``Snapshot`` (a Python hook that already holds them).

One ChangeChecker (one engine, built once) serves every call; the garbage collector stays on.
Latency is measured per call with ``perf_counter_ns`` (wall) and ``thread_time_ns`` (the CPU
time the call itself used: on a shared machine, wall-time tails include time the scheduler gave
to other processes); the report gives p50, p90, p99, p99.9 and max, in microseconds. Target:
wall p99 <= 1 ms for the ``dict`` case. Exit 1 when missed. ``--builtin-only`` leaves out
third-party packs installed in the environment (e.g. ``contrib/`` packages).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from tsos_rules.inline import ChangeChecker
from tsos_rules.model import Opportunity
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = "2026-11-24"
TARGET_P99_US = 1000.0


def _day(offset: int) -> str:
    import datetime as dt

    return (dt.date(2026, 11, 24) + dt.timedelta(days=offset)).isoformat()


def _at(offset: int) -> str:
    return f"{_day(offset)}T10:00:00+00:00"


def realistic_change(*, locked: bool = False) -> dict[str, Any]:
    """A ``/v1/check`` body: one deal's change with its related records (docs/contract.md shape)."""
    deal = {
        "id": "006000000000001AAA",
        "name": "Boeing fleet renewal",
        "account_id": "001000000000001AAA",
        "owner_id": "005000000000001AAA",
        "partner_id": "001000000000009AAA",
        "lead_id": "00Q000000000001AAA",
        "channel": "partner",
        "stage": "closing" if locked else "draft_proposal",
        "probability": 80 if locked else 60,
        "amount": 120000,
        "close_date": _day(20),
        "forecast_category": "commit" if locked else "best_case",
        "is_closed": False,
        "is_won": False,
        "next_step": "Legal review of the draft MSA",
        "next_step_date": _day(4),
        "partner_consent": None,
        "team_user_ids": [],
        "stage_changed_at": _at(-14),
    }
    after = dict(deal, close_date=_day(27), next_step="Security review with the CISO")
    after["next_step_date"] = _day(6)
    history = []
    date = -80
    for index in range(10):
        history.append(
            {
                "opportunity_id": deal["id"],
                "old": _day(date),
                "new": _day(date + (9 if index % 3 else -4)),
                "changed_at": _at(-100 + index * 8),
                "changed_by": deal["owner_id"],
                "approved_by": "005000000000002AAA",
                "stage": "engagement",
                "forecast_category": "pipeline",
            }
        )
        date += 9 if index % 3 else -4
    activities = [
        {
            "id": f"00T00000000000{index}AAA",
            "what_id": deal["id"],
            "account_id": deal["account_id"],
            "owner_id": deal["owner_id"],
            "subject": f"Workshop {index}",
            "due_date": _day(index * 3 - 6),
            "status": "open" if index >= 2 else "completed",
            "partner_notified": True,
            "created_at": _at(-20 + index),
        }
        for index in range(5)
    ]
    context = {
        "as_of": AS_OF,
        "users": [{"id": deal["owner_id"], "name": "Dana Whitfield", "role": "channel"}],
        "partners": [
            {
                "id": deal["partner_id"],
                "name": "Acme VAR",
                "status": "active",
                "tier": "premier",
                "credit_limit": 250000,
                "fiscal_year_start_month": 1,
            }
        ],
        "accounts": [
            {"id": deal["account_id"], "name": "Boeing", "partner_of_record_id": deal["partner_id"]}
        ],
        "leads": [
            {
                "id": deal["lead_id"],
                "company": "Boeing",
                "account_id": deal["account_id"],
                "owner_id": deal["owner_id"],
                "partner_id": deal["partner_id"],
                "source": "partner_referral",
                "status": "converted",
                "outcome": "current",
                "distributed_at": _at(-60),
                "accepted_at": _at(-60),
                "followed_up_at": _at(-58),
                "converted_opportunity_id": deal["id"],
            }
        ],
        "close_date_changes": history,
        "activities": activities,
    }
    return {
        "change": {"record_type": "opportunity", "before": deal, "after": after},
        "context": context,
        "as_of": AS_OF,
    }


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1000

    return {
        "p50_us": at(0.50),
        "p90_us": at(0.90),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": ordered[-1] / 1000,
        "mean_us": sum(ordered) / n / 1000,
    }


def run_case(checker: ChangeChecker, args: tuple[Any, ...], calls: int) -> dict[str, Any]:
    check = checker.check
    for _ in range(min(2000, calls)):  # warm-up: caches, branch predictors, allocator
        decision = check(*args, as_of=AS_OF)
    samples = [0] * calls
    cpu_samples = [0] * calls
    clock = time.perf_counter_ns
    cpu = time.thread_time_ns
    started = clock()
    for index in range(calls):
        c0 = cpu()
        t0 = clock()
        decision = check(*args, as_of=AS_OF)
        t1 = clock()
        cpu_samples[index] = cpu() - c0
        samples[index] = t1 - t0
    elapsed = (clock() - started) / 1e9
    out = percentiles(samples)
    out["cpu"] = percentiles(cpu_samples)
    out.update(calls=calls, calls_per_s=round(calls / elapsed), allowed=decision.allowed)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls per case")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--builtin-only", action="store_true", help="no third-party packs")
    options = parser.parse_args(argv)
    if options.builtin_only:
        from importlib.metadata import entry_points

        names = {ep.name for ep in entry_points(group="tsos_rules")}
        os.environ["TSOS_RULES_DISABLE_PLUGINS"] = ",".join(sorted(names))

    checker = ChangeChecker.from_config(None)
    results: dict[str, Any] = {}
    for name, locked in (("allowed", False), ("refused", True)):
        body = realistic_change(locked=locked)
        change = body["change"]
        dict_args = ("opportunity", change["before"], change["after"], body["context"])
        snapshot, _ = snapshot_from_dict(body["context"])
        records = snapshot_from_dict({"opportunities": [change["before"], change["after"]]})[0]
        before_record, after_record = records.opportunities
        assert isinstance(after_record, Opportunity)
        record_args = ("opportunity", before_record, after_record, snapshot)
        results[f"{name}/dict"] = run_case(checker, dict_args, options.calls)
        results[f"{name}/records"] = run_case(checker, record_args, options.calls)
    checker.close()

    meta = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "packs": checker.rule_versions,
        "target_p99_us": TARGET_P99_US,
    }
    met = all(v["p99_us"] <= TARGET_P99_US for k, v in results.items() if k.endswith("/dict"))
    if options.json:
        print(json.dumps({"meta": meta, "results": results, "target_met": met}, indent=1))
    else:
        print(f"check_change, {options.calls} calls per case; {meta}")
        print(
            f"{'case (us)':<26}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>9}{'calls/s':>9}"
        )
        for name, row in results.items():
            for label, figures in ((f"{name} wall", row), (f"{name} cpu", row["cpu"])):
                rate = row["calls_per_s"] if label.endswith("wall") else ""
                print(
                    f"{label:<26}{figures['p50_us']:>8.0f}{figures['p90_us']:>8.0f}"
                    f"{figures['p99_us']:>8.0f}{figures['p999_us']:>8.0f}"
                    f"{figures['max_us']:>9.0f}{rate:>9}"
                )
        print(f"target p99 <= {TARGET_P99_US:.0f} us (dict input): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
