"""Run packs on builder snapshots and ask short questions about the findings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from tsos_rules.config import Config, coerce_config
from tsos_rules.engine import Engine
from tsos_rules.facts import (
    AccountFacts,
    ActivityFacts,
    LeadFacts,
    OpportunityFacts,
    RecordFacts,
    build_index,
)
from tsos_rules.findings import Finding, Findings
from tsos_rules.model import Snapshot
from tsos_rules.org import OrgProfile
from tsos_rules.report.sections import ReportSection
from tsos_rules.rules.spec import RulePack
from tsos_rules.testing.builders import to_snapshot

__all__ = [
    "evaluate",
    "facts_for",
    "found",
    "installed_connectors",
    "installed_packs",
    "only",
    "reasons",
    "report_sections",
]


def _date(value: dt.date | str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def evaluate(
    packs: RulePack | Sequence[RulePack] | None,
    document: Mapping[str, Any] | Snapshot,
    *,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    config: Config | Mapping[str, Any] | None = None,
    as_of: dt.date | str | None = None,
    include_info: bool = True,
) -> Findings:
    """Evaluate ``packs`` (only those; ``None``: every installed pack) on a snapshot.

    ``parameters`` overrides pack parameters by pack name, as ``[packs.<name>]`` in the config
    file would; ``config`` gives the rest of the configuration (``[org]`` and so on). Info
    findings are included unless ``include_info=False``.
    """
    cfg = coerce_config(config)
    snapshot = to_snapshot(document)
    if packs is None:
        merged = {**cfg.packs, **(parameters or {})}
        engine = Engine.from_config(
            Config(
                org=cfg.org,
                packs=merged,
                rules_disabled=cfg.rules_disabled,
                rules_selected=cfg.rules_selected,
                plugins_disabled=cfg.plugins_disabled,
            )
        )
    else:
        chosen = [packs] if isinstance(packs, RulePack) else list(packs)
        for pack in chosen:
            pack.validate()
        names = {pack.name for pack in chosen}
        values = {name: table for name, table in cfg.packs.items() if name in names}
        values.update(parameters or {})
        engine = Engine(chosen, org=cfg.org, parameters=values)
    try:
        findings = engine.evaluate(snapshot, _date(as_of))
    finally:
        engine.close()
    if include_info:
        return findings
    from tsos_rules.engine import filter_severity

    return filter_severity(findings, include_info=False)


def found(findings: Findings, rule: str) -> set[tuple[str, str, str]]:
    """``{(record_id, reason, severity)}`` of one rule's findings."""
    return {(f.record_id, f.reason, f.severity.value) for f in findings if f.rule == rule}


def reasons(findings: Findings, rule: str, record_id: str = "o1") -> set[str]:
    """The reasons ``rule`` gives against one record."""
    return {f.reason for f in findings if f.rule == rule and f.record_id == record_id}


def only(findings: Findings, rule: str) -> Finding:
    """The single finding of ``rule`` (an AssertionError lists them when there are 0 or 2+)."""
    hits = [f for f in findings if f.rule == rule]
    assert len(hits) == 1, [(f.record_id, f.reason) for f in hits]
    return hits[0]


def facts_for(
    document: Mapping[str, Any] | Snapshot,
    record_id: str,
    record_type: str = "opportunity",
    *,
    org: OrgProfile | None = None,
    as_of: dt.date | str | None = None,
) -> RecordFacts:
    """The facts a rule receives for one record: unit-test a check function directly.

    >>> from tsos_rules.testing import deal, snapshot
    >>> facts_for(snapshot(opportunities=[deal(stage="closing")]), "o1").stage_index
    8
    """
    index = build_index(to_snapshot(document), org, _date(as_of))
    builders: dict[str, Any] = {
        "opportunity": (index.opportunities, index.opportunity),
        "lead": (index.leads, index.lead),
        "account": (index.accounts, index.account),
        "activity": ({a.id: a for a in index.snapshot.activities}, index.activity),
    }
    if record_type not in builders:
        raise ValueError(f"record_type: expected one of {sorted(builders)}, got {record_type!r}")
    records, build = builders[record_type]
    if record_id not in records:
        raise KeyError(f"no {record_type} {record_id!r} in the snapshot")
    facts = build(records[record_id])
    assert isinstance(facts, OpportunityFacts | LeadFacts | AccountFacts | ActivityFacts)
    return facts


def installed_packs(*, disabled: Sequence[str] = ()) -> list[RulePack]:
    """Every pack the installed plugins register, as ``tsos-rules rules`` sees them."""
    from tsos_rules.plugins import collect_packs, get_plugin_manager

    return collect_packs(get_plugin_manager(disabled=disabled))


def installed_connectors(*, disabled: Sequence[str] = ()) -> dict[str, Any]:
    """Every connector factory the installed plugins register, by connector name."""
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    return collect_connectors(get_plugin_manager(disabled=disabled))


def report_sections(
    document: Mapping[str, Any] | Snapshot,
    *,
    config: Config | Mapping[str, Any] | None = None,
    as_of: dt.date | str | None = None,
    findings: Findings | None = None,
) -> list[ReportSection]:
    """The sections every installed (and test-registered) plugin adds to a report of this
    snapshot, in plugin registration order, each tagged with its plugin's name.

    ``findings`` defaults to the findings of every installed pack on the snapshot.
    """
    from tsos_rules.plugins import collect_report_sections, get_plugin_manager

    cfg = coerce_config(config)
    snapshot = to_snapshot(document)
    day = _date(as_of)
    if findings is None:
        findings = evaluate(None, snapshot, config=cfg, as_of=day)
    pm = get_plugin_manager(disabled=cfg.plugins_disabled)
    return collect_report_sections(pm, build_index(snapshot, cfg.org, day), findings)
