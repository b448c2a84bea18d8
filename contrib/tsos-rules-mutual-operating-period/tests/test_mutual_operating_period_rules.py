"""mutual-operating-period: fiscal calendars, the quarter-end rule, the report section."""

from __future__ import annotations

import datetime as dt

import pytest
from tsos_rules_mutual_operating_period import PACK, RULE_ID, FiscalCalendar

from tsos_rules.testing import (
    channel_account,
    channel_deal,
    closed_deal,
    deal,
    evaluate,
    found,
    installed_packs,
    only,
    partner,
    report_sections,
    snapshot,
)

# The builders' today is 2026-11-24; with the default vendor calendar (January) the vendor's
# FY2026 Q4 ends 2026-12-31 and its last two weeks are 2026-12-18 .. 2026-12-31.
LAST_WEEKS = "2026-12-20"


def commit_deal(close_date: str = LAST_WEEKS, **fields: object) -> dict[str, object]:
    return channel_deal(
        forecast_category="commit",
        stage="closing",
        probability=80,
        close_date=close_date,
        **fields,
    )


def run(*deals, fiscal_month=2, config=None, **parameters):
    snap = snapshot(
        partners=[partner("p1", name="Acme VAR", fiscal_year_start_month=fiscal_month)],
        accounts=[channel_account()],
        opportunities=deals,
    )
    params = {"mutual-operating-period": parameters} if parameters else None
    return evaluate(PACK, snap, parameters=params, config=config)


# -- calendars ------------------------------------------------------------------------------


def brute_force_quarter(start_month: int, day: dt.date) -> tuple[int, int, dt.date]:
    """(fiscal year, quarter, first day) by walking months back to the year's start."""
    year, month = day.year, day.month
    steps = (month - start_month) % 12
    first_month_index = year * 12 + month - 1 - steps
    fiscal_start = dt.date(first_month_index // 12, first_month_index % 12 + 1, 1)
    fiscal_year = fiscal_start.year + (1 if start_month != 1 else 0)
    quarter = steps // 3 + 1
    q_index = first_month_index + (quarter - 1) * 3
    return fiscal_year, quarter, dt.date(q_index // 12, q_index % 12 + 1, 1)


@pytest.mark.parametrize("start_month", range(1, 13))
def test_quarters_match_a_brute_force_walk(start_month: int) -> None:
    calendar = FiscalCalendar(start_month)
    day = dt.date(2025, 1, 1)
    while day < dt.date(2027, 1, 1):
        quarter = calendar.quarter_of(day)
        assert (quarter.fiscal_year, quarter.quarter, quarter.start) == brute_force_quarter(
            start_month, day
        )
        assert quarter.start <= day <= quarter.end
        assert (quarter.end + dt.timedelta(days=1)).day == 1
        day += dt.timedelta(days=5)


def test_labels_name_the_fiscal_year_by_its_last_month() -> None:
    assert FiscalCalendar(11).quarter_of(dt.date(2026, 12, 20)).label == "FY2027 Q1 (Nov–Jan)"
    assert FiscalCalendar(1).quarter_of(dt.date(2026, 12, 20)).label == "FY2026 Q4 (Oct–Dec)"


def test_calendars_three_months_apart_are_aligned() -> None:
    assert FiscalCalendar(1).aligned_with(FiscalCalendar(7))
    assert not FiscalCalendar(1).aligned_with(FiscalCalendar(2))
    with pytest.raises(ValueError, match="expected 1 to 12"):
        FiscalCalendar(13)


# -- the rule --------------------------------------------------------------------------------


def test_a_quarter_end_commit_deal_mid_quarter_for_the_partner_is_flagged() -> None:
    finding = only(run(commit_deal()), RULE_ID)
    assert (finding.reason, finding.severity.value) == ("partner_mid_quarter", "warn")
    assert "Acme VAR" in finding.message and "FY2027 Q4 (Nov–Jan)" in finding.message
    assert finding.details["partner_quarter_end"] == "2027-01-31"
    assert finding.details["days_to_vendor_quarter_end"] == 11


@pytest.mark.parametrize("fiscal_month", [1, 4, 7, 10])
def test_a_partner_with_the_same_quarter_ends_is_not_flagged(fiscal_month: int) -> None:
    assert found(run(commit_deal(), fiscal_month=fiscal_month), RULE_ID) == set()


@pytest.mark.parametrize(
    ("close_date", "flagged"),
    [("2026-12-17", False), ("2026-12-18", True), ("2026-12-31", True), ("2027-01-02", False)],
)
def test_only_the_last_two_weeks_of_the_vendors_quarter_count(
    close_date: str, flagged: bool
) -> None:
    assert bool(found(run(commit_deal(close_date)), RULE_ID)) is flagged


def test_the_window_is_configurable() -> None:
    assert found(run(commit_deal("2026-12-10"), window_days=30), RULE_ID)


@pytest.mark.parametrize(
    "deal_",
    [
        channel_deal(close_date=LAST_WEEKS),  # pipeline, not commit
        deal(forecast_category="commit", stage="closing", close_date=LAST_WEEKS),  # direct
        closed_deal(partner_id="p1", account_id="a1", close_date=LAST_WEEKS),
    ],
    ids=["pipeline", "direct", "closed"],
)
def test_deals_the_rule_does_not_judge(deal_: dict[str, object]) -> None:
    assert found(run(deal_), RULE_ID) == set()


def test_judged_forecast_categories_are_configurable() -> None:
    best_case = channel_deal(forecast_category="best_case", close_date=LAST_WEEKS)
    assert found(run(best_case, forecast_categories=["commit", "best_case"]), RULE_ID)


def test_partners_without_a_calendar_get_the_default() -> None:
    assert found(run(commit_deal(), fiscal_month=None), RULE_ID) == set()  # January assumed
    assert found(run(commit_deal(), fiscal_month=None, default_partner_start_month=2), RULE_ID)
    assert (
        found(run(commit_deal(), fiscal_month=None, default_partner_start_month=0), RULE_ID)
        == set()
    )


def test_the_vendor_calendar_comes_from_the_org_config() -> None:
    vendor_feb = {"org": {"fiscal_year_start_month": 2}}
    # Vendor quarter Nov-Jan ends 2027-01-31; a January-calendar partner's Q1 ends 2027-03-31.
    late_january = commit_deal("2027-01-25")
    assert found(run(late_january, fiscal_month=1, config=vendor_feb), RULE_ID)
    assert found(run(late_january, fiscal_month=2, config=vendor_feb), RULE_ID) == set()


# -- the report section and the installed package ----------------------------------------------


def test_the_report_shows_each_channel_deal_in_both_calendars() -> None:
    snap = snapshot(
        partners=[partner("p1", name="Acme VAR", fiscal_year_start_month=2)],
        accounts=[channel_account()],
        opportunities=[
            commit_deal(id="o1", name="Boeing fleet"),
            channel_deal("o2", name="Boeing spares", close_date="2026-12-05"),
            deal("o3", close_date=LAST_WEEKS),  # direct: not in the section
        ],
    )
    (section,) = [s for s in report_sections(snap) if s.plugin == "mutual-operating-period"]
    assert section.columns[:3] == ("deal", "partner", "close date")
    assert section.rows == (
        (
            "Boeing spares",
            "Acme VAR",
            "2026-12-05",
            "pipeline",
            "FY2026 Q4 (Oct–Dec)",
            "FY2027 Q4 (Nov–Jan)",
            "no",
        ),
        (
            "Boeing fleet",
            "Acme VAR",
            "2026-12-20",
            "commit",
            "FY2026 Q4 (Oct–Dec)",
            "FY2027 Q4 (Nov–Jan)",
            "no",
        ),
    )


def test_a_channel_deal_without_a_close_date_is_left_out_of_the_section() -> None:
    snap = snapshot(
        partners=[partner("p1", name="Acme VAR", fiscal_year_start_month=2)],
        accounts=[channel_account()],
        opportunities=[
            channel_deal("o1", name="Undated", close_date=None),
            channel_deal("o2", name="Boeing spares", close_date="2026-12-05"),
        ],
    )
    (section,) = [s for s in report_sections(snap) if s.plugin == "mutual-operating-period"]
    assert [row[0] for row in section.rows] == ["Boeing spares"]


def test_no_channel_deals_no_section() -> None:
    sections = report_sections(snapshot(opportunities=[deal()]))
    assert [s for s in sections if s.plugin == "mutual-operating-period"] == []


def test_the_entry_point_registers_the_pack(tsos_cli) -> None:
    assert "mutual-operating-period" in [pack.name for pack in installed_packs()]
    assert RULE_ID in tsos_cli("rules").out
    plugins = tsos_cli("plugins").out
    line = next(x for x in plugins.splitlines() if x.startswith("mutual-operating-period "))
    assert "tsos_rules_register_packs" in line and "tsos_rules_report_sections" in line


def test_the_readme_example_prints_what_it_says() -> None:
    from pathlib import Path

    from tsos_rules.testing import run_markdown_example

    example = run_markdown_example(Path(__file__).parents[1] / "README.md")
    assert example.expected and example.printed == example.expected
