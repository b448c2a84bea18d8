"""In-line checks honour the team's policy: an exempt block (config or CRM field) or a block of
a rule in shadow mode is listed with its status and never refuses; the doctrine's limit holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tsos_rules.config import Config
from tsos_rules.errors import ConfigError
from tsos_rules.inline import ChangeChecker
from tsos_rules.testing import channel_account, channel_deal, deal, snapshot

AS_OF = "2026-11-24"


def exemption(rule: str, record_id: str = "o1", **over: Any) -> dict[str, Any]:
    entry = {
        "rule": rule,
        "record_type": "opportunity",
        "record_id": record_id,
        "reason": "buyer on leave",
        "approver": "Dana (RVP)",
        "created": dt.date(2026, 11, 1),
        "expires": dt.date(2026, 12, 31),
    }
    return {**entry, **over}


def checker(**config: Any) -> ChangeChecker:
    return ChangeChecker.from_config(Config.from_mapping(config))


def test_an_exempt_block_does_not_refuse_and_is_listed_as_exempt() -> None:
    plain = checker().check("opportunity", None, deal("o1", next_step="TBD"), None, as_of=AS_OF)
    assert not plain.allowed
    waived = checker(exemptions=[exemption("tsos.next-step-*")])
    decision = waived.check("opportunity", None, deal("o1", next_step="TBD"), None, as_of=AS_OF)
    assert decision.allowed and decision.blocking == ()
    answer = decision.to_dict()
    (listed,) = answer["exempt"]
    assert (listed["rule"], listed["severity"], listed["exemption"]["id"]) == (
        "tsos.next-step-required",
        "block",
        "config:1",
    )
    statuses = {f["rule"]: f.get("status") for f in answer["findings"]}
    assert statuses["tsos.next-step-required"] == "exempt"
    # another record is not covered
    other = waived.check("opportunity", None, deal("o2", next_step="TBD"), None, as_of=AS_OF)
    assert not other.allowed


def test_a_crm_field_in_the_context_waives_but_never_a_channel_deal_without_its_partner() -> None:
    before = channel_deal("o1")
    after = dict(before, partner_id=None)
    context = snapshot(accounts=[channel_account("a1")])
    context["exemptions"] = [{"record_type": "opportunity", "record_id": "o1", "until": AS_OF}]
    decision = checker().check("opportunity", before, after, context, as_of=AS_OF)
    assert not decision.allowed  # tip #28: NEVER
    assert {f.reason for f in decision.blocking} == {"no_partner"}
    note = deal("o1", next_step="TBD")
    context = snapshot()
    context["exemptions"] = [{"record_type": "opportunity", "record_id": "o1", "until": AS_OF}]
    assert checker().check("opportunity", None, note, context, as_of=AS_OF).allowed


def test_a_shadow_rule_never_refuses_and_is_listed_under_shadow() -> None:
    shadow = checker(rules={"rollout": {"tsos.next-step-required": "shadow"}})
    decision = shadow.check("opportunity", None, deal("o1", next_step="TBD"), None, as_of=AS_OF)
    answer = decision.to_dict()
    shadowed = {item["rule"] for item in answer.get("shadow", [])}
    assert "tsos.next-step-required" in shadowed
    assert "tsos.next-step-required" not in {f.rule for f in decision.blocking}
    everything = checker(rules={"rollout": {"tsos.*": "shadow"}})
    quiet = everything.check("opportunity", None, deal("o1", next_step="TBD"), None, as_of=AS_OF)
    assert quiet.allowed and quiet.findings and quiet.blocking == ()


def test_a_policy_naming_no_loaded_rule_refuses_to_build() -> None:
    with pytest.raises(ConfigError, match=r"exemptions\[1\]\.rule: 'tsos\.nope'"):
        checker(exemptions=[exemption("tsos.nope")])
    with pytest.raises(ConfigError, match=r"rules\.rollout\.tsos\.nope: matches no loaded rule"):
        checker(rules={"rollout": {"tsos.nope": "shadow"}})
