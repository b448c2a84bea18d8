"""The HTTP layer: 429 back-off, retries, error mapping, the token kept secret; settings; the
plugin entry point."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import requests
import responses
from tsos_rules_hubspot import HubSpotClient, HubSpotConnector, HubSpotSettings
from tsos_rules_hubspot.testing import FakeHubSpot

from tsos_rules import ConfigError, FatalConnectorError, RetriableConnectorError
from tsos_rules.connectors.base import Action, ActionKind, ActionStatus

Make = Callable[..., HubSpotConnector]
SEARCH = "https://api.hubapi.com/crm/v3/objects/deals/search"
EMPTY = {"total": 0, "results": []}


def client_for(fake: FakeHubSpot, **kw: object) -> HubSpotClient:
    return HubSpotClient(
        fake.token,
        session=requests.Session(),
        sleep=fake.sleep,
        clock=fake.monotonic,
        **kw,  # type: ignore[arg-type]
    )


def test_429_waits_for_the_ten_second_window_then_goes_on(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    fake.throttle(2, policy="TEN_SECONDLY_ROLLING")
    result = connector.read(None, until=fake.now())
    assert result.snapshot.opportunities
    assert fake.slept[:2] == [10.0, 10.0]
    assert connector.client.rate_limited == 2


def test_retry_after_is_honoured(fake: FakeHubSpot, rsps: responses.RequestsMock) -> None:
    fake.throttle(1, policy="SECONDLY", retry_after="3")
    client = client_for(fake)
    assert client.search("deals", {"limit": 1})["total"] == 0
    assert fake.slept == [3.0]


def test_search_per_second_limit_waits_one_second(
    fake: FakeHubSpot, rsps: responses.RequestsMock
) -> None:
    fake.throttle(1, policy="SECONDLY")
    client_for(fake).search("deals", {"limit": 1})
    assert fake.slept == [1.0]


def test_back_off_is_bounded(fake: FakeHubSpot, rsps: responses.RequestsMock) -> None:
    fake.throttle(10)
    client = client_for(fake, max_retries=3)
    with pytest.raises(RetriableConnectorError, match="still rate limited"):
        client.search("deals", {"limit": 1})
    assert len(fake.calls) == 4
    assert fake.slept == [10.0, 10.0, 10.0]


def test_daily_limit_is_fatal_at_once(fake: FakeHubSpot, rsps: responses.RequestsMock) -> None:
    fake.throttle(1, policy="DAILY")
    with pytest.raises(FatalConnectorError, match="daily API limit"):
        client_for(fake).search("deals", {"limit": 1})
    assert fake.slept == []
    assert len(fake.calls) == 1


def test_server_errors_are_retried_then_retriable(
    fake: FakeHubSpot, rsps: responses.RequestsMock
) -> None:
    fake.fail(2, status=502)
    client = client_for(fake, max_retries=2)
    assert client.search("deals", {"limit": 1})["total"] == 0
    assert fake.slept == [1.0, 2.0]
    fake.fail(5, status=503)
    with pytest.raises(RetriableConnectorError, match="server error 503"):
        client.search("deals", {"limit": 1})


def test_network_errors_are_retriable() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, SEARCH, body=requests.ConnectionError("connection reset"))
        rsps.add(responses.POST, SEARCH, json=EMPTY)
        waits: list[float] = []
        client = HubSpotClient("pat-na1-secret", sleep=waits.append)
        assert client.search("deals", {})["total"] == 0
        assert waits == [1.0]
        client.close()


def test_the_rolling_window_is_respected_before_hubspot_complains(
    fake: FakeHubSpot, rsps: responses.RequestsMock
) -> None:
    client = client_for(fake, requests_per_10s=3, searches_per_second=100)
    for _ in range(7):
        client.search("deals", {"limit": 1})
    assert fake.slept and all(0 < wait <= 10.0 for wait in fake.slept)
    assert sum(fake.slept) >= 10.0  # seven calls at three per ten seconds span two windows
    assert client.rate_limited == 0


def test_remaining_header_zero_waits_for_the_window() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.POST,
            SEARCH,
            json=EMPTY,
            headers={
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
        )
        waits: list[float] = []
        HubSpotClient("pat-na1-secret", sleep=waits.append).search("deals", {})
        assert waits == [10.0]


def test_http_errors_map_onto_the_error_types() -> None:
    token = "pat-na1-11111111-2222-3333-4444-555555555555"
    cases = [
        (
            401,
            {
                "status": "error",
                "message": "Authentication credentials not found.",
                "category": "INVALID_AUTHENTICATION",
            },
            FatalConnectorError,
            "401",
        ),
        (
            403,
            {
                "status": "error",
                "message": "This app hasn't been granted all required scopes: "
                "crm.objects.deals.read",
                "category": "MISSING_SCOPES",
            },
            FatalConnectorError,
            "crm.objects.deals.read",
        ),
        (
            400,
            {"status": "error", "message": f"bad filter {token}", "category": "VALIDATION_ERROR"},
            FatalConnectorError,
            "bad filter",
        ),
    ]
    for status, body, error, text in cases:
        with responses.RequestsMock() as rsps:
            rsps.add(responses.POST, SEARCH, json=body, status=status)
            client = HubSpotClient(token, sleep=lambda _: None)
            with pytest.raises(error, match=text) as caught:
                client.search("deals", {})
            assert token not in str(caught.value)


def test_token_never_reaches_logs_errors_or_repr(
    fake: FakeHubSpot,
    portal: dict[str, str],
    connector: HubSpotConnector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.throttle(1)
    fake.fail(1)
    first = connector.read(None, until=fake.now())
    fake.update("deals", portal["deal"], {"hs_next_step": "x"})
    connector.read(first.watermark, until=fake.now())
    results = connector.write(
        [
            Action(ActionKind.CREATE_TASK, "fp-log", "opportunity", portal["deal"]),
            Action(ActionKind.CREATE_TASK, "fp-lead", "lead", "l1"),
        ]
    )
    assert results[0].status is ActionStatus.WRITTEN
    messages = [r.error or "" for r in results]
    fake.token = "another-token"  # now every request is refused with 401
    with pytest.raises(FatalConnectorError) as caught:
        connector.read(None, until=fake.now())
    captured = caplog.text + "".join(messages) + str(caught.value)
    captured += repr(connector) + repr(connector.client)
    assert "HubSpot" in caplog.text  # there are logs to search
    assert "pat-na1" not in captured
    token = connector.client._HubSpotClient__token  # type: ignore[attr-defined]
    assert token not in captured


# -- settings ----------------------------------------------------------------------------------


def test_settings_reject_unknown_keys_and_literal_tokens() -> None:
    with pytest.raises(ConfigError, match=r"connector\.pagesize: unknown setting"):
        HubSpotSettings.from_mapping({"type": "hubspot", "pagesize": 10})
    with pytest.raises(ConfigError) as caught:
        HubSpotSettings.from_mapping({"token": "pat-na1-literal-secret"})
    assert "pat-na1-literal-secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="page_size"):
        HubSpotSettings.from_mapping({"page_size": 500})
    with pytest.raises(ConfigError, match="batch_size"):
        HubSpotSettings.from_mapping({"batch_size": 101})
    with pytest.raises(ConfigError, match="partner_source"):
        HubSpotSettings.from_mapping({"partner_source": "guess"})
    with pytest.raises(ConfigError, match=r"team_roles\.Sales"):
        HubSpotSettings.from_mapping({"team_roles": {"Sales": "boss"}})
    with pytest.raises(ConfigError, match="timezone"):
        HubSpotSettings.from_mapping({"timezone": "Mars/Olympus"})


def test_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="HUBSPOT_TOKEN"):
        HubSpotConnector.from_settings({"type": "hubspot"})
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-from-env")
    connector = HubSpotConnector.from_settings({"type": "hubspot"})
    assert "pat-na1-from-env" not in repr(connector)
    connector.close()


def test_the_plugin_registers_the_hubspot_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    factories = collect_connectors(get_plugin_manager())
    assert "hubspot" in factories
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-from-env")
    connector = factories["hubspot"]({"type": "hubspot", "page_size": 50})
    assert isinstance(connector, HubSpotConnector)
    assert connector.settings.page_size == 50
    connector.close()


def test_the_fake_refuses_over_50_inputs_with_history_as_hubspot_does(
    fake: FakeHubSpot, rsps: responses.RequestsMock
) -> None:
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(51)]
    answer = requests.post(
        "https://api.hubapi.com/crm/v3/objects/deals/batch/read",
        json={
            "inputs": [{"id": i} for i in ids],
            "properties": ["dealname"],
            "propertiesWithHistory": ["closedate"],
        },
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith(
        "The maximum number of inputs supported in a batch request for property histories is 50."
    )
    assert body["correlationId"]
    # Without history, 100 inputs a call stay allowed.
    plain = requests.post(
        "https://api.hubapi.com/crm/v3/objects/deals/batch/read",
        json={"inputs": [{"id": i} for i in ids], "properties": ["dealname"]},
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    assert plain.status_code == 200 and len(plain.json()["results"]) == 51


def test_batch_reads_with_history_send_at_most_50_ids(
    fake: FakeHubSpot, rsps: responses.RequestsMock
) -> None:
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(120)]
    client = client_for(fake)
    got = client.batch_read("deals", ids, ["dealname"], history=["closedate"], batch_size=100)
    assert set(got) == set(ids)
    assert fake.count("POST", "/crm/v3/objects/deals/batch/read") == 3  # 50 + 50 + 20
    plain = client.batch_read("deals", ids, ["dealname"], batch_size=100)
    assert set(plain) == set(ids)
    assert fake.count("POST", "/crm/v3/objects/deals/batch/read") == 5  # 100 + 20 more
