"""The ``[connector]`` table for ``type = "hubspot"``, validated strictly.

An unknown key is a :class:`tsos_rules.ConfigError` naming it. The private-app token is never a
value here, only a reference (``token = {env = "HUBSPOT_TOKEN"}`` or ``{file = "/path"}``)
resolved by :func:`tsos_rules.config.read_secret` when the connector is built.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any

import attrs

from tsos_rules.config import SecretRef, SettingsTable

WHERE = "connector"

#: Roles a HubSpot owner can be mapped to (the snapshot's user roles).
ROLES = ("direct", "channel", "partner", "other")

#: How the deal's partner is found: a labelled deal→company association, a deal property
#: holding the partner company's id, or not at all.
PARTNER_SOURCES = ("association", "property", "none")

#: Engagement objects that can be read as activities.
ACTIVITY_OBJECTS = ("tasks", "meetings", "calls", "emails")

DEFAULT_BASE_URL = "https://api.hubapi.com"

#: Lead fields read from HubSpot's Leads object: model field -> lead property.
DEFAULT_LEAD_FIELDS: Mapping[str, str] = {
    "status": "hs_pipeline_stage",
    "source": "tsos_lead_source",
    "outcome": "tsos_lead_outcome",
    "distributed_at": "tsos_distributed_at",
    "accepted_at": "tsos_accepted_at",
    "followed_up_at": "tsos_followed_up_at",
    "company": "hs_associated_company_name",
}
#: HubSpot's default lead pipeline stages -> the snapshot's lead status.
DEFAULT_LEAD_STATUS_MAP: Mapping[str, str] = {
    "new-stage-id": "open",
    "attempting-stage-id": "working",
    "connected-stage-id": "working",
    "qualified-stage-id": "qualified",
    "unqualified-stage-id": "disqualified",
}


@attrs.frozen
class HubSpotSettings:
    """Everything the HubSpot connector is configured with (see the package README)."""

    token: SecretRef = attrs.field(factory=lambda: {"env": "HUBSPOT_TOKEN"})
    base_url: str = DEFAULT_BASE_URL
    timezone: str = "UTC"
    # -- partners and accounts
    partner_source: str = "association"
    partner_association_label: str = "Partner"
    partner_association_type_id: int | None = None
    partner_property: str = "tsos_partner_company_id"
    partner_company_types: tuple[str, ...] = ("PARTNER", "RESELLER")
    partner_of_record_property: str = "tsos_partner_of_record_id"
    partner_tier_property: str = "tsos_partner_tier"
    partner_status_property: str = "tsos_partner_status"
    credit_limit_property: str = "tsos_credit_limit"
    fiscal_year_start_month_property: str = "tsos_fiscal_year_start_month"
    # -- deals
    stage_map: Mapping[str, str] = attrs.field(factory=dict)
    channel_property: str = "tsos_channel"
    partner_override_reason_property: str = "tsos_partner_override_reason"
    next_step_date_property: str = "notes_next_activity_date"
    stage_entered_property: str = "hs_v2_date_entered_current_stage"
    extra_deal_properties: tuple[str, ...] = ()
    # -- owners
    default_role: str = "direct"
    owner_roles: Mapping[str, str] = attrs.field(factory=dict)
    team_roles: Mapping[str, str] = attrs.field(factory=dict)
    # -- activities and write-back
    activity_objects: tuple[str, ...] = ("tasks", "meetings")
    partner_notified_property: str = "tsos_partner_notified"
    fingerprint_property: str = "tsos_fingerprint"
    # -- leads (HubSpot's Leads object, Sales Hub Professional and up)
    read_leads: bool = False
    lead_fields: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_LEAD_FIELDS))
    lead_status_map: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_LEAD_STATUS_MAP))
    # -- what a read brings
    read_companies: bool = True
    read_contacts: bool = True
    sibling_deals: bool = True
    track_deletions: bool = True
    search_lag_seconds: float = 30.0
    # -- API budget
    page_size: int = 200
    batch_size: int = 100
    search_cap: int = 10_000
    requests_per_10s: int = 100
    searches_per_second: int = 4
    max_retries: int = 5
    timeout: float = 30.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = WHERE) -> HubSpotSettings:
        """Validate a ``[connector]`` table (``type = "hubspot"`` is allowed and ignored)."""
        table = SettingsTable(data, where)
        timezone = table.text("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise table.error("timezone", f"unknown time zone {timezone!r}") from None
        base_url = table.text("base_url", DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise table.error("base_url", "expected an http(s) URL")
        activities = table.strings("activity_objects", ("tasks", "meetings"))
        for name in activities:
            if name not in ACTIVITY_OBJECTS:
                raise table.error(
                    "activity_objects",
                    f"expected some of {', '.join(ACTIVITY_OBJECTS)}, got {name!r}",
                )
        partner_type_id = table.optional_integer(
            "partner_association_type_id", None, low=1, high=10**9
        )
        settings = cls(
            token=table.secret("token") or {"env": "HUBSPOT_TOKEN"},
            base_url=base_url,
            timezone=timezone,
            partner_source=table.choice("partner_source", "association", PARTNER_SOURCES),
            partner_association_label=table.text("partner_association_label", "Partner"),
            partner_association_type_id=partner_type_id,
            partner_property=table.text("partner_property", "tsos_partner_company_id"),
            partner_company_types=tuple(
                t.upper() for t in table.strings("partner_company_types", ("PARTNER", "RESELLER"))
            ),
            partner_of_record_property=table.text(
                "partner_of_record_property", "tsos_partner_of_record_id"
            ),
            partner_tier_property=table.text("partner_tier_property", "tsos_partner_tier"),
            partner_status_property=table.text("partner_status_property", "tsos_partner_status"),
            credit_limit_property=table.text("credit_limit_property", "tsos_credit_limit"),
            fiscal_year_start_month_property=table.text(
                "fiscal_year_start_month_property", "tsos_fiscal_year_start_month"
            ),
            stage_map=table.mapping("stage_map"),
            channel_property=table.text("channel_property", "tsos_channel"),
            partner_override_reason_property=table.text(
                "partner_override_reason_property", "tsos_partner_override_reason"
            ),
            next_step_date_property=table.text(
                "next_step_date_property", "notes_next_activity_date"
            ),
            stage_entered_property=table.text(
                "stage_entered_property", "hs_v2_date_entered_current_stage"
            ),
            extra_deal_properties=table.strings("extra_deal_properties", ()),
            default_role=table.choice("default_role", "direct", ROLES),
            owner_roles=table.mapping("owner_roles", values=ROLES),
            team_roles=table.mapping("team_roles", values=ROLES),
            activity_objects=activities,
            partner_notified_property=table.text(
                "partner_notified_property", "tsos_partner_notified"
            ),
            fingerprint_property=table.text("fingerprint_property", "tsos_fingerprint"),
            read_leads=table.boolean("read_leads", False),
            lead_fields=_lead_fields(table),
            lead_status_map={**DEFAULT_LEAD_STATUS_MAP, **table.mapping("lead_status_map")},
            read_companies=table.boolean("read_companies", True),
            read_contacts=table.boolean("read_contacts", True),
            sibling_deals=table.boolean("sibling_deals", True),
            track_deletions=table.boolean("track_deletions", True),
            search_lag_seconds=table.number("search_lag_seconds", 30.0, low=0.0, high=3600.0),
            page_size=table.integer("page_size", 200, low=1, high=200),
            batch_size=table.integer("batch_size", 100, low=1, high=100),
            search_cap=table.integer("search_cap", 10_000, low=2, high=10_000),
            requests_per_10s=table.integer("requests_per_10s", 100, low=1, high=10_000),
            searches_per_second=table.integer("searches_per_second", 4, low=1, high=100),
            max_retries=table.integer("max_retries", 5, low=0, high=20),
            timeout=table.number("timeout", 30.0, low=1.0, high=600.0),
        )
        table.done("type")
        if settings.search_cap < settings.page_size:
            raise table.error("search_cap", f"must be at least page_size ({settings.page_size})")
        return settings

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def _lead_fields(table: SettingsTable) -> dict[str, str]:
    given = table.mapping("lead_fields")
    for key in given:
        if key not in DEFAULT_LEAD_FIELDS:
            known = ", ".join(DEFAULT_LEAD_FIELDS)
            raise table.error(f"lead_fields.{key}", f"not a lead field (known: {known})")
    return {**DEFAULT_LEAD_FIELDS, **given}
