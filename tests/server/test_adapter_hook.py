"""In-line adapters come from plugins: a route per registered adapter, none for an absent one."""

from __future__ import annotations

from typing import Any

import pytest

from inline_support import AUTH
from tsos_rules import hookimpl
from tsos_rules.config import Config
from tsos_rules.connectors.inline import Binding, CheckRequest, InlineAdapter, ServeContext
from tsos_rules.connectors.salesforce.inline import SalesforceInline
from tsos_rules.errors import ConfigError
from tsos_rules.plugins import DISABLE_ENV


def _bind(context: ServeContext) -> Binding:
    def adapt(body: Any) -> CheckRequest:
        deal = {"id": str(body["deal"]), "name": body.get("title"), "next_step": "TBD"}
        return CheckRequest.of("pipe", "opportunity", None, deal, as_of="2026-11-24")

    return Binding(adapt, render=lambda decision, decision_id: {"ok": decision.allowed})


PIPE = InlineAdapter("pipe", _bind, summary="Judge a Pipe deal.", operation_id="checkPipe")


class PipePlugin:
    @hookimpl
    def tsos_rules_register_inline_adapters(self, register: Any) -> None:
        register(PIPE)


def test_a_plugins_adapter_gets_its_route_auth_rendering_and_openapi(tsos_plugin, make_client):
    tsos_plugin(PipePlugin(), name="pipe")
    client = make_client()
    assert client.post("/v1/pipe/check", json={"deal": 7}).status_code == 401
    answer = client.post("/v1/pipe/check", json={"deal": 7, "title": "Fleet"}, headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {"ok": False}  # "TBD" is a placeholder next step: refused
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/v1/pipe/check"]["post"]["operationId"] == "checkPipe"


def test_a_name_registered_twice_stops_the_service(tsos_plugin, make_client):
    tsos_plugin(PipePlugin(), name="pipe")
    tsos_plugin(PipePlugin(), name="pipe-again")
    with pytest.raises(ConfigError, match=r"pipe-again.*registered twice"):
        make_client()


def test_without_the_hubspot_plugin_there_is_no_hubspot_route(make_client, monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "hubspot")
    client = make_client()
    assert client.post("/v1/hubspot/check", json={}, headers=AUTH).status_code == 404
    assert "/v1/hubspot/check" not in client.get("/openapi.json").json()["paths"]
    assert client.post("/v1/salesforce/check", json={}, headers=AUTH).status_code == 400


def test_the_salesforce_connectors_field_map_applies_in_line():
    config = Config.from_mapping(
        {
            "connector": {
                "type": "salesforce",
                "fields": {
                    "next_step_date": "Opportunity.Next_Step_Due__c",
                    "opportunity.channel": "",
                },
            }
        }
    )
    adapter = SalesforceInline.from_config(config)
    body = {
        "after": {
            "attributes": {"type": "Opportunity"},
            "Id": "006A",
            "Next_Step_Due__c": "2026-12-01",
            "Next_Step_Date__c": "2026-01-01",
            "Channel__c": "not a channel",
        }
    }
    after = adapter.adapt(body).change.after
    assert after.next_step_date.isoformat() == "2026-12-01"
    assert after.channel is None  # switched off: the field is kept as an unknown key
    assert after.extra["Channel__c"] == "not a channel"
