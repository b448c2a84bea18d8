"""The Python API: ``check`` a snapshot with every installed rule pack."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.config import Config, coerce_config
from tsos_rules.engine import Engine, filter_severity
from tsos_rules.findings import Findings
from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import snapshot_from_dict


def check(
    snapshot: Snapshot | Mapping[str, Any],
    *,
    as_of: dt.date | str | None = None,
    config: Config | Mapping[str, Any] | str | Path | None = None,
    include_info: bool = False,
) -> Findings:
    """Evaluate a snapshot (a :class:`Snapshot` or a dict in the JSON shape) and return findings.

    The config's ``[[exemptions]]`` and ``[rules.rollout]``, and the snapshot's CRM-field
    ``exemptions``, mark findings ``exempt`` or ``shadow`` (listed, not blocking), as ``tsos-rules
    check`` does.

    >>> findings = check({"as_of": "2026-11-24", "opportunities": [{"id": "o1"}]})
    >>> [f.reason for f in findings.for_rule("tsos.next-step-required")]
    ['missing']
    """
    if not isinstance(snapshot, Snapshot):
        snapshot, _ = snapshot_from_dict(snapshot)
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    from tsos_rules.policy.apply import Policy

    cfg = coerce_config(config)
    engine = Engine.from_config(cfg)
    try:
        index = engine.index(snapshot, as_of)
        findings = filter_severity(engine.evaluate_index(index), include_info=include_info)
        crm = [e.to_row() for e in snapshot.exemptions]
        policy = Policy.from_config(cfg, engine.specs, index.as_of, crm_rows=crm)
    finally:
        engine.close()
    waived = policy.waived(findings, index)
    return attrs.evolve(findings, waived=waived) if waived else findings
