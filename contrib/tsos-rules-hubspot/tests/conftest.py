"""Fixtures for the HubSpot connector tests: a fake portal served through ``responses``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from tsos_rules_hubspot import HubSpotConnector, HubSpotSettings
from tsos_rules_hubspot.testing import FakeHubSpot

STAGE_MAP = {
    "appointmentscheduled": "mql",
    "qualifiedtobuy": "sql",
    "presentationscheduled": "draft_proposal",
    "decisionmakerboughtin": "trial_close",
    "contractsent": "closing",
}

SETTINGS: dict[str, Any] = {
    "type": "hubspot",
    "token": {"env": "HUBSPOT_TOKEN"},
    "stage_map": STAGE_MAP,
    "team_roles": {"Channel Team": "channel"},
    "owner_roles": {"partner.rep@acmevar.example": "partner"},
    "search_lag_seconds": 0,
}


def seed_portal(fake: FakeHubSpot) -> dict[str, str]:
    """A small portal: two owners, a customer with a partner of record, a partner, two deals
    on the customer (one partnered through a labelled association), a task and a meeting."""
    fake.add_owner(
        "71",
        email="ray@vendor.example",
        first="Ray",
        last="Direct",
        user_id=501,
        teams=["Direct Sales"],
    )
    fake.add_owner(
        "72",
        email="chan@vendor.example",
        first="Chan",
        last="Nel",
        user_id=502,
        teams=["Channel Team"],
    )
    fake.add_owner("73", email="partner.rep@acmevar.example", first="Pat", user_id=503)
    ids: dict[str, str] = {}
    ids["partner"] = fake.add(
        "companies",
        {
            "name": "Acme VAR",
            "type": "PARTNER",
            "tsos_partner_tier": "premier",
            "tsos_credit_limit": "250000",
            "tsos_fiscal_year_start_month": "4",
        },
    )
    ids["customer"] = fake.add(
        "companies",
        {
            "name": "Boeing",
            "domain": "boeing.example",
            "type": "PROSPECT",
            "tsos_partner_of_record_id": ids["partner"],
        },
    )
    ids["deal"] = fake.add(
        "deals",
        {
            "dealname": "Boeing fleet",
            "amount": "120000",
            "closedate": "2026-11-30T00:00:00Z",
            "dealstage": "presentationscheduled",
            "pipeline": "default",
            "hubspot_owner_id": "72",
            "hs_next_step": "Legal review of draft MSA",
            "notes_next_activity_date": "2026-11-28T15:00:00Z",
            "hs_forecast_category": "BEST_CASE",
            "hs_deal_stage_probability": "0.6",
            "hs_is_closed": "false",
            "hs_is_closed_won": "false",
            "hs_all_collaborator_owner_ids": "71;73",
        },
        user_id=502,
    )
    fake.update(
        "deals",
        ids["deal"],
        {"dealstage": "decisionmakerboughtin", "hs_deal_stage_probability": "0.8"},
        user_id=502,
    )
    fake.update("deals", ids["deal"], {"closedate": "2026-12-15T00:00:00Z"}, user_id=502)
    ids["sibling"] = fake.add(
        "deals",
        {
            "dealname": "Boeing spares",
            "amount": "8000",
            "closedate": "2027-01-20T00:00:00Z",
            "dealstage": "appointmentscheduled",
            "hubspot_owner_id": "71",
            "hs_is_closed": "false",
        },
    )
    fake.associate("deals", ids["deal"], "companies", ids["customer"], type_id=5)
    fake.associate("deals", ids["deal"], "companies", ids["partner"], label="Partner")
    fake.associate("deals", ids["sibling"], "companies", ids["customer"], type_id=5)
    ids["contact"] = fake.add("contacts", {"email": "cio@boeing.example"})
    fake.associate("deals", ids["deal"], "contacts", ids["contact"], type_id=3)
    ids["task"] = fake.add(
        "tasks",
        {
            "hs_task_subject": "Call with CIO",
            "hs_task_status": "NOT_STARTED",
            "hs_timestamp": "2026-11-26T10:00:00Z",
            "hubspot_owner_id": "71",
        },
    )
    fake.associate("tasks", ids["task"], "deals", ids["deal"], type_id=216)
    fake.associate("tasks", ids["task"], "companies", ids["customer"], type_id=192)
    ids["meeting"] = fake.add(
        "meetings",
        {
            "hs_meeting_title": "Demo",
            "hs_meeting_outcome": "COMPLETED",
            "hs_meeting_start_time": "2026-11-03T14:00:00Z",
            "hs_timestamp": "2026-11-03T14:00:00Z",
            "hubspot_owner_id": "71",
            "tsos_partner_notified": "true",
        },
    )
    fake.associate("meetings", ids["meeting"], "deals", ids["sibling"], type_id=212)
    return ids


@pytest.fixture
def fake() -> FakeHubSpot:
    return FakeHubSpot()


@pytest.fixture
def portal(fake: FakeHubSpot) -> dict[str, str]:
    return seed_portal(fake)


@pytest.fixture
def rsps(fake: FakeHubSpot) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        yield mock


@pytest.fixture
def make_connector(
    fake: FakeHubSpot, rsps: responses.RequestsMock
) -> Iterator[Callable[..., HubSpotConnector]]:
    """Build connectors on the fake portal: ``make_connector(page_size=2, ...)``."""
    made: list[HubSpotConnector] = []

    def make(**overrides: Any) -> HubSpotConnector:
        settings = HubSpotSettings.from_mapping({**SETTINGS, **overrides})
        connector = HubSpotConnector(
            settings,
            token=fake.token,
            session=requests.Session(),
            sleep=fake.sleep,
            clock=fake.monotonic,
            now=fake.now,
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector: Callable[..., HubSpotConnector]) -> HubSpotConnector:
    return make_connector()


def at(fake: FakeHubSpot) -> dt.datetime:
    return fake.now()
