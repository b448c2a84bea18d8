"""The admin's worklist: stored findings filtered, sorted and limited in SQL (indexed, so a
filtered query over a million findings answers in well under a second)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

import attrs

from tsos_rules.errors import ConfigError

STATUSES = ("open", "resolved", "exempt", "shadow")
SEVERITIES = ("block", "warn", "info")
#: ``--sort`` keys: the ORDER BY each stands for (ties broken by record then rule).
SORTS: Mapping[str, str] = {
    # The same expression as the index findings_worklist_by_rank (migration 6), so the default
    # order is read from the index and a --limit stops early instead of sorting every row.
    "severity": "CASE f.severity WHEN 'block' THEN 0 WHEN 'warn' THEN 1 ELSE 2 END, f.first_seen",
    "age": "f.first_seen",
    "newest": "f.first_seen DESC",
    "rule": "f.rule",
    "owner": "f.owner_name COLLATE NOCASE",
    "partner": "f.partner_name COLLATE NOCASE",
    "account": "f.account_name COLLATE NOCASE",
    "record": "f.record_name COLLATE NOCASE",
}


@attrs.frozen
class WorklistQuery:
    """What ``tsos-rules findings`` asks for; every filter is optional."""

    status: str = "open"
    rule: str | None = None
    severity: str | None = None
    owner: str | None = None
    partner: str | None = None
    account: str | None = None
    older_than_days: int | None = None
    sort: str = "severity"
    limit: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(
                f"--status: expected one of {', '.join(STATUSES)}, not {self.status!r}"
            )
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ConfigError(
                f"--severity: expected one of {', '.join(SEVERITIES)}, not {self.severity!r}"
            )
        if self.sort not in SORTS:
            raise ConfigError(f"--sort: expected one of {', '.join(SORTS)}, not {self.sort!r}")


@attrs.frozen
class WorklistRow:
    """One finding as the worklist shows it."""

    fingerprint: str
    status: str
    rule: str
    severity: str
    reason: str
    record_type: str
    record_id: str
    record_name: str | None
    owner: str | None
    partner: str | None
    account: str | None
    first_seen: str
    age_days: int
    message: str
    remedy: str
    url: str | None
    exemption_id: int | None = None
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def query(
    db: sqlite3.Connection,
    connector: str,
    q: WorklistQuery,
    *,
    now: dt.datetime,
    exempt: Mapping[str, int],
) -> list[WorklistRow]:
    """The rows ``q`` selects. ``exempt``: open fingerprints under an active exemption."""
    where = ["f.connector = ?"]
    params: list[Any] = [connector]
    waived = json.dumps(sorted(exempt))
    if q.status == "resolved":
        where.append("f.status = 'resolved'")
    elif q.status == "shadow":
        where.append("f.status = 'open' AND f.shadow = 1")
    elif q.status == "exempt":
        where.append("f.status = 'open' AND f.fingerprint IN (SELECT value FROM json_each(?))")
        params.append(waived)
    else:
        where.append("f.status = 'open' AND f.shadow = 0")
        if exempt:
            where.append("f.fingerprint NOT IN (SELECT value FROM json_each(?))")
            params.append(waived)
    if q.rule is not None:
        where.append("f.rule GLOB ?")
        params.append(q.rule)
    if q.severity is not None:
        where.append("f.severity = ?")
        params.append(q.severity)
    for column, value in (("owner", q.owner), ("partner", q.partner), ("account", q.account)):
        if value is not None:
            where.append(f"(f.{column}_name = ? COLLATE NOCASE OR f.{column}_id = ?)")
            params += [value, value]
    if q.older_than_days is not None:
        cutoff = now - dt.timedelta(days=q.older_than_days)
        where.append("f.first_seen < ?")
        params.append(cutoff.isoformat(timespec="microseconds"))
    sql = (
        "SELECT f.fingerprint, f.rule, f.severity, f.reason, f.record_type, f.record_id, "
        "f.record_name, f.owner_name, f.owner_id, f.partner_name, f.partner_id, "
        "f.account_name, f.account_id, f.first_seen, f.message, f.record_url, f.task_id, "
        "f.task_status, f.shadow, f.status, coalesce(t.remediation, '') AS remedy "
        "FROM findings AS f LEFT JOIN rule_texts AS t "
        "ON t.connector = f.connector AND t.rule = f.rule "
        f"WHERE {' AND '.join(where)} "
        f"ORDER BY {SORTS[q.sort]}, f.record_type, f.record_id, f.rule, f.reason"
    )
    if q.limit is not None:
        sql += " LIMIT ?"
        params.append(q.limit)
    rows = db.execute(sql, params).fetchall()
    return [_row(row, q.status, now, exempt) for row in rows]


def _row(row: sqlite3.Row, status: str, now: dt.datetime, exempt: Mapping[str, int]) -> WorklistRow:
    first = dt.datetime.fromisoformat(row["first_seen"])
    return WorklistRow(
        fingerprint=row["fingerprint"],
        status=status,
        rule=row["rule"],
        severity=row["severity"],
        reason=row["reason"],
        record_type=row["record_type"],
        record_id=row["record_id"],
        record_name=row["record_name"],
        owner=row["owner_name"] or row["owner_id"],
        partner=row["partner_name"] or row["partner_id"],
        account=row["account_name"] or row["account_id"],
        first_seen=row["first_seen"][:10],
        age_days=max(0, (now - first).days),
        message=row["message"],
        remedy=row["remedy"],
        url=row["record_url"],
        exemption_id=exempt.get(row["fingerprint"]),
        task_id=row["task_id"] if row["task_status"] == "open" else None,
    )
