"""Fit the read to the org before the first query: optional features absent are left out.

Partner relationship management (``PartnerAccountId``, ``IsPartner``) and Team Selling
(``OpportunityTeamMember``) exist only in orgs that enable them. ``describe()`` tells which are
there; an absent optional one is left out of the SOQL (read as unknown or empty) and named once
in a warning, while an absent required field fails at once with the mapping key to fix
(docs/salesforce.md, "Optional fields").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from tsos_rules.connectors.salesforce.mapping import CATALOGUE, FieldMapping
from tsos_rules.connectors.salesforce.settings import (
    ApprovalSettings,
    ExemptionFieldSettings,
    ReadSettings,
)
from tsos_rules.errors import FatalConnectorError

Described = Mapping[str, "dict[str, Any] | None"]

#: Standard fields that only an org feature adds, and what a sync loses without them.
OPTIONAL_FIELDS: dict[str, str] = {
    "opportunity.partner_id": (
        "partner relationship management is off: a deal's partner is unknown unless its "
        "account names a partner of record"
    ),
    "lead.partner_id": (
        "partner relationship management is off: a lead's partner is unknown, so channel "
        "leads are known only by their source or distribution"
    ),
    "partner.is_partner": (
        "partner relationship management is off: a partner account no longer enabled as a "
        "partner is not seen as terminated (partner.status still counts)"
    ),
}

#: Optional objects, and what a sync loses without them.
OPTIONAL_OBJECTS: dict[str, str] = {
    "OpportunityTeamMember": (
        "Team Selling is off: deal teams are read as empty (read.team_members is ignored)"
    ),
}

#: Which object each record type's fields are read from.
_SOBJECT = {
    "opportunity": "Opportunity",
    "account": "Account",
    "partner": "Account",
    "lead": "Lead",
    "user": "User",
    "activity": "Task",
}


@attrs.frozen
class OrgFit:
    """The mapping and read settings this org can serve, and what was left out (and why)."""

    mapping: FieldMapping
    read: ReadSettings
    left_out: tuple[tuple[str, str], ...] = ()
    """``(Object.Field or Object, what is lost)`` for each optional part the org lacks."""


def objects_to_describe(read: ReadSettings) -> list[str]:
    """The objects a read queries whose fields come from the mapping (one Composite call)."""
    names = ["Opportunity", "Lead", "Account", "User", "Task"]
    if read.events:
        names.append("Event")
    if read.team_members:
        names.append("OpportunityTeamMember")
    return names


def fit_to_org(
    mapping: FieldMapping,
    read: ReadSettings,
    approvals: ApprovalSettings,
    described: Described,
    *,
    exemptions: ExemptionFieldSettings | None = None,
) -> OrgFit:
    """Leave out what the org lacks and may be left out; raise for what it lacks and needs."""
    fields = {
        name: {str(f.get("name", "")).casefold() for f in info.get("fields", []) if f}
        for name, info in described.items()
        if info is not None
    }
    missing: list[str] = []
    left_out: list[tuple[str, str]] = []
    for name in objects_to_describe(read):
        if name in fields:
            continue
        if name in OPTIONAL_OBJECTS:
            left_out.append((name, OPTIONAL_OBJECTS[name]))
            read = attrs.evolve(read, team_members=False)
        else:
            missing.append(f"{name} (object not found or not readable)")
    switched_off: list[str] = []
    for sobject, field, key in _needed(mapping, read, approvals, exemptions):
        known = fields.get(sobject)
        if known is None or "." in field or field.casefold() in known:
            continue
        spec = CATALOGUE.get(key)
        if key in OPTIONAL_FIELDS and spec is not None and field == spec.default:
            if key not in switched_off:
                switched_off.append(key)
                left_out.append((f"{sobject}.{field}", OPTIONAL_FIELDS[key]))
        else:
            missing.append(f"{sobject}.{field} (mapping {key})")
    if missing:
        raise FatalConnectorError(
            "Salesforce describe: INVALID_FIELD: this org lacks what the field mapping needs: "
            + "; ".join(missing)
            + ". Map each to a field that exists ([connector.fields]) or switch it off with "
            '"", then run: tsos-rules connectors check salesforce'
        )
    if switched_off:
        mapping = attrs.evolve(
            mapping, fields={**mapping.fields, **dict.fromkeys(switched_off, None)}
        )
    return OrgFit(mapping=mapping, read=read, left_out=tuple(left_out))


def _needed(
    mapping: FieldMapping,
    read: ReadSettings,
    approvals: ApprovalSettings,
    exemptions: ExemptionFieldSettings | None = None,
) -> Iterator[tuple[str, str, str]]:
    """``(object, field, mapping key)`` of every field the read's SOQL names."""
    for key, spec in CATALOGUE.items():
        field = mapping.sf(key)
        if not field or not spec.sync:
            continue
        yield spec.sobject, field, key
        if spec.sobject == "Task" and read.events:
            yield "Event", field, key
    for record, names in mapping.extra_fields.items():
        for name in names:
            yield _SOBJECT[record], name, f"extra_fields.{record}"
    users = mapping.users
    if users.by == "field" and users.field:
        yield "User", users.field, "users.field"
    if approvals.source == "field" and approvals.field:
        yield "Opportunity", approvals.field, "approvals.field"
    if exemptions is not None:
        for field, key in exemptions.fields():
            yield "Opportunity", field, key
