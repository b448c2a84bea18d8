"""HubSpot in-line: the v3 request signature, its 5-minute window, replays, and the deal adapter.

``POST /v1/hubspot/check`` exists because this package registers its in-line adapter; the app
is driven through ``httpx.ASGITransport`` on an anyio blocking portal (no network, no sockets).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from tsos_rules_hubspot import inline as adapters
from tsos_rules_hubspot.inline import hubspot_signature_v3, hubspot_uri

from tsos_rules.inline import ChangeError, clear_checkers
from tsos_rules.plugins import DISABLE_ENV
from tsos_rules.server import ServeSettings, create_app

TOKEN = "tok-9f3a1c77e2b54d0c8e1f-not-a-real-token"
HUBSPOT_SECRET = "hs-secret-0b6d2e44-71aa-4f0e-9c3b-not-real"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Defaults only, and no other third-party pack adding findings to the decisions."""
    others = sorted({ep.name for ep in entry_points(group="tsos_rules")} - {"hubspot"})
    monkeypatch.setenv(DISABLE_ENV, ",".join(others))
    monkeypatch.delenv("TSOS_RULES_CONFIG", raising=False)
    clear_checkers()
    yield
    clear_checkers()


class Client:
    """A synchronous client for an ASGI app (requests go through the real middleware stack)."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.app = app
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            return await self._client.post(url, **kwargs)

        return self.portal.call(call)

    def close(self) -> None:
        self.portal.call(self._client.aclose)
        self.app.state.service.close()


@pytest.fixture
def make_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Client]]:
    """``make_client(**serve_settings, app_kwargs={...})`` -> a Client on a fresh app."""
    clients: list[Client] = []
    monkeypatch.setenv("TSOS_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("TSOS_TEST_HUBSPOT", HUBSPOT_SECRET)
    with start_blocking_portal() as portal:

        def make(*, app_kwargs: dict[str, Any] | None = None, **serve: Any) -> Client:
            table: dict[str, Any] = {
                "token": {"env": "TSOS_TEST_TOKEN"},
                "hubspot_app_secret": {"env": "TSOS_TEST_HUBSPOT"},
                "decision_log": str(tmp_path / "decisions.jsonl"),
                "max_body_bytes": 64 * 1024,
            }
            table.update(serve)
            app = create_app(ServeSettings.from_mapping(table), **(app_kwargs or {}))
            clients.append(Client(portal, app))
            return clients[-1]

        yield make
        for client in clients:
            client.close()


# HubSpot's published example (hubspot-api-python, tests/spec/utils/test_signature.py).
EXAMPLE = {
    "secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
    "method": "POST",
    "uri": "https://www.example.com/webhook_uri",
    "body": b"{'example_field':'example_value'}",
    "timestamp": "15000000",
    "signature": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
}


def test_the_signature_matches_hubspots_published_example():
    e = EXAMPLE
    assert (
        hubspot_signature_v3(e["secret"], e["method"], e["uri"], e["body"], e["timestamp"])
        == e["signature"]
    )


def test_the_uri_is_decoded_as_hubspots_table_says():
    assert hubspot_uri("https://x.io/a%3Ab%2Fc?d=%40%21%24%27%28%29%2a%2C%3B%3f%20") == (
        "https://x.io/a:b/c?d=@!$'()*,;?%20"
    )


NOW = 1_790_000_000.0  # a fixed clock for the service


def signed(
    body: bytes,
    *,
    uri: str = "http://testserver/v1/hubspot/check",
    at: float = NOW,
    secret: str = HUBSPOT_SECRET,
) -> dict[str, str]:
    timestamp = str(int(at * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": hubspot_signature_v3(secret, "POST", uri, body, timestamp),
    }


@pytest.fixture
def hub(make_client):
    return make_client(app_kwargs={"clock": lambda: NOW})


DEAL = {
    "hs_object_id": "9001",
    "dealname": "Fleet renewal",
    "dealstage": "closing",
    "hs_deal_stage_probability": "0.8",
    "amount": "120000",
    "closedate": "2026-12-15T00:00:00Z",
    "hs_next_step": "TBD",
    "notes_next_activity_date": "2026-11-28",
    "hs_forecast_category": "COMMIT",
    "hs_is_closed": "false",
    "hubspot_owner_id": "77",
    "as_of": "2026-11-24",
}


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_a_signed_workflow_webhook_is_judged(hub):
    body = body_of(DEAL)
    response = hub.post("/v1/hubspot/check", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["allowed"] is False
    assert {f["reason"] for f in payload["findings"]} == {"placeholder", "no_next_step"}
    assert "placeholder" in payload["message"]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (lambda b: signed(b, secret="not-the-secret"), "does not match"),
        (lambda b: signed(b + b" "), "does not match"),
        (lambda b: signed(b, uri="http://testserver/v1/check"), "does not match"),
        (lambda b: signed(b, at=NOW - 301), "older than 5 minutes"),
        (lambda b: signed(b, at=NOW + 301), "in the future"),
        (lambda b: {**signed(b), "X-HubSpot-Request-Timestamp": "soon"}, "milliseconds"),
        (lambda b: {"X-HubSpot-Request-Timestamp": str(int(NOW * 1000))}, "missing"),
        (lambda b: {"X-HubSpot-Signature-v3": signed(b)["X-HubSpot-Signature-v3"]}, "missing"),
        (lambda b: {}, "missing"),
    ],
)
def test_bad_stale_or_missing_signatures_are_401(hub, headers, why):
    body = body_of(DEAL)
    response = hub.post("/v1/hubspot/check", content=body, headers=headers(body))
    assert response.status_code == 401
    assert why in response.json()["error"]["message"]


def test_a_timestamp_just_inside_the_window_passes(hub):
    body = body_of(DEAL)
    assert hub.post(
        "/v1/hubspot/check", content=body, headers=signed(body, at=NOW - 299)
    ).is_success


def test_a_replayed_request_is_401(hub):
    body = body_of(DEAL)
    headers = signed(body)
    assert hub.post("/v1/hubspot/check", content=body, headers=headers).status_code == 200
    replay = hub.post("/v1/hubspot/check", content=body, headers=headers)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["error"]["message"]


def test_a_request_refused_by_a_server_error_can_be_retried(make_client):
    broken = make_client(decision_log="/dev/full", app_kwargs={"clock": lambda: NOW})
    body = body_of(DEAL)
    headers = signed(body)
    assert broken.post("/v1/hubspot/check", content=body, headers=headers).status_code == 503
    again = broken.post("/v1/hubspot/check", content=body, headers=headers)
    assert again.status_code == 503  # not 401: the first attempt got no decision


def test_the_public_url_is_what_hubspot_signed_behind_a_proxy(make_client):
    proxied = make_client(
        public_url="https://rules.example.com/", app_kwargs={"clock": lambda: NOW}
    )
    body = body_of(DEAL)
    public = signed(body, uri="https://rules.example.com/v1/hubspot/check")
    assert proxied.post("/v1/hubspot/check", content=body, headers=public).status_code == 200
    local = signed(body, at=NOW - 1)
    assert proxied.post("/v1/hubspot/check", content=body, headers=local).status_code == 401


def test_the_query_string_is_signed_too(hub):
    body = body_of(DEAL)
    uri = "http://testserver/v1/hubspot/check?portal=42&at=a%3Ab"
    response = hub.post(
        "/v1/hubspot/check?portal=42&at=a%3Ab", content=body, headers=signed(body, uri=uri)
    )
    assert response.status_code == 200


def test_a_bearer_token_is_accepted_instead_and_a_wrong_one_refused(hub):
    body = body_of(DEAL)
    assert hub.post("/v1/hubspot/check", content=body, headers=AUTH).status_code == 200
    wrong = {**signed(body), "Authorization": "Bearer nope"}
    assert hub.post("/v1/hubspot/check", content=body, headers=wrong).status_code == 401


def test_without_an_app_secret_only_the_token_works(make_client):
    plain = make_client(hubspot_app_secret=None, app_kwargs={"clock": lambda: NOW})
    body = body_of(DEAL)
    assert plain.post("/v1/hubspot/check", content=body, headers=signed(body)).status_code == 401
    assert plain.post("/v1/hubspot/check", content=body, headers=AUTH).status_code == 200


def test_the_real_clock_window(make_client):
    live = make_client()
    body = body_of(DEAL)
    assert live.post(
        "/v1/hubspot/check", content=body, headers=signed(body, at=time.time())
    ).is_success
    stale = signed(body, at=time.time() - 6 * 60)
    assert live.post("/v1/hubspot/check", content=body, headers=stale).status_code == 401


# -- the adapter --------------------------------------------------------------------------------


def deal_of(body: Any, **kwargs: Any) -> Any:
    return adapters.adapt(body, **kwargs).change.after


def test_the_flat_customised_body():
    after = deal_of(DEAL)
    assert after.id == "9001"
    assert after.close_date.isoformat() == "2026-12-15"
    assert after.probability == 80
    assert after.amount == 120000
    assert after.forecast_category.value == "commit"
    assert after.is_closed is False
    assert after.owner_id == "77"
    assert after.next_step_date.isoformat() == "2026-11-28"


def test_the_legacy_object_shape_with_wrapped_values_and_associations():
    body = {
        "portalId": 62515,
        "dealId": 9001,
        "isDeleted": False,
        "properties": {
            "dealname": {"value": "Fleet", "timestamp": 1, "source": "CRM", "versions": []},
            "closedate": {"value": "1781481600000"},
            "hs_manual_forecast_category": {"value": "BEST_CASE"},
            "hs_is_closed_won": {"value": "false"},
            "my_custom": {"value": "kept"},
        },
        "associations": {"associatedCompanyIds": [314], "associatedVids": [1]},
    }
    after = deal_of(body)
    assert after.id == "9001"
    assert after.account_id == "314"
    assert after.close_date.isoformat() == "2026-06-15"
    assert after.forecast_category.value == "best_case"
    assert after.extra["my_custom"] == "kept"


def test_the_v3_object_shape():
    body = {
        "id": "9001",
        "properties": {"dealstage": "closedwon", "hs_is_closed": "true", "amount": ""},
        "associations": {"companies": {"results": [{"id": "55", "type": "deal_to_company"}]}},
    }
    after = deal_of(body)
    assert (after.id, after.stage, after.is_closed, after.amount, after.account_id) == (
        "9001",
        "closedwon",
        True,
        None,
        "55",
    )


def test_property_names_can_be_remapped():
    after = deal_of(
        {"hs_object_id": "1", "partner_account": "p7"}, overrides={"partner_id": "partner_account"}
    )
    assert after.partner_id == "p7"


def test_a_before_object_makes_the_close_date_move_visible():
    locked = {**DEAL, "hs_next_step": "Legal review", "closedate": "2026-12-20"}
    body = {
        **locked,
        "before": {
            "closedate": "2026-12-15",
            "dealstage": "closing",
            "hs_forecast_category": "COMMIT",
        },
    }
    request = adapters.adapt(body)
    assert request.change.before.close_date.isoformat() == "2026-12-15"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([{"objectId": 1, "propertyName": "closedate"}], "body"),
        ({"objectType": "CONTACT", "hs_object_id": "1"}, "objectType"),
        ({"dealname": "no id"}, "hs_object_id"),
        ({"hs_object_id": "1", "amount": "lots"}, "amount"),
        ({"properties": {"hs_object_id": "1", "closedate": "someday"}}, "properties.closedate"),
        ({"properties": {"hs_object_id": "1", "hs_is_closed": "maybe"}}, "properties.hs_is_closed"),
        (
            {"properties": {"hs_object_id": "1", "tsos_channel": "resale"}},
            "properties.tsos_channel",
        ),
        ({"properties": []}, "properties"),
        ({"hs_object_id": "1", "before": []}, "before"),
        ({"hs_object_id": "1", "hs_forecast_category": "LIKELY"}, "hs_forecast_category"),
    ],
)
def test_adapter_errors_name_the_hubspot_property(body, field):
    with pytest.raises(ChangeError) as caught:
        adapters.adapt(body)
    assert caught.value.field == field


def test_a_malformed_hubspot_body_is_400_over_http(hub):
    body = b'{"hs_object_id": "1", "closedate": "someday"}'
    response = hub.post("/v1/hubspot/check", content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "closedate"
