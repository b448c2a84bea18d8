"""Salesforce's in-line adapter: ``POST /v1/salesforce/check``, sObjects before the save.

Records arrive as Apex ``JSON.serialize`` writes sObjects (``attributes.type``, API field names):
``{"before": sObject | null, "after": sObject | null, "related": [sObject]}`` from a screen
flow's Apex action or a Lightning component. Doctrine fields are read through the connector's
own field map (:data:`~tsos_rules.connectors.salesforce.mapping.CATALOGUE`), so the sync and
the in-line check read the same Salesforce fields; ``[connector.fields]`` (when the config's
connector is Salesforce) and ``[serve.salesforce.fields]`` apply to both routes of a field.
Errors name the Salesforce field (``after.CloseDate``, ``related[2].StageName``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from tsos_rules.config import Config, SettingsTable
from tsos_rules.connectors import inline_values as v
from tsos_rules.connectors.inline import (
    Binding,
    CheckRequest,
    InlineAdapter,
    ServeContext,
)
from tsos_rules.connectors.salesforce.mapping import CATALOGUE, FieldSpec, configured_fields
from tsos_rules.connectors.salesforce.settings import ExemptionFieldSettings, split_rules
from tsos_rules.errors import ChangeError
from tsos_rules.snapshot.change import RECORD_TYPES

__all__ = ["ADAPTER", "SALESFORCE_TYPES", "CheckRequest", "SalesforceInline", "adapt"]

Convert = v.Convert
Fields = dict[str, tuple[tuple[str, ...], Convert]]
Overrides = Mapping[str, Mapping[str, str]]

#: Salesforce sObject type -> the change's record type.
SALESFORCE_TYPES: Final = {
    "Opportunity": "opportunity",
    "Lead": "lead",
    "Account": "account",
    "Task": "activity",
    "Event": "activity",
}


def _sf_date(value: Any, where: str) -> str | None:
    """Salesforce writes dates as ``YYYY-MM-DD`` text, never as numbers."""
    if value is None:
        return None
    if type(value) is str and len(value) == 10:
        return v.date(value, where)
    raise ChangeError(where, f"expected a date YYYY-MM-DD, got {v.shown(value)}")


def _sf_timestamp(value: Any, where: str) -> str | None:
    """Salesforce writes datetimes as ``2026-11-20T10:00:00.000+0000``."""
    if value is None:
        return None
    if type(value) is str and not value.isdigit():
        return v.timestamp(value, where)
    raise ChangeError(where, f"expected a timestamp with an offset, got {v.shown(value)}")


def _sf_int(value: Any, where: str) -> int | None:
    number = v.number(value, where)
    if number is None:
        return None
    if not number.is_integer():
        raise ChangeError(where, f"expected a whole number, got {v.shown(value)}")
    return int(number)


#: The catalogue's kinds as in-line converters.
_BY_KIND: Final[Mapping[str, Convert]] = {
    "str": v.text,
    "id": v.text,
    "date": _sf_date,
    "datetime": _sf_timestamp,
    "number": v.number,
    "int": _sf_int,
    "bool": v.boolean,
    "enum": v.picklist,
}
#: Fields whose in-line converter is not their kind's.
_BY_KEY: Final[Mapping[str, Convert]] = {
    "opportunity.forecast_category": v.forecast,
    "partner.tier": v.picklist,
}
#: Read by the adapter itself (an Account is a partner when ``IsPartner`` is true).
_NOT_MAPPED: Final = frozenset({"partner.is_partner"})

#: Salesforce's own schema, the same in every org: record ids, activity links and
#: ``OpportunityHistory`` (the sync reads these fields by the same names).
_STANDARD: Final[Mapping[str, Fields]] = {
    "activity": {
        "what_id": (("WhatId",), v.text),
        "account_id": (("AccountId",), v.text),
        "owner_id": (("OwnerId",), v.text),
        "created_at": (("CreatedDate",), _sf_timestamp),
    },
    "close_date_change": {
        "opportunity_id": (("OpportunityId",), v.text),
        "old": (("PrevCloseDate",), _sf_date),
        "new": (("CloseDate",), _sf_date),
        "changed_at": (("CreatedDate",), _sf_timestamp),
        "changed_by": (("CreatedById",), v.text),
        "stage": (("StageName",), v.picklist),
        "forecast_category": (("ForecastCategory",), v.forecast),
    },
}
_RECORDS: Final = ("opportunity", "lead", "account", "partner", "user", "activity")
_KNOWN: Final = {
    record_type: frozenset(a.name for a in attrs.fields(cls))
    for record_type, (cls, _) in RECORD_TYPES.items()
}


def _ours(spec: FieldSpec) -> str:
    """The snapshot field an entry fills: ``partner_consent_by`` -> ``partner_consent.by``."""
    name = spec.key.split(".", 1)[1]
    return f"partner_consent.{name[16:]}" if name.startswith("partner_consent_") else name


def field_tables(
    configured: Mapping[str, str | None] | None = None, overrides: Overrides | None = None
) -> dict[str, Fields]:
    """Snapshot field -> (Salesforce fields, first present wins; converter), by record type.

    From the connector's catalogue: a field named in ``[connector.fields]`` (``configured``) is
    read from that field only (or not at all when switched off), else from its standard field
    and conventional custom fields; ``[serve.salesforce.fields]`` (``overrides``) wins over both.
    """
    configured = configured or {}
    tables: dict[str, Fields] = {
        record: {"id": (("Id",), v.text)} for record in (*_RECORDS, "close_date_change")
    }
    for key, spec in CATALOGUE.items():
        record = key.split(".", 1)[0]
        if key in _NOT_MAPPED or record not in tables:
            continue
        if key in configured:
            chosen = configured[key]
            names: tuple[str, ...] = (chosen,) if chosen else ()
        else:
            names = tuple(n for n in (spec.default, *spec.also) if n)
        tables[record][_ours(spec)] = (names, _BY_KEY.get(key) or _BY_KIND[spec.kind])
    for record, fields in _STANDARD.items():
        tables[record].update(fields)
    tables["close_date_change"].pop("id")
    for record, table in (overrides or {}).items():
        fields = tables.setdefault(record, {})
        for ours, theirs in table.items():
            fields[ours] = ((theirs,), fields[ours][1] if ours in fields else v.text)
    return tables


def _sf_type(record: Mapping[str, Any], where: str) -> str:
    attributes = record.get("attributes")
    kind = attributes.get("type") if type(attributes) is dict else None
    if type(kind) is not str or not kind:
        raise ChangeError(
            f"{where}.attributes.type", "required: the sObject type, as JSON.serialize writes it"
        )
    return kind


def _at(where: str) -> Callable[[str], str]:
    return lambda name: f"{where}.{name}"


_COLLECTION_TYPE: Final = {
    "opportunities": "opportunity",
    "leads": "lead",
    "accounts": "account",
    "partners": "partner",
    "users": "user",
    "activities": "activity",
    "close_date_changes": "close_date_change",
}
_PATH: Final = re.compile(r"^(?:(before|after)|context\.(\w+)\[(\d+)\])\.([\w.]+)$")


@attrs.frozen
class SalesforceInline:
    """sObjects from a screen flow's Apex action or a Lightning component, before the save."""

    tables: Mapping[str, Fields] = attrs.field(factory=field_tables)
    #: ``[connector.exemptions]``: the Opportunity fields holding a waiver, when mapped.
    waivers: ExemptionFieldSettings = attrs.field(factory=ExemptionFieldSettings)

    @classmethod
    def from_config(cls, config: Config, overrides: Overrides | None = None) -> SalesforceInline:
        """The field map of the config's Salesforce connector, if it has one, plus overrides."""
        connector = config.connector
        configured: dict[str, str | None] = {}
        waivers = ExemptionFieldSettings()
        if connector.get("type") == "salesforce":
            configured = configured_fields(
                SettingsTable(connector.get("fields", {}), "connector.fields")
            )
            waivers = ExemptionFieldSettings.parse(
                SettingsTable(connector.get("exemptions", {}), "connector.exemptions")
            )
        return cls(field_tables(configured, overrides), waivers)

    def adapt(self, body: Any) -> CheckRequest:
        """The body as a validated change; errors name the Salesforce field."""
        data = v.body_object(body, "body")
        before_raw, after_raw = data.get("before"), data.get("after")
        explicit = data.get("record_type")
        if explicit is not None:
            kind = v.text(explicit, "record_type") or ""
        else:
            sample = after_raw if after_raw is not None else before_raw
            if sample is None:
                raise ChangeError("after", "before and after cannot both be null")
            where = "after" if after_raw is not None else "before"
            kind = _sf_type(v.body_object(sample, where), "after")
        if kind not in SALESFORCE_TYPES:
            raise ChangeError(
                "record_type",
                f"expected one of {', '.join(SALESFORCE_TYPES)}, got {v.shown(kind)}",
            )
        record_type = SALESFORCE_TYPES[kind]

        def convert(raw: Any, where: str) -> dict[str, Any] | None:
            if raw is None:
                return None
            record = v.body_object(raw, where)
            if record_type == "activity":
                return self._activity(record, kind, where)
            return self._record(record, record_type, where)

        before = convert(before_raw, "before")
        after = convert(after_raw, "after")
        context, team, positions = self._context(data.get("related"))
        if record_type == "opportunity" and before_raw is not None and before is not None:
            waiver = self._waiver(v.body_object(before_raw, "before"), before.get("id"))
            if waiver is not None:
                context.setdefault("exemptions", []).append(waiver)
        if after is not None and "team_user_ids" not in after and record_type == "opportunity":
            members = team.get(after.get("id") or "")
            if members:
                after["team_user_ids"] = members
        return CheckRequest.of(
            "salesforce",
            record_type,
            before,
            after,
            context,
            as_of=data.get("as_of"),
            include_info=v.include_info(data),
            name_field=lambda field: self._name(field, record_type, positions),
        )

    def _waiver(self, record: Mapping[str, Any], deal_id: Any) -> dict[str, Any] | None:
        """The waiver the deal holds before the save (``[connector.exemptions]``), in the
        context's ``exemptions`` shape. A waiver set by the change itself counts from the next
        save: a save cannot waive its own findings."""
        fields = self.waivers
        if not fields.until_field or not isinstance(deal_id, str) or not deal_id:
            return None
        until = _sf_date(record.get(fields.until_field), f"before.{fields.until_field}")
        if until is None:
            return None
        reason = record.get(fields.reason_field) if fields.reason_field else None
        rules = record.get(fields.rules_field) if fields.rules_field else None
        return {
            "record_type": "opportunity",
            "record_id": deal_id,
            "until": until,
            "reason": reason if isinstance(reason, str) and reason.strip() else None,
            "rules": list(split_rules(rules if isinstance(rules, str) else "")),
            "field": fields.until_field,
        }

    def _record(self, record: Mapping[str, Any], record_type: str, where: str) -> dict[str, Any]:
        out, used = v.mapped(record, self.tables[record_type], _at(where))
        consent = {
            key.split(".", 1)[1]: out.pop(key)
            for key in list(out)
            if key.startswith("partner_consent.")
        }
        if consent.get("by"):
            out["partner_consent"] = {k: val for k, val in consent.items() if val is not None}
        known = _KNOWN.get(record_type, frozenset())
        for name, value in record.items():
            if name not in used and name != "attributes" and name not in known:
                out[name] = value
        return {key: value for key, value in out.items() if value is not None}

    def _activity(self, record: Mapping[str, Any], kind: str, where: str) -> dict[str, Any]:
        out = self._record(record, "activity", where)
        closed = v.boolean(record.get("IsClosed"), f"{where}.IsClosed")
        if closed is None and kind == "Task":
            status = v.text(record.get("Status"), f"{where}.Status")
            closed = status is not None and v.snake(status) == "completed"
        out["status"] = "completed" if closed else "open"
        return out

    def _user(self, record: Mapping[str, Any], where: str) -> dict[str, Any]:
        out = self._record(record, "user", where)
        if "role" not in out:
            user_type = v.text(record.get("UserType"), f"{where}.UserType") or ""
            out["role"] = "partner" if user_type.startswith("Power") else "other"
        return out

    def _name(self, field: str, record_type: str, positions: Mapping[str, list[int]]) -> str:
        """A snapshot path in an error as the Salesforce one (``after.CloseDate``)."""
        match = _PATH.match(field)
        if match is None:
            return field
        side, collection, index, name = match.groups()
        kind = record_type if side else _COLLECTION_TYPE.get(collection, "")
        fields = self.tables.get(kind, {})
        theirs = fields[name][0][0] if name in fields and fields[name][0] else name
        if side:
            return f"{side}.{theirs}"
        rows = positions.get(collection, [])
        where = f"related[{rows[int(index)]}]" if int(index) < len(rows) else "related"
        return f"{where}.{theirs}"

    def _context(
        self, related: Any
    ) -> tuple[dict[str, list[Any]], dict[str, list[str]], dict[str, list[int]]]:
        """``related`` sObjects as a snapshot subset, opportunity teams, and each row's index."""
        context: dict[str, list[Any]] = {
            "users": [],
            "partners": [],
            "accounts": [],
            "leads": [],
            "opportunities": [],
            "close_date_changes": [],
            "activities": [],
        }
        team: dict[str, list[str]] = {}
        positions: dict[str, list[int]] = {key: [] for key in context}
        if related is None:
            return context, team, positions
        if type(related) is not list:
            raise ChangeError("related", f"expected a list of sObjects, got {v.shown(related)}")
        for index, raw in enumerate(related):
            where = f"related[{index}]"
            record = v.body_object(raw, where)
            kind = _sf_type(record, where)
            if kind == "Opportunity":
                context["opportunities"].append(self._record(record, "opportunity", where))
            elif kind == "Lead":
                context["leads"].append(self._record(record, "lead", where))
            elif kind == "Account":
                context["accounts"].append(self._record(record, "account", where))
                if v.boolean(record.get("IsPartner"), f"{where}.IsPartner"):
                    partner = self._record(record, "partner", where)
                    partner.setdefault("status", "active")
                    context["partners"].append(partner)
            elif kind == "User":
                context["users"].append(self._user(record, where))
            elif kind in ("Task", "Event"):
                context["activities"].append(self._activity(record, kind, where))
            elif kind == "OpportunityHistory":
                fields = self.tables["close_date_change"]
                change, _ = v.mapped(record, fields, _at(where))
                if change.get("old") and change.get("new") and change["old"] != change["new"]:
                    context["close_date_changes"].append(
                        {k: val for k, val in change.items() if val is not None}
                    )
            elif kind == "OpportunityTeamMember":
                deal = v.text(record.get("OpportunityId"), f"{where}.OpportunityId")
                user = v.text(record.get("UserId"), f"{where}.UserId")
                if deal and user:
                    team.setdefault(deal, []).append(user)
            else:
                known = "Opportunity, Lead, Account, User, Task, Event, OpportunityHistory, "
                raise ChangeError(
                    f"{where}.attributes.type",
                    f"unsupported sObject type {kind!r} (supported: {known}OpportunityTeamMember)",
                )
            for collection, rows in context.items():
                if len(rows) > len(positions[collection]):
                    positions[collection].append(index)
        for deal in context["opportunities"]:
            if "team_user_ids" not in deal and deal.get("id") in team:
                deal["team_user_ids"] = team[deal["id"]]
        return context, team, positions


def adapt(body: Any, overrides: Overrides | None = None) -> CheckRequest:
    """One body judged with the default field map and ``[serve.salesforce.fields]`` overrides."""
    return SalesforceInline(field_tables(None, overrides)).adapt(body)


def _bind(context: ServeContext) -> Binding:
    adapter = SalesforceInline.from_config(context.config, context.settings.salesforce_fields)
    return Binding(adapter.adapt)


def _schemas() -> dict[str, Any]:
    date = {"type": ["string", "null"], "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    sobject = {"anyOf": [{"$ref": "#/components/schemas/SObject"}, {"type": "null"}]}
    return {
        "SObject": {
            "type": "object",
            "required": ["attributes"],
            "properties": {
                "attributes": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"type": "string"}},
                }
            },
            "additionalProperties": True,
            "description": "An sObject as Apex JSON.serialize writes it (API field names).",
        },
        "SalesforceCheckRequest": {
            "type": "object",
            "properties": {
                "record_type": {"type": "string", "enum": list(SALESFORCE_TYPES)},
                "before": sobject,
                "after": sobject,
                "related": {
                    "type": ["array", "null"],
                    "items": {"$ref": "#/components/schemas/SObject"},
                },
                "as_of": date,
                "include_info": {"type": "boolean"},
            },
        },
    }


#: Registered by the Salesforce plugin module: ``POST /v1/salesforce/check``, bearer token.
ADAPTER: Final = InlineAdapter(
    "salesforce",
    _bind,
    summary="Judge sObjects sent by a screen flow or Lightning component.",
    operation_id="checkSalesforce",
    schemas=_schemas(),
    request_schema="SalesforceCheckRequest",
)
