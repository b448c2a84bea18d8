"""Exempt findings lose their task while exempt and get it back when the exemption lapses;
a rule in shadow mode is judged and stored but writes nothing and fails nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tsos_rules.sync.state.worklist import WorklistQuery

AS_OF = dt.date(2026, 11, 24)


def _tasked_block(org: Any) -> Any:
    state = org.state()
    try:
        return next(
            f for f in state.findings("local", status="open") if f.severity == "block" and f.task_id
        )
    finally:
        state.close()


def test_an_exempt_finding_loses_its_task_and_gets_it_back_when_revoked(org: Any) -> None:
    first = org.sync()
    target = _tasked_block(org)
    state = org.state()
    try:
        exemption = state.add_exemption(
            "local",
            rule=target.rule,
            record_type=target.record_type,
            record_id=target.record_id,
            reason="executive-approved direct deal",
            approver="VP Sales",
            expires=AS_OF + dt.timedelta(days=30),
        )
    finally:
        state.close()
    second = org.sync()
    assert second.actions[("close_task", "written")] >= 1
    assert second.findings_exempt >= 1
    assert second.findings_open == first.findings_open - second.findings_exempt
    assert second.open_block < first.open_block
    state = org.state()
    try:
        waived = state.worklist("local", WorklistQuery(status="exempt"))
        assert target.fingerprint in {row.fingerprint for row in waived}
        assert all(row.exemption_id == exemption for row in waived)
        listed = state.worklist("local", WorklistQuery())
        assert target.fingerprint not in {row.fingerprint for row in listed}
        assert (
            state.findings_by_fingerprint("local", [target.fingerprint])[
                target.fingerprint
            ].task_status
            == "closed"
        )
        state.revoke_exemption("local", exemption, by="VP Sales")
    finally:
        state.close()
    third = org.sync()
    assert third.actions[("create_task", "written")] >= 1
    assert third.findings_exempt == 0 and third.findings_open == first.findings_open
    state = org.state()
    try:
        again = state.findings_by_fingerprint("local", [target.fingerprint])[target.fingerprint]
        assert again.has_open_task
    finally:
        state.close()


def test_a_shadow_rule_writes_nothing_and_is_listed_apart(org: Any) -> None:
    summary = org.sync(rule_modes={"tsos.next-step-required": "shadow"})
    assert summary.findings_shadow > 0
    state = org.state()
    try:
        shadow = state.worklist("local", WorklistQuery(status="shadow"))
        assert shadow and {row.rule for row in shadow} == {"tsos.next-step-required"}
        assert all(row.task_id is None for row in shadow)
        open_rows = state.worklist("local", WorklistQuery())
        assert "tsos.next-step-required" not in {row.rule for row in open_rows}
    finally:
        state.close()
    assert summary.rules["tsos.next-step-required"].open == 0
