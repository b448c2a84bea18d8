#!/usr/bin/env python3
"""Peak RSS of a full ``tsos-rules sync`` through the ``tabular`` connector on a large SQLite
CRM: read whole (one batch, as before ``read_batches``) against read in pages of company groups.

    python bench/bench_tabular_memory.py --opportunities 100000

The org is ``bench/generate.py``'s generator, laid out one table per record type with the
snapshot's field names as columns. Each sync runs in a child process of its own (report mode,
no writes), so its peak RSS is its own; both runs must find the same findings.
Exit status: 0 the paged run peaked lower with the same findings, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

AS_OF = dt.date(2026, 11, 24)
HERE = Path(__file__).resolve().parent
TABLES = {
    "users": "user",
    "partners": "partner",
    "accounts": "account",
    "leads": "lead",
    "opportunities": "opportunity",
    "close_date_changes": "close_date_change",
    "activities": "activity",
}
STAMP = "2026-11-01T00:00:00+00:00"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _columns(records: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    nested: set[str] = set()  # partner_consent: an object, not one column
    for record in records:
        for key, value in record.items():
            seen.setdefault(key, None)
            if isinstance(value, dict):
                nested.add(key)
    return [key for key in seen if key != "id" and key not in nested]


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


def step_seed(workdir: Path, opportunities: int) -> dict[str, Any]:
    """The generated org in ``crm.sqlite3`` and the connector table that maps it."""
    from tsos_rules.connectors.local.demo import write_org_json

    org = workdir / "org.json"
    counts = write_org_json(org, opportunities=opportunities, seed=7, as_of=AS_OF)
    document = json.loads(org.read_text())
    org.unlink()
    db = sqlite3.connect(workdir / "crm.sqlite3")
    tables: dict[str, Any] = {}
    for collection, record in TABLES.items():
        rows = document.get(collection, [])
        columns = _columns(rows)
        names = ["id", *columns, "updated_at"]
        quoted = ", ".join(f'"{c}"' for c in names)
        db.execute(f"CREATE TABLE {collection} ({quoted})")
        for column in ("account_id", "what_id", "opportunity_id", "converted_opportunity_id"):
            if column in columns:
                db.execute(f"CREATE INDEX {collection}_{column} ON {collection} ({column})")
        db.execute(f"CREATE UNIQUE INDEX {collection}_id ON {collection} (id)")
        db.executemany(
            f"INSERT INTO {collection} VALUES ({', '.join('?' * len(names))})",
            (
                [row.get("id") or f"h{i}", *(_cell(row.get(c)) for c in columns), STAMP]
                for i, row in enumerate(rows)
            ),
        )
        tables[record] = {
            "table": collection,
            "id": "id",
            "modified": "updated_at",
            "columns": {c: c for c in columns},
        }
    db.commit()
    db.close()
    (workdir / "tables.json").write_text(json.dumps(tables))
    return {"counts": counts, "db_mb": round((workdir / "crm.sqlite3").stat().st_size / 2**20)}


def step_sync(workdir: Path, how: str) -> dict[str, Any]:
    """One full sync; ``how`` is ``whole`` (the connector offers no ``read_batches``) or
    ``paged``."""
    from tsos_rules.connectors.tabular.connector import TabularConnector
    from tsos_rules.sync.job import run_sync

    if how == "whole":
        del TabularConnector.read_batches  # the job then calls read(): one batch
    config = {
        "connector": {
            "type": "tabular",
            "url": f"sqlite:///{workdir / 'crm.sqlite3'}",
            "tables": json.loads((workdir / "tables.json").read_text()),
        },
        "state": {"path": str(workdir / f"state-{how}.sqlite3")},
        "sync": {"mode": "report"},
    }
    before = _peak_mb()
    start = time.perf_counter()
    summary = run_sync(config, as_of=AS_OF, full=True).to_dict()
    return {
        "how": how,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "rss_before_sync_mb": round(before, 1),
        "batches": summary.get("batches"),
        "records_read": summary["records"]["read"],
        "findings_new": summary["findings"]["new"],
        "findings_by_rule": summary["findings"]["by_rule"],
    }


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"bench step {args[0]} failed with exit {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_seed":
        print(json.dumps(step_seed(Path(argv[1]), int(argv[2]))))
        return 0
    if argv and argv[0] == "_sync":
        print(json.dumps(step_sync(Path(argv[1]), argv[2])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=100_000, help="deals (100000)")
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "tabular-memory")
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    seed = _child(["_seed", str(args.workdir), str(args.opportunities)])
    print(f"seeded: {json.dumps(seed)}", file=sys.stderr)
    runs = {how: _child(["_sync", str(args.workdir), how]) for how in ("whole", "paged")}
    shutil.rmtree(args.workdir, ignore_errors=True)
    for run in runs.values():
        print(
            f"{run['how']}: {args.opportunities:,} deals, peak RSS {run['peak_rss_mb']:.0f} MB "
            f"(before the sync {run['rss_before_sync_mb']:.0f} MB), {run['wall_s']} s, "
            f"{run['records_read']:,} records read, {run['findings_new']:,} findings"
        )
    whole, paged = runs["whole"], runs["paged"]
    same = whole["findings_by_rule"] == paged["findings_by_rule"]
    print(f"same findings: {same}")
    return 0 if same and paged["peak_rss_mb"] < whole["peak_rss_mb"] else 1


if __name__ == "__main__":
    sys.exit(main())
