"""The report page's worklist in real Chromium (Playwright): filter by owner, the "my deals" link,
sort by age, search, pages, deep links, and a message that tries to inject a script.

Skipped only when Chromium is missing *and* ``CI`` is unset (see tests/chromium_support.py).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from chromium_support import browser
from tsos_rules.engine import Engine
from tsos_rules.report.html import render_html
from tsos_rules.sync.state.worklist import WorklistRow
from tsos_rules.sync.summary import SyncSummary, WorklistPage

pytestmark = pytest.mark.chromium

XSS = "</script><script>alert(1)</script>"
OWNERS = ("Ray Ortiz", "Mia Chen", "Jo Park")


def _row(i: int, *, url: str | None = None, message: str | None = None) -> WorklistRow:
    """Finding ``i`` of 60: ages 2..61 all differ (7 * i mod 61 is a permutation), owners
    rotate, every third finding is a block."""
    age = (7 * i) % 61 + 1
    block = i % 3 == 0
    return WorklistRow(
        fingerprint=f"fp{i:03}",
        status="open",
        rule="tsos.close-date-locked" if block else "tsos.close-date-slipping",
        severity="block" if block else "warn",
        reason="moved_unapproved" if block else "pushed_repeatedly",
        record_type="opportunity",
        record_id=f"o{i:03}",
        record_name=f"Deal {i:03}",
        owner=OWNERS[i % 3],
        partner="Acme VAR" if i % 2 else None,
        account=f"Account {i % 7}",
        first_seen=f"2026-{1 + age // 28:02}-{1 + age % 28:02}",
        age_days=age,
        message=message or f"Close date of deal Deal {i:03} needs attention (case {i}).",
        remedy="",
        url=url,
    )


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """A CRM stand-in on 127.0.0.1: every path answers a page titled "CRM record"."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><title>CRM record</title><p>record page</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def report(target: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [_row(i, url=f"{target}/lightning/r/Opportunity/o{i:03}/view") for i in range(1, 58)]
    rows.append(_row(58, message=f"Next step {XSS} is a placeholder"))
    rows.append(_row(59, url="javascript:alert(3)"))
    rows.append(_row(60, message="Unique needle zebracorn in this message"))
    rows.append(attrs.evolve(_row(61), status="exempt", exemption_id=4))
    specs = {k: v for k, v in Engine.from_config(None).specs.items() if k.startswith("tsos.")}
    summary = SyncSummary(run_id=3, connector="local", mode="annotate", as_of="2026-11-24")
    path = tmp_path_factory.mktemp("page") / "report.html"
    path.write_text(
        render_html(summary.to_dict(), WorklistPage(tuple(rows), specs)), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as launched:
        yield launched


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    opened = context.new_page()
    opened.dialogs = []
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    try:
        yield opened
    finally:
        context.close()


def _open(page: Any, report: Path, fragment: str = "") -> None:
    page.goto(report.as_uri() + fragment)
    page.wait_for_selector("body[data-worklist=ready]", timeout=15_000)


def _column(page: Any, css: str) -> list[str]:
    return [text.strip() for text in page.locator(f"#worklist-rows td.{css}").all_inner_texts()]


def _ages(page: Any) -> list[int]:
    return [int(text.split()[0]) for text in _column(page, "age span.days")]


def test_filter_by_owner_shows_only_their_rows_and_the_address_keeps_it(
    page: Any, report: Path
) -> None:
    _open(page, report)
    assert page.get_attribute("#worklist-rows", "data-matches") == "60"
    page.select_option("#f-owner", "Mia Chen")
    assert page.get_attribute("#worklist-rows", "data-matches") == "20"
    owners = _column(page, "owner")
    assert len(owners) == 20 and set(owners) == {"Mia Chen"}
    assert "owner=Mia%20Chen" in page.url
    assert page.inner_text("#count").startswith("20 of 60 problems match for Mia Chen")

    # The address is shareable: a fresh page opened on it shows the same list.
    shared = page.context.new_page()
    _open(shared, report, "#owner=Jo%20Park&severity=warn")
    assert shared.input_value("#f-owner") == "Jo Park"
    assert shared.input_value("#f-severity") == "warn"
    assert set(_column(shared, "owner")) == {"Jo Park"}
    assert set(_column(shared, "severity")) == {"Should fix (warn)"}
    # Clicking an owner's name in a row is the "my deals" view for that owner.
    _open(page, report)
    page.locator("#worklist-rows a.only-owner", has_text="Ray Ortiz").first.click()
    page.wait_for_function("document.getElementById('f-owner').value === 'Ray Ortiz'")
    assert set(_column(page, "owner")) == {"Ray Ortiz"}


def test_sort_by_age_puts_the_oldest_first_across_pages(page: Any, report: Path) -> None:
    _open(page, report)
    page.select_option("#f-sort", "age")
    first = _ages(page)
    assert len(first) == 25
    page.click("#next")
    second = _ages(page)
    assert first + second == sorted(first + second, reverse=True)
    assert first[0] == 61 and first[-1] > second[0]
    assert "sort=age" in page.url and "page=2" in page.url
    page.click("th[data-sort=age]")  # the same header again: newest first
    assert _ages(page)[:3] == [2, 3, 4]


def test_search_finds_words_in_the_message(page: Any, report: Path) -> None:
    _open(page, report)
    page.fill("#f-search", "ZEBRACORN")
    page.wait_for_function("document.getElementById('worklist-rows').dataset.matches === '1'")
    assert page.inner_text("#worklist-rows td.record").startswith("Deal 060")
    page.fill("#f-search", "no such text anywhere")
    page.wait_for_function("document.getElementById('worklist-rows').dataset.matches === '0'")
    assert "No problem matches these filters." in page.inner_text("#worklist-rows")


def test_the_second_page_continues_the_first(page: Any, report: Path) -> None:
    _open(page, report)
    assert page.inner_text("#page-info") == "Page 1 of 3"
    assert page.is_disabled("#prev")
    one = page.locator("#worklist-rows td.record small").all_inner_texts()
    page.click("#next")
    two = page.locator("#worklist-rows td.record small").all_inner_texts()
    assert page.inner_text("#page-info") == "Page 2 of 3"
    assert len(one) == len(two) == 25 and not set(one) & set(two)
    page.click("#next")
    three = page.locator("#worklist-rows td.record small").all_inner_texts()
    assert len(three) == 10 and page.is_disabled("#next")
    assert len(set(one + two + three)) == 60


def test_a_deep_link_opens_the_record_in_the_crm(page: Any, report: Path, target: str) -> None:
    _open(page, report, "#q=Deal%20007")
    link = page.locator("#worklist-rows a.deep-link")
    assert link.count() == 1
    href = link.get_attribute("href")
    assert href == f"{target}/lightning/r/Opportunity/o007/view"
    with page.context.expect_page() as opened:
        link.click()
    record = opened.value
    record.wait_for_load_state()
    assert record.url == href and record.title() == "CRM record"
    # A link that is not http(s) is never made clickable.
    _open(page, report, "#q=Deal%20059")
    assert page.locator("#worklist-rows a.deep-link").count() == 0
    assert "Deal 059" in page.inner_text("#worklist-rows td.record")


def test_a_message_with_a_script_shows_as_text_and_runs_nothing(page: Any, report: Path) -> None:
    _open(page, report, "#q=placeholder")
    message = page.inner_text("#worklist-rows td.problem div.message")
    assert message == f"Next step {XSS} is a placeholder"
    assert page.dialogs == []
    assert page.locator("script").count() == 2  # the data and the page's own script
    assert page.evaluate("typeof window.alert") == "function"


def test_the_reason_is_in_plain_words_with_what_to_do_and_the_doctrine(
    page: Any, report: Path
) -> None:
    _open(page, report, "#severity=block&sort=age")
    problem = page.locator("#worklist-rows td.problem").first
    assert problem.locator("b.reason").inner_text() == (
        "A locked deal's close date moved without approval"
    )
    assert problem.locator("div.todo").inner_text() == (
        "What to do: Get the move approved, or restore the previous close date."
    )
    problem.locator("summary").click()
    assert "Lock down date" in problem.locator("blockquote.doctrine").inner_text()


def test_exempt_findings_are_behind_the_show_choice(page: Any, report: Path) -> None:
    _open(page, report)
    assert page.is_visible("#f-status")
    assert "Deal 061" not in page.inner_text("#worklist-rows")
    page.select_option("#f-status", "exempt")
    assert page.get_attribute("#worklist-rows", "data-matches") == "1"
    assert page.inner_text("#worklist-rows td.severity") == "Should fix (warn)\nexempt (#4)"
    assert page.inner_text("#count").startswith("1 of 1 problems match")
    page.select_option("#f-status", "all")
    assert page.get_attribute("#worklist-rows", "data-matches") == "61"


def test_with_nothing_exempt_there_is_no_show_choice(
    chromium: Any, target: str, tmp_path: Path
) -> None:
    summary = SyncSummary(run_id=1, connector="local", mode="annotate", as_of="2026-11-24")
    path = tmp_path / "plain.html"
    path.write_text(
        render_html(summary.to_dict(), WorklistPage((_row(2), _row(3)), {})), encoding="utf-8"
    )
    page = chromium.new_page()
    try:
        _open(page, path)
        assert not page.is_visible("#f-status")
        assert page.inner_text("#count").startswith("2 of 2 problems match")
        # A rule the page has no text for is named by its id, its reason by its code.
        reasons = set(page.locator("#worklist-rows b.reason").all_inner_texts())
        assert reasons == {"Moved unapproved", "Pushed repeatedly"}
        rules = page.locator("#worklist-rows small.rule").all_text_contents()
        assert "Rule: tsos.close-date-locked" in rules
    finally:
        page.close()
