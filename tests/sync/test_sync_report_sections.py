"""Plugins' report sections reach the sync's JSON summary and HTML report, once per record."""

from __future__ import annotations

from typing import Any

from tsos_rules import hookimpl
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.report.html import render_html
from tsos_rules.report.sections import ReportSection
from tsos_rules.sync.job import run_sync
from tsos_rules.testing import builders as b

AS_OF = b.TODAY


class OpenDealOwners:
    """A plugin listing each open deal of the batch with its owner."""

    @hookimpl
    def tsos_rules_report_sections(self, index: Any) -> list[ReportSection]:
        rows = [(o.id, o.owner_id or "") for o in index.snapshot.opportunities if not o.is_closed]
        return [ReportSection.of("Open deals and owners", ["deal", "owner"], rows)]


def test_sections_are_merged_across_batches_and_rendered(make_org: Any, tsos_plugin: Any) -> None:
    tsos_plugin(OpenDealOwners(), name="open-deal-owners")
    document = generate_org(opportunities=300, seed=7, as_of=AS_OF)
    org = make_org(document)
    summary = run_sync(org.config(), as_of=AS_OF, full=True, charts=True)

    [section] = [s for s in summary.to_dict()["sections"] if s["plugin"] == "open-deal-owners"]
    deals = [row[0] for row in section["rows"]]
    assert len(deals) == len(set(deals))  # context records read by several batches: once
    expected = {o["id"] for o in document["opportunities"] if not o["is_closed"]}
    assert set(deals) == expected

    page = render_html(summary.to_dict())
    assert 'data-plugin="open-deal-owners"' in page and "Open deals and owners" in page
