"""The demo CRM's ``[connector.exemptions]``: an opportunity key holding a waiver date is read
into the snapshot's exemptions and honoured by the sync like Salesforce's field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tsos_rules import testing as b
from tsos_rules.errors import ConfigError
from tsos_rules.sync.job import run_sync

AS_OF = dt.date(2026, 11, 24)
FIELDS = {"until_field": "exempt_until", "reason_field": "exempt_reason"}


def _run(org: Any, fields: dict[str, Any]) -> Any:
    config = org.config()
    config["connector"]["exemptions"] = fields
    return run_sync(config, as_of=AS_OF)


def test_a_waiver_key_on_a_deal_exempts_its_findings_until_it_is_cleared(make_org: Any) -> None:
    waived = b.deal("o1", next_step="TBD", exempt_until="2026-12-31", exempt_reason="legal hold")
    org = make_org(b.snapshot(opportunities=[waived, b.deal("o2", next_step="TBD")]))
    summary = _run(org, FIELDS)
    tasks = {t["what_id"] for t in org.crm.tasks()}
    assert "o1" not in tasks and "o2" in tasks
    assert summary.findings_exempt >= 1
    state = org.state()
    try:
        (stored,) = state.exemptions("local")
    finally:
        state.close()
    assert (stored.source, stored.approver, stored.reason, stored.record_id) == (
        "crm",
        "crm:exempt_until",
        "legal hold",
        "o1",
    )


def test_the_until_field_is_required(make_org: Any) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1")]))
    with pytest.raises(ConfigError, match=r"connector\.exemptions\.until_field: required"):
        _run(org, {"reason_field": "why"})
