"""Plugins' report sections appear in ``check`` output, and a failing one does not stop it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from tsos_rules import hookimpl
from tsos_rules.report.sections import ReportSection, SectionMerge

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


def _section(plugin: str, rows: list[tuple[str, str]], *, keyed: bool) -> ReportSection:
    keys = [(row[1], row[0]) for row in rows] if keyed else None
    section = ReportSection.of("Close dates", ["deal", "close date"], rows, row_keys=keys)
    return attrs.evolve(section, plugin=plugin)


def test_shards_rows_merge_by_their_keys_as_one_evaluation_lists_them() -> None:
    """Two shards' rows, one read by both: one row per key, in key order, keys not shown."""
    merge = SectionMerge(["close-dates"])
    merge.add([_section("close-dates", [("o2", "2026-12-01"), ("o9", "2027-01-05")], keyed=True)])
    merge.add([_section("close-dates", [("o1", "2026-12-15"), ("o9", "2027-01-05")], keyed=True)])
    [section] = merge.sections()
    assert merge.keyed()
    assert section.rows == (("o2", "2026-12-01"), ("o1", "2026-12-15"), ("o9", "2027-01-05"))
    assert "row_keys" not in section.to_dict()


def test_rows_without_keys_show_once_in_the_order_first_seen() -> None:
    merge = SectionMerge()
    merge.add([_section("p", [("o2", "b"), ("o1", "a")], keyed=False)])
    merge.add([_section("p", [("o1", "a"), ("o0", "c")], keyed=False)])
    [section] = merge.sections()
    assert not merge.keyed()
    assert section.rows == (("o2", "b"), ("o1", "a"), ("o0", "c"))


def test_sections_are_listed_in_the_plugins_order_whichever_shard_had_them_first() -> None:
    merge = SectionMerge(["first", "second"])
    merge.add([_section("second", [("o1", "a")], keyed=True)])
    merge.add([_section("first", [("o2", "b")], keyed=True)])
    assert [s.plugin for s in merge.sections()] == ["first", "second"]


def test_row_keys_must_match_the_rows() -> None:
    with pytest.raises(ValueError, match="1 row keys for 2 rows"):
        ReportSection.of("T", ["a"], [("x",), ("y",)], row_keys=[("x",)])


class KeyedCloseDates:
    """CloseDates with row keys: shards' rows merge without the whole snapshot."""

    @hookimpl
    def tsos_rules_report_sections(self, index: Any) -> list[ReportSection]:
        deals = sorted(
            (o for o in index.snapshot.opportunities if not o.is_closed),
            key=lambda o: (o.close_date.isoformat() if o.close_date else "", o.id),
        )
        rows = [(o.id, o.close_date.isoformat() if o.close_date else "") for o in deals]
        keys = [(row[1], row[0]) for row in rows]
        return [ReportSection.of("Close dates", ["deal", "close date"], rows, row_keys=keys)]


@pytest.mark.parametrize(("plugin", "whole_reads"), [(KeyedCloseDates(), 0), (CloseDates(), 1)])
def test_a_sharded_check_merges_keyed_rows_and_reads_whole_for_the_others(
    tsos_plugin: Any,
    tsos_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plugin: Any,
    whole_reads: int,
) -> None:
    """The same bytes as the file either way; only a section without row keys makes the
    driver read the whole directory (once)."""
    import datetime as dt

    from tsos_rules.connectors.local.demo import generate_org
    from tsos_rules.engine.sharding import split_file
    from tsos_rules.snapshot import sharded

    tsos_plugin(plugin, name="close-dates")
    path = tmp_path / "org.json"
    org = generate_org(opportunities=300, seed=5, as_of=dt.date(2026, 11, 24))
    path.write_text(json.dumps(org, default=str))
    directory = split_file(str(path), 3, tmp_path / "org")[0].directory
    expected = tsos_cli("check", str(path), "--format", "json").out
    reads = []
    whole = sharded.load_sharded
    monkeypatch.setattr(sharded, "load_sharded", lambda d: reads.append(d) or whole(d))
    got = tsos_cli(
        "check", str(directory), "--format", "json", "--executor", "processes", "--jobs", "2"
    ).out
    assert '"Close dates"' in got
    assert got == expected
    assert len(reads) == whole_reads
