"""Helpers shared by the in-line tests (importable: this directory is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-9f3a1c77e2b54d0c8e1f-not-a-real-token"
HUBSPOT_SECRET = "hs-secret-0b6d2e44-71aa-4f0e-9c3b-not-real"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: A flat HubSpot workflow body (the HubSpot plugin's route; its own tests are in contrib/).
HUBSPOT_DEAL = {
    "hs_object_id": "9001",
    "dealname": "Fleet renewal",
    "dealstage": "closing",
    "hs_deal_stage_probability": "0.8",
    "amount": "120000",
    "closedate": "2026-12-15T00:00:00Z",
    "hs_next_step": "TBD",
    "notes_next_activity_date": "2026-11-28",
    "hs_forecast_category": "COMMIT",
    "hs_is_closed": "false",
    "hubspot_owner_id": "77",
    "as_of": "2026-11-24",
}


def pipeline() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "examples" / "pipeline.json").read_text())
    return data


def without(snapshot: dict[str, Any], collection: str, record_id: str) -> dict[str, Any]:
    """The snapshot minus one record: the context an in-line caller would send with it."""
    out = dict(snapshot)
    out[collection] = [r for r in snapshot.get(collection, []) if r.get("id") != record_id]
    return out
