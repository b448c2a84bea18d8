"""Helpers for the Salesforce connector tests: the evaluation instant, the custom fields an admin
adds, :class:`Org`, a fake org with its integration user and a connector factory whose sleeps
are recorded instead of slept, :func:`fresh_org` to make one, and :class:`WholeRead`, the
connector reduced to one-piece reads."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.connectors.base import Action, ActionResult, Capabilities, ReadResult
from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.testing.fake_salesforce import FakeSalesforce, JwtCredentials

#: The evaluation day of every scenario (the builders' TODAY), 09:00 UTC.
NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, table by table (None removes a key)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def add_custom_fields(fake: FakeSalesforce) -> None:
    """The custom fields an admin adds for the doctrine (docs/salesforce.md)."""
    fake.add_field("Account", "Partner_of_Record__c", "reference", reference_to=["Account"])
    fake.add_field("Account", "Partner_Tier__c", "picklist", picklist=["premier", "select"])
    fake.add_field("Opportunity", "Next_Step_Date__c", "date")
    fake.add_field("Lead", "Distributed_At__c", "datetime")
    fake.add_field("Lead", "Accepted_At__c", "datetime")
    fake.add_field("Lead", "Followed_Up_At__c", "datetime")
    fake.add_field("Lead", "Outcome__c", "picklist", picklist=["Current", "Future", "None"])
    for sobject in ("Task", "Event"):
        fake.add_field(sobject, "Partner_Notified__c", "boolean")


@attrs.define
class Org:
    """A fake org, its integration user's JWT credentials, and connectors on it."""

    fake: FakeSalesforce
    creds: JwtCredentials
    key_file: Path
    sleeps: list[float] = attrs.field(factory=list)
    connectors: list[SalesforceConnector] = attrs.field(factory=list)

    def table(self, **overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "type": "salesforce",
            "auth": {
                "flow": "jwt",
                "username": self.creds.username,
                "consumer_key": self.creds.consumer_key,
                "private_key": {"file": str(self.key_file)},
            },
            "fields": {
                "partner_of_record": "Account.Partner_of_Record__c",
                "partner.tier": "Account.Partner_Tier__c",
                "next_step_date": "Opportunity.Next_Step_Date__c",
                "distributed_at": "Lead.Distributed_At__c",
                "accepted_at": "Lead.Accepted_At__c",
                "followed_up_at": "Lead.Followed_Up_At__c",
                "outcome": "Lead.Outcome__c",
                "partner_notified": "Task.Partner_Notified__c",
            },
            "values": {
                "outcome": {"Current": "current", "Future": "future", "None": "no_opportunity"}
            },
            "users": {"by": "role", "direct": ["Direct*"], "channel": ["Channel*"]},
            "read": {"team_members": True, "watermark_lag_seconds": 0},
        }
        return merge(base, overrides)

    def connector(
        self, *, auth: Mapping[str, Any] | None = None, **overrides: Any
    ) -> SalesforceConnector:
        """A connector on the fake org; ``auth`` replaces the whole auth table."""
        table = self.table(**overrides)
        if auth is not None:
            table["auth"] = dict(auth)
        connector = SalesforceConnector.from_settings(
            table, sleep=self.sleeps.append, now=lambda: self.fake.now
        )
        self.connectors.append(connector)
        return connector


@contextlib.contextmanager
def fresh_org(tmp_path: Path, key_pair: tuple[str, str]) -> Iterator[Org]:
    """A new fake org (custom fields added, ``responses`` active) at :data:`NOW`; its
    connectors are closed on the way out."""
    fake = FakeSalesforce(now=NOW)
    add_custom_fields(fake)
    with fake.mock():
        creds = fake.setup_jwt(key_pair=key_pair)
        key_file = tmp_path / "integration.key"
        key_file.write_text(creds.private_key_pem)
        org = Org(fake, creds, key_file)
        try:
            yield org
        finally:
            for connector in org.connectors:
                connector.close()


class WholeRead:
    """The connector without ``read_batches``: the job reads the org in one ``read``."""

    name = "salesforce"

    def __init__(self, inner: SalesforceConnector) -> None:
        self.inner = inner

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        return self.inner.read(since, until=until)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        return self.inner.write(actions)

    def record_url(self, record_type: str, record_id: str) -> str | None:
        return self.inner.record_url(record_type, record_id)

    def close(self) -> None:
        self.inner.close()
