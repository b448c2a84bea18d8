"""Faults: bounded retries, bounded re-authentication, the API budget, errors mapped once."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from sf_scenario import Ids, seed
from sf_support import NOW, Org

from tsos_rules.connectors.base import Action, ActionKind, ActionStatus
from tsos_rules.connectors.salesforce.faults import FaultKind, classify_response
from tsos_rules.errors import FatalConnectorError, RetriableConnectorError

FULL_READ_CALLS = 13  # 12 queries + 1 describe (the org is described before the first query)


@pytest.fixture
def ids(org: Org) -> Ids:
    return seed(org.fake)


def test_server_errors_are_retried_with_backoff(org: Org, ids: Ids) -> None:
    org.fake.fail("query", status=503, times=2)
    connector = org.connector()
    result = connector.read(None, until=NOW)
    assert len(result.snapshot.opportunities) == 3
    assert connector.api_calls == FULL_READ_CALLS + 2
    assert len(org.sleeps) == 2
    assert 0.5 <= org.sleeps[0] <= 1.0 and 1.0 <= org.sleeps[1] <= 2.0  # 1 s, then 2 s, jittered


def test_retries_are_bounded_and_leave_nothing_half_done(org: Org, ids: Ids) -> None:
    org.fake.fail("query", status=500, code="UNKNOWN_EXCEPTION", times=100)
    connector = org.connector(retry={"max_retries": 3})
    with pytest.raises(RetriableConnectorError, match="after 4 attempts: HTTP 500"):
        connector.read(None, until=NOW)
    assert org.fake.count("query") == 4 and len(org.sleeps) == 3
    # nothing was returned, so the job keeps its watermark; the next run reads it all
    org.fake.faults.clear()
    assert len(connector.read(None, until=NOW).snapshot.opportunities) == 3


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
        (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
        (502, "BAD_GATEWAY", "Bad Gateway"),
    ],
)
def test_transient_errors_are_retried(
    org: Org, ids: Ids, status: int, code: str, message: str
) -> None:
    org.fake.fail("query", status=status, code=code, message=message)
    result = org.connector().read(None, until=NOW)
    assert len(result.snapshot.opportunities) == 3
    assert len(org.sleeps) == 1


def test_retry_after_is_honoured_within_the_cap(org: Org, ids: Ids) -> None:
    org.fake.fail("query", status=503, headers={"Retry-After": "7"})
    org.fake.fail("query", status=503, headers={"Retry-After": "600"})
    org.connector(retry={"max_backoff_seconds": 20}).read(None, until=NOW)
    assert org.sleeps == [7.0, 20.0]


def test_the_daily_limit_is_not_retried(org: Org, ids: Ids) -> None:
    org.fake.fail(
        "query", status=403, code="REQUEST_LIMIT_EXCEEDED", message="TotalRequests Limit exceeded."
    )
    with pytest.raises(FatalConnectorError, match="TotalRequests"):
        org.connector().read(None, until=NOW)
    assert org.sleeps == [] and org.fake.count("query") == 1


def test_a_schema_error_names_the_fix(org: Org, ids: Ids) -> None:
    org.fake.remove_field("Opportunity", "Next_Step_Date__c")
    with pytest.raises(FatalConnectorError, match=r"INVALID_FIELD.*connectors check salesforce"):
        org.connector().read(None, until=NOW)
    assert org.sleeps == []


def test_timeouts_are_retried_then_given_up(org: Org, ids: Ids) -> None:
    org.fake.timeout("query", times=2)
    assert len(org.connector().read(None, until=NOW).snapshot.opportunities) == 3
    org.fake.timeout("query", times=50)
    with pytest.raises(RetriableConnectorError, match="TIMEOUT"):
        org.connector(retry={"max_retries": 1}).read(None, until=NOW)


def test_an_expired_session_is_renewed_once(org: Org, ids: Ids) -> None:
    connector = org.connector()
    first = connector.read(None, until=NOW)
    org.fake.expire_sessions()
    org.fake.now = NOW + dt.timedelta(seconds=5)
    org.fake.update("Opportunity", ids.airbus_cabin, NextStep="Demo")
    result = connector.read(first.watermark, until=org.fake.now)
    assert result.changed == {("opportunity", ids.airbus_cabin)}
    assert org.fake.count("auth") == 2


def test_a_session_refused_for_good_stops_after_one_new_login(org: Org, ids: Ids) -> None:
    org.fake.refuse_sessions = True
    with pytest.raises(FatalConnectorError, match="refused again right after logging in"):
        org.connector().read(None, until=NOW)
    # simple-salesforce loops login + request without bound here; we make 2 logins, 2 calls
    # (the first call of a read is the describe of the org)
    assert org.fake.count("auth") == 2 and org.fake.count("describe") == 2


def test_re_authentication_is_bounded_per_run(org: Org, ids: Ids) -> None:
    connector = org.connector(retry={"max_reauth_per_run": 1})
    connector.read(None, until=NOW)
    org.fake.expire_sessions()
    connector.read(None, until=NOW)
    org.fake.expire_sessions()
    with pytest.raises(FatalConnectorError, match="max_reauth_per_run = 1"):
        connector.read(None, until=NOW)


def test_a_given_session_id_cannot_be_renewed(
    org: Org, ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = org.fake.issue_session(org.creds.user_id)
    monkeypatch.setenv("SF_SESSION", token)
    auth = {
        "flow": "session",
        "session_id": {"env": "SF_SESSION"},
        "instance_url": org.fake.instance_url,
    }
    connector = org.connector(auth=auth)
    org.fake.expire_sessions()
    with pytest.raises(FatalConnectorError, match="flow = 'session' cannot renew it"):
        connector.read(None, until=NOW)
    assert org.fake.count("auth") == 0


def test_the_condition_is_sent_again_after_re_authentication(org: Org, ids: Ids) -> None:
    """The session expires at the Composite call itself (after the writer's version check):
    the PATCH goes again after a new login, with its If-Unmodified-Since condition."""
    connector = org.connector()
    read = connector.read(None, until=NOW)
    org.fake.now = NOW + dt.timedelta(minutes=1)
    org.fake.fail("composite", status=401, code="INVALID_SESSION_ID", message="Session expired")
    action = Action(
        ActionKind.UPDATE_FIELDS,
        "f" * 32,
        "opportunity",
        ids.boeing_fleet,
        changes={"close_date": "2026-12-15"},
        expected_version=read.versions[("opportunity", ids.boeing_fleet)],
    )
    (result,) = connector.write([action])
    assert result.status is ActionStatus.WRITTEN
    assert org.fake.get("Opportunity", ids.boeing_fleet)["CloseDate"] == dt.date(2026, 12, 15)
    sent = [c for c in org.fake.calls if c.kind == "composite"]
    assert [c.status for c in sent] == [401, 200]
    assert all("If-Unmodified-Since" in c.body for c in sent)


def test_the_run_stops_before_passing_its_share_of_the_daily_limit(org: Org, ids: Ids) -> None:
    fake = org.fake
    fake.daily_limit, fake.api_usage = 100, 40
    connector = org.connector(budget={"max_run_share": 0.05})
    with pytest.raises(FatalConnectorError, match=r"used 5 of its 5 \(max_run_share = 5%"):
        connector.read(None, until=NOW)
    assert fake.api_usage == 45  # five calls, not one more


def test_the_run_leaves_the_reserve_for_other_integrations(org: Org, ids: Ids) -> None:
    fake = org.fake
    fake.daily_limit, fake.api_usage = 1000, 940
    connector = org.connector(budget={"min_remaining_share": 0.05, "max_run_share": 1.0})
    with pytest.raises(FatalConnectorError, match="has used 950 of its 1000"):
        connector.read(None, until=NOW)
    assert fake.api_usage == 950


def test_writes_check_the_budget_before_writing_anything(org: Org, ids: Ids) -> None:
    fake = org.fake
    fake.daily_limit = 300
    connector = org.connector(budget={"max_run_share": 0.05})  # 15 calls for this run
    connector.read(None, until=NOW)
    actions = [
        Action(ActionKind.CREATE_TASK, f"{n:032x}", "opportunity", ids.airbus_cabin)
        for n in range(800)
    ]
    with pytest.raises(FatalConnectorError, match="writing 800 action"):
        connector.write(actions)
    assert fake.count("collections") == 0 and not [
        t for t in fake.records("Task") if t["Tsos_Fingerprint__c"]
    ]


def test_error_bodies_map_to_one_decision() -> None:
    def response(status: int, body: bytes) -> requests.Response:
        made = requests.Response()
        made.status_code, made._content = status, body
        return made

    expired = response(
        401, b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
    )
    assert classify_response(expired).kind is FaultKind.REAUTH
    assert classify_response(response(412, b"")).kind is FaultKind.STALE
    assert classify_response(response(503, b"<html>down</html>")).kind is FaultKind.RETRY
    denied = response(403, b'[{"message":"no access","errorCode":"INSUFFICIENT_ACCESS"}]')
    assert classify_response(denied).kind is FaultKind.FATAL
    oauth = response(400, b'{"error":"invalid_grant","error_description":"expired"}')
    assert classify_response(oauth).code == "invalid_grant"
