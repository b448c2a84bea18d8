"""The CRM-neutral records the rules read (docs/contract.md, "Snapshot"), as frozen attrs classes.

Every record keeps the keys it did not recognise in ``extra`` so that third-party rules can
read CRM-specific fields without the core having to know them.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

Extra = Mapping[str, Any]


class UserRole(enum.StrEnum):
    """Who a CRM user works for: the vendor's direct or channel team, a partner, or other staff."""

    DIRECT = "direct"
    CHANNEL = "channel"
    PARTNER = "partner"
    OTHER = "other"


class PartnerStatus(enum.StrEnum):
    ACTIVE = "active"
    TERMINATED = "terminated"


class Channel(enum.StrEnum):
    PARTNER = "partner"
    DIRECT = "direct"


class ForecastCategory(enum.StrEnum):
    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    CLOSED = "closed"
    OMITTED = "omitted"


class ConsentReason(enum.StrEnum):
    """The doctrine's two legitimate reasons to serve a channel customer directly, or other."""

    CREDIT_LIMIT = "credit_limit"
    PRODUCT_MANAGEMENT = "product_management"
    OTHER = "other"


class LeadOutcome(enum.StrEnum):
    CURRENT = "current"
    FUTURE = "future"
    NO_OPPORTUNITY = "no_opportunity"


@attrs.frozen
class User:
    id: str
    name: str | None = None
    role: UserRole = UserRole.OTHER
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Partner:
    id: str
    name: str | None = None
    status: PartnerStatus = PartnerStatus.ACTIVE
    tier: str | None = None
    credit_limit: float | None = None
    fiscal_year_start_month: int | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Account:
    id: str
    name: str | None = None
    partner_of_record_id: str | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Lead:
    id: str
    company: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    partner_id: str | None = None
    source: str | None = None
    status: str | None = None
    outcome: LeadOutcome | None = None
    distributed_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    followed_up_at: dt.datetime | None = None
    converted_opportunity_id: str | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class PartnerConsent:
    """A partner's recorded agreement that the vendor serves this customer directly."""

    by: str | None = None
    at: dt.datetime | None = None
    reason: ConsentReason | None = None
    note: str | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Opportunity:
    id: str
    name: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    partner_id: str | None = None
    lead_id: str | None = None
    channel: Channel | None = None
    stage: str | None = None
    probability: float | None = None
    amount: float | None = None
    close_date: dt.date | None = None
    forecast_category: ForecastCategory | None = None
    is_closed: bool = False
    is_won: bool = False
    next_step: str | None = None
    next_step_date: dt.date | None = None
    partner_consent: PartnerConsent | None = None
    team_user_ids: tuple[str, ...] = ()
    stage_changed_at: dt.datetime | None = None
    #: Why the deal's partner may differ from its account's partner of record (extension).
    partner_override_reason: str | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class CloseDateChange:
    """One move of an opportunity's close date, with the deal's stage at the time if known."""

    opportunity_id: str
    old: dt.date | None = None
    new: dt.date | None = None
    changed_at: dt.datetime | None = None
    changed_by: str | None = None
    approved_by: str | None = None
    stage: str | None = None
    forecast_category: ForecastCategory | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Activity:
    """A task or event; ``what_id`` links it to a deal, ``account_id`` to the customer."""

    id: str
    what_id: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    subject: str | None = None
    due_date: dt.date | None = None
    status: str | None = None
    partner_notified: bool = False
    created_at: dt.datetime | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@attrs.frozen
class CrmExemption:
    """A waiver held in a CRM field on one record (``[connector.exemptions]``): the record is
    exempt until ``until`` (inclusive) from ``rules`` (ids or globs; empty: every rule), except
    what the doctrine forbids waiving; ``field`` names the CRM field the date came from."""

    record_type: str
    record_id: str
    until: dt.date
    reason: str | None = None
    rules: tuple[str, ...] = ()
    field: str | None = None
    extra: Extra = attrs.field(factory=dict, repr=False)

    def to_row(self) -> dict[str, Any]:
        """What :func:`tsos_rules.policy.exemptions.from_snapshot` reads."""
        return {
            "record_type": self.record_type,
            "record_id": self.record_id,
            "until": self.until,
            "reason": self.reason,
            "rules": self.rules,
            "field": self.field,
        }


#: The record types a CRM-field exemption may be on.
EXEMPTION_RECORD_TYPES: tuple[str, ...] = ("opportunity", "lead", "account", "activity")


@attrs.frozen
class Snapshot:
    """All the records one evaluation sees."""

    as_of: dt.date | None = None
    users: tuple[User, ...] = ()
    partners: tuple[Partner, ...] = ()
    accounts: tuple[Account, ...] = ()
    leads: tuple[Lead, ...] = ()
    opportunities: tuple[Opportunity, ...] = ()
    close_date_changes: tuple[CloseDateChange, ...] = ()
    activities: tuple[Activity, ...] = ()
    #: Waivers the CRM holds in a mapped field (optional; not records: not counted).
    exemptions: tuple[CrmExemption, ...] = ()
    extra: Extra = attrs.field(factory=dict, repr=False)

    @property
    def record_count(self) -> int:
        """Records in the snapshot, close-date changes aside (they are history of deals)."""
        return (
            len(self.users)
            + len(self.partners)
            + len(self.accounts)
            + len(self.leads)
            + len(self.opportunities)
            + len(self.activities)
        )


#: The snapshot's collections in document order, with the singular name used in messages.
COLLECTIONS: tuple[tuple[str, str, type[Any]], ...] = (
    ("users", "user", User),
    ("partners", "partner", Partner),
    ("accounts", "account", Account),
    ("leads", "lead", Lead),
    ("opportunities", "opportunity", Opportunity),
    ("close_date_changes", "close_date_change", CloseDateChange),
    ("activities", "activity", Activity),
)


ENUMS: tuple[type[enum.StrEnum], ...] = (
    UserRole,
    PartnerStatus,
    Channel,
    ForecastCategory,
    ConsentReason,
    LeadOutcome,
)
