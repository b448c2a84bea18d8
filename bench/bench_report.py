"""How fast is the HTML report at 100k open findings, to write and to use?

Fills a fresh state file with N open findings (default 100,000; the same generator as
``bench_findings.py``), two years of close-date pushes and a run log, then times what
``tsos-rules sync --html`` does after judging: read the worklist and the charts' counts from the
state, render the page, write it. Then loads the page in headless Chromium (Debian's, through
Playwright) and times until the first rows are on screen and the page answers (the script has
parsed the JSON and rendered page 1), then a filter, a search, a sort and a page turn, each until
the table shows the new rows. Targets: generated in <= 5 s, usable in the browser in <= 2 s.

    python bench/bench_report.py                    # 100k findings in a temp dir
    python bench/bench_report.py --findings 20000 --keep /tmp/report.html
    TSOS_RULES_CHROMIUM=/usr/bin/chromium python bench/bench_report.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tsos_rules.engine import Engine
from tsos_rules.report.html import render_html
from tsos_rules.sync.job import chart_data, worklist_page
from tsos_rules.sync.state import StateStore
from tsos_rules.sync.summary import SyncSummary
from tsos_rules.sync.trend import trend_point

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_findings import CONNECTOR, fill

GENERATE_TARGET_S = 5.0
USABLE_TARGET_S = 2.0


def add_history(path: Path, seed: int) -> None:
    """Two years of close-date pushes (about 1 % unapproved on a locked deal) and 12 runs."""
    rng = random.Random(seed)
    store = StateStore(path)
    try:
        db = store.db
        db.execute("BEGIN")
        today = dt.date.today()
        rows = []
        for month in range(24):
            day = today - dt.timedelta(days=30 * month)
            for k in range(rng.randrange(200, 800)):
                rows.append(
                    (CONNECTOR, f"o{rng.randrange(10**6):07d}", day.isoformat(), 1, k % 97 != 0)
                )
        db.executemany("INSERT INTO close_date_pushes VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        store.recount(CONNECTOR)  # the pushes went in without the store: count them
        for i in range(12):
            run = store.start_run(
                CONNECTOR,
                as_of=today - dt.timedelta(days=12 - i),
                mode="annotate",
                full=False,
                dry_run=False,
                watermark_from=None,
            )
            findings = {
                "new": rng.randrange(500, 5000),
                "resolved": rng.randrange(500, 5000),
                "open_block": 60_000 - 1000 * i,
                "by_rule": {"r": {"severity": "warn", "open": 50_000 - 500 * i}},
            }
            store.finish_run(
                run, CONNECTOR, outcome="ok", exit_code=1, counts={"findings": findings}
            )
    finally:
        store.close()


class _Clock:
    """Wall and CPU seconds per step (the CPU time shows what a busy machine's wall time hides)."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[float, float]] = {}
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def lap(self, label: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.steps[label] = (wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu

    def total(self) -> tuple[float, float]:
        return (sum(w for w, _ in self.steps.values()), sum(c for _, c in self.steps.values()))


def generate(state: Path, out: Path, specs: Any) -> _Clock:
    """What ``sync --html`` does after judging, timed step by step."""
    clock = _Clock()
    store = StateStore(state)
    try:
        summary = SyncSummary(
            run_id=99,
            connector=CONNECTOR,
            mode="annotate",
            as_of=dt.date.today().isoformat(),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        for rule, (severity, n) in store.open_by_rule_severity(CONNECTOR).items():
            counts = summary.rule(rule)
            counts.severity, counts.open = severity, n
        summary.findings_open = store.open_count(CONNECTOR)
        summary.open_block = store.open_count(CONNECTOR, severity="block")
        clock.lap("summary counts")
        summary.charts = chart_data(
            store,
            CONNECTOR,
            trend_point(99, summary.as_of, summary.started_at, summary.to_dict()["findings"]),
        )
        clock.lap("charts' counts")
        summary.worklist = worklist_page(store, CONNECTOR, specs)
        clock.lap("worklist query")
    finally:
        store.close()
    page = render_html(summary.to_dict(), summary.worklist)
    clock.lap("render")
    out.write_text(page, encoding="utf-8")
    clock.lap("write")
    return clock


def _timed(page: Any, action: Any) -> float:
    """Seconds from ``action`` until the table has been rendered again (``data-renders``)."""
    before = page.get_attribute("#worklist-rows", "data-renders")
    started = time.perf_counter()
    action()
    page.wait_for_function(
        "(before) => document.getElementById('worklist-rows').dataset.renders !== before",
        arg=before,
        timeout=30_000,
    )
    return time.perf_counter() - started


def browse(report: Path, chromium: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    times: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            started = time.perf_counter()
            page.goto(report.as_uri(), wait_until="commit")
            page.wait_for_selector("#worklist-rows tr.sev-block", timeout=60_000)
            page.wait_for_selector("body[data-worklist=ready]", timeout=60_000)
            times["load to first rows"] = time.perf_counter() - started
            rows = int(page.get_attribute("#worklist-rows", "data-matches") or 0)
            owner = page.locator("#f-owner option").nth(5).get_attribute("value")
            times["filter by owner"] = _timed(page, lambda: page.select_option("#f-owner", owner))
            times["sort by age"] = _timed(page, lambda: page.select_option("#f-sort", "age"))
            times["next page"] = _timed(page, lambda: page.click("#next"))
            page.select_option("#f-owner", "")
            times["search all rows"] = _timed(page, lambda: page.fill("#f-search", "o00123"))
            times["rows in the page"] = float(rows)
        finally:
            browser.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the report here and keep it")
    args = parser.parse_args(argv)
    chromium = os.environ.get("TSOS_RULES_CHROMIUM") or shutil.which("chromium")
    specs = Engine.from_config(None).specs
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.sqlite3"
        took = fill(state, args.findings, args.seed)
        add_history(state, args.seed)
        print(f"filled {args.findings:,} open findings in {took:.1f} s")
        report = args.keep or Path(tmp) / "report.html"
        gen = generate(state, report, specs)
        size = report.stat().st_size / 1e6
        for label, (wall, cpu) in gen.steps.items():
            print(f"{wall * 1000:8.0f} ms wall {cpu * 1000:8.0f} ms CPU  generate: {label}")
        wall, cpu = gen.total()
        print(f"report: {size:.1f} MB, {report}; load average {os.getloadavg()[0]:.1f}")
        ok = wall <= GENERATE_TARGET_S
        print(
            f"generated in {wall:.2f} s wall, {cpu:.2f} s CPU (target <= "
            f"{GENERATE_TARGET_S:.0f} s): {'OK' if ok else 'TOO SLOW'}"
        )
        if chromium is None:
            print("no Chromium (set TSOS_RULES_CHROMIUM or install chromium): browser not timed")
            return 0 if ok else 1
        used = browse(report, chromium)
        print(f"{int(used.pop('rows in the page')):,} rows in the page")
        for label, seconds in used.items():
            print(f"{seconds * 1000:8.0f} ms  browser: {label}")
        usable = used["load to first rows"]
        fine = usable <= USABLE_TARGET_S
        print(
            f"usable in {usable:.2f} s (target <= {USABLE_TARGET_S:.0f} s): "
            f"{'OK' if fine else 'TOO SLOW'}"
        )
        return 0 if ok and fine else 1


if __name__ == "__main__":
    sys.exit(main())
