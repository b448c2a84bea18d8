"""Adapters: the bodies CRMs really send, mapped onto one change in the snapshot's shape.

* ``generic`` — CONTRACT.md's body: ``{"change": {"record_type", "before", "after"},
  "context": <snapshot subset>, "as_of": "YYYY-MM-DD"}``.
* ``hubspot`` — a deal as a HubSpot workflow's "Send a webhook" action posts it: the legacy
  object shape (``{"dealId", "properties": {"dealstage": {"value": ...}}}``), the v3 object shape
  (``{"id", "properties": {"dealstage": "..."}}``) or a customised flat body
  (``{"hs_object_id": ..., "dealstage": ...}``). Property values arrive as strings; dates as
  epoch milliseconds or ISO text. Deal workflows carry no previous values, so a HubSpot check
  judges the after-state unless the body adds a ``before`` object (same property names).
* ``salesforce`` — records as Apex ``JSON.serialize`` writes sObjects (``attributes.type``,
  API field names): ``{"before": sObject | null, "after": sObject | null, "related": [sObject]}``
  from a screen flow's Apex action or a Lightning component before it saves.

Every adapter raises :class:`~tsos_rules.inline.ChangeError` naming the field in the caller's own
vocabulary (``properties.closedate``, ``after.CloseDate``, ``related[2].StageName``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from tsos_rules.inline import RECORD_TYPES, ChangeError, ParsedChange, parse_change

_NON_WORD = re.compile(r"[^0-9a-z]+")


@attrs.frozen
class CheckRequest:
    """What an adapter hands the service: a validated change and how to answer."""

    adapter: str
    change: ParsedChange
    include_info: bool = False


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ChangeError(where, f"expected an object, got {_shown(value)}")
    return value


def _include_info(body: Mapping[str, Any]) -> bool:
    value = body.get("include_info", False)
    if type(value) is not bool:
        raise ChangeError("include_info", f"expected true or false, got {_shown(value)}")
    return value


def snake(value: str) -> str:
    """A picklist label as a snake_case value: ``"Closed Won"`` -> ``"closed_won"``."""
    return _NON_WORD.sub("_", value.casefold()).strip("_")


# -- generic ---------------------------------------------------------------------------------


def generic(body: Any) -> CheckRequest:
    """CONTRACT.md's ``POST /v1/check`` body."""
    data = _object(body, "body")
    if "change" not in data:
        raise ChangeError("change", "required field is missing")
    change = _object(data["change"], "change")
    parsed = parse_change(
        change.get("record_type"),
        change.get("before"),
        change.get("after"),
        data.get("context"),
        as_of=data.get("as_of"),
        prefix="change.",
    )
    return CheckRequest("generic", parsed, _include_info(data))


# -- value conversion shared by the CRM adapters ------------------------------------------------

Convert = Callable[[Any, str], Any]


def _text(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise ChangeError(where, f"expected text, got {_shown(value)}")


def _number(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    if type(value) in (int, float):
        return float(value)
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if number == number and abs(number) != float("inf"):
                return number
    raise ChangeError(where, f"expected a number, got {_shown(value)}")


def _boolean(value: Any, where: str) -> bool | None:
    if value is None or value == "":
        return None
    if type(value) is bool:
        return value
    if type(value) is str and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ChangeError(where, f"expected true or false, got {_shown(value)}")


def _epoch_ms(value: Any) -> dt.datetime | None:
    if type(value) is int or (type(value) is str and value.isdigit() and len(value) <= 15):
        try:
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _date(value: Any, where: str) -> str | None:
    """A date from ``YYYY-MM-DD``, an ISO timestamp (its UTC date) or epoch milliseconds."""
    if value is None or value == "":
        return None
    moment = _epoch_ms(value)
    if moment is None and type(value) is str:
        if len(value) == 10:
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        else:
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is not None:
                    moment = parsed.astimezone(dt.UTC)
    if moment is None:
        raise ChangeError(where, f"expected a date (YYYY-MM-DD or epoch ms), got {_shown(value)}")
    return moment.date().isoformat()


def _timestamp(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    moment = _epoch_ms(value)
    if moment is None and type(value) is str:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                moment = parsed
    if moment is None:
        raise ChangeError(
            where, f"expected a timestamp with an offset or epoch ms, got {_shown(value)}"
        )
    return moment.isoformat()


def _sf_date(value: Any, where: str) -> str | None:
    """Salesforce writes dates as ``YYYY-MM-DD`` text, never as numbers."""
    if value is None:
        return None
    if type(value) is str and len(value) == 10:
        return _date(value, where)
    raise ChangeError(where, f"expected a date YYYY-MM-DD, got {_shown(value)}")


def _sf_timestamp(value: Any, where: str) -> str | None:
    """Salesforce writes datetimes as ``2026-11-20T10:00:00.000+0000``."""
    if value is None:
        return None
    if type(value) is str and not value.isdigit():
        return _timestamp(value, where)
    raise ChangeError(where, f"expected a timestamp with an offset, got {_shown(value)}")


def _picklist(value: Any, where: str) -> str | None:
    text = _text(value, where)
    return snake(text) if text is not None else None


_FORECAST: Final = {
    "pipeline": "pipeline",
    "best_case": "best_case",
    "bestcase": "best_case",
    "commit": "commit",
    "forecast": "commit",  # Salesforce's ForecastCategory API value for Commit
    "closed": "closed",
    "omitted": "omitted",
    "omit": "omitted",
}


def _forecast(value: Any, where: str) -> str | None:
    text = _picklist(value, where)
    if text is None:
        return None
    if text not in _FORECAST:
        raise ChangeError(
            where,
            f"expected a forecast category (Pipeline, Best Case, Commit, Closed, Omitted), "
            f"got {_shown(value)}",
        )
    return _FORECAST[text]


def _percent_fraction(value: Any, where: str) -> float | None:
    number = _number(value, where)
    return None if number is None else round(number * 100, 6)


def _ids(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if type(value) is str:
        return [part for part in value.replace(",", ";").split(";") if part]
    if type(value) is list and all(type(v) in (str, int) for v in value):
        return [str(v) for v in value]
    raise ChangeError(where, f"expected a list of ids, got {_shown(value)}")


def _mapped(
    source: Mapping[str, Any],
    fields: Mapping[str, tuple[tuple[str, ...], Convert]],
    where: Callable[[str], str],
) -> tuple[dict[str, Any], set[str]]:
    """Our fields from a CRM record; returns them and the CRM names consumed."""
    out: dict[str, Any] = {}
    used: set[str] = set()
    for ours, (theirs, convert) in fields.items():
        for name in theirs:
            if name in source:
                used.add(name)
                if ours not in out or out[ours] is None:
                    out[ours] = convert(source[name], where(name))
    return out, used


# -- HubSpot -----------------------------------------------------------------------------------

#: Snapshot field -> (HubSpot deal properties, first present wins; converter).
HUBSPOT_DEAL: Final[dict[str, tuple[tuple[str, ...], Convert]]] = {
    "id": (("hs_object_id",), _text),
    "name": (("dealname",), _text),
    "stage": (("dealstage",), _text),
    "amount": (("amount",), _number),
    "close_date": (("closedate",), _date),
    "forecast_category": (("hs_manual_forecast_category", "hs_forecast_category"), _forecast),
    "is_closed": (("hs_is_closed",), _boolean),
    "is_won": (("hs_is_closed_won",), _boolean),
    "probability": (("hs_deal_stage_probability",), _percent_fraction),
    "next_step": (("hs_next_step",), _text),
    "next_step_date": (("tsos_next_step_date", "notes_next_activity_date"), _date),
    "owner_id": (("hubspot_owner_id",), _text),
    "partner_id": (("tsos_partner_company_id", "tsos_partner_id"), _text),
    "channel": (("tsos_channel",), _picklist),
    "lead_id": (("tsos_lead_id",), _text),
    "account_id": (("tsos_account_id", "associatedcompanyid"), _text),
    "stage_changed_at": (("tsos_stage_changed_at",), _timestamp),
    "partner_override_reason": (("tsos_partner_override_reason",), _text),
    "team_user_ids": (("tsos_team_user_ids",), _ids),
    "close_date_approved_by": (("tsos_close_date_approved_by",), _text),
}

_HUBSPOT_ENVELOPE: Final = frozenset(
    {"context", "as_of", "include_info", "before", "objectType", "associations", "portalId"}
)
_HUBSPOT_DEAL_TYPES: Final = frozenset({"deal", "deals", "0-3"})


def _hubspot_fields(overrides: Mapping[str, str]) -> dict[str, tuple[tuple[str, ...], Convert]]:
    fields = dict(HUBSPOT_DEAL)
    for ours, theirs in overrides.items():
        fields[ours] = ((theirs,), fields[ours][1]) if ours in fields else ((theirs,), _text)
    return fields


def _unwrap(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Legacy property values are ``{"value": ..., "timestamp": ..., "versions": [...]}``."""
    return {
        name: value["value"] if type(value) is dict and "value" in value else value
        for name, value in properties.items()
    }


def _hubspot_deal(
    properties: Mapping[str, Any],
    fields: Mapping[str, tuple[tuple[str, ...], Convert]],
    prefix: str,
) -> dict[str, Any]:
    deal, used = _mapped(properties, fields, lambda name: f"{prefix}{name}")
    known = {a.name for a in attrs.fields(RECORD_TYPES["opportunity"][0])}
    for name, value in properties.items():
        if name not in used and name not in known and name not in deal:
            deal[name] = value  # kept for third-party rules, as unknown snapshot keys are
    return {key: value for key, value in deal.items() if value is not None}


def _company_id(body: Mapping[str, Any]) -> str | None:
    associations = body.get("associations")
    if type(associations) is not dict:
        return None
    legacy = associations.get("associatedCompanyIds")
    if type(legacy) is list and legacy and type(legacy[0]) in (int, str):
        return str(legacy[0])
    companies = associations.get("companies")
    if type(companies) is dict:
        results = companies.get("results")
        if type(results) is list and results and type(results[0]) is dict:
            first = results[0].get("id")
            if type(first) in (int, str):
                return str(first)
    return None


def hubspot(body: Any, overrides: Mapping[str, str] | None = None) -> CheckRequest:
    """A deal from a HubSpot workflow webhook (legacy, v3 or flat body)."""
    if type(body) is list:
        raise ChangeError(
            "body",
            "this is a batch of webhook subscription events (one property each, sent after the "
            "save); send the deal from a workflow's 'Send a webhook' action instead",
        )
    data = _object(body, "body")
    object_type = data.get("objectType")
    if object_type is not None and str(object_type).lower() not in _HUBSPOT_DEAL_TYPES:
        raise ChangeError("objectType", f"only deals are judged, got {_shown(object_type)}")
    fields = _hubspot_fields(overrides or {})
    if type(data.get("properties")) is dict:
        properties = _unwrap(data["properties"])
        prefix = "properties."
        record_id = data.get("dealId", data.get("objectId", data.get("id")))
    elif "properties" in data:
        raise ChangeError("properties", f"expected an object, got {_shown(data['properties'])}")
    else:
        properties = {k: v for k, v in data.items() if k not in _HUBSPOT_ENVELOPE}
        prefix = ""
        ids = [properties.pop(key, None) for key in ("dealId", "objectId", "id")]
        record_id = next((value for value in ids if value is not None), None)
    after = _hubspot_deal(properties, fields, prefix)
    if "id" not in after:
        if record_id is None:
            raise ChangeError(f"{prefix}hs_object_id", "required field is missing (the deal id)")
        after["id"] = _text(record_id, "dealId")
    if "account_id" not in after:
        company = _company_id(data)
        if company is not None:
            after["account_id"] = company
    before = None
    if data.get("before") is not None:
        before_props = _unwrap(_object(data["before"], "before"))
        before = _hubspot_deal(before_props, fields, "before.")
        before.setdefault("id", after["id"])
        for key in ("account_id",):
            if key in after:
                before.setdefault(key, after[key])
    try:
        parsed = parse_change(
            "opportunity", before, after, data.get("context"), as_of=data.get("as_of"), prefix=""
        )
    except ChangeError as exc:
        side, _, field = exc.field.partition(".")
        if side not in ("before", "after") or field not in fields:
            raise
        where = "before." if side == "before" else prefix
        raise ChangeError(f"{where}{fields[field][0][0]}", exc.problem) from None
    return CheckRequest("hubspot", parsed, _include_info(data))


# -- Salesforce --------------------------------------------------------------------------------

#: Salesforce sObject type -> the change's record type.
SALESFORCE_TYPES: Final = {
    "Opportunity": "opportunity",
    "Lead": "lead",
    "Account": "account",
    "Task": "activity",
    "Event": "activity",
}

SF = dict[str, tuple[tuple[str, ...], Convert]]

SALESFORCE_FIELDS: Final[dict[str, SF]] = {
    "opportunity": {
        "id": (("Id",), _text),
        "name": (("Name",), _text),
        "account_id": (("AccountId",), _text),
        "owner_id": (("OwnerId",), _text),
        "partner_id": (("PartnerAccountId",), _text),
        "lead_id": (("Lead__c",), _text),
        "channel": (("Channel__c",), _picklist),
        "stage": (("StageName",), _picklist),
        "probability": (("Probability",), _number),
        "amount": (("Amount",), _number),
        "close_date": (("CloseDate",), _sf_date),
        "forecast_category": (("ForecastCategoryName", "ForecastCategory"), _forecast),
        "is_closed": (("IsClosed",), _boolean),
        "is_won": (("IsWon",), _boolean),
        "next_step": (("NextStep",), _text),
        "next_step_date": (("Next_Step_Date__c",), _sf_date),
        "stage_changed_at": (("LastStageChangeDate",), _sf_timestamp),
        "partner_override_reason": (("Partner_Override_Reason__c",), _text),
        "close_date_approved_by": (("Close_Date_Approved_By__c",), _text),
        "partner_consent.by": (("Partner_Consent_By__c",), _text),
        "partner_consent.at": (("Partner_Consent_At__c",), _sf_timestamp),
        "partner_consent.reason": (("Partner_Consent_Reason__c",), _picklist),
        "partner_consent.note": (("Partner_Consent_Note__c",), _text),
    },
    "lead": {
        "id": (("Id",), _text),
        "company": (("Company",), _text),
        "account_id": (("ConvertedAccountId", "Account__c"), _text),
        "owner_id": (("OwnerId",), _text),
        "partner_id": (("PartnerAccountId",), _text),
        "source": (("LeadSource",), _picklist),
        "status": (("Status",), _picklist),
        "outcome": (("Outcome__c",), _picklist),
        "distributed_at": (("Distributed_At__c",), _sf_timestamp),
        "accepted_at": (("Accepted_At__c",), _sf_timestamp),
        "followed_up_at": (("Followed_Up_At__c",), _sf_timestamp),
        "converted_opportunity_id": (("ConvertedOpportunityId",), _text),
    },
    "account": {
        "id": (("Id",), _text),
        "name": (("Name",), _text),
        "partner_of_record_id": (("Partner_of_Record__c",), _text),
    },
    "partner": {
        "id": (("Id",), _text),
        "name": (("Name",), _text),
        "status": (("Partner_Status__c",), _picklist),
        "tier": (("Partner_Tier__c",), _picklist),
        "credit_limit": (("Partner_Credit_Limit__c",), _number),
    },
    "user": {
        "id": (("Id",), _text),
        "name": (("Name",), _text),
        "role": (("Tsos_Role__c",), _picklist),
    },
    "activity": {
        "id": (("Id",), _text),
        "what_id": (("WhatId",), _text),
        "account_id": (("AccountId",), _text),
        "owner_id": (("OwnerId",), _text),
        "subject": (("Subject",), _text),
        "due_date": (("ActivityDate",), _sf_date),
        "partner_notified": (("Partner_Notified__c",), _boolean),
        "created_at": (("CreatedDate",), _sf_timestamp),
    },
    "close_date_change": {
        "opportunity_id": (("OpportunityId",), _text),
        "old": (("PrevCloseDate",), _sf_date),
        "new": (("CloseDate",), _sf_date),
        "changed_at": (("CreatedDate",), _sf_timestamp),
        "changed_by": (("CreatedById",), _text),
        "stage": (("StageName",), _picklist),
        "forecast_category": (("ForecastCategory",), _forecast),
    },
}


_KNOWN: Final = {
    record_type: frozenset(a.name for a in attrs.fields(cls))
    for record_type, (cls, _) in RECORD_TYPES.items()
}


def _sf_fields(record_type: str, overrides: Mapping[str, Mapping[str, str]]) -> SF:
    fields = dict(SALESFORCE_FIELDS[record_type])
    for ours, theirs in overrides.get(record_type, {}).items():
        convert = fields[ours][1] if ours in fields else _text
        fields[ours] = ((theirs,), convert)
    return fields


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


def _sf_record(
    record: Mapping[str, Any], record_type: str, fields: SF, where: str
) -> dict[str, Any]:
    out, used = _mapped(record, fields, _at(where))
    consent = {
        key.split(".", 1)[1]: out.pop(key)
        for key in list(out)
        if key.startswith("partner_consent.")
    }
    if consent.get("by"):
        out["partner_consent"] = {k: v for k, v in consent.items() if v is not None}
    known = _KNOWN.get(record_type, frozenset())
    for name, value in record.items():
        if name not in used and name != "attributes" and name not in known:
            out[name] = value
    return {key: value for key, value in out.items() if value is not None}


def _sf_activity(record: Mapping[str, Any], kind: str, fields: SF, where: str) -> dict[str, Any]:
    out = _sf_record(record, "activity", fields, where)
    closed = _boolean(record.get("IsClosed"), f"{where}.IsClosed")
    if closed is None and kind == "Task":
        status = _text(record.get("Status"), f"{where}.Status")
        closed = status is not None and snake(status) == "completed"
    out["status"] = "completed" if closed else "open"
    return out


def _sf_user(record: Mapping[str, Any], fields: SF, where: str) -> dict[str, Any]:
    out = _sf_record(record, "user", fields, where)
    if "role" not in out:
        user_type = _text(record.get("UserType"), f"{where}.UserType") or ""
        out["role"] = "partner" if user_type.startswith("Power") else "other"
    return out


def salesforce(body: Any, overrides: Mapping[str, Mapping[str, str]] | None = None) -> CheckRequest:
    """sObjects from a screen flow's Apex action or a Lightning component, before the save."""
    data = _object(body, "body")
    overrides = overrides or {}
    before_raw, after_raw = data.get("before"), data.get("after")
    explicit = data.get("record_type")
    if explicit is not None:
        kind = _text(explicit, "record_type") or ""
    else:
        sample = after_raw if after_raw is not None else before_raw
        if sample is None:
            raise ChangeError("after", "before and after cannot both be null")
        kind = _sf_type(_object(sample, "after" if after_raw is not None else "before"), "after")
    if kind not in SALESFORCE_TYPES:
        raise ChangeError(
            "record_type", f"expected one of {', '.join(SALESFORCE_TYPES)}, got {_shown(kind)}"
        )
    record_type = SALESFORCE_TYPES[kind]
    fields = _sf_fields(record_type, overrides)

    def convert(raw: Any, where: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        record = _object(raw, where)
        if record_type == "activity":
            return _sf_activity(record, kind, fields, where)
        return _sf_record(record, record_type, fields, where)

    before = convert(before_raw, "before")
    after = convert(after_raw, "after")
    context = _sf_context(data.get("related"), overrides)
    team = context.pop("_team", {})
    if after is not None and "team_user_ids" not in after and record_type == "opportunity":
        members = team.get(after.get("id"))
        if members:
            after["team_user_ids"] = members
    positions = context.pop("_positions")
    try:
        parsed = parse_change(
            record_type, before, after, context, as_of=data.get("as_of"), prefix=""
        )
    except ChangeError as exc:
        raise _sf_translate(exc, record_type, positions, overrides) from None
    return CheckRequest("salesforce", parsed, _include_info(data))


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


def _sf_translate(
    exc: ChangeError,
    record_type: str,
    positions: Mapping[str, list[int]],
    overrides: Mapping[str, Mapping[str, str]],
) -> ChangeError:
    """Name the Salesforce field (``after.CloseDate``, ``related[3].Status``) in an error."""
    match = _PATH.match(exc.field)
    if match is None:
        return exc
    side, collection, index, field = match.groups()
    kind = record_type if side else _COLLECTION_TYPE.get(collection, "")
    fields = _sf_fields(kind, overrides) if kind in SALESFORCE_FIELDS else {}
    name = fields[field][0][0] if field in fields else field
    if side:
        return ChangeError(f"{side}.{name}", exc.problem)
    rows = positions.get(collection, [])
    where = f"related[{rows[int(index)]}]" if int(index) < len(rows) else "related"
    return ChangeError(f"{where}.{name}", exc.problem)


def _sf_context(related: Any, overrides: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    context: dict[str, Any] = {
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
    context["_team"] = team
    context["_positions"] = positions
    if related is None:
        return context
    if type(related) is not list:
        raise ChangeError("related", f"expected a list of sObjects, got {_shown(related)}")
    for index, raw in enumerate(related):
        where = f"related[{index}]"
        record = _object(raw, where)
        kind = _sf_type(record, where)
        if kind == "Opportunity":
            fields = _sf_fields("opportunity", overrides)
            context["opportunities"].append(_sf_record(record, "opportunity", fields, where))
        elif kind == "Lead":
            context["leads"].append(
                _sf_record(record, "lead", _sf_fields("lead", overrides), where)
            )
        elif kind == "Account":
            context["accounts"].append(
                _sf_record(record, "account", _sf_fields("account", overrides), where)
            )
            if _boolean(record.get("IsPartner"), f"{where}.IsPartner"):
                partner = _sf_record(record, "partner", _sf_fields("partner", overrides), where)
                partner.setdefault("status", "active")
                context["partners"].append(partner)
        elif kind == "User":
            context["users"].append(_sf_user(record, _sf_fields("user", overrides), where))
        elif kind in ("Task", "Event"):
            fields = _sf_fields("activity", overrides)
            context["activities"].append(_sf_activity(record, kind, fields, where))
        elif kind == "OpportunityHistory":
            fields = _sf_fields("close_date_change", overrides)
            change, _ = _mapped(record, fields, _at(where))
            if change.get("old") and change.get("new") and change["old"] != change["new"]:
                context["close_date_changes"].append(
                    {k: v for k, v in change.items() if v is not None}
                )
        elif kind == "OpportunityTeamMember":
            deal = _text(record.get("OpportunityId"), f"{where}.OpportunityId")
            user = _text(record.get("UserId"), f"{where}.UserId")
            if deal and user:
                team.setdefault(deal, []).append(user)
        else:
            known = "Opportunity, Lead, Account, User, Task, Event, OpportunityHistory, "
            raise ChangeError(
                f"{where}.attributes.type",
                f"unsupported sObject type {kind!r} (supported: {known}OpportunityTeamMember)",
            )
        for collection, rows in context.items():
            if collection in positions and len(rows) > len(positions[collection]):
                positions[collection].append(index)
    for deal in context["opportunities"]:
        if "team_user_ids" not in deal and deal.get("id") in team:
            deal["team_user_ids"] = team[deal["id"]]
    return context
