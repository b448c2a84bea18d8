#!/usr/bin/env python3
"""Measure how many tasks are still missing after the CRM refused a run's writes (issue 14 #1).

    python bench/bench_pending_writes.py [--deals 1000]

Seeds the demo CRM, runs a full sync whose task creates the CRM refuses (every one answers
``failed``, as Salesforce does after Collections 500 on every retry), then two normal runs the
same day (incremental, nothing changed). Prints, after each run, its exit code, the writes
still pending and the open findings that want a task but have none in the CRM. Exit status: 0
when no task is missing after the second run, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, ActionStatus
from tsos_rules.connectors.local import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.state import StateStore

AS_OF = dt.date(2026, 11, 24)


class RefusesCreates(LocalConnector):
    """Every task create answers FAILED and writes nothing."""

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        others = iter(super().write([a for a in actions if a.kind is not ActionKind.CREATE_TASK]))
        return [
            ActionResult(a.fingerprint, a.kind, ActionStatus.FAILED, error="500 UNKNOWN_EXCEPTION")
            if a.kind is ActionKind.CREATE_TASK
            else next(others)
            for a in actions
        ]


def missing(crm: LocalCRM, state_path: Path) -> tuple[int, int]:
    """(open warn/block findings, those without an open task in the CRM)."""
    state = StateStore(state_path)
    try:
        wanted = {
            f.fingerprint
            for f in state.findings("local", status="open")
            if f.severity in ("warn", "block")
        }
    finally:
        state.close()
    tasks = {t["external_id"] for t in crm.tasks(status="open")}
    return len(wanted), len(wanted - tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        crm_path, state_path = Path(tmp) / "crm.sqlite3", Path(tmp) / "state.sqlite3"
        crm = LocalCRM(crm_path)
        crm.seed_demo(opportunities=args.deals, seed=7, as_of=AS_OF)
        config = {
            "connector": {"type": "local", "path": str(crm_path)},
            "state": {"path": str(state_path)},
        }
        rows = []
        for run in range(3):
            connector = RefusesCreates(crm) if run == 0 else None
            summary = run_sync(config, as_of=AS_OF, connector=connector, charts=False).to_dict()
            wanted, lost = missing(crm, state_path)
            rows.append(
                {
                    "run": run + 1,
                    "full": summary["full"],
                    "exit_code": summary["exit_code"],
                    "failed": summary["actions"]["failed"],
                    "written": summary["actions"]["written"],
                    "pending": summary["actions"].get("pending"),
                    "tasks_wanted": wanted,
                    "tasks_missing": lost,
                }
            )
        crm.close()
    print(json.dumps(rows, indent=1))
    return 0 if rows[-1]["tasks_missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
