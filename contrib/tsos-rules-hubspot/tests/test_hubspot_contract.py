"""The HubSpot connector against ``tsos_rules.testing.ConnectorContract``, on the fake portal.

The harness writes the contract's snapshot into :class:`FakeHubSpot` the way HubSpot holds it:
accounts and partners are companies, owners are users, deals carry their primary company and
a labelled ``Partner`` association, leads are HubSpot Leads linked to their company and deal,
activities are tasks linked to their deal and company, and close-date moves are
``propertiesWithHistory`` entries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from tsos_rules_hubspot import HubSpotConnector, HubSpotSettings
from tsos_rules_hubspot.testing import FakeHubSpot

from tsos_rules import Snapshot
from tsos_rules.connectors.base import Connector
from tsos_rules.testing import ConnectorContract

ROLES = {"direct": "direct", "channel": "channel", "partner": "partner", "other": "other"}

#: Snapshot field -> HubSpot property, per record type, for seeding and changing records.
DEAL_PROPERTIES = {
    "name": "dealname",
    "owner_id": "hubspot_owner_id",
    "stage": "dealstage",
    "amount": "amount",
    "close_date": "closedate",
    "forecast_category": "hs_manual_forecast_category",
    "is_closed": "hs_is_closed",
    "is_won": "hs_is_closed_won",
    "next_step": "hs_next_step",
    "next_step_date": "notes_next_activity_date",
    "channel": "tsos_channel",
    "probability": "hs_deal_stage_probability",
    "team_user_ids": "hs_all_collaborator_owner_ids",
}
COMPANY_PROPERTIES = {
    "name": "name",
    "partner_of_record_id": "tsos_partner_of_record_id",
    "tier": "tsos_partner_tier",
    "status": "tsos_partner_status",
    "credit_limit": "tsos_credit_limit",
    "fiscal_year_start_month": "tsos_fiscal_year_start_month",
}
LEAD_PROPERTIES = {
    "owner_id": "hubspot_owner_id",
    "status": "hs_pipeline_stage",
    "source": "tsos_lead_source",
    "outcome": "tsos_lead_outcome",
    "distributed_at": "tsos_distributed_at",
    "accepted_at": "tsos_accepted_at",
    "followed_up_at": "tsos_followed_up_at",
    "company": "hs_associated_company_name",
}
TASK_PROPERTIES = {
    "owner_id": "hubspot_owner_id",
    "subject": "hs_task_subject",
    "due_date": "hs_timestamp",
    "status": "hs_task_status",
    "partner_notified": "tsos_partner_notified",
    "created_at": "hs_createdate",
}


def _value(field: str, value: Any) -> Any:
    """A snapshot JSON value as HubSpot keeps it."""
    if value is None:
        return None
    if field in ("close_date", "next_step_date", "due_date"):
        return f"{value}T00:00:00.000Z"
    if field == "forecast_category":
        return {"omitted": "OMIT"}.get(value, str(value).upper())
    if field == "probability":
        return str(float(value) / 100.0)
    if field == "team_user_ids":
        return ";".join(value)
    if field == "status" and value in ("open", "completed"):
        return {"open": "NOT_STARTED", "completed": "COMPLETED"}[value]
    if hasattr(value, "value"):
        return value.value
    return value


def _properties(mapping: Mapping[str, str], record: Mapping[str, Any]) -> dict[str, Any]:
    return {mapping[k]: _value(k, v) for k, v in record.items() if k in mapping and v is not None}


class TestHubSpotContract(ConnectorContract):
    connector_name = "hubspot"

    fake: FakeHubSpot

    @pytest.fixture(autouse=True)
    def _portal(self) -> Iterator[None]:
        # The portal's clock starts a day before the contract's T0 (two hours before now).
        self.fake = FakeHubSpot(start=self.T0 - dt.timedelta(days=1))
        self.user_ids: dict[str, int] = {}
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            self.fake.install(rsps)
            yield

    def make_connector(self, tmp_path: Path) -> Connector:
        settings = HubSpotSettings.from_mapping(
            {
                "type": "hubspot",
                "read_leads": True,
                "team_roles": ROLES,
                "lead_status_map": {"attempting-stage-id": "working"},
                "search_lag_seconds": 0,
                "max_retries": 2,
            }
        )
        return HubSpotConnector(
            settings,
            token=self.fake.token,
            session=requests.Session(),
            sleep=self.fake.sleep,
            clock=self.fake.monotonic,
            now=self.fake.now,
        )

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        from tsos_rules.snapshot.document import snapshot_to_dict

        fake = self.fake
        doc = snapshot_to_dict(snapshot)
        for number, user in enumerate(doc["users"], start=1):
            self.user_ids[user["id"]] = 500 + number
            fake.add_owner(
                user["id"],
                email=f"{user['id']}@vendor.example",
                first=str(user.get("name") or user["id"]),
                user_id=500 + number,
                teams=[user["role"]],
            )
        with fake.frozen_at(at):
            for partner in doc["partners"]:
                props = _properties(COMPANY_PROPERTIES, partner)
                fake.add("companies", {**props, "type": "PARTNER"}, record_id=partner["id"])
            for account in doc["accounts"]:
                props = _properties(COMPANY_PROPERTIES, account)
                fake.add("companies", {**props, "type": "PROSPECT"}, record_id=account["id"])
            for deal in doc["opportunities"]:
                fake.add("deals", _properties(DEAL_PROPERTIES, deal), record_id=deal["id"])
                if deal.get("account_id"):
                    fake.associate("deals", deal["id"], "companies", deal["account_id"], type_id=5)
                if deal.get("partner_id"):
                    fake.associate(
                        "deals", deal["id"], "companies", deal["partner_id"], label="Partner"
                    )
            for lead in doc["leads"]:
                fake.add("leads", _properties(LEAD_PROPERTIES, lead), record_id=lead["id"])
                if lead.get("account_id"):
                    fake.associate(
                        "leads",
                        lead["id"],
                        "companies",
                        lead["account_id"],
                        type_id=610,
                        label="Primary",
                        category="HUBSPOT_DEFINED",
                    )
                if lead.get("partner_id"):
                    fake.associate(
                        "leads", lead["id"], "companies", lead["partner_id"], label="Partner"
                    )
                if lead.get("converted_opportunity_id"):
                    fake.associate(
                        "leads", lead["id"], "deals", lead["converted_opportunity_id"], type_id=583
                    )
            for activity in doc["activities"]:
                fake.add("tasks", _properties(TASK_PROPERTIES, activity), record_id=activity["id"])
                if activity.get("what_id"):
                    fake.associate(
                        "tasks", activity["id"], "deals", activity["what_id"], type_id=216
                    )
                if activity.get("account_id"):
                    fake.associate(
                        "tasks", activity["id"], "companies", activity["account_id"], type_id=192
                    )
        for move in doc["close_date_changes"]:
            deal_id = move["opportunity_id"]
            when = dt.datetime.fromisoformat(move["changed_at"])
            fake.set_history(
                "deals",
                deal_id,
                "closedate",
                [
                    (_value("close_date", move["old"]), when - dt.timedelta(days=7), None),
                    (
                        _value("close_date", move["new"]),
                        when,
                        self.user_ids.get(move.get("changed_by") or ""),
                    ),
                ],
            )

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        object_type, mapping = {
            "opportunity": ("deals", DEAL_PROPERTIES),
            "account": ("companies", COMPANY_PROPERTIES),
            "partner": ("companies", COMPANY_PROPERTIES),
            "lead": ("leads", LEAD_PROPERTIES),
            "activity": ("tasks", TASK_PROPERTIES),
        }[record_type]
        props = {mapping[k]: _value(k, v) for k, v in changes.items()}
        if record_type == "lead" and props.get("hs_pipeline_stage") == "working":
            props["hs_pipeline_stage"] = "attempting-stage-id"
        with self.fake.frozen_at(at):
            self.fake.update(object_type, record_id, props)

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        if record_type != "opportunity":
            raise NotImplementedError
        with self.fake.frozen_at(at):
            self.fake.archive("deals", record_id)

    def induce_error(self, connector: Connector, kind: str) -> bool:
        if kind == "fatal":
            self.fake.token = "a-revoked-token"
        elif kind == "retriable":
            self.fake.throttle(10)
        elif kind == "bad_record":
            self.fake.objects["deals"]["o2"]["properties"]["closedate"] = "soon"
        else:
            return False
        return True
