"""sell-through: big names buying a few units, on generated reports, through the public kit."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytest
from tsos_rules_sell_through import PACK, RULE_ID, read_reports
from tsos_rules_sell_through.plugin import tsos_rules_report_sections

from tsos_rules import ConfigError
from tsos_rules.facts import build_index
from tsos_rules.snapshot import snapshot_from_dict
from tsos_rules.testing import account, closed_deal, deal, evaluate, found, only, snapshot

AS_OF = "2026-11-24"
HEADER = ["Reseller", "End Customer", "SKU", "Qty", "Ship Date"]
COLUMNS = {
    "reseller": "Reseller",
    "end_customer": "End Customer",
    "product": "SKU",
    "units": "Qty",
    "date": "Ship Date",
}


def write_report(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A CDW-style report: a big name buying 3 units, a big name buying 400, small shops."""
    return write_report(
        tmp_path / "cdw-2026-10.csv",
        [
            ["CDW", "Amoco Corporation", "TSOS-PRO", "2", "2026-03-02"],
            ["CDW", "AMOCO Corp.", "TSOS-PRO", "1", "2026-09-14"],
            ["Insight", "Chrysler LLC", "TSOS-PRO", "400", "2026-05-01"],
            ["CDW", "Corner Shop", "TSOS-PRO", "2", "2026-06-01"],
        ],
    )


def accounts() -> list[dict[str, Any]]:
    return [
        account("a1", name="Amoco", employees=45_000),
        account("a2", name="Chrysler", employees=120_000),
        account("a3", name="Corner Shop", employees=4),
    ]


def run(snap: dict[str, Any], **parameters: Any) -> Any:
    return evaluate(PACK, snap, parameters={"sell-through": parameters}, as_of=AS_OF)


def test_a_big_name_buying_a_few_units_with_no_deal_is_a_prospect(report: Path) -> None:
    findings = run(snapshot(accounts=accounts()), reports=[str(report)], columns=COLUMNS)
    assert found(findings, RULE_ID) == {("a1", "prospect", "info")}
    finding = only(findings, RULE_ID)
    assert "Amoco bought 3 unit(s) of TSOS-PRO through CDW" in finding.message
    assert finding.details["first_purchase"] == "2026-03-02"
    assert finding.details["last_purchase"] == "2026-09-14"
    assert finding.details["size"] == "employees 45,000"


def test_an_open_deal_with_the_company_means_someone_is_already_on_it(report: Path) -> None:
    snap = snapshot(accounts=accounts(), opportunities=[deal("o1", account_id="a1")])
    assert found(run(snap, reports=[str(report)], columns=COLUMNS), RULE_ID) == set()
    won = snapshot(accounts=accounts(), opportunities=[closed_deal("o1", account_id="a1")])
    assert found(run(won, reports=[str(report)], columns=COLUMNS), RULE_ID) == {
        ("a1", "prospect", "info")
    }


def test_thresholds_and_named_big_names_are_parameters(report: Path) -> None:
    snap = snapshot(accounts=accounts())
    many = run(snap, reports=[str(report)], columns=COLUMNS, max_units=500)
    assert found(many, RULE_ID) == {("a1", "prospect", "info"), ("a2", "prospect", "info")}
    small = run(
        snap, reports=[str(report)], columns=COLUMNS, size_thresholds={"employees": 100_000}
    )
    assert found(small, RULE_ID) == set()
    named = run(snap, reports=[str(report)], columns=COLUMNS, big_names=["Corner Shop Ltd"])
    assert ("a3", "prospect", "info") in found(named, RULE_ID)


def test_purchases_before_the_lookback_window_do_not_count(report: Path) -> None:
    findings = run(
        snapshot(accounts=accounts()), reports=[str(report)], columns=COLUMNS, lookback_days=30
    )
    assert found(findings, RULE_ID) == set()


def test_a_malformed_row_is_skipped_and_named_the_rest_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_report(
        tmp_path / "insight.csv",
        [
            ["Insight", "Amoco", "TSOS-PRO", "lots", "2026-03-02"],
            ["Insight", "", "TSOS-PRO", "1", "2026-03-02"],
            ["Insight", "Amoco", "TSOS-PRO", "1", "03/02/2026"],
            ["Insight", "Amoco", "TSOS-PRO", "2", "2026-04-02"],
        ],
    )
    with caplog.at_level(logging.WARNING, logger="tsos_rules_sell_through"):
        reports = read_reports([str(path)], COLUMNS, "%Y-%m-%d")
    assert [p.units for p in reports.purchases] == [2]
    assert [str(s) for s in reports.skipped] == [
        f"{path}:2: Qty: expected a whole number of units, got 'lots'",
        f"{path}:3: End Customer: no end customer",
        f"{path}:4: Ship Date: expected a date like '%Y-%m-%d', got '03/02/2026'",
    ]
    assert sum("sell-through row skipped" in r.message for r in caplog.records) == 3
    findings = run(snapshot(accounts=accounts()), reports=[str(path)], columns=COLUMNS)
    assert found(findings, RULE_ID) == {("a1", "prospect", "info")}


def test_a_report_missing_a_mapped_column_is_a_config_error(report: Path) -> None:
    with pytest.raises(ConfigError, match=r"no column 'Units'.*packs\.sell-through\.columns"):
        read_reports([str(report)], {**COLUMNS, "units": "Units"}, "%Y-%m-%d")
    with pytest.raises(ConfigError, match=r"reports: .*nope\.csv: no such file"):
        read_reports([str(report.parent / "nope.csv")], COLUMNS, "%Y-%m-%d")


def test_globs_read_every_report_once(report: Path, tmp_path: Path) -> None:
    write_report(tmp_path / "cdw-2026-11.csv", [["CDW", "Amoco", "TSOS-PRO", "4", "2026-11-01"]])
    findings = run(
        snapshot(accounts=accounts()), reports=[str(tmp_path / "cdw-*.csv")], columns=COLUMNS
    )
    assert only(findings, RULE_ID).details["units"] == 7


def test_the_report_section_ranks_the_biggest_company_first(report: Path) -> None:
    snap = snapshot(accounts=accounts())
    findings = run(snap, reports=[str(report)], columns=COLUMNS, max_units=500)
    loaded, _ = snapshot_from_dict(snap)
    sections = tsos_rules_report_sections(build_index(loaded), findings)
    assert sections is not None
    (section,) = sections
    assert section.title == "Sell-through prospects"
    assert [row[0] for row in section.rows] == ["Chrysler", "Amoco"]
    assert section.rows[1][2:4] == (3, "CDW")


def test_without_reports_the_rule_finds_nothing() -> None:
    assert found(run(snapshot(accounts=accounts())), RULE_ID) == set()
