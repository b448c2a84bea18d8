"""The open findings and close-date pushes counted by what the run summary shows them by
(migration 10), moved by the state's own writes: a run's final counts read these few rows per
rule, owner and partner instead of every open finding and push (they grow with the org)."""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

TallyKey = tuple[str, int, str, str, str, int, str, int, str, str]
"""An ``open_tallies`` row's key: connector, shadow, rule, severity, owner id (``''`` for
none), whether it was none, owner name (``''`` for none), whether it had one, partner id and
the partner's label (its name, else its id)."""

#: The findings' columns a tally key is made of, in the order ``key_of`` takes them.
KEY_COLUMNS = (
    "connector", "shadow", "rule", "severity", "owner_id", "owner_name", "partner_id",
    "partner_name",
)  # fmt: skip
COLUMNS = ", ".join(KEY_COLUMNS)


def key_of(
    connector: str,
    shadow: Any,
    rule: str,
    severity: str,
    owner_id: str | None,
    owner_name: str | None,
    partner_id: str | None,
    partner_name: str | None,
) -> TallyKey:
    """A finding's tally key, as migration 10's SQL computes it (``coalesce`` keeps ``''``)."""
    return (
        connector,
        int(shadow),
        rule,
        severity,
        "" if owner_id is None else owner_id,
        int(owner_id is None),
        "" if owner_name is None else owner_name,
        int(owner_name is not None),
        "" if partner_id is None else partner_id,
        partner_name if partner_name is not None else partner_id if partner_id is not None else "",
    )


def move(db: sqlite3.Connection, delta: Mapping[TallyKey, int]) -> None:
    """Add ``delta`` to the open tallies; a tally down to nothing is dropped."""
    moved = [(*key, n) for key, n in delta.items() if n]
    if not moved:
        return
    db.executemany(
        "INSERT INTO open_tallies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET n = n + excluded.n",
        moved,
    )
    db.executemany(
        "DELETE FROM open_tallies WHERE (connector, shadow, rule, severity, owner_id, "
        "owner_none, owner_name, owner_named, partner_id, partner_label) = "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) AND n <= 0",
        [row[:-1] for row in moved if row[-1] < 0],
    )


def move_pushes(
    db: sqlite3.Connection,
    connector: str,
    added: Iterable[tuple[str, bool | int, bool | int]],
    removed: Iterable[tuple[str, bool | int, bool | int]],
) -> None:
    """Count pushes ``(changed_on, locked, approved)`` stored and removed in their months."""
    months: collections.Counter[str] = collections.Counter()
    bad: collections.Counter[str] = collections.Counter()
    for sign, pushes in ((1, added), (-1, removed)):
        for changed_on, locked, approved in pushes:
            month = changed_on[:7]
            months[month] += sign
            bad[month] += sign * int(bool(locked) and not approved)
    db.executemany(
        "INSERT INTO push_months VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET n = n + excluded.n, bad = bad + excluded.bad",
        [(connector, month, n, bad[month]) for month, n in months.items() if n or bad[month]],
    )


def recount(db: sqlite3.Connection, connector: str) -> None:
    """Count a connector's open findings and pushes again from scratch (migration 10's SQL):
    for a state written to without the store (a hand edit, a benchmark's bulk fill)."""
    db.execute("DELETE FROM open_tallies WHERE connector = ?", (connector,))
    db.execute(
        "INSERT INTO open_tallies SELECT connector, shadow, rule, severity, "
        "coalesce(owner_id, ''), owner_id IS NULL, coalesce(owner_name, ''), "
        "owner_name IS NOT NULL, coalesce(partner_id, ''), coalesce(partner_name, partner_id, ''), "
        "count(*) FROM findings WHERE connector = ? AND status = 'open' "
        "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
        (connector,),
    )
    db.execute("DELETE FROM push_months WHERE connector = ?", (connector,))
    db.execute(
        "INSERT INTO push_months SELECT connector, substr(changed_on, 1, 7), count(*), "
        "coalesce(sum(locked AND NOT approved), 0) FROM close_date_pushes WHERE connector = ? "
        "GROUP BY 1, 2",
        (connector,),
    )
