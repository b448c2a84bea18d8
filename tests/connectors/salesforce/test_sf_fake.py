"""The fake org itself answers like Salesforce: shapes, SOQL, errors, limits, Bulk 2.0 CSV."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from tsos_rules.testing.fake_salesforce import FakeSalesforce, SoqlError, id18, parse_soql


@pytest.fixture
def fake() -> FakeSalesforce:
    org = FakeSalesforce(page_size=2)
    org.add_field("Account", "Partner_of_Record__c", "reference", reference_to=["Account"])
    return org


def session(fake: FakeSalesforce) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {fake.issue_session(fake.admin_id)}"
    return http


def test_ids_carry_salesforce_checksums() -> None:
    assert id18("001D000000IRFma") == "001D000000IRFmaIAH"


def test_query_pages_and_parent_fields(fake: FakeSalesforce) -> None:
    partner = fake.insert("Account", Name="Acme VAR", IsPartner=True)
    for name in ("A", "B", "C"):
        fake.insert("Account", Name=name, Partner_of_Record__c=partner)
    base = f"{fake.instance_url}/services/data/v62.0"
    soql = (
        "SELECT Id, Name, Partner_of_Record__r.Name FROM Account "
        "WHERE Partner_of_Record__c != null ORDER BY Name DESC"
    )
    with fake.mock():
        http = session(fake)
        first = http.get(f"{base}/query", params={"q": soql})
        body = first.json()
        assert first.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
        assert (body["totalSize"], body["done"], len(body["records"])) == (3, False, 2)
        record = body["records"][0]
        assert record["attributes"]["type"] == "Account"
        assert record["Name"] == "C"
        assert record["Partner_of_Record__r"]["Name"] == "Acme VAR"
        more = http.get(fake.instance_url + body["nextRecordsUrl"]).json()
        assert (more["done"], [r["Name"] for r in more["records"]]) == (True, ["A"])


def test_errors_are_lists_of_error_codes(fake: FakeSalesforce) -> None:
    base = f"{fake.instance_url}/services/data/v62.0"
    with fake.mock():
        http = session(fake)
        bad = http.get(f"{base}/query", params={"q": "SELECT Nope__c FROM Account"})
        assert bad.status_code == 400
        assert bad.json() == [
            {
                "message": "No such column 'Nope__c' on entity 'Account'.",
                "errorCode": "INVALID_FIELD",
            }
        ]
        expired = requests.get(f"{base}/query", params={"q": "SELECT Id FROM Account"})
        assert expired.status_code == 401
        assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        fake.daily_limit = fake.api_usage
        spent = http.get(f"{base}/limits")
        assert spent.status_code == 403 and "TotalRequests" in spent.json()[0]["message"]


def test_collections_upsert_and_composite_conditions(fake: FakeSalesforce) -> None:
    deal = fake.insert(
        "Opportunity", Name="D", StageName="Prospecting", CloseDate=dt.date(2027, 1, 1)
    )
    base = f"{fake.instance_url}/services/data/v62.0"
    records = [
        {"attributes": {"type": "Task"}, "Tsos_Fingerprint__c": "a" * 32, "WhatId": deal},
        {
            "attributes": {"type": "Task"},
            "Tsos_Fingerprint__c": "b" * 32,
            "OwnerId": "005000000000000AAA",
        },
    ]
    with fake.mock():
        http = session(fake)
        url = f"{base}/composite/sobjects/Task/Tsos_Fingerprint__c"
        first = http.patch(url, json={"allOrNone": False, "records": records}).json()
        assert first[0]["success"] and first[0]["created"]
        assert first[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
        again = http.patch(url, json={"allOrNone": False, "records": records[:1]}).json()
        assert again[0]["created"] is False and again[0]["id"] == first[0]["id"]
        fake.advance(10)
        patch = {
            "method": "PATCH",
            "url": f"/services/data/v62.0/sobjects/Opportunity/{deal}",
            "referenceId": "r1",
            "body": {"NextStep": "Demo"},
            "httpHeaders": {"If-Unmodified-Since": "Mon, 23 Nov 2026 09:00:00 GMT"},
        }
        answer = http.post(f"{base}/composite", json={"compositeRequest": [patch]}).json()
        (sub,) = answer["compositeResponse"]
        assert sub["httpStatusCode"] == 412 and sub["body"][0]["errorCode"] == "PRECONDITION_FAILED"
    assert fake.get("Opportunity", deal)["NextStep"] is None


def test_history_follows_tracked_changes(fake: FakeSalesforce) -> None:
    deal = fake.insert(
        "Opportunity", Name="D", StageName="Prospecting", CloseDate=dt.date(2027, 1, 1)
    )
    fake.advance()
    fake.update("Opportunity", deal, NextStep="untracked")
    fake.update("Opportunity", deal, CloseDate=dt.date(2027, 2, 1))
    rows = fake.find("OpportunityHistory", OpportunityId=deal)
    assert [r["CloseDate"] for r in rows] == [dt.date(2027, 1, 1), dt.date(2027, 2, 1)]


def test_the_soql_parser_refuses_what_it_cannot_read() -> None:
    query = parse_soql(
        "SELECT Id FROM Lead WHERE (A = 1 OR B != 'x') AND C IN (SELECT Id FROM Account)"
    )
    assert query.sobject == "Lead" and query.fields == ["Id"]
    with pytest.raises(SoqlError, match=r"expected \w+"):
        parse_soql("SELECT FROM Lead")
