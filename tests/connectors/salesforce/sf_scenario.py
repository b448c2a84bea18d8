"""A small org that breaks the doctrine in known ways, seeded into the fake Salesforce.

The evaluation date is 2026-11-24 (a Tuesday). Each record says which rule it is there for.
"""

from __future__ import annotations

import datetime as dt

import attrs

from tsos_rules.testing.fake_salesforce import FakeSalesforce


def day(offset: int) -> dt.date:
    return dt.date(2026, 11, 24) + dt.timedelta(days=offset)


def at(offset: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, 11, 24, hour, tzinfo=dt.UTC) + dt.timedelta(days=offset)


@attrs.frozen
class Ids:
    ray: str  # direct rep
    cara: str  # channel manager
    pat: str  # partner user
    acme: str  # active partner
    oldvar: str  # partner account no longer partnered (terminated)
    boeing: str  # account, partner of record Acme
    airbus: str  # account, no partner of record
    embraer: str  # account, partner of record Old VAR
    lead_boeing: str  # converted channel lead -> boeing_fleet
    lead_embraer: str  # distributed to Acme, never accepted
    boeing_fleet: str  # channel deal taken direct, close date moved on a locked deal
    airbus_cabin: str  # clean direct deal with an open task as its next step
    embraer_jets: str  # placeholder next step, terminated partner of record
    call_boeing: str  # direct rep's call on Boeing, partner not told
    task_airbus: str  # the open task that is Airbus's next step


def seed(fake: FakeSalesforce) -> Ids:
    """Create the scenario with history: records are created a week ago, then changed."""
    fake.now = at(-7)
    ray = fake.add_user("Ray Direct", role="Direct Sales")
    cara = fake.add_user("Cara Channel", role="Channel Manager")
    pat = fake.add_user("Pat Partner", user_type="PowerPartner")
    acme = fake.insert("Account", Name="Acme VAR", IsPartner=True, Partner_Tier__c="premier")
    oldvar = fake.insert("Account", Name="Old VAR", IsPartner=False)
    boeing = fake.insert("Account", Name="Boeing", Partner_of_Record__c=acme, OwnerId=cara)
    airbus = fake.insert("Account", Name="Airbus", OwnerId=ray)
    embraer = fake.insert("Account", Name="Embraer", Partner_of_Record__c=oldvar, OwnerId=cara)
    boeing_fleet = fake.insert(
        "Opportunity",
        Name="Boeing fleet",
        AccountId=boeing,
        OwnerId=ray,
        StageName="Negotiation/Review",
        Probability=80,
        CloseDate=day(21),
        Amount=120000,
        NextStep="Legal review of the MSA",
        Next_Step_Date__c=day(4),
        by=ray,
    )
    lead_boeing = fake.insert(
        "Lead",
        Company="Boeing",
        LastName="Smith",
        OwnerId=cara,
        PartnerAccountId=acme,
        LeadSource="Partner Referral",
        Status="Closed - Converted",
        IsConverted=True,
        ConvertedAccountId=boeing,
        ConvertedOpportunityId=boeing_fleet,
        Outcome__c="Current",
    )
    airbus_cabin = fake.insert(
        "Opportunity",
        Name="Airbus cabin",
        AccountId=airbus,
        OwnerId=ray,
        StageName="Prospecting",
        Probability=20,
        CloseDate=day(60),
        Amount=50000,
        by=ray,
    )
    task_airbus = fake.insert(
        "Task",
        Subject="Discovery call",
        WhatId=airbus_cabin,
        OwnerId=ray,
        ActivityDate=day(3),
        by=ray,
    )
    embraer_jets = fake.insert(
        "Opportunity",
        Name="Embraer jets",
        AccountId=embraer,
        OwnerId=cara,
        PartnerAccountId=oldvar,
        StageName="Qualification",
        Probability=40,
        CloseDate=day(45),
        NextStep="TBD",
        Next_Step_Date__c=day(10),
        by=cara,
    )
    lead_embraer = fake.insert(
        "Lead",
        Company="Embraer Executive",
        LastName="Souza",
        OwnerId=pat,
        PartnerAccountId=acme,
        LeadSource="Partner Referral",
        Status="Open - Not Contacted",
        Distributed_At__c=at(-7),
    )
    # Two days later Ray pushes Boeing's locked close date out by a month, without approval.
    fake.now = at(-5)
    fake.update("Opportunity", boeing_fleet, CloseDate=day(51), by=ray)
    # Yesterday Ray called Boeing himself and did not tell Acme.
    fake.now = at(-1)
    call_boeing = fake.insert(
        "Task",
        Subject="Call with Boeing CIO",
        WhatId=boeing,
        OwnerId=ray,
        ActivityDate=day(-1),
        Status="Completed",
        by=ray,
    )
    fake.now = at(0)
    return Ids(
        ray=ray,
        cara=cara,
        pat=pat,
        acme=acme,
        oldvar=oldvar,
        boeing=boeing,
        airbus=airbus,
        embraer=embraer,
        lead_boeing=lead_boeing,
        lead_embraer=lead_embraer,
        boeing_fleet=boeing_fleet,
        airbus_cabin=airbus_cabin,
        embraer_jets=embraer_jets,
        call_boeing=call_boeing,
        task_airbus=task_airbus,
    )
