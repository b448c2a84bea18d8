"""HubSpot records (CRM v3 JSON) to the snapshot model, and model fields back to properties.

Pure functions: no I/O. A value that cannot be used raises :class:`MappingProblem` naming the
model field, so the connector can skip that record and report it as a ``RecordError``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from tsos_rules import Account, Activity, CloseDateChange, Lead, Opportunity, Partner, User
from tsos_rules.model import Channel, ForecastCategory, LeadOutcome, PartnerStatus, UserRole
from tsos_rules_hubspot.settings import HubSpotSettings

Json = dict[str, Any]

#: HubSpot-defined association type ids used here (associations v4).
DEAL_TO_PRIMARY_COMPANY = 5
TASK_TO_DEAL = 216
TASK_TO_COMPANY = 192

#: Default stage mapping, merged under ``stage_map`` (HubSpot's default pipeline's ends).
DEFAULT_STAGE_MAP: Mapping[str, str] = {"closedwon": "closed_won", "closedlost": "closed_lost"}

FORECAST_CATEGORIES: Mapping[str, ForecastCategory] = {
    "OMIT": ForecastCategory.OMITTED,
    "OMITTED": ForecastCategory.OMITTED,
    "PIPELINE": ForecastCategory.PIPELINE,
    "BEST_CASE": ForecastCategory.BEST_CASE,
    "COMMIT": ForecastCategory.COMMIT,
    "CLOSED": ForecastCategory.CLOSED,
}
FORECAST_TO_HUBSPOT: Mapping[str, str] = {
    "omitted": "OMIT",
    "pipeline": "PIPELINE",
    "best_case": "BEST_CASE",
    "commit": "COMMIT",
    "closed": "CLOSED",
}

#: Deal properties whose history is read (``propertiesWithHistory``).
DEAL_HISTORY = ("closedate", "dealstage", "hs_manual_forecast_category", "hs_forecast_category")

#: Properties HubSpot computes itself: a field update naming one is refused before sending.
READ_ONLY_DEAL_PROPERTIES = frozenset(
    {
        "notes_next_activity_date",
        "hs_deal_stage_probability",
        "hs_is_closed",
        "hs_is_closed_won",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_v2_date_entered_current_stage",
        "hs_forecast_category",
        "createdate",
    }
)


@attrs.frozen
class Engagement:
    """How one engagement object (tasks, meetings, ...) is read as an activity."""

    object_type: str
    subject: str
    status: str | None
    due: str
    open_statuses: frozenset[str]
    #: Status used when the status property is empty.
    blank_is_open: bool


ENGAGEMENTS: Mapping[str, Engagement] = {
    "tasks": Engagement(
        "tasks",
        "hs_task_subject",
        "hs_task_status",
        "hs_timestamp",
        frozenset({"NOT_STARTED", "IN_PROGRESS", "WAITING", "DEFERRED"}),
        True,
    ),
    "meetings": Engagement(
        "meetings",
        "hs_meeting_title",
        "hs_meeting_outcome",
        "hs_meeting_start_time",
        frozenset({"SCHEDULED", "RESCHEDULED"}),
        True,
    ),
    "calls": Engagement(
        "calls", "hs_call_title", "hs_call_status", "hs_timestamp", frozenset({"QUEUED"}), False
    ),
    "emails": Engagement(
        "emails",
        "hs_email_subject",
        "hs_email_status",
        "hs_timestamp",
        frozenset({"SCHEDULED"}),
        False,
    ),
}


class MappingProblem(ValueError):
    """One field of a HubSpot record cannot be mapped; ``field`` is the model's field name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- time ------------------------------------------------------------------------------------


def parse_instant(value: Any) -> dt.datetime | None:
    """A HubSpot datetime: ISO 8601 (``...Z`` or an offset), epoch milliseconds, or a bare date
    (midnight UTC). None or empty is None; anything else raises ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000.0, dt.UTC)
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp, got {value!r}")
    text = value.strip()
    if text.isdigit():
        return dt.datetime.fromtimestamp(int(text) / 1000.0, dt.UTC)
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def to_millis(moment: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def from_millis(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000.0, dt.UTC)


def format_instant(moment: dt.datetime) -> str:
    """``2026-11-24T08:00:00.000+00:00``: the watermark and version format."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def version_millis(value: str | None) -> int | None:
    """A version token (``hs_lastmodifieddate``) as epoch ms, for comparing."""
    try:
        moment = parse_instant(value)
    except ValueError:
        return None
    return to_millis(moment) if moment is not None else None


def _instant(props: Mapping[str, Any], name: str, field: str) -> dt.datetime | None:
    try:
        return parse_instant(props.get(name))
    except ValueError:
        raise MappingProblem(
            field, f"{name}: expected a date-time, got {props.get(name)!r}"
        ) from None


def _local_date(
    props: Mapping[str, Any], name: str, field: str, settings: HubSpotSettings
) -> dt.date | None:
    value = props.get(name)
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise MappingProblem(field, f"{name}: expected a date, got {value!r}") from None
    moment = _instant(props, name, field)
    return moment.astimezone(settings.tz).date() if moment is not None else None


def _number(props: Mapping[str, Any], name: str, field: str) -> float | None:
    value = props.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MappingProblem(field, f"{name}: expected a number, got {value!r}") from None


def _text(props: Mapping[str, Any], name: str) -> str | None:
    value = props.get(name)
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _flag(props: Mapping[str, Any], name: str) -> bool:
    return str(props.get(name) or "").strip().lower() == "true"


# -- deals -----------------------------------------------------------------------------------


def deal_fields(settings: HubSpotSettings) -> dict[str, tuple[str, ...]]:
    """Model field -> the deal properties it is read from (first present wins).

    The deal field map of this package: the in-line adapter reads a webhook body through it,
    and the names the connector's settings make configurable (``channel_property``,
    ``partner_property``, ...) are the ones the sync reads, so one setting changes both.
    """
    return {
        "id": ("hs_object_id",),
        "name": ("dealname",),
        "stage": ("dealstage",),
        "amount": ("amount",),
        "close_date": ("closedate",),
        "forecast_category": ("hs_manual_forecast_category", "hs_forecast_category"),
        "is_closed": ("hs_is_closed",),
        "is_won": ("hs_is_closed_won",),
        "probability": ("hs_deal_stage_probability",),
        "next_step": ("hs_next_step",),
        "next_step_date": _names("tsos_next_step_date", settings.next_step_date_property),
        "owner_id": ("hubspot_owner_id",),
        "partner_id": _names(settings.partner_property, "tsos_partner_id"),
        "channel": (settings.channel_property,),
        "lead_id": ("tsos_lead_id",),
        "account_id": ("tsos_account_id", "associatedcompanyid"),
        "stage_changed_at": ("tsos_stage_changed_at",),
        "partner_override_reason": (settings.partner_override_reason_property,),
        "team_user_ids": ("tsos_team_user_ids",),
        "close_date_approved_by": ("tsos_close_date_approved_by",),
    }


def _names(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def deal_properties(settings: HubSpotSettings) -> list[str]:
    """Every deal property a read asks for."""
    names = [
        "dealname",
        "amount",
        "closedate",
        "dealstage",
        "pipeline",
        "hs_is_closed",
        "hs_is_closed_won",
        "hs_deal_stage_probability",
        "hs_next_step",
        settings.next_step_date_property,
        "hs_forecast_category",
        "hs_manual_forecast_category",
        "hubspot_owner_id",
        "hs_all_collaborator_owner_ids",
        "hs_lastmodifieddate",
        "createdate",
        settings.stage_entered_property,
        settings.channel_property,
        settings.partner_override_reason_property,
        *settings.extra_deal_properties,
    ]
    if settings.partner_source == "property":
        names.append(settings.partner_property)
    return list(dict.fromkeys(names))


def stage_map(settings: HubSpotSettings) -> dict[str, str]:
    return {**DEFAULT_STAGE_MAP, **settings.stage_map}


def forecast_category(props: Mapping[str, Any]) -> ForecastCategory | None:
    raw = _text(props, "hs_manual_forecast_category") or _text(props, "hs_forecast_category")
    return FORECAST_CATEGORIES.get(raw.strip().upper()) if raw else None


def _history(record: Mapping[str, Any], name: str) -> list[tuple[dt.datetime, Any, Json]]:
    """A property's history oldest first, as ``(timestamp, value, entry)``."""
    entries = (record.get("propertiesWithHistory") or {}).get(name) or []
    out: list[tuple[dt.datetime, Any, Json]] = []
    for entry in entries:
        try:
            moment = parse_instant(entry.get("timestamp"))
        except ValueError:
            continue
        if moment is not None:
            out.append((moment, entry.get("value"), entry))
    out.sort(key=lambda item: item[0])
    return out


def _value_at(history: Sequence[tuple[dt.datetime, Any, Json]], moment: dt.datetime) -> Any:
    value = None
    for when, item, _ in history:
        if when > moment:
            break
        value = item
    return value


def _stage_entered(record: Mapping[str, Any], current: str | None) -> dt.datetime | None:
    """When the deal entered its current stage, from ``dealstage`` history."""
    entered = None
    for when, value, _ in reversed(_history(record, "dealstage")):
        if value != current:
            break
        entered = when
    return entered


def deal_to_opportunity(
    deal: Mapping[str, Any],
    settings: HubSpotSettings,
    *,
    account_id: str | None,
    partner_id: str | None,
    contact_ids: Iterable[str] = (),
) -> Opportunity:
    props: Mapping[str, Any] = deal.get("properties") or {}
    raw_stage = _text(props, "dealstage")
    stage = stage_map(settings).get(raw_stage, raw_stage) if raw_stage else None
    probability = _number(props, "hs_deal_stage_probability", "probability")
    if probability is not None and probability <= 1.0:
        probability = round(probability * 100.0, 4)
    channel_raw = (_text(props, settings.channel_property) or "").strip().lower()
    channel = Channel(channel_raw) if channel_raw in ("partner", "direct") else None
    team = tuple(
        part.strip()
        for part in (_text(props, "hs_all_collaborator_owner_ids") or "").split(";")
        if part.strip()
    )
    stage_changed_at = _stage_entered(deal, raw_stage) or _instant(
        props, settings.stage_entered_property, "stage_changed_at"
    )
    extra: dict[str, Any] = {
        "hubspot_pipeline": _text(props, "pipeline"),
        "hubspot_dealstage": raw_stage,
        "hubspot_last_modified": _text(props, "hs_lastmodifieddate"),
    }
    raw_forecast = _text(props, "hs_manual_forecast_category") or _text(
        props, "hs_forecast_category"
    )
    if raw_forecast:
        extra["hubspot_forecast_category"] = raw_forecast
    contacts = sorted(set(contact_ids), key=_id_order)
    if settings.read_contacts:
        extra["contact_ids"] = contacts
    for name in settings.extra_deal_properties:
        extra[name] = props.get(name)
    return Opportunity(
        id=str(deal["id"]),
        name=_text(props, "dealname"),
        account_id=account_id,
        owner_id=_text(props, "hubspot_owner_id"),
        partner_id=partner_id,
        channel=channel,
        stage=stage,
        probability=probability,
        amount=_number(props, "amount", "amount"),
        close_date=_local_date(props, "closedate", "close_date", settings),
        forecast_category=forecast_category(props),
        is_closed=_flag(props, "hs_is_closed"),
        is_won=_flag(props, "hs_is_closed_won"),
        next_step=_text(props, "hs_next_step"),
        next_step_date=_local_date(
            props, settings.next_step_date_property, "next_step_date", settings
        ),
        team_user_ids=team,
        stage_changed_at=stage_changed_at,
        partner_override_reason=_text(props, settings.partner_override_reason_property),
        extra=extra,
    )


def close_date_changes(
    deal: Mapping[str, Any],
    settings: HubSpotSettings,
    owner_by_user: Mapping[str, str],
) -> list[CloseDateChange]:
    """Close-date moves from ``propertiesWithHistory.closedate``, with the stage and forecast
    category the deal had right after each move."""
    deal_id = str(deal["id"])
    stages = _history(deal, "dealstage")
    manual = _history(deal, "hs_manual_forecast_category")
    computed = _history(deal, "hs_forecast_category")
    mapping = stage_map(settings)
    changes: list[CloseDateChange] = []
    previous: dt.date | None = None
    for position, (when, value, entry) in enumerate(_history(deal, "closedate")):
        try:
            current = _local_date({"v": value}, "v", "close_date", settings)
        except MappingProblem:
            continue
        if position > 0 and current != previous:
            raw_stage = _value_at(stages, when)
            raw_forecast = _value_at(manual, when) or _value_at(computed, when)
            user = entry.get("updatedByUserId")
            extra: dict[str, Any] = {"hubspot_source_type": entry.get("sourceType")}
            if user is not None:
                extra["hubspot_user_id"] = str(user)
            changes.append(
                CloseDateChange(
                    opportunity_id=deal_id,
                    old=previous,
                    new=current,
                    changed_at=when,
                    changed_by=owner_by_user.get(str(user)) if user is not None else None,
                    stage=mapping.get(raw_stage, raw_stage) if raw_stage else None,
                    forecast_category=FORECAST_CATEGORIES.get(str(raw_forecast).upper())
                    if raw_forecast
                    else None,
                    extra=extra,
                )
            )
        previous = current
    return changes


# -- companies -------------------------------------------------------------------------------


def company_properties(settings: HubSpotSettings) -> list[str]:
    return list(
        dict.fromkeys(
            [
                "name",
                "domain",
                "type",
                "hs_lastmodifieddate",
                settings.partner_of_record_property,
                settings.partner_tier_property,
                settings.partner_status_property,
                settings.credit_limit_property,
                settings.fiscal_year_start_month_property,
            ]
        )
    )


def is_partner_company(company: Mapping[str, Any], settings: HubSpotSettings) -> bool:
    kind = _text(company.get("properties") or {}, "type")
    return kind is not None and kind.strip().upper() in settings.partner_company_types


def company_to_account(company: Mapping[str, Any], settings: HubSpotSettings) -> Account:
    props: Mapping[str, Any] = company.get("properties") or {}
    return Account(
        id=str(company["id"]),
        name=_text(props, "name"),
        partner_of_record_id=_text(props, settings.partner_of_record_property),
        extra={"domain": _text(props, "domain"), "hubspot_type": _text(props, "type")},
    )


def company_to_partner(company: Mapping[str, Any], settings: HubSpotSettings) -> Partner:
    props: Mapping[str, Any] = company.get("properties") or {}
    status = (_text(props, settings.partner_status_property) or "active").strip().lower()
    month = _number(props, settings.fiscal_year_start_month_property, "fiscal_year_start_month")
    if month is not None and (month != int(month) or not 1 <= month <= 12):
        raise MappingProblem(
            "fiscal_year_start_month",
            f"{settings.fiscal_year_start_month_property}: expected a month 1-12, got {month:g}",
        )
    return Partner(
        id=str(company["id"]),
        name=_text(props, "name"),
        status=PartnerStatus.TERMINATED
        if status in ("terminated", "inactive", "ended")
        else PartnerStatus.ACTIVE,
        tier=_text(props, settings.partner_tier_property),
        credit_limit=_number(props, settings.credit_limit_property, "credit_limit"),
        fiscal_year_start_month=int(month) if month is not None else None,
        extra={"domain": _text(props, "domain"), "hubspot_type": _text(props, "type")},
    )


# -- leads ------------------------------------------------------------------------------------


def lead_properties(settings: HubSpotSettings) -> list[str]:
    names = [
        "hs_lead_name",
        "hubspot_owner_id",
        "hs_lastmodifieddate",
        "hs_createdate",
        *settings.lead_fields.values(),
    ]
    if settings.partner_source == "property":
        names.append(settings.partner_property)
    return list(dict.fromkeys(names))


def lead_to_lead(
    record: Mapping[str, Any],
    settings: HubSpotSettings,
    *,
    account_id: str | None,
    account_name: str | None,
    partner_id: str | None,
    converted_opportunity_id: str | None,
) -> Lead:
    props: Mapping[str, Any] = record.get("properties") or {}
    fields = settings.lead_fields
    raw_status = _text(props, fields["status"])
    status = settings.lead_status_map.get(raw_status, raw_status) if raw_status else None
    raw_outcome = (_text(props, fields["outcome"]) or "").strip().lower()
    outcomes = {o.value: o for o in LeadOutcome}
    if raw_outcome and raw_outcome not in outcomes:
        raise MappingProblem(
            "outcome",
            f"{fields['outcome']}: expected one of {', '.join(outcomes)}, got {raw_outcome!r}",
        )
    return Lead(
        id=str(record["id"]),
        company=account_name or _text(props, fields["company"]),
        account_id=account_id,
        owner_id=_text(props, "hubspot_owner_id"),
        partner_id=partner_id,
        source=_text(props, fields["source"]),
        status=status,
        outcome=outcomes.get(raw_outcome),
        distributed_at=_instant(props, fields["distributed_at"], "distributed_at"),
        accepted_at=_instant(props, fields["accepted_at"], "accepted_at"),
        followed_up_at=_instant(props, fields["followed_up_at"], "followed_up_at"),
        converted_opportunity_id=converted_opportunity_id,
        extra={"hubspot_lead_name": _text(props, "hs_lead_name"), "hubspot_status": raw_status},
    )


# -- owners ----------------------------------------------------------------------------------


def owner_to_user(owner: Mapping[str, Any], settings: HubSpotSettings) -> User:
    owner_id = str(owner["id"])
    email = owner.get("email")
    first, last = owner.get("firstName") or "", owner.get("lastName") or ""
    name = f"{first} {last}".strip() or (str(email) if email else None)
    teams = sorted(owner.get("teams") or [], key=lambda team: not team.get("primary", False))
    role = settings.owner_roles.get(owner_id) or (
        settings.owner_roles.get(str(email)) if email else None
    )
    if role is None:
        for team in teams:
            role = settings.team_roles.get(str(team.get("name"))) or settings.team_roles.get(
                str(team.get("id"))
            )
            if role:
                break
    return User(
        id=owner_id,
        name=name,
        role=UserRole(role or settings.default_role),
        extra={
            "email": email,
            "hubspot_user_id": str(owner["userId"]) if owner.get("userId") is not None else None,
            "teams": [str(team.get("name")) for team in teams],
        },
    )


# -- engagements -----------------------------------------------------------------------------


def engagement_properties(kind: Engagement, settings: HubSpotSettings) -> list[str]:
    names = [
        kind.subject,
        kind.due,
        "hs_timestamp",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
        settings.partner_notified_property,
        settings.fingerprint_property,
    ]
    if kind.status:
        names.append(kind.status)
    return list(dict.fromkeys(names))


def engagement_status(kind: Engagement, props: Mapping[str, Any]) -> str:
    raw = (_text(props, kind.status) or "").strip().upper() if kind.status else ""
    if not raw:
        return "open" if kind.blank_is_open else "completed"
    if raw in kind.open_statuses:
        return "open"
    return "canceled" if raw in ("CANCELED", "CANCELLED", "NO_SHOW") else "completed"


def engagement_to_activity(
    record: Mapping[str, Any],
    kind: Engagement,
    settings: HubSpotSettings,
    *,
    what_id: str | None,
    account_id: str | None,
) -> Activity:
    props: Mapping[str, Any] = record.get("properties") or {}
    due = _local_date(props, kind.due, "due_date", settings)
    if due is None and kind.due != "hs_timestamp":
        due = _local_date(props, "hs_timestamp", "due_date", settings)
    created = _instant(props, "hs_createdate", "created_at")
    if created is None:
        try:
            created = parse_instant(record.get("createdAt"))
        except ValueError:
            created = None
    return Activity(
        id=str(record["id"]),
        what_id=what_id,
        account_id=account_id,
        owner_id=_text(props, "hubspot_owner_id"),
        subject=_text(props, kind.subject),
        due_date=due,
        status=engagement_status(kind, props),
        partner_notified=_flag(props, settings.partner_notified_property),
        created_at=created,
        extra={
            "hubspot_type": kind.object_type,
            "hubspot_status": _text(props, kind.status) if kind.status else None,
        },
    )


# -- associations ----------------------------------------------------------------------------


def primary_and_partner(
    targets: Sequence[Mapping[str, Any]], settings: HubSpotSettings
) -> tuple[str | None, str | None, list[str]]:
    """From a deal's company associations: its primary company, its partner (labelled
    association, when that is the partner source) and every associated company."""
    primary: str | None = None
    partner: str | None = None
    every: list[str] = []
    label = settings.partner_association_label.strip().casefold()
    for target in targets:
        company_id = str(target.get("toObjectId"))
        every.append(company_id)
        types = target.get("associationTypes") or []
        is_partner = False
        is_primary = False
        for kind in types:
            type_id = kind.get("typeId")
            if kind.get("category") == "HUBSPOT_DEFINED" and (
                type_id == DEAL_TO_PRIMARY_COMPANY
                or str(kind.get("label") or "").casefold() == "primary"
            ):
                is_primary = True
            if settings.partner_source == "association":
                if settings.partner_association_type_id is not None:
                    if type_id == settings.partner_association_type_id:
                        is_partner = True
                elif str(kind.get("label") or "").strip().casefold() == label:
                    is_partner = True
        if is_partner:
            if partner is None or _id_order(company_id) < _id_order(partner):
                partner = company_id
        elif is_primary and primary is None:
            primary = company_id
    if primary is None:
        # No primary association: the lowest-id company that is not the partner.
        others = sorted((c for c in every if c != partner), key=_id_order)
        primary = others[0] if others else None
    return primary, partner, every


def _id_order(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (1 << 62, record_id)


def id_order(record_id: str) -> tuple[int, str]:
    """Sort key for HubSpot ids (numeric strings in numeric order)."""
    return _id_order(record_id)
