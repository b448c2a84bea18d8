"""``tsos-rules connectors check hubspot``: the configuration against the portal.

Reads the property definitions the connector relies on (one batch read per object), the deal
pipelines and the deal-to-company association labels, and names what is missing: the task
fingerprint property (without it finding tasks cannot be found again), the partner label,
custom properties (read as empty when missing), and deal stages that are not on the doctrine's
stage ladder after ``stage_map``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tsos_rules.connectors.base import Problem
from tsos_rules_hubspot.client import HubSpotClient
from tsos_rules_hubspot.mapping import stage_map
from tsos_rules_hubspot.settings import HubSpotSettings

Json = dict[str, Any]


def _defined(client: HubSpotClient, object_type: str, names: Sequence[str]) -> dict[str, Json]:
    """The definitions of the properties that exist, by name."""
    if not names:
        return {}
    page = client.request(
        "POST",
        f"/crm/v3/properties/{object_type}/batch/read",
        body={"archived": False, "inputs": [{"name": n} for n in dict.fromkeys(names)]},
    )
    return {str(p["name"]): p for p in page.get("results") or []}


def check_portal(
    client: HubSpotClient, settings: HubSpotSettings, ladder: Sequence[str]
) -> list[Problem]:
    s = settings
    problems: list[Problem] = []

    tasks = _defined(client, "tasks", [s.fingerprint_property, s.partner_notified_property])
    fingerprint = tasks.get(s.fingerprint_property)
    where = f"tasks.{s.fingerprint_property}"
    if fingerprint is None:
        problems.append(
            Problem(
                "error",
                where,
                "missing: create a single-line text task property (unique values) so finding "
                "tasks can be found again; without it every run would create them anew",
            )
        )
    elif not fingerprint.get("hasUniqueValue"):
        problems.append(
            Problem(
                "warning",
                where,
                "does not require unique values: a re-run within seconds of a crash may "
                "duplicate a task (HubSpot's search index lags)",
            )
        )

    optional: dict[str, list[str]] = {
        "deals": [s.channel_property, s.partner_override_reason_property],
        "companies": [
            s.partner_of_record_property,
            s.partner_tier_property,
            s.partner_status_property,
            s.credit_limit_property,
            s.fiscal_year_start_month_property,
        ],
        "tasks": [s.partner_notified_property],
    }
    if s.partner_source == "property":
        optional["deals"].append(s.partner_property)
    if s.next_step_date_property != "notes_next_activity_date":
        optional["deals"].append(s.next_step_date_property)
    for object_type, names in optional.items():
        found = tasks if object_type == "tasks" else _defined(client, object_type, names)
        for name in names:
            if name not in found:
                problems.append(
                    Problem("warning", f"{object_type}.{name}", "missing: read as empty")
                )

    if s.partner_source == "association" and s.partner_association_type_id is None:
        labels = client.request("GET", "/crm/v4/associations/deals/companies/labels")
        wanted = s.partner_association_label.strip().casefold()
        if not any(
            str(kind.get("label") or "").strip().casefold() == wanted
            for kind in labels.get("results") or []
        ):
            problems.append(
                Problem(
                    "error",
                    "connector.partner_association_label",
                    f"no deal-to-company association label {s.partner_association_label!r}: "
                    "create it, or set partner_source",
                )
            )

    mapping = stage_map(s)
    seen: set[str] = set()
    rungs = set(ladder)
    pipelines = client.request("GET", "/crm/v3/pipelines/deals")
    for pipeline in pipelines.get("results") or []:
        for stage in pipeline.get("stages") or []:
            stage_id = str(stage.get("id"))
            seen.add(stage_id)
            mapped = mapping.get(stage_id, stage_id)
            if mapped not in rungs:
                problems.append(
                    Problem(
                        "warning",
                        f"pipeline {pipeline.get('label') or pipeline.get('id')}",
                        f"stage {stage_id} ({stage.get('label')}) is not on the stage ladder; "
                        "map it in [connector.stage_map]",
                    )
                )
    for stage_id in s.stage_map:
        if stage_id not in seen:
            problems.append(
                Problem("error", f"connector.stage_map.{stage_id}", "no deal stage has this id")
            )
    return problems
