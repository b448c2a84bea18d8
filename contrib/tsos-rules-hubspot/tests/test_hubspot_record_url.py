"""The HubSpot connector links findings to records in the web app, by the portal id."""

from __future__ import annotations

from typing import Any

from tsos_rules_hubspot.client import HubSpotRequestError
from tsos_rules_hubspot.connector import HubSpotConnector
from tsos_rules_hubspot.settings import HubSpotSettings


class _AccountInfo:
    """Answers only GET /account-info/v3/details, counting the calls."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    def request(self, method: str, path: str, **_: Any) -> Any:
        self.calls += 1
        assert (method, path) == ("GET", "/account-info/v3/details")
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self) -> None:
        pass


def _connector(answer: Any) -> tuple[HubSpotConnector, _AccountInfo]:
    client = _AccountInfo(answer)
    settings = HubSpotSettings.from_mapping({"type": "hubspot", "token": {"env": "X"}})
    return HubSpotConnector(settings, client=client), client  # type: ignore[arg-type]


def test_deal_company_and_lead_links_use_the_portal_id_asked_once() -> None:
    connector, client = _connector({"portalId": 2519445, "timeZone": "US/Eastern"})
    base = "https://app.hubspot.com/contacts/2519445/record"
    assert connector.record_url("opportunity", "981") == f"{base}/0-3/981"
    assert connector.record_url("account", "77") == f"{base}/0-2/77"
    assert connector.record_url("lead", "5") == f"{base}/0-136/5"
    assert connector.record_url("activity", "unknown") is None
    assert client.calls == 1


def test_no_link_when_the_portal_id_cannot_be_read() -> None:
    connector, client = _connector(HubSpotRequestError("forbidden", status=403))
    assert connector.record_url("opportunity", "981") is None
    assert connector.record_url("opportunity", "982") is None
    assert client.calls == 1


def test_an_account_hosted_in_the_eu_links_to_its_own_web_app() -> None:
    connector, _ = _connector({"portalId": 139, "uiDomain": "app-eu1.hubspot.com"})
    assert (
        connector.record_url("opportunity", "981")
        == "https://app-eu1.hubspot.com/contacts/139/record/0-3/981"
    )


def test_a_ui_domain_that_is_not_hubspots_is_not_used_as_the_host() -> None:
    connector, _ = _connector({"portalId": 139, "uiDomain": "evil.example/app.hubspot.com"})
    assert connector.record_url("account", "77") == (
        "https://app.hubspot.com/contacts/139/record/0-2/77"
    )
