"""Helpers shared by the in-line tests (importable: this directory is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-9f3a1c77e2b54d0c8e1f-not-a-real-token"
HUBSPOT_SECRET = "hs-secret-0b6d2e44-71aa-4f0e-9c3b-not-real"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def pipeline() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "examples" / "pipeline.json").read_text())
    return data


def without(snapshot: dict[str, Any], collection: str, record_id: str) -> dict[str, Any]:
    """The snapshot minus one record: the context an in-line caller would send with it."""
    out = dict(snapshot)
    out[collection] = [r for r in snapshot.get(collection, []) if r.get("id") != record_id]
    return out
