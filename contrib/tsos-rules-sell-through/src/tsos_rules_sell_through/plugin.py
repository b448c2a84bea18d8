"""The plugin module named by the ``tsos_rules`` entry point: the pack and its report section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsos_rules import Finding, Findings, RulePack, hookimpl
from tsos_rules.facts import FactIndex
from tsos_rules.report.sections import ReportSection
from tsos_rules_sell_through.rules import PACK, RULE_ID


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    register(PACK)


@hookimpl
def tsos_rules_report_sections(index: FactIndex, findings: Findings) -> list[ReportSection] | None:
    """The prospects, biggest company first, then fewest units: who to call this week."""
    found = [f for f in findings if f.rule == RULE_ID]
    if not found:
        return None

    def rank(finding: Finding) -> tuple[Any, ...]:
        details = finding.details
        return (-float(details.get("size_rank", 0)), details.get("units", 0))

    # Ties keep the findings' order (sorted by key): the row keys add it, so rows from
    # several shards merge in the same order.
    ranked = sorted(found, key=rank)
    keys = [(*rank(finding), *finding.key) for finding in ranked]
    rows = []
    for finding in ranked:
        account = index.accounts.get(finding.record_id)
        details = finding.details
        rows.append(
            (
                (account.name if account else None) or finding.record_id,
                details.get("size", ""),
                details.get("units", ""),
                ", ".join(details.get("resellers", ())),
                ", ".join(details.get("products", ())),
                details.get("first_purchase", ""),
                details.get("last_purchase", ""),
            )
        )
    return [
        ReportSection.of(
            "Sell-through prospects",
            ["account", "big name by", "units", "resellers", "products", "first", "last"],
            rows,
            description=(
                "Big names buying a few units through the channel, with no open deal: call "
                "them to learn why they picked us and what the potential is."
            ),
            row_keys=keys,
        )
    ]
