"""Plugins' report sections appear in ``check`` output, and a failing one does not stop it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tsos_rules import hookimpl
from tsos_rules.report.sections import ReportSection

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.json"
pytestmark = pytest.mark.usefixtures("isolated_env")


class CloseDates:
    """A plugin listing every open deal's close date."""

    @hookimpl
    def tsos_rules_report_sections(self, index: Any) -> list[ReportSection]:
        rows = [
            (o.id, o.close_date.isoformat() if o.close_date else "")
            for o in index.snapshot.opportunities
            if not o.is_closed
        ]
        return [ReportSection.of("Close dates", ["deal", "close date"], rows)]


class Broken:
    @hookimpl
    def tsos_rules_report_sections(self, index: Any) -> list[ReportSection]:
        raise RuntimeError("boom")


def test_a_section_is_in_the_json_and_the_table(tsos_plugin: Any, tsos_cli: Any) -> None:
    tsos_plugin(CloseDates(), name="close-dates")
    document = json.loads(tsos_cli("check", str(EXAMPLE), "--format", "json").out)
    [section] = document["sections"]
    assert section["title"] == "Close dates" and section["plugin"] == "close-dates"
    assert ["o1", "2026-12-15"] in section["rows"]
    assert len(section["rows"]) == 3  # o4 is closed

    table = tsos_cli("check", str(EXAMPLE)).out
    assert "Close dates" in table and "2026-12-15" in table
    assert all(len(line) <= 80 for line in table.splitlines())


def test_a_plugin_failing_in_its_section_is_skipped(tsos_plugin: Any, tsos_cli: Any) -> None:
    tsos_plugin(Broken(), name="broken")
    tsos_plugin(CloseDates(), name="close-dates")
    result = tsos_cli("check", str(EXAMPLE), "--format", "json")
    assert result.code == 1  # the findings' verdict, not a crash
    assert [s["title"] for s in json.loads(result.out)["sections"]] == ["Close dates"]
