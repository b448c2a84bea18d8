"""Rows of the state's findings table written directly, for tests of the state's queries over
many findings (tallies, look-ups) without running a sync to produce them."""

from __future__ import annotations

import sqlite3
from typing import Any


def finding_row(fingerprint: str, **columns: Any) -> dict[str, Any]:
    """An open block finding of ``tsos.next-step-required`` on deal ``fingerprint``, owned by
    Ann (u1), with ``columns`` replaced."""
    row = {
        "connector": "local",
        "fingerprint": fingerprint,
        "rule": "tsos.next-step-required",
        "severity": "block",
        "record_type": "opportunity",
        "record_id": fingerprint,
        "reason": "r",
        "message": "m",
        "owner_id": "u1",
        "owner_name": "Ann",
        "partner_id": None,
        "partner_name": None,
        "status": "open",
        "first_seen": "2026-11-01T00:00:00+00:00",
        "last_seen": "2026-11-01T00:00:00+00:00",
        "last_run": 1,
        "shadow": 0,
    }
    row.update(columns)
    return row


def insert_row(db: sqlite3.Connection, row: dict[str, Any]) -> None:
    names = ", ".join(row)
    db.execute(
        f"INSERT INTO findings ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values())
    )
