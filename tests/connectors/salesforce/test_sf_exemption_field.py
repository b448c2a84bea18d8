"""CRM-field exemptions: ``[connector.exemptions]`` maps Opportunity fields holding a waiver
(until a date, why, for which rules), read into the snapshot's ``exemptions`` and honoured by
the sync, except what the doctrine forbids waiving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sf_scenario import Ids, at, day, seed
from sf_support import Org, merge
from test_sf_settings import BASE
from test_sf_sync import LAG, expected, finding_tasks, fp, sync

from tsos_rules.connectors.salesforce import SalesforceSettings
from tsos_rules.connectors.salesforce.reader import split_rules
from tsos_rules.errors import ConfigError, FatalConnectorError
from tsos_rules.sync.state import StateStore

pytestmark = pytest.mark.usefixtures("isolated_env")

FIELDS = {
    "until_field": "Tsos_Exempt_Until__c",
    "reason_field": "Tsos_Exempt_Reason__c",
    "rules_field": "Tsos_Exempt_Rules__c",
}


def waive(org: Org, until: Any, rules: str = "", reason: str = "merger: legal hold") -> Ids:
    """Seed the scenario with the waiver fields, and set them on the Boeing fleet deal."""
    fake = org.fake
    fake.add_field("Opportunity", "Tsos_Exempt_Until__c", "date")
    fake.add_field("Opportunity", "Tsos_Exempt_Reason__c", "string")
    fake.add_field("Opportunity", "Tsos_Exempt_Rules__c", "string")
    ids = seed(fake)
    fake.now = at(-1)
    fake.update(
        "Opportunity",
        ids.boeing_fleet,
        Tsos_Exempt_Until__c=until,
        Tsos_Exempt_Reason__c=reason,
        Tsos_Exempt_Rules__c=rules,
        by=ids.cara,
    )
    fake.now = at(0)
    return ids


def test_the_mapped_fields_are_read_into_the_snapshot(org: Org) -> None:
    ids = waive(org, day(30), rules="tsos.close-date-*; tsos.channel-*")
    result = org.connector(exemptions=FIELDS).read(None, until=None)
    (waiver,) = result.snapshot.exemptions
    assert (waiver.record_type, waiver.record_id, waiver.until) == (
        "opportunity",
        ids.boeing_fleet,
        day(30),
    )
    assert waiver.rules == ("tsos.close-date-*", "tsos.channel-*")
    assert (waiver.reason, waiver.field) == ("merger: legal hold", "Tsos_Exempt_Until__c")
    deal_queries = [q for q, _ in org.fake.query_log if "FROM Opportunity" in q]
    assert any("Tsos_Exempt_Until__c" in q and "Tsos_Exempt_Rules__c" in q for q in deal_queries)


def test_without_the_mapping_no_waiver_field_is_queried(org: Org) -> None:
    waive(org, day(30))
    result = org.connector().read(None, until=None)
    assert result.snapshot.exemptions == ()
    assert not any("Tsos_Exempt" in q for q, _ in org.fake.query_log)


def test_the_sync_honours_the_field_but_never_waives_a_channel_deal_without_its_partner(
    org: Org, tmp_path: Path
) -> None:
    ids = waive(org, day(30))  # blank rules: every rule
    summary = sync(org, tmp_path, connector=org.connector(read=LAG, exemptions=FIELDS))
    tasks = finding_tasks(org)
    waived = {
        fp("tsos.close-date-locked", "opportunity", ids.boeing_fleet, "moved_unapproved"),
        fp("tsos.channel-lead-not-direct", "opportunity", ids.boeing_fleet, "direct_owner"),
    }
    assert set(tasks) == set(expected(ids)) - waived
    # tip #28: "When can you take a channel lead direct? NEVER." — still tasked
    assert fp("tsos.channel-lead-not-direct", "opportunity", ids.boeing_fleet, "no_partner") in (
        tasks
    )
    assert summary.findings_exempt == 2
    store = StateStore(tmp_path / "state.sqlite")
    try:
        (stored,) = store.exemptions("salesforce")
    finally:
        store.close()
    assert (stored.source, stored.approver, stored.reason) == (
        "crm",
        "crm:Tsos_Exempt_Until__c",
        "merger: legal hold",
    )
    assert stored.expires == day(30)


def test_a_date_beyond_the_maximum_is_reported_and_not_honoured(org: Org, tmp_path: Path) -> None:
    ids = waive(org, day(400))
    summary = sync(org, tmp_path, connector=org.connector(read=LAG, exemptions=FIELDS))
    assert set(finding_tasks(org)) == set(expected(ids))
    (problem,) = summary.exemption_problems
    assert f"opportunity {ids.boeing_fleet}" in problem
    assert "Tsos_Exempt_Until__c" in problem and "180 days" in problem
    assert summary.findings_exempt == 0


def test_a_past_date_waives_nothing(org: Org, tmp_path: Path) -> None:
    ids = waive(org, day(-1))
    summary = sync(org, tmp_path, connector=org.connector(read=LAG, exemptions=FIELDS))
    assert set(finding_tasks(org)) == set(expected(ids))
    assert summary.findings_exempt == 0


def test_a_mapped_field_missing_in_the_org_fails_clearly(org: Org) -> None:
    seed(org.fake)
    connector = org.connector(exemptions=FIELDS)
    with pytest.raises(FatalConnectorError, match=r"Opportunity\.Tsos_Exempt_Until__c") as caught:
        connector.read(None, until=None)
    assert "mapping exemptions.until_field" in str(caught.value)
    problems = {(p.where, p.message) for p in connector.check() if p.level == "error"}
    assert any(where == "Opportunity.Tsos_Exempt_Until__c" for where, _ in problems)


def test_split_rules_takes_semicolons_and_commas() -> None:
    assert split_rules("tsos.a; tsos.b ,tsos.c-*;;") == ("tsos.a", "tsos.b", "tsos.c-*")
    assert split_rules("  ") == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"reason_field": "R__c"}, "connector.exemptions.until_field: required"),
        ({"until_field": "Bad Field"}, "connector.exemptions.until_field: 'Bad Field'"),
        ({"until_field": "U__c", "rule_field": "X__c"}, "connector.exemptions.rule_field"),
    ],
)
def test_bad_exemption_settings_are_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        SalesforceSettings.parse(merge(BASE, {"exemptions": table}))


def test_exemption_settings_default_to_none() -> None:
    assert SalesforceSettings.parse(BASE).exemptions.fields() == []
