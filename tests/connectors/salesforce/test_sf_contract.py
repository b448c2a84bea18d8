"""The Salesforce connector passes the connector contract, against the fake org."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sf_support import Org, add_custom_fields

from tsos_rules.connectors.base import Connector
from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.model import Snapshot
from tsos_rules.testing import ConnectorContract
from tsos_rules.testing.fake_salesforce import FakeSalesforce

SOBJECTS = {"opportunity": "Opportunity", "lead": "Lead", "account": "Account", "activity": "Task"}
ROLES = {"direct": "Direct Sales", "channel": "Channel Manager"}
FORECAST = {
    "pipeline": "Pipeline",
    "best_case": "Best Case",
    "commit": "Commit",
    "closed": "Closed",
    "omitted": "Omitted",
}


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TestSalesforceContract(ConnectorContract):
    connector_name: ClassVar[str | None] = "salesforce"

    @pytest.fixture(autouse=True)
    def _org(self, tmp_path: Path, key_pair: tuple[str, str]) -> Iterator[None]:
        fake = FakeSalesforce(now=real_now())
        add_custom_fields(fake)
        fake.add_field("Opportunity", "Channel__c", "picklist", picklist=["Partner", "Direct"])
        with fake.mock():
            creds = fake.setup_jwt(key_pair=key_pair)
            key_file = tmp_path / "integration.key"
            key_file.write_text(creds.private_key_pem)
            self.org = Org(fake, creds, key_file)
            yield
            for connector in self.org.connectors:
                connector.close()

    def make_connector(self, tmp_path: Path) -> Connector:
        return self.org.connector(
            fields={"opportunity.channel": "Channel__c"},
            read={"watermark_lag_seconds": 0},
        )

    def _at(self, moment: dt.datetime) -> None:
        self.org.fake.now = moment

    def _back(self) -> None:
        self.org.fake.now = max(self.org.fake.now, real_now())

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        fake = self.org.fake
        self._at(at)
        for user in snapshot.users:
            fake.add_user(
                user.name or user.id,
                Id=user.id,
                user_type="PowerPartner" if user.role.value == "partner" else "Standard",
                role=ROLES.get(user.role.value),
            )
        for partner in snapshot.partners:
            fake.insert(
                "Account",
                Id=partner.id,
                Name=partner.name,
                IsPartner=partner.status.value == "active",
                Partner_Tier__c=partner.tier,
            )
        for account in snapshot.accounts:
            fake.insert(
                "Account",
                Id=account.id,
                Name=account.name,
                Partner_of_Record__c=account.partner_of_record_id,
            )
        moves = {c.opportunity_id: c for c in snapshot.close_date_changes}
        for deal in snapshot.opportunities:
            move = moves.get(deal.id)
            fake.insert(
                "Opportunity",
                Id=deal.id,
                Name=deal.name,
                AccountId=deal.account_id,
                OwnerId=deal.owner_id,
                PartnerAccountId=deal.partner_id,
                Channel__c=deal.channel.value.title() if deal.channel else None,
                StageName=deal.stage,
                Probability=deal.probability,
                Amount=deal.amount,
                CloseDate=move.old if move else deal.close_date,
                ForecastCategoryName=FORECAST[deal.forecast_category.value]
                if deal.forecast_category
                else None,
                NextStep=deal.next_step,
                Next_Step_Date__c=deal.next_step_date,
            )
            if move is not None:
                fake.update("Opportunity", deal.id, CloseDate=deal.close_date, by=move.changed_by)
            for member in deal.team_user_ids:
                fake.insert("OpportunityTeamMember", OpportunityId=deal.id, UserId=member)
        for lead in snapshot.leads:
            fake.insert(
                "Lead",
                Id=lead.id,
                Company=lead.company,
                LastName="Lead",
                OwnerId=lead.owner_id,
                PartnerAccountId=lead.partner_id,
                LeadSource=lead.source,
                Status=lead.status,
                IsConverted=lead.status == "converted",
                ConvertedAccountId=lead.account_id,
                ConvertedOpportunityId=lead.converted_opportunity_id,
                Outcome__c=lead.outcome.value if lead.outcome else None,
                Distributed_At__c=lead.distributed_at,
                Accepted_At__c=lead.accepted_at,
                Followed_Up_At__c=lead.followed_up_at,
            )
        for activity in snapshot.activities:
            fake.insert(
                "Task",
                Id=activity.id,
                Subject=activity.subject,
                WhatId=activity.what_id,
                OwnerId=activity.owner_id,
                ActivityDate=activity.due_date,
                Status="Not Started" if activity.status == "open" else "Completed",
                Partner_Notified__c=activity.partner_notified,
            )
        self._back()

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        assert isinstance(connector, SalesforceConnector)
        body = connector.settings.mapping.to_salesforce(record_type, changes)
        self._at(at)
        self.org.fake.update(SOBJECTS[record_type], record_id, body)
        self._back()

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        self._at(at)
        self.org.fake.delete(SOBJECTS[record_type], record_id)
        self._back()

    def induce_error(self, connector: Connector, kind: str) -> bool:
        fake = self.org.fake
        if kind == "fatal":
            fake.apps.clear()  # the Connected App was deleted: no login possible
        elif kind == "retriable":
            fake.fail("query", status=503, times=100)
        elif kind == "bad_record":
            fake.tables["Opportunity"]["o2"]["CloseDate"] = "soon"
        else:
            return False
        return True
