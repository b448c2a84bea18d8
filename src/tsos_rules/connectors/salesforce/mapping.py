"""Salesforce rows -> snapshot records: field mapping, stage ladder, user classification.

Every doctrine field has a standard-field default (``notes/salesforce.md``) that the
``[connector.fields]`` table can point at a custom field, or switch off with ``""``. Picklist
values are translated by tables (stages onto the ladder, lead statuses, forecast categories), and
users are classified direct/channel/partner/other by ``UserType``, role, profile or a field.
A row that cannot be mapped raises :class:`~tsos_rules.errors.SkippableRecordError` naming the
record and the field, so the reader can skip it and report it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from tsos_rules.config import SettingsTable
from tsos_rules.connectors.salesforce.settings import api_name
from tsos_rules.errors import ConfigError, SkippableRecordError
from tsos_rules.model import (
    Account,
    Activity,
    Channel,
    CloseDateChange,
    ConsentReason,
    ForecastCategory,
    Lead,
    LeadOutcome,
    Opportunity,
    Partner,
    PartnerConsent,
    PartnerStatus,
    User,
    UserRole,
)

Row = Mapping[str, Any]


@attrs.frozen
class FieldSpec:
    """One doctrine field: where it lives in Salesforce by default and what type it has."""

    key: str
    sobject: str
    default: str | None
    kind: str
    """``str``, ``id``, ``date``, ``datetime``, ``number``, ``int``, ``bool`` or ``enum``."""
    also: tuple[str, ...] = ()
    """Conventional custom fields (docs/inline.md) the in-line adapter also reads from a body
    when the config names none; a sync never queries them unmapped (a missing field fails)."""
    sync: bool = True
    """False: only the in-line adapter reads it (a change's approval, a role picklist)."""


def _spec(
    key: str,
    sobject: str,
    default: str | None,
    kind: str,
    *also: str,
    sync: bool = True,
) -> FieldSpec:
    return FieldSpec(key, sobject, default, kind, also, sync)


#: Every mappable doctrine field, keyed ``record.field`` (docs/contract.md names).
CATALOGUE: dict[str, FieldSpec] = {
    s.key: s
    for s in (
        _spec("opportunity.name", "Opportunity", "Name", "str"),
        _spec("opportunity.account_id", "Opportunity", "AccountId", "id"),
        _spec("opportunity.owner_id", "Opportunity", "OwnerId", "id"),
        _spec("opportunity.partner_id", "Opportunity", "PartnerAccountId", "id"),
        _spec("opportunity.channel", "Opportunity", None, "enum", "Channel__c"),
        _spec("opportunity.stage", "Opportunity", "StageName", "enum"),
        _spec("opportunity.probability", "Opportunity", "Probability", "number"),
        _spec("opportunity.amount", "Opportunity", "Amount", "number"),
        _spec("opportunity.close_date", "Opportunity", "CloseDate", "date"),
        _spec(
            "opportunity.forecast_category",
            "Opportunity",
            "ForecastCategoryName",
            "enum",
            "ForecastCategory",
        ),
        _spec("opportunity.is_closed", "Opportunity", "IsClosed", "bool"),
        _spec("opportunity.is_won", "Opportunity", "IsWon", "bool"),
        _spec("opportunity.next_step", "Opportunity", "NextStep", "str"),
        _spec("opportunity.next_step_date", "Opportunity", None, "date", "Next_Step_Date__c"),
        _spec("opportunity.stage_changed_at", "Opportunity", "LastStageChangeDate", "datetime"),
        _spec(
            "opportunity.partner_override_reason",
            "Opportunity",
            None,
            "str",
            "Partner_Override_Reason__c",
        ),
        _spec(
            "opportunity.partner_consent_by", "Opportunity", None, "str", "Partner_Consent_By__c"
        ),
        _spec(
            "opportunity.partner_consent_at",
            "Opportunity",
            None,
            "datetime",
            "Partner_Consent_At__c",
        ),
        _spec(
            "opportunity.partner_consent_reason",
            "Opportunity",
            None,
            "enum",
            "Partner_Consent_Reason__c",
        ),
        _spec(
            "opportunity.partner_consent_note",
            "Opportunity",
            None,
            "str",
            "Partner_Consent_Note__c",
        ),
        _spec("opportunity.lead_id", "Opportunity", None, "id", "Lead__c", sync=False),
        _spec(
            "opportunity.close_date_approved_by",
            "Opportunity",
            None,
            "str",
            "Close_Date_Approved_By__c",
            sync=False,
        ),
        _spec("account.name", "Account", "Name", "str"),
        _spec("account.partner_of_record_id", "Account", None, "id", "Partner_of_Record__c"),
        _spec("partner.name", "Account", "Name", "str"),
        _spec("partner.is_partner", "Account", "IsPartner", "bool"),
        _spec("partner.status", "Account", None, "enum", "Partner_Status__c"),
        _spec("partner.tier", "Account", None, "str", "Partner_Tier__c"),
        _spec("partner.credit_limit", "Account", None, "number", "Partner_Credit_Limit__c"),
        _spec("partner.fiscal_year_start_month", "Account", None, "int"),
        _spec("lead.company", "Lead", "Company", "str"),
        _spec("lead.account_id", "Lead", "ConvertedAccountId", "id", "Account__c"),
        _spec("lead.owner_id", "Lead", "OwnerId", "id"),
        _spec("lead.partner_id", "Lead", "PartnerAccountId", "id"),
        _spec("lead.source", "Lead", "LeadSource", "enum"),
        _spec("lead.status", "Lead", "Status", "enum"),
        _spec("lead.outcome", "Lead", None, "enum", "Outcome__c"),
        _spec("lead.distributed_at", "Lead", None, "datetime", "Distributed_At__c"),
        _spec("lead.accepted_at", "Lead", None, "datetime", "Accepted_At__c"),
        _spec("lead.followed_up_at", "Lead", None, "datetime", "Followed_Up_At__c"),
        _spec("lead.converted_opportunity_id", "Lead", "ConvertedOpportunityId", "id"),
        _spec("user.name", "User", "Name", "str"),
        _spec("user.role", "User", None, "enum", "Tsos_Role__c", sync=False),
        _spec("activity.subject", "Task", "Subject", "str"),
        _spec("activity.due_date", "Task", "ActivityDate", "date"),
        _spec("activity.partner_notified", "Task", None, "bool", "Partner_Notified__c"),
    )
}

_KINDS = {key: spec.kind for key, spec in CATALOGUE.items()}

#: Short names accepted in ``[connector.fields]`` (the issue's examples use them).
ALIASES: dict[str, str] = {
    "partner_of_record": "account.partner_of_record_id",
    "partner_of_record_id": "account.partner_of_record_id",
}
for _key in CATALOGUE:
    _short = _key.split(".", 1)[1]
    _owners = [k for k in CATALOGUE if k.split(".", 1)[1] == _short]
    if len(_owners) == 1:
        ALIASES.setdefault(_short, _key)


def configured_fields(fields: SettingsTable) -> dict[str, str | None]:
    """The ``[connector.fields]`` entries, by catalogue key: a field name, or None when ``""``
    switches the field off. Read by the sync connector and the in-line adapter alike."""
    configured: dict[str, str | None] = {}
    for key, value in fields.data.items():
        canonical = ALIASES.get(key, key)
        spec = CATALOGUE.get(canonical)
        if spec is None:
            known = ", ".join(sorted(CATALOGUE))
            raise ConfigError(f"{fields.path(key)}: unknown doctrine field (known: {known})")
        if not isinstance(value, str):
            raise ConfigError(
                f'{fields.path(key)}: expected "{spec.sobject}.Field__c" or "" to switch '
                f"it off, got {value!r}"
            )
        configured[canonical] = _field_value(value, spec, fields.path(key))
    return configured


#: Salesforce's standard stage picklist, placed on the doctrine's ladder (org.stage_ladder).
DEFAULT_STAGES: dict[str, str] = {
    "Prospecting": "mql",
    "Qualification": "sql",
    "Needs Analysis": "business_driver",
    "Value Proposition": "engagement",
    "Id. Decision Makers": "single_sales_opportunity",
    "Perception Analysis": "date_locked",
    "Proposal/Price Quote": "draft_proposal",
    "Negotiation/Review": "closing",
    "Closed Won": "closed_won",
    "Closed Lost": "closed_lost",
}

#: Salesforce's standard lead statuses onto the org profile's lead statuses.
DEFAULT_LEAD_STATUSES: dict[str, str] = {
    "Open - Not Contacted": "open",
    "Working - Contacted": "working",
    "Closed - Converted": "converted",
    "Closed - Not Converted": "closed",
}

#: Both the labels (``ForecastCategoryName``) and the API values (``OpportunityHistory``).
FORECAST_CATEGORIES: dict[str, ForecastCategory] = {
    "pipeline": ForecastCategory.PIPELINE,
    "best case": ForecastCategory.BEST_CASE,
    "bestcase": ForecastCategory.BEST_CASE,
    "mostlikely": ForecastCategory.BEST_CASE,
    "most likely": ForecastCategory.BEST_CASE,
    "commit": ForecastCategory.COMMIT,
    "forecast": ForecastCategory.COMMIT,
    "closed": ForecastCategory.CLOSED,
    "omitted": ForecastCategory.OMITTED,
}

#: Enumerated doctrine fields and the values their ``[connector.values."key"]`` table maps to.
ENUM_TARGETS: dict[str, tuple[str, ...]] = {
    "opportunity.channel": tuple(c.value for c in Channel),
    "opportunity.partner_consent_reason": tuple(c.value for c in ConsentReason),
    "partner.status": tuple(s.value for s in PartnerStatus),
    "lead.outcome": tuple(o.value for o in LeadOutcome),
    "lead.source": (),
    "opportunity.forecast_category": tuple(f.value for f in ForecastCategory),
}

USER_BY = ("user_type", "role", "profile", "field")
PARTNER_USER_TYPES = frozenset({"PowerPartner"})
INTERNAL_USER_TYPES = frozenset({"Standard"})

#: Record ids: Salesforce's are 15 or 18 letters and digits (test orgs may use short ones).
SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{1,40}$")
_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """``"Partner Referral"`` -> ``"partner_referral"``: picklist labels as doctrine values."""
    return _SLUG.sub("_", text.casefold()).strip("_")


def relationship_name(field: str) -> str:
    """The relationship a lookup field is reached by: ``AccountId`` -> ``Account``,
    ``Partner_of_Record__c`` -> ``Partner_of_Record__r``."""
    if field.endswith("__c"):
        return field[:-3] + "__r"
    if field.endswith("Id") and len(field) > 2:
        return field[:-2]
    raise ConfigError(f"{field}: not a lookup field (expected a name ending in Id or __c)")


@attrs.frozen
class UserRules:
    """How a Salesforce user becomes direct, channel, partner or other."""

    by: str = "role"
    field: str | None = None
    direct: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    partner: tuple[str, ...] = ()
    unmatched: UserRole = UserRole.OTHER

    @classmethod
    def parse(cls, table: SettingsTable) -> UserRules:
        by = table.string("by", "role") or "role"
        if by not in USER_BY:
            raise ConfigError(
                f"{table.path('by')}: expected one of {', '.join(USER_BY)}, got {by!r}"
            )
        field = table.string("field")
        if by == "field":
            if not field:
                raise ConfigError(f"{table.path('field')}: required when by = 'field'")
            api_name(field, table.path("field"))
        elif field is not None:
            raise ConfigError(f"{table.path('field')}: only used when by = 'field'")
        unmatched = table.string("unmatched", "other") or "other"
        try:
            role = UserRole(unmatched)
        except ValueError:
            allowed = ", ".join(r.value for r in UserRole)
            raise ConfigError(f"{table.path('unmatched')}: expected one of {allowed}") from None
        rules = cls(
            by=by,
            field=field,
            direct=table.strings("direct"),
            channel=table.strings("channel"),
            partner=table.strings("partner"),
            unmatched=role,
        )
        table.done()
        return rules

    def classify(self, row: Row) -> UserRole:
        """Partner users by ``UserType``; internal users by the configured attribute's value."""
        user_type = row.get("UserType")
        if user_type in PARTNER_USER_TYPES:
            return UserRole.PARTNER
        if user_type is not None and user_type not in INTERNAL_USER_TYPES:
            return UserRole.OTHER
        value = self.value_of(row)
        if value is not None:
            text = str(value).casefold()
            for role, patterns in (
                (UserRole.DIRECT, self.direct),
                (UserRole.CHANNEL, self.channel),
                (UserRole.PARTNER, self.partner),
            ):
                if any(fnmatch.fnmatchcase(text, p.casefold()) for p in patterns):
                    return role
        return self.unmatched

    def value_of(self, row: Row) -> Any:
        if self.by == "user_type":
            return row.get("UserType")
        if self.by == "role":
            return _nested(row, "UserRole", "Name")
        if self.by == "profile":
            return _nested(row, "Profile", "Name")
        return row.get(self.field or "")

    def select_fields(self) -> list[str]:
        fields = ["UserType"]
        if self.by == "role":
            fields.append("UserRole.Name")
        elif self.by == "profile":
            fields.append("Profile.Name")
        elif self.by == "field" and self.field:
            fields.append(self.field)
        return fields


def _nested(row: Row, relationship: str, field: str) -> Any:
    parent = row.get(relationship)
    if isinstance(parent, Mapping):
        return parent.get(field)
    return row.get(f"{relationship}.{field}")


@attrs.frozen
class FieldMapping:
    """The org's mapping: doctrine field -> Salesforce field, value tables, user rules."""

    fields: Mapping[str, str | None] = attrs.field(factory=dict)
    stages: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_STAGES))
    lead_statuses: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_LEAD_STATUSES))
    values: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    extra_fields: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    users: UserRules = attrs.field(factory=UserRules)

    @classmethod
    def parse(
        cls,
        fields: SettingsTable,
        stages: SettingsTable,
        lead_statuses: SettingsTable,
        values: SettingsTable,
        extra_fields: SettingsTable,
        users: SettingsTable,
    ) -> FieldMapping:
        resolved: dict[str, str | None] = {key: spec.default for key, spec in CATALOGUE.items()}
        resolved.update(configured_fields(fields))
        stage_map = dict(DEFAULT_STAGES)
        for name, stage in stages.data.items():
            if not isinstance(stage, str):
                raise ConfigError(f"{stages.path(name)}: expected a ladder stage name")
            stage_map[name] = stage
        status_map = dict(DEFAULT_LEAD_STATUSES)
        for name, status in lead_statuses.data.items():
            if not isinstance(status, str):
                raise ConfigError(f"{lead_statuses.path(name)}: expected a status name")
            status_map[name] = status
        value_maps: dict[str, dict[str, str]] = {}
        for key, table in values.data.items():
            canonical = ALIASES.get(key, key)
            if canonical not in ENUM_TARGETS:
                raise ConfigError(
                    f"{values.path(key)}: no value table for this field "
                    f"(known: {', '.join(sorted(ENUM_TARGETS))})"
                )
            sub = SettingsTable(table, values.path(key))
            allowed = ENUM_TARGETS[canonical]
            mapped: dict[str, str] = {}
            for raw, target in sub.data.items():
                if not isinstance(target, str) or (allowed and target not in allowed):
                    raise ConfigError(
                        f"{sub.path(raw)}: expected one of {', '.join(allowed)}, got {target!r}"
                    )
                mapped[raw.casefold()] = target
            value_maps[canonical] = mapped
        extras: dict[str, tuple[str, ...]] = {}
        for record in extra_fields.data:
            if record not in ("opportunity", "account", "partner", "lead", "user", "activity"):
                raise ConfigError(f"{extra_fields.path(record)}: unknown record type")
            listed = extra_fields.strings(record)
            extras[record] = tuple(api_name(n, extra_fields.path(record)) for n in listed)
        return cls(
            fields=resolved,
            stages=stage_map,
            lead_statuses=status_map,
            values=value_maps,
            extra_fields=extras,
            users=UserRules.parse(users),
        )

    # -- what to select --------------------------------------------------------------------

    def sf(self, key: str) -> str | None:
        """The Salesforce field a doctrine field is read from, or None when switched off."""
        return self.fields.get(key)

    def select(self, record: str, *base: str) -> list[str]:
        """Salesforce fields to select for a record type: ``base`` + mapped + extra fields."""
        names: list[str] = list(base)
        prefix = f"{record}."
        for key, spec in CATALOGUE.items():
            if key.startswith(prefix) and spec.sync:
                field = self.fields.get(key)
                if field and field not in names:
                    names.append(field)
        for field in self.extra_fields.get(record, ()):
            if field not in names:
                names.append(field)
        return names

    def account_fields(self) -> list[str]:
        return self.select("account", "Id")

    def partner_fields(self) -> list[str]:
        return self.select("partner", "Id")

    def user_fields(self) -> list[str]:
        fields = self.select("user", "Id")
        for field in self.users.select_fields():
            if field not in fields:
                fields.append(field)
        return fields

    # -- rows -> records ---------------------------------------------------------------------

    def value(self, row: Row, key: str, record_id: str) -> Any:
        """The typed value of doctrine field ``key`` in ``row`` (None when switched off)."""
        field = self.fields.get(key)
        if not field:
            return None
        raw = row.get(field)
        if raw is None:
            return None
        try:
            return convert(raw, _KINDS[key])
        except ValueError as exc:
            record_type = key.split(".", 1)[0]
            raise SkippableRecordError(
                record_type, record_id, key.split(".", 1)[1], f"{field}: {exc}"
            ) from None

    def extra(self, row: Row, record: str) -> dict[str, Any]:
        return {name: row.get(name) for name in self.extra_fields.get(record, ())}

    def stage(self, raw: Any) -> str | None:
        if raw is None or raw == "":
            return None
        text = str(raw)
        return self.stages.get(text, text)

    def forecast(self, raw: Any, record_id: str, field: str) -> ForecastCategory | None:
        if raw is None or raw == "":
            return None
        text = str(raw)
        custom = self.values.get("opportunity.forecast_category", {}).get(text.casefold())
        if custom is not None:
            return ForecastCategory(custom)
        category = FORECAST_CATEGORIES.get(text.casefold())
        if category is None:
            raise SkippableRecordError(
                "opportunity", record_id, "forecast_category", f"{field}: unknown category {text!r}"
            )
        return category

    def enum(self, key: str, raw: Any) -> str | None:
        """A picklist value through its value table; unmapped values become slugs."""
        if raw is None or raw == "":
            return None
        text = str(raw)
        mapped = self.values.get(key, {}).get(text.casefold())
        return mapped if mapped is not None else slug(text)

    def opportunity(self, row: Row, team: Iterable[str] = ()) -> Opportunity:
        oid = _record_id(row, "opportunity")
        v = self.value
        channel = self.enum("opportunity.channel", v(row, "opportunity.channel", oid))
        consent = self._consent(row, oid)
        forecast_field = self.sf("opportunity.forecast_category") or ""
        reason = v(row, "opportunity.partner_override_reason", oid)
        try:
            return Opportunity(
                id=oid,
                name=v(row, "opportunity.name", oid),
                account_id=v(row, "opportunity.account_id", oid),
                owner_id=v(row, "opportunity.owner_id", oid),
                partner_id=v(row, "opportunity.partner_id", oid),
                channel=_enum_member(Channel, channel, "opportunity", oid, "channel"),
                stage=self.stage(v(row, "opportunity.stage", oid)),
                probability=v(row, "opportunity.probability", oid),
                amount=v(row, "opportunity.amount", oid),
                close_date=v(row, "opportunity.close_date", oid),
                forecast_category=self.forecast(row.get(forecast_field), oid, forecast_field),
                is_closed=bool(v(row, "opportunity.is_closed", oid)),
                is_won=bool(v(row, "opportunity.is_won", oid)),
                next_step=v(row, "opportunity.next_step", oid),
                next_step_date=v(row, "opportunity.next_step_date", oid),
                partner_consent=consent,
                team_user_ids=tuple(sorted(set(team))),
                stage_changed_at=v(row, "opportunity.stage_changed_at", oid),
                partner_override_reason=reason,
                extra=self.extra(row, "opportunity"),
            )
        except (TypeError, ValueError) as exc:
            raise SkippableRecordError("opportunity", oid, "", str(exc)) from None

    def _consent(self, row: Row, oid: str) -> PartnerConsent | None:
        by = self.value(row, "opportunity.partner_consent_by", oid)
        at = self.value(row, "opportunity.partner_consent_at", oid)
        if by is None and at is None:
            return None
        raw = self.enum(
            "opportunity.partner_consent_reason",
            self.value(row, "opportunity.partner_consent_reason", oid),
        )
        return PartnerConsent(
            by=by,
            at=at,
            reason=_enum_member(ConsentReason, raw, "opportunity", oid, "partner_consent_reason")
            if raw in {c.value for c in ConsentReason}
            else (ConsentReason.OTHER if raw else None),
            note=self.value(row, "opportunity.partner_consent_note", oid),
        )

    def account(self, row: Row) -> Account:
        aid = _record_id(row, "account")
        return Account(
            id=aid,
            name=self.value(row, "account.name", aid),
            partner_of_record_id=self.value(row, "account.partner_of_record_id", aid),
            extra=self.extra(row, "account"),
        )

    def partner(self, row: Row) -> Partner:
        pid = _record_id(row, "partner")
        raw = self.enum("partner.status", self.value(row, "partner.status", pid))
        if raw in {s.value for s in PartnerStatus}:
            status = PartnerStatus(raw)
        elif raw is not None:
            status = PartnerStatus.ACTIVE
        else:  # an account no longer enabled as a partner has been terminated
            is_partner = self.value(row, "partner.is_partner", pid)
            status = PartnerStatus.TERMINATED if is_partner is False else PartnerStatus.ACTIVE
        return Partner(
            id=pid,
            name=self.value(row, "partner.name", pid),
            status=status,
            tier=self.value(row, "partner.tier", pid),
            credit_limit=self.value(row, "partner.credit_limit", pid),
            fiscal_year_start_month=self.value(row, "partner.fiscal_year_start_month", pid),
            extra=self.extra(row, "partner"),
        )

    def lead(self, row: Row) -> Lead:
        lid = _record_id(row, "lead")
        v = self.value
        status_raw = v(row, "lead.status", lid)
        status = self.lead_statuses.get(status_raw, slug(status_raw)) if status_raw else None
        if convert(row.get("IsConverted"), "bool"):
            status = "converted"
        outcome = self.enum("lead.outcome", v(row, "lead.outcome", lid))
        owner = v(row, "lead.owner_id", lid)
        return Lead(
            id=lid,
            company=v(row, "lead.company", lid),
            account_id=v(row, "lead.account_id", lid),
            owner_id=owner,
            partner_id=v(row, "lead.partner_id", lid),
            source=self.enum("lead.source", v(row, "lead.source", lid)),
            status=status,
            outcome=_enum_member(LeadOutcome, outcome, "lead", lid, "outcome"),
            distributed_at=v(row, "lead.distributed_at", lid),
            accepted_at=v(row, "lead.accepted_at", lid),
            followed_up_at=v(row, "lead.followed_up_at", lid),
            converted_opportunity_id=v(row, "lead.converted_opportunity_id", lid),
            extra=self.extra(row, "lead"),
        )

    def user(self, row: Row) -> User:
        uid = _record_id(row, "user")
        return User(
            id=uid,
            name=self.value(row, "user.name", uid),
            role=self.users.classify(row),
            extra=self.extra(row, "user"),
        )

    def activity(self, row: Row, today: dt.date) -> Activity:
        """A Task (open until ``IsClosed``) or an Event (open while its date is ahead)."""
        aid = _record_id(row, "activity")
        sobject = _sobject(row)
        subject_field = self.sf("activity.subject")
        due_field = self.sf("activity.due_date")
        try:
            subject = convert(row.get(subject_field), "str") if subject_field else None
            due = convert(row.get(due_field), "date") if due_field else None
            created = convert(row.get("CreatedDate"), "datetime")
        except ValueError as exc:
            raise SkippableRecordError("activity", aid, "", str(exc)) from None
        if sobject == "Event":
            status = "open" if due is not None and due >= today else "done"
        else:
            status = "closed" if convert(row.get("IsClosed"), "bool") else "open"
        notified = self.value(row, "activity.partner_notified", aid)
        extra = self.extra(row, "activity")
        extra["sobject"] = sobject
        return Activity(
            id=aid,
            what_id=_id_or_none(row.get("WhatId")),
            account_id=_id_or_none(row.get("AccountId")),
            owner_id=_id_or_none(row.get("OwnerId")),
            subject=subject,
            due_date=due,
            status=status,
            partner_notified=bool(notified),
            created_at=created,
            extra=extra,
        )

    def close_date_changes(
        self, opportunity_id: str, rows: Iterable[Row], own_user_id: str | None
    ) -> list[CloseDateChange]:
        """Close-date moves from ``OpportunityHistory`` rows, with the stage at the time.

        A row made by the integration user itself that restores an earlier date undoes the
        moves it reverts (a repair is not a new move, and the moves it repaired are gone).
        """
        ordered = sorted(rows, key=lambda r: (str(r.get("CreatedDate") or ""), str(r.get("Id"))))
        moves: list[tuple[CloseDateChange, dt.date | None]] = []
        previous: dt.date | None = None
        first = True
        for row in ordered:
            hid = str(row.get("Id") or opportunity_id)
            try:
                new = convert(row.get("CloseDate"), "date")
                at = convert(row.get("CreatedDate"), "datetime")
            except ValueError as exc:
                raise SkippableRecordError(
                    "close_date_change", hid, "", f"OpportunityHistory: {exc}"
                ) from None
            if first:
                first = False
                previous = new
                continue
            if new == previous:
                continue
            by = _id_or_none(row.get("CreatedById"))
            if own_user_id is not None and by is not None and _same_id(by, own_user_id):
                # Our own repair: drop every move since the date it restores.
                for index, (_, before) in enumerate(moves):
                    if before == new:
                        del moves[index:]
                        break
                previous = new
                continue
            change = CloseDateChange(
                opportunity_id=opportunity_id,
                old=previous,
                new=new,
                changed_at=at,
                changed_by=by,
                stage=self.stage(row.get("StageName")),
                forecast_category=self.forecast(
                    row.get("ForecastCategory"),
                    opportunity_id,
                    "OpportunityHistory.ForecastCategory",
                ),
                extra={"history_id": hid},
            )
            moves.append((change, previous))
            previous = new
        return [change for change, _ in moves]

    # -- records -> Salesforce (repairs) ----------------------------------------------------

    def to_salesforce(self, record_type: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """A repair's doctrine-field changes as a Salesforce body; unknown fields raise."""
        body: dict[str, Any] = {}
        for name, value in changes.items():
            key = f"{record_type}.{name}"
            field = self.fields.get(key)
            if not field:
                raise KeyError(f"{record_type}.{name} has no Salesforce field in the mapping")
            if isinstance(value, dt.datetime):
                value = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif key == "opportunity.stage" and isinstance(value, str):
                reverse = {ladder: raw for raw, ladder in self.stages.items()}
                value = reverse.get(value, value)
            body[field] = value
        return body


def _field_value(value: str, spec: FieldSpec, where: str) -> str | None:
    if value == "":
        return None
    if "." in value:
        sobject, _, field = value.partition(".")
        allowed = {spec.sobject} | ({"Task", "Event"} if spec.sobject == "Task" else set())
        if sobject not in allowed:
            raise ConfigError(f"{where}: {value!r} is not on {spec.sobject}")
        value = field
    return api_name(value, where)


def _record_id(row: Row, record_type: str) -> str:
    value = row.get("Id")
    if not isinstance(value, str) or not SALESFORCE_ID.match(value):
        raise SkippableRecordError(
            record_type, str(value), "id", f"Id: not a Salesforce id: {value!r}"
        )
    return value


def _id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _same_id(a: str, b: str) -> bool:
    return a[:15] == b[:15]


def _sobject(row: Row) -> str:
    attributes = row.get("attributes")
    if isinstance(attributes, Mapping):
        return str(attributes.get("type") or "")
    return str(row.get("sobject") or "")


def _enum_member(cls: Any, value: str | None, record_type: str, record_id: str, field: str) -> Any:
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise SkippableRecordError(
            record_type,
            record_id,
            field,
            f"value {value!r} is not one of {allowed} (map it in [connector.values])",
        ) from None


def convert(raw: Any, kind: str) -> Any:
    """A Salesforce value (REST JSON or Bulk CSV text) as the doctrine type; ValueError if not."""
    if raw is None or raw == "":
        return None
    cls = type(raw)
    if cls is str and (kind == "str" or kind == "enum"):
        return raw  # the common case first: it runs for most fields of every row
    if cls is dict or cls is list:
        raise ValueError(f"expected a {kind} value, got {type(raw).__name__}")
    if kind in ("str", "enum"):
        return str(raw)
    if kind == "id":
        if cls is str and SALESFORCE_ID.match(raw):
            return raw
        raise ValueError(f"expected a record id, got {raw!r}")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind in ("number", "int"):
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {raw!r}") from None
        if kind == "int":
            if not number.is_integer():
                raise ValueError(f"expected a whole number, got {raw!r}")
            return int(number)
        return number
    if kind == "date":
        if isinstance(raw, str):
            text = raw.strip()
            try:
                if len(text) == 10:
                    return dt.date.fromisoformat(text)
                return parse_datetime(text).astimezone(dt.UTC).date()
            except ValueError:
                pass
        raise ValueError(f"expected a date, got {raw!r}")
    if kind == "datetime":
        if isinstance(raw, str):
            try:
                return parse_datetime(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a date and time, got {raw!r}")
    raise ValueError(f"unknown kind {kind}")


def parse_datetime(text: str) -> dt.datetime:
    """Salesforce timestamps (``2026-11-20T10:00:00.000+0000``), dates as midnight UTC."""
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def format_datetime(moment: dt.datetime) -> str:
    """A SOQL datetime literal, whole seconds in UTC: ``2026-11-20T10:00:00Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
