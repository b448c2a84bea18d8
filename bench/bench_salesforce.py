#!/usr/bin/env python3
"""Benchmark the Salesforce connector against the fake org: API calls and client CPU.

    python bench/bench_salesforce.py                     # N = 1,000, 10,000 and 100,000
    python bench/bench_salesforce.py --sizes 1000 --json
    python bench/bench_salesforce.py --sizes 1000,10000 --paged 100   # read_batches, 100 groups
    python bench/bench_salesforce.py --sizes 1000,10000 --totals 100  # a sync with totals
    python bench/bench_salesforce.py --sizes 10000 --readers 1000     # a moved total's readers

For a sync of N changed opportunities (with their accounts, converted leads, close-date history,
open tasks and events, owners and partners) that writes W finding tasks and R conditional
repairs, the HTTP calls the connector makes must equal

    1 (auth) + Σ_q ceil(rows_q / 2000) + ceil(W / 200) + ceil(R / 25)

where rows_q is what query q matched *on the server* (the fake org's own count, not the
client's), and a query that matches nothing still costs its one call (max(1, …)). The REST
path is measured with the Bulk threshold above N; at N = 100,000 the default threshold
(10,000 rows) is measured as well, where a query above it costs one REST page (which tells its
size), the job creation, the status polls and ceil(rows / 50,000) result pages instead.

Local CPU per 10,000 records read and mapped is the process CPU time of ``connector.read``
less the CPU the fake org spent answering (building and serialising its pages).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tsos_rules.connectors.base import Action, ActionKind
from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.connectors.salesforce.writer import LOOKUP_SIZE
from tsos_rules.engine import Engine
from tsos_rules.findings import Severity
from tsos_rules.testing.fake_salesforce import FakeSalesforce

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
TODAY = T0.date()
PAGE = 2000
BULK_PAGE = 50_000
STAGES = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Perception Analysis",
    "Negotiation/Review",
]


def build_org(n: int, seed: int = 7) -> FakeSalesforce:
    """N deals changed after T0, with everything around them created the day before."""
    rng = random.Random(seed)
    fake = FakeSalesforce(now=T0 - dt.timedelta(days=1), daily_limit=10_000_000)
    fake.add_field("Account", "Partner_of_Record__c", "reference", reference_to=["Account"])
    fake.add_field("Opportunity", "Next_Step_Date__c", "date")
    users = [
        fake.add_user(f"Rep {i}", role="Direct Sales" if i % 2 else "Channel Manager")
        for i in range(40)
    ]
    partners = [fake.insert("Account", Name=f"VAR {i}", IsPartner=i % 10 != 0) for i in range(30)]
    accounts = [
        fake.insert(
            "Account",
            Name=f"Customer {i}",
            Partner_of_Record__c=rng.choice(partners) if rng.random() < 0.5 else None,
        )
        for i in range(max(10, n // 4))
    ]
    deals = []
    for i in range(n):
        stage = rng.choice(STAGES)
        deal = fake.insert(
            "Opportunity",
            Name=f"Deal {i}",
            AccountId=rng.choice(accounts),
            OwnerId=rng.choice(users),
            PartnerAccountId=rng.choice(partners) if rng.random() < 0.3 else None,
            StageName=stage,
            CloseDate=TODAY + dt.timedelta(days=rng.randint(5, 120)),
            Amount=float(rng.randint(5, 500) * 1000),
            NextStep=rng.choice(["TBD", "Demo for the CFO", None]),
            Next_Step_Date__c=TODAY + dt.timedelta(days=rng.randint(-5, 20)),
        )
        deals.append(deal)
        if rng.random() < 0.3:
            fake.insert(
                "Lead",
                Company=f"Customer {i}",
                LastName="Buyer",
                OwnerId=rng.choice(users),
                PartnerAccountId=rng.choice(partners) if rng.random() < 0.5 else None,
                LeadSource=rng.choice(["Web", "Partner Referral"]),
                Status="Closed - Converted",
                IsConverted=True,
                ConvertedOpportunityId=deal,
            )
        if rng.random() < 0.5:
            fake.insert(
                "Task",
                Subject="Follow up",
                WhatId=deal,
                OwnerId=rng.choice(users),
                ActivityDate=TODAY + dt.timedelta(days=rng.randint(-3, 10)),
            )
        if rng.random() < 0.1:
            fake.insert(
                "Event",
                Subject="Meeting",
                WhatId=deal,
                OwnerId=rng.choice(users),
                ActivityDate=TODAY + dt.timedelta(days=rng.randint(1, 10)),
            )
    fake.now = T0 - dt.timedelta(hours=12)
    for deal in deals[: n // 5]:  # a fifth had their close date pushed
        record = fake.tables["Opportunity"][deal]
        fake.update("Opportunity", deal, CloseDate=record["CloseDate"] + dt.timedelta(days=30))
    fake.now = T0 + dt.timedelta(seconds=10)
    for deal in deals:  # then every deal changed after the watermark T0 (no tracked field)
        fake.update("Opportunity", deal, NextStep=fake.tables["Opportunity"][deal]["NextStep"])
    fake.now = T0 + dt.timedelta(minutes=5)
    return fake


def table(consumer_key: str, username: str, key_file: Path, bulk_threshold: int) -> dict[str, Any]:
    return {
        "type": "salesforce",
        "auth": {
            "username": username,
            "consumer_key": consumer_key,
            "private_key": {"file": str(key_file)},
        },
        "fields": {
            "partner_of_record": "Account.Partner_of_Record__c",
            "next_step_date": "Opportunity.Next_Step_Date__c",
        },
        "users": {"direct": ["Direct*"], "channel": ["Channel*"]},
        "budget": {"max_run_share": 1.0, "min_remaining_share": 0.0},
        "read": {"bulk_threshold": bulk_threshold, "watermark_lag_seconds": 0},
    }


def integration(
    fake: FakeSalesforce, workdir: Path, name: str, bulk_threshold: int
) -> Callable[[], SalesforceConnector]:
    """The org set up for the integration user's JWT login, and a factory of connectors on it
    (no sleeps, the fake org's clock)."""
    creds = fake.setup_jwt()
    key_file = workdir / f"key-{name}.pem"
    key_file.write_text(creds.private_key_pem)

    def make() -> SalesforceConnector:
        return SalesforceConnector.from_settings(
            table(creds.consumer_key, creds.username, key_file, bulk_threshold),
            sleep=lambda seconds: None,
            now=lambda: fake.now,
        )

    return make


def plan(connector: SalesforceConnector, result: Any) -> list[Action]:
    """Finding tasks (block and warn) and close-date repairs, as the sync job would plan them."""
    engine = Engine.from_config(None)
    try:
        findings = engine.evaluate(result.snapshot, TODAY)
    finally:
        engine.close()
    actions: list[Action] = []
    for finding in findings:
        if (finding.record_type, finding.record_id) not in result.changed:
            continue
        if finding.severity is Severity.INFO:
            continue
        actions.append(
            Action(
                ActionKind.CREATE_TASK,
                finding.fingerprint,
                finding.record_type,
                finding.record_id,
                subject=finding.message[:200],
                rule=finding.rule,
            )
        )
        if finding.reason == "moved_unapproved" and finding.details.get("restore_to"):
            actions.append(
                Action(
                    ActionKind.UPDATE_FIELDS,
                    finding.fingerprint,
                    finding.record_type,
                    finding.record_id,
                    changes={"close_date": finding.details["restore_to"]},
                    expected_version=result.versions[(finding.record_type, finding.record_id)],
                )
            )
    return actions


def query_terms(
    stats: list[Any], queries: list[tuple[str, int]], fake: FakeSalesforce
) -> list[Any]:
    """Each query's term of the formula, from the server's own row counts."""
    terms = []
    log = iter(queries)  # the server's own row counts, query by query
    for stat in stats:
        _, rows = next(log)
        if stat.bulk:
            _, rows = next(log)  # the REST page that told the size, then the Bulk job
            cost = 1 + 1 + fake.bulk_polls + max(1, math.ceil(rows / BULK_PAGE))
        else:
            cost = max(1, math.ceil(rows / PAGE))
        terms.append({"query": stat.label, "rows": rows, "bulk": stat.bulk, "calls": cost})
    return terms


def run_paged(n: int, *, batch_size: int, fake: FakeSalesforce, workdir: Path) -> dict[str, Any]:
    """A full ``read_batches`` of the org in pages of ``batch_size`` company groups: its calls
    against the formula (login + describe + Σ over queries), and the largest page."""
    with fake.mock(keep_history=False):
        connector = integration(fake, workdir, f"{n}-paged", n * 10)()
        fake.reset_counts()
        try:
            started = time.perf_counter()
            pages = largest = deals = 0
            for batch in connector.read_batches(None, batch_size=batch_size):
                pages += 1
                deals += len(batch.snapshot.opportunities)
                largest = max(largest, batch.snapshot.record_count)
            seconds = time.perf_counter() - started
            terms = query_terms(list(connector.client.query_stats), list(fake.query_log), fake)
        finally:
            connector.close()
    formula = 1 + 1 + sum(t["calls"] for t in terms)
    measured = fake.count()
    return {
        "n": n,
        "batch_size": batch_size,
        "pages": pages,
        "deals": deals,
        "largest_page_records": largest,
        "queries": len(terms),
        "measured": measured,
        "formula": formula,
        "equal": measured == formula,
        "read_seconds": round(seconds, 3),
    }


def run_totals(
    n: int, *, batch_size: int, bulk_threshold: int, fake: FakeSalesforce, workdir: Path
) -> dict[str, Any]:
    """The reads of a full sync whose packs total deals over the org (channel-economics'
    partner credit): without ``stream_records`` the job read the org in pages twice (once for
    the totals, once to judge); with it, the deals are streamed alone, then paged once. API
    calls of each (login and describe left out: both paths make them once), and the stream's
    calls against the formula (REST: ceil(rows / 2000); Bulk: as ``query_terms``)."""

    def drain(batches: Any) -> tuple[int, int]:
        pages = records = 0
        for batch in batches:
            pages += 1
            records += batch.snapshot.record_count
        return pages, records

    with fake.mock(keep_history=False):
        make = integration(fake, workdir, f"{n}-totals", bulk_threshold)
        counts: dict[str, int] = {}
        for path in ("paged twice", "streamed"):
            connector = make()
            try:
                connector.fit_to_org()  # login and describe: the same on both paths
                fake.reset_counts()
                connector.client.query_stats.clear()
                if path == "streamed":
                    started = time.perf_counter()
                    pages, deals = drain(connector.stream_records("opportunity"))
                    stream_seconds = time.perf_counter() - started
                    stream_calls = fake.count()
                    terms = query_terms(
                        list(connector.client.query_stats), list(fake.query_log), fake
                    )
                    drain(connector.read_batches(None, batch_size=batch_size))
                else:
                    drain(connector.read_batches(None, batch_size=batch_size))
                    drain(connector.read_batches(None, batch_size=batch_size))
                counts[path] = fake.count()
            finally:
                connector.close()
    formula = sum(t["calls"] for t in terms)
    return {
        "n": n,
        "batch_size": batch_size,
        "mode": "bulk" if any(t["bulk"] for t in terms) else "rest",
        "calls_paged_twice": counts["paged twice"],
        "calls_streamed_then_paged": counts["streamed"],
        "stream_calls": stream_calls,
        "stream_formula": formula,
        "stream_pages": pages,
        "stream_deals": deals,
        "stream_seconds": round(stream_seconds, 3),
        "equal": stream_calls == formula and deals == n,
    }


def run_readers(
    n: int, *, partners: int, batch_size: int, fake: FakeSalesforce, workdir: Path
) -> dict[str, Any]:
    """The read of a moved total's readers (the deals of ``partners`` partners) in an
    incremental sync: ``read_where`` (their company groups, in pages of ``batch_size`` groups,
    after a key pass over the org) against ``stream_where`` (their linked records alone). API
    calls (login and describe left out), rows the org returned, records handed to the job,
    and the client's wall and CPU time (less the fake org's own CPU)."""
    with fake.mock(keep_history=False):
        make = integration(fake, workdir, f"{n}-readers", n * 10)
        wanted = sorted(
            r["Id"] for r in fake.records("Account") if str(r["Name"]).startswith("VAR ")
        )[:partners]
        out: dict[str, Any] = {"n": n, "partners": partners, "batch_size": batch_size}
        judged: dict[str, set[Any]] = {}
        for path in ("read_where", "stream_where"):
            connector = make()
            try:
                connector.fit_to_org()  # login and describe: the same on both paths
                fake.reset_counts()
                connector.client.query_stats.clear()
                server_before = fake.server_cpu
                cpu_before = time.process_time()
                wall_before = time.perf_counter()
                if path == "read_where":
                    batches = connector.read_where(
                        "opportunity", "partner_id", wanted, batch_size=batch_size
                    )
                else:
                    batches = connector.stream_where("opportunity", "partner_id", wanted)
                records = 0
                judged[path] = set()
                for batch in batches:
                    records += batch.snapshot.record_count + len(batch.snapshot.close_date_changes)
                    judged[path] |= batch.affected
                wall = time.perf_counter() - wall_before
                cpu = (time.process_time() - cpu_before) - (fake.server_cpu - server_before)
                out[path] = {
                    "calls": fake.count(),
                    "rows": sum(rows for _, rows in fake.query_log),
                    "records": records,
                    "readers": len(judged[path]),
                    "seconds": round(wall, 3),
                    "cpu_seconds": round(cpu, 3),
                }
            finally:
                connector.close()
    out["equal"] = judged["read_where"] == judged["stream_where"]
    return out


def run(n: int, *, bulk_threshold: int, fake: FakeSalesforce, workdir: Path) -> dict[str, Any]:
    with fake.mock(keep_history=False):
        connector = integration(fake, workdir, f"{n}-{bulk_threshold}", bulk_threshold)()
        fake.reset_counts()
        try:
            server_before = fake.server_cpu
            cpu_before = time.process_time()
            wall_before = time.perf_counter()
            result = connector.read(T0.strftime("%Y-%m-%dT%H:%M:%SZ"))
            read_wall = time.perf_counter() - wall_before
            read_cpu = (time.process_time() - cpu_before) - (fake.server_cpu - server_before)
            queries = list(fake.query_log)
            read_stats = list(connector.client.query_stats)  # the writer queries too, below
            actions = plan(connector, result)
            tasks = sum(1 for a in actions if a.kind is ActionKind.CREATE_TASK)
            repairs = sum(1 for a in actions if a.kind is ActionKind.UPDATE_FIELDS)
            results = connector.write(actions)
        finally:
            connector.close()
    stats = read_stats
    rows_read = sum(s.rows for s in stats)
    # login, the describe() of the org before the first query, writes, the writer's re-read of
    # LastModifiedDate before repairs (one query per LOOKUP_SIZE records); then the queries
    formula = 1 + 1 + math.ceil(tasks / 200) + math.ceil(repairs / 25)
    formula += math.ceil(repairs / LOOKUP_SIZE)
    terms = query_terms(stats, queries, fake)
    formula += sum(t["calls"] for t in terms)
    measured = fake.count()
    return {
        "n": n,
        "mode": "bulk" if any(t["bulk"] for t in terms) else "rest",
        "changed": sum(1 for k in result.changed if k[0] == "opportunity"),
        "queries": len(terms),
        "rows": sum(t["rows"] for t in terms),
        "tasks": tasks,
        "repairs": repairs,
        "written": sum(1 for r in results if r.status.value == "written"),
        "measured": measured,
        "formula": formula,
        "equal": measured == formula,
        "read_seconds": round(read_wall, 3),
        "read_cpu_seconds": round(read_cpu, 3),
        "records_mapped": result.snapshot.record_count + len(result.snapshot.close_date_changes),
        "rows_read": rows_read,
        "cpu_per_10k_rows": round(read_cpu / rows_read * 10_000, 4) if rows_read else None,
        "terms": terms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--verbose", action="store_true", help="print each query's term")
    parser.add_argument(
        "--paged",
        type=int,
        metavar="BATCH_SIZE",
        help="measure a full read_batches in pages of BATCH_SIZE company groups instead",
    )
    parser.add_argument(
        "--totals",
        type=int,
        metavar="BATCH_SIZE",
        help="measure a full sync's reads with org-wide totals: paged twice vs streamed + paged",
    )
    parser.add_argument(
        "--readers",
        type=int,
        metavar="BATCH_SIZE",
        help="measure reading a moved total's readers: read_where (company groups, pages of "
        "BATCH_SIZE) vs stream_where (linked records)",
    )
    parser.add_argument(
        "--partners", type=int, default=1, help="with --readers: the partners whose total moved"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.readers:
        readers = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                readers.append(
                    run_readers(
                        n,
                        partners=args.partners,
                        batch_size=args.readers,
                        fake=build_org(n),
                        workdir=Path(tmp),
                    )
                )
        for r in readers:
            print(json.dumps(r) if args.json else r)
        return 0 if all(r["equal"] for r in readers) else 1
    if args.totals:
        totals = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                for threshold in (n * 10, 10_000) if n > 10_000 else (n * 10,):
                    totals.append(
                        run_totals(
                            n,
                            batch_size=args.totals,
                            bulk_threshold=threshold,
                            fake=build_org(n),
                            workdir=Path(tmp),
                        )
                    )
        for r in totals:
            print(json.dumps(r) if args.json else r)
        return 0 if all(r["equal"] for r in totals) else 1
    if args.paged:
        paged = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                paged.append(
                    run_paged(n, batch_size=args.paged, fake=build_org(n), workdir=Path(tmp))
                )
        for r in paged:
            print(json.dumps(r) if args.json else r)
        return 0 if all(r["equal"] for r in paged) else 1
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n in sizes:
            started = time.perf_counter()
            fake = build_org(n)
            built = time.perf_counter() - started
            if not args.json:
                print(f"N = {n:,}: fake org built in {built:.1f} s", file=sys.stderr)
            reports.append(run(n, bulk_threshold=n * 10, fake=fake, workdir=workdir))
            if n > 10_000:
                fake = build_org(n)
                reports.append(run(n, bulk_threshold=10_000, fake=fake, workdir=workdir))
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        print(
            f"{'N':>8} {'path':>5} {'queries':>7} {'rows':>8} {'W':>7} {'R':>6} "
            f"{'measured':>8} {'formula':>8} {'equal':>5} {'read s':>7} {'CPU/10k rows':>12}"
        )
        for r in reports:
            print(
                f"{r['n']:>8,} {r['mode']:>5} {r['queries']:>7} {r['rows']:>8,} {r['tasks']:>7,} "
                f"{r['repairs']:>6,} {r['measured']:>8,} {r['formula']:>8,} "
                f"{'yes' if r['equal'] else 'NO':>5} {r['read_seconds']:>7.2f} "
                f"{r['cpu_per_10k_rows']:>10.3f} s"
            )
            if args.verbose:
                for term in r["terms"]:
                    kind = "bulk" if term["bulk"] else "rest"
                    rows, calls = term["rows"], term["calls"]
                    print(f"{'':>10}{term['query']:<28} {rows:>8,} rows  {kind}  {calls} call(s)")
    return 0 if all(r["equal"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
