"""The Salesforce connector links findings to Lightning record pages on the login's instance."""

from __future__ import annotations

from sf_support import Org


def test_record_urls_are_lightning_pages_on_the_instance(org: Org) -> None:
    connector = org.connector()
    assert connector.record_url("opportunity", "006000000000001") is None  # not logged in yet
    connector.read(None)
    instance = connector.auth.current.instance_url if connector.auth.current else ""
    assert instance.startswith("https://")
    assert (
        connector.record_url("opportunity", "006000000000001")
        == f"{instance}/lightning/r/Opportunity/006000000000001/view"
    )
    assert connector.record_url("account", "001A").endswith("/lightning/r/Account/001A/view")
    assert connector.record_url("lead", "00QA").endswith("/lightning/r/Lead/00QA/view")
    assert connector.record_url("activity", "00TA").endswith("/lightning/r/Task/00TA/view")
    assert connector.record_url("activity", "00UA").endswith("/lightning/r/Event/00UA/view")
    assert connector.record_url("activity", "0XXA") is None
