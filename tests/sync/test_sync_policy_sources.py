"""The sync honours every exemption source and ``[rules.rollout]``: ``[[exemptions]]`` in the
config (one record, or every record of an account) close tasks while they hold and give them
back when removed; a mode change keeps a finding's history; ``--what-if-enforce`` previews."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import pytest

from tsos_rules.errors import ConfigError
from tsos_rules.sync.job import run_sync

AS_OF = dt.date(2026, 11, 24)


def _run(org: Any, extra: dict[str, Any], **kwargs: Any) -> Any:
    config = {**org.config(), **extra}
    return run_sync(config, as_of=kwargs.pop("as_of", AS_OF), **kwargs)


def _tasked_block(org: Any) -> Any:
    state = org.state()
    try:
        return next(
            f for f in state.findings("local", status="open") if f.severity == "block" and f.task_id
        )
    finally:
        state.close()


def _entry(target: Any, **over: Any) -> dict[str, Any]:
    entry = {
        "rule": target.rule,
        "record_type": target.record_type,
        "record_id": target.record_id,
        "reason": "merger: legal hold",
        "approver": "CFO",
        "created": dt.date(2026, 11, 1),
        "expires": dt.date(2027, 1, 31),
    }
    entry.update(over)
    return entry


def test_a_config_exemption_closes_the_task_and_removing_it_reopens(org: Any) -> None:
    first = _run(org, {})
    target = _tasked_block(org)
    second = _run(org, {"exemptions": [_entry(target)]})
    assert second.findings_exempt >= 1
    assert second.open_block < first.open_block
    assert second.actions[("close_task", "written")] >= 1
    state = org.state()
    try:
        stored = state.findings_by_fingerprint("local", [target.fingerprint])[target.fingerprint]
        assert not stored.has_open_task
        (listed,) = [e for e in state.exemptions("local") if e.source == "config"]
        assert (listed.approver, listed.reason, listed.revoked_at) == (
            "CFO",
            "merger: legal hold",
            None,
        )
    finally:
        state.close()
    # the same config again changes nothing; removing the entry revokes it and reopens
    assert _run(org, {"exemptions": [_entry(target)]}).findings_exempt == second.findings_exempt
    third = _run(org, {})
    assert third.findings_exempt == 0 and third.open_block == first.open_block
    state = org.state()
    try:
        again = state.findings_by_fingerprint("local", [target.fingerprint])[target.fingerprint]
        assert again.has_open_task
        (revoked,) = [e for e in state.exemptions("local") if e.source == "config"]
        assert revoked.revoked_by == "config: removed"
    finally:
        state.close()


def test_an_account_exemption_waives_every_record_of_the_account(org: Any) -> None:
    _run(org, {})
    target = _tasked_block(org)
    state = org.state()
    try:
        (account_id,) = state.db.execute(
            "SELECT account_id FROM findings WHERE fingerprint = ?", (target.fingerprint,)
        ).fetchone()
        on_account = {
            row[0]
            for row in state.db.execute(
                "SELECT fingerprint FROM findings WHERE account_id = ? AND status = 'open' "
                "AND NOT (rule = 'tsos.channel-lead-not-direct' "
                "AND reason IN ('no_partner', 'marked_direct'))",
                (account_id,),
            )
        }
    finally:
        state.close()
    assert account_id and target.fingerprint in on_account
    entry = _entry(target, rule="tsos.*", account_id=account_id)
    del entry["record_type"], entry["record_id"]
    summary = _run(org, {"exemptions": [entry]})
    assert summary.findings_exempt == len(on_account)
    state = org.state()
    try:
        assert set(state.exempt_open("local", AS_OF)) == on_account
    finally:
        state.close()


def test_an_exemption_naming_no_loaded_rule_or_the_never_waived_rule_is_refused(
    org: Any,
) -> None:
    entry = {
        "rule": "tsos.no-such-rule",
        "record_type": "opportunity",
        "record_id": "o1",
        "reason": "x",
        "approver": "y",
        "created": dt.date(2026, 11, 1),
        "expires": dt.date(2026, 12, 1),
    }
    with pytest.raises(ConfigError, match=re.escape("exemptions[1].rule: 'tsos.no-such-rule'")):
        _run(org, {"exemptions": [entry]})
    never = {**entry, "rule": "tsos.channel-lead-not-direct"}
    with pytest.raises(ConfigError, match=r"NEVER.*partner's recorded consent"):
        _run(org, {"exemptions": [never]})


def test_shadow_then_enforce_keeps_the_findings_history(org: Any) -> None:
    rule = "tsos.close-date-locked"
    shadow = _run(org, {"rules": {"rollout": {rule: "shadow"}}})
    assert shadow.findings_shadow > 0
    before = {f.fingerprint: f.first_seen for f in _open(org) if f.rule == rule}
    assert before and not any(f.task_id for f in _open(org) if f.rule == rule)
    later = AS_OF + dt.timedelta(days=3)
    enforced = _run(org, {"rules": {"rollout": {rule: "enforce"}}}, as_of=later)
    assert enforced.findings_shadow == 0
    after = {f.fingerprint: f for f in _open(org) if f.rule == rule}
    for fingerprint, first_seen in before.items():
        if fingerprint in after:
            assert after[fingerprint].first_seen == first_seen
    assert any(f.task_id for f in after.values())


def _open(org: Any) -> list[Any]:
    state = org.state()
    try:
        return list(state.findings("local", status="open"))
    finally:
        state.close()


def test_what_if_enforce_lists_the_writes_the_rule_would_add_and_changes_nothing(
    org: Any,
) -> None:
    rule = "tsos.close-date-locked"
    _run(org, {"rules": {"rollout": {rule: "shadow"}}})
    state = org.state()
    try:
        runs_before = state.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        state.close()
    plain = _run(org, {"rules": {"rollout": {rule: "shadow"}}}, dry_run=True)
    assert not [a for a in plain.planned_actions if a["rule"] == rule]
    preview = _run(
        org,
        {"rules": {"rollout": {rule: "shadow"}}},
        dry_run=True,
        what_if_enforce=["tsos.close-*"],
    )
    added = [a for a in preview.planned_actions if a.get("what_if")]
    assert added and {a["rule"] for a in added} == {rule}
    kinds = {a["kind"] for a in added}
    assert "create_task" in kinds and "update_fields" in kinds  # tasks and the repairs
    repair = next(a for a in added if a["kind"] == "update_fields")
    assert set(repair["changes"]) == {"close_date"}
    # before -> after: the moved date the repair replaces, and the date it puts back
    assert set(repair["before"]) == {"close_date"}
    assert repair["before"]["close_date"] != repair["changes"]["close_date"]
    assert preview.to_dict()["what_if_enforce"] == ["tsos.close-*"]
    assert all(status == "planned" for (_, status) in preview.actions)
    state = org.state()
    try:
        assert state.db.execute("SELECT count(*) FROM runs").fetchone()[0] == runs_before
        assert not any(f.task_id for f in state.findings("local", status="open") if f.rule == rule)
    finally:
        state.close()
    with pytest.raises(ConfigError, match="--what-if-enforce: only with --dry-run"):
        _run(org, {}, what_if_enforce=["tsos.close-*"])
    with pytest.raises(
        ConfigError, match=re.escape("--what-if-enforce tsos.nope: matches no loaded rule")
    ):
        _run(org, {}, dry_run=True, what_if_enforce=["tsos.nope"])


def test_sync_rule_modes_still_work_with_a_deprecation_warning(
    org: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tsos_rules.config as config_module

    monkeypatch.setattr(config_module, "_warned_rule_modes", False)
    with caplog.at_level(logging.WARNING, logger="tsos_rules.config"):
        summary = org.sync(rule_modes={"tsos.next-step-required": "shadow"})
    assert summary.findings_shadow > 0
    assert any("[sync.rule_modes] is deprecated" in r.getMessage() for r in caplog.records)
    # [rules.rollout] wins over the alias key by key
    both = _run(
        org,
        {
            "sync": {"daily_full": False, "rule_modes": {"tsos.next-step-required": "shadow"}},
            "rules": {"rollout": {"tsos.next-step-required": "annotate"}},
        },
    )
    assert both.findings_shadow == 0
