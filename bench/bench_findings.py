"""How fast does ``tsos-rules findings`` answer on a big state store?

Fills a fresh state file with N open findings (default 1,000,000) spread over realistic owners,
partners, accounts, rules and ages, adds a few exemptions, then times filtered worklist queries
(the same ``StateStore.worklist`` the command runs). Target: every filtered query <= 1 s.

    python bench/bench_findings.py                 # 1M findings in a temp dir
    python bench/bench_findings.py --findings 200000 --keep /tmp/state-200k.sqlite3
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tsos_rules.sync.state import StateStore
from tsos_rules.sync.state.worklist import WorklistQuery

RULES = [
    ("tsos.channel-lead-not-direct", "block", "no_partner"),
    ("tsos.partner-of-record-required", "block", "missing"),
    ("tsos.next-step-required", "block", "past_due"),
    ("tsos.close-date-locked", "block", "moved_unapproved"),
    ("tsos.commit-integrity", "block", "out_of_quarter"),
    ("tsos.close-date-slipping", "warn", "slipping"),
    ("tsos.stage-probability-consistent", "warn", "off_ladder"),
    ("tsos.lead-outcome-recorded", "warn", "no_outcome"),
    ("tsos.partner-lead-followup", "warn", "no_followup"),
    ("tsos.lead-single-owner", "warn", "conflict"),
    ("tsos.partner-told-of-direct-contact", "warn", "not_notified"),
    ("tsos.partner-of-record-drift", "warn", "drift"),
]
CONNECTOR = "local"


def _rows(n: int, seed: int, now: dt.datetime) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    for i in range(n):
        rule, severity, reason = RULES[rng.randrange(len(RULES))]
        deal = f"o{i:07d}"
        owner = rng.randrange(500)
        partner = rng.randrange(200)
        account = rng.randrange(50_000)
        first = now - dt.timedelta(days=rng.randrange(180), seconds=rng.randrange(86_400))
        fingerprint = hashlib.blake2b(f"{rule}|{deal}|{reason}".encode(), digest_size=16)
        seen = first.isoformat(timespec="microseconds")
        yield (
            CONNECTOR,
            fingerprint.hexdigest(),
            rule,
            severity,
            "opportunity",
            deal,
            reason,
            f"Deal {deal} breaks {rule} ({reason}).",
            f"u{owner:04d}",
            f"Owner {owner}",
            f"p{partner:04d}" if partner else None,
            f"Partner {partner}" if partner else None,
            f"Deal {i}",
            f"a{account:06d}",
            f"Account {account}",
            f"https://example.my.salesforce.com/lightning/r/Opportunity/{deal}/view",
            seen,
            seen,
        )


def fill(path: Path, n: int, seed: int) -> float:
    started = time.perf_counter()
    store = StateStore(path)
    now = dt.datetime.now(dt.UTC)
    db = store.db
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO findings (connector, fingerprint, rule, severity, record_type, record_id, "
        "reason, message, owner_id, owner_name, partner_id, partner_name, record_name, "
        "account_id, account_name, record_url, status, first_seen, last_seen, last_run) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 1)",
        _rows(n, seed, now),
    )
    db.executemany(
        "INSERT INTO rule_texts VALUES (?, ?, ?, '', ?)",
        [(CONNECTOR, rule, rule, f"Fix {rule}.") for rule, _, _ in RULES],
    )
    db.execute("COMMIT")
    store.recount(CONNECTOR)  # the findings went in without the store: count them
    for k in range(20):
        store.add_exemption(
            CONNECTOR,
            rule="tsos.*",
            record_type="opportunity",
            record_id=f"o{k * 997:07d}",
            reason="bench",
            approver="bench",
            expires=now.date() + dt.timedelta(days=30),
        )
    db.execute("ANALYZE")
    store.close()
    return time.perf_counter() - started


QUERIES: dict[str, WorklistQuery] = {
    "--owner 'Owner 42'": WorklistQuery(owner="Owner 42"),
    "--owner u0042 --sort age": WorklistQuery(owner="u0042", sort="age"),
    "--partner 'Partner 7' --severity block": WorklistQuery(partner="Partner 7", severity="block"),
    "--account 'Account 1234'": WorklistQuery(account="Account 1234"),
    "--rule 'tsos.close-*' --older-than 150 --limit 100": WorklistQuery(
        rule="tsos.close-*", older_than_days=150, limit=100
    ),
    "--severity block --limit 50 (default sort)": WorklistQuery(severity="block", limit=50),
    "--limit 50 (no filter)": WorklistQuery(limit=50),
    "--status exempt": WorklistQuery(status="exempt"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per query (best kept)")
    parser.add_argument("--keep", type=Path, help="write the state file here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "state.sqlite3"
        if path.exists():
            path.unlink()
        took = fill(path, args.findings, args.seed)
        print(f"filled {args.findings:,} findings in {took:.1f} s ({path})")
        store = StateStore(path)
        worst = 0.0
        try:
            for label, query in QUERIES.items():
                best = float("inf")
                count = 0
                for _ in range(args.runs):
                    started = time.perf_counter()
                    count = len(store.worklist(CONNECTOR, query))
                    best = min(best, time.perf_counter() - started)
                worst = max(worst, best)
                print(f"{best * 1000:8.1f} ms  {count:>7,} rows  findings {label}")
        finally:
            store.close()
    verdict = "OK" if worst <= 1.0 else "TOO SLOW"
    print(f"slowest filtered query: {worst * 1000:.0f} ms (target <= 1000 ms): {verdict}")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
