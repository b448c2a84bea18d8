"""Which finding an exemption waives: a finding, a record, an account or a partner; never what
the doctrine forbids waiving; only while it holds; CRM-field rows within the maximum."""

from __future__ import annotations

import datetime as dt

from tsos_rules.findings import Finding, Severity
from tsos_rules.policy.exemptions import (
    NEVER_WAIVED,
    Exemption,
    Waivers,
    from_snapshot,
)

TODAY = dt.date(2026, 11, 24)


def finding(rule: str = "tsos.next-step-required", reason: str = "missing", rid: str = "o1"):
    return Finding(rule, Severity.BLOCK, "opportunity", rid, reason, "m", "d")


def waiver(**kw) -> Exemption:
    base = {
        "id": "config:1",
        "source": "config",
        "rule": "tsos.*",
        "reason": "merger",
        "approver": "CFO",
        "expires": TODAY,
    }
    return Exemption(**{**base, **kw})


def test_a_record_exemption_matches_its_record_and_rule_glob_only() -> None:
    e = waiver(record_type="opportunity", record_id="o1", rule="tsos.next-step-*")
    assert e.covers(finding())
    assert not e.covers(finding(rid="o2"))
    assert not e.covers(finding(rule="tsos.close-date-locked"))


def test_account_and_partner_exemptions_match_by_the_records_scope() -> None:
    by_account = waiver(account_id="a1")
    assert by_account.covers(finding(), account_id="a1")
    assert not by_account.covers(finding(), account_id="a2")
    assert not by_account.covers(finding())
    by_partner = waiver(partner_id="p1")
    assert by_partner.covers(finding(), partner_id="p1")
    assert not by_partner.covers(finding(), account_id="p1")


def test_the_doctrine_limit_holds_for_every_scope() -> None:
    for reason in ("no_partner", "marked_direct"):
        forbidden = finding(rule=NEVER_WAIVED, reason=reason)
        assert not waiver(record_id="o1").covers(forbidden)
        assert not waiver(account_id="a1").covers(forbidden, account_id="a1")
        assert not waiver(fingerprint=forbidden.fingerprint).covers(forbidden)
    assert waiver(record_id="o1").covers(finding(rule=NEVER_WAIVED, reason="direct_owner"))


def test_waivers_hold_through_their_last_day_only() -> None:
    e = waiver(record_id="o1", expires=TODAY)
    assert Waivers([e], TODAY).exemption_for(finding()) == e
    assert Waivers([e], TODAY + dt.timedelta(days=1)).exemption_for(finding()) is None


def test_crm_rows_become_exemptions_per_rule_and_beyond_the_maximum_a_problem() -> None:
    rows = [
        {"record_type": "opportunity", "record_id": "o1", "until": TODAY, "rules": ("a", "b"),
         "field": "U__c", "reason": None},
        {"record_type": "opportunity", "record_id": "o2", "until": TODAY + dt.timedelta(days=31),
         "rules": (), "field": "U__c", "reason": "why"},
        {"record_type": "opportunity", "record_id": "o3", "until": TODAY - dt.timedelta(days=1),
         "rules": (), "field": "U__c", "reason": None},
    ]  # fmt: skip
    crm = from_snapshot(rows, TODAY, max_days=30)
    assert [(e.record_id, e.rule) for e in crm.exemptions] == [("o1", "a"), ("o1", "b")]
    assert {e.approver for e in crm.exemptions} == {"crm:U__c"}
    (problem,) = crm.problems
    assert problem.startswith("opportunity o2: U__c ") and "more than 30 days ahead" in problem
