"""Exemptions (waivers) in the state store: a rule (id or glob) on one record, on every record
of an account or a partner, or one finding, waived for a reason until a date, with who approved
it and who revoked it. ``source`` says where it came from: ``state`` (``tsos-rules exempt
add``), ``config`` (``[[exemptions]]``, mirrored by each sync) or ``crm`` (a CRM field the
connector maps, mirrored as the records are read); matching is :mod:`tsos_rules.policy`'s."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence

import attrs

from tsos_rules.errors import ConfigError
from tsos_rules.policy import exemptions as _policy

#: Exemption statuses as listed: a revoked exemption stays in the store (the audit trail).
ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


@attrs.frozen
class Exemption:
    """One stored exemption. ``expires`` is the last day it holds (inclusive)."""

    id: int
    connector: str
    fingerprint: str | None
    rule: str
    record_type: str
    record_id: str
    reason: str
    approver: str
    created_at: str
    expires: dt.date
    revoked_at: str | None = None
    revoked_by: str | None = None
    source: str = _policy.STATE
    account_id: str | None = None
    partner_id: str | None = None
    #: What identifies a mirrored exemption in its source (a config entry's content, a CRM
    #: record's field value), so a sync adds what is new and revokes what is gone.
    source_key: str | None = None

    def status(self, today: dt.date) -> str:
        if self.revoked_at is not None:
            return REVOKED
        return ACTIVE if self.expires >= today else EXPIRED

    def policy(self) -> _policy.Exemption:
        """The same exemption as :mod:`tsos_rules.policy` matches it."""
        return _policy.Exemption(
            id=str(self.id),
            source=self.source,
            rule=self.rule,
            reason=self.reason,
            approver=self.approver,
            expires=self.expires,
            created=self.created_at,
            record_type=self.record_type or None,
            record_id=self.record_id or None,
            account_id=self.account_id,
            partner_id=self.partner_id,
            fingerprint=self.fingerprint,
        )

    def covers(
        self,
        fingerprint: str,
        rule: str,
        record_type: str,
        record_id: str,
        *,
        reason: str = "",
        account_id: str | None = None,
        partner_id: str | None = None,
    ) -> bool:
        """True when this exemption waives that finding."""
        return self.policy().covers_parts(
            fingerprint,
            rule,
            reason,
            record_type,
            record_id,
            account_id=account_id,
            partner_id=partner_id,
        )

    def to_dict(self, today: dt.date) -> dict[str, object]:
        data = attrs.asdict(self)
        data["expires"] = self.expires.isoformat()
        data["status"] = self.status(today)
        return data


_COLUMNS = (
    "id, connector, fingerprint, rule, record_type, record_id, reason, approver, created_at, "
    "expires, revoked_at, revoked_by, source, account_id, partner_id, source_key"
)


#: The columns a stored exemption is read from; a state file from before them has none to read.
COLUMNS = frozenset(name.strip() for name in _COLUMNS.split(","))


def _exemption(row: sqlite3.Row) -> Exemption:
    return Exemption(
        id=row["id"],
        connector=row["connector"],
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        record_type=row["record_type"],
        record_id=row["record_id"],
        reason=row["reason"],
        approver=row["approver"],
        created_at=row["created_at"],
        expires=dt.date.fromisoformat(row["expires"]),
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
        source=row["source"],
        account_id=row["account_id"],
        partner_id=row["partner_id"],
        source_key=row["source_key"],
    )


def add(
    db: sqlite3.Connection,
    connector: str,
    *,
    fingerprint: str | None,
    rule: str,
    record_type: str,
    record_id: str,
    reason: str,
    approver: str,
    expires: dt.date,
    now: str,
    source: str = _policy.STATE,
    account_id: str | None = None,
    partner_id: str | None = None,
    source_key: str | None = None,
) -> int:
    cur = db.execute(
        "INSERT INTO exemptions (connector, fingerprint, rule, record_type, record_id, reason, "
        "approver, created_at, expires, source, account_id, partner_id, source_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            connector,
            fingerprint,
            rule,
            record_type,
            record_id,
            reason,
            approver,
            now,
            expires.isoformat(),
            source,
            account_id,
            partner_id,
            source_key,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def listed(db: sqlite3.Connection, connector: str) -> list[Exemption]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM exemptions WHERE connector = ? ORDER BY id", (connector,)
    )
    return [_exemption(row) for row in rows]


def revoke(db: sqlite3.Connection, connector: str, exemption_id: int, by: str, now: str) -> None:
    row = db.execute(
        "SELECT revoked_at FROM exemptions WHERE connector = ? AND id = ?",
        (connector, exemption_id),
    ).fetchone()
    if row is None:
        raise ConfigError(f"exemption {exemption_id}: no such exemption for {connector!r}")
    if row["revoked_at"] is not None:
        raise ConfigError(f"exemption {exemption_id}: already revoked at {row['revoked_at']}")
    db.execute(
        "UPDATE exemptions SET revoked_at = ?, revoked_by = ?, settled = 0 WHERE id = ?",
        (now, by, exemption_id),
    )


def active(db: sqlite3.Connection, connector: str, today: dt.date) -> list[Exemption]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM exemptions WHERE connector = ? AND revoked_at IS NULL "
        "AND expires >= ? ORDER BY id",
        (connector, today.isoformat()),
    )
    return [_exemption(row) for row in rows]


def added_active(db: sqlite3.Connection, connector: str, since: dt.date) -> list[Exemption]:
    """The active exemptions ``tsos-rules exempt add`` stored (source ``state``), holding on
    ``since`` or later; the mirrored config and CRM ones come from their own sources."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM exemptions WHERE connector = ? AND source = ? "
        "AND revoked_at IS NULL AND expires >= ? ORDER BY id",
        (connector, _policy.STATE, since.isoformat()),
    )
    return [_exemption(row) for row in rows]


def lapsed_unsettled(db: sqlite3.Connection, connector: str, today: dt.date) -> list[Exemption]:
    """Exemptions that expired or were revoked and whose findings have not been reopened."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM exemptions WHERE connector = ? AND settled = 0 "
        "AND (revoked_at IS NOT NULL OR expires < ?) ORDER BY id",
        (connector, today.isoformat()),
    )
    return [_exemption(row) for row in rows]


def mark_settled(db: sqlite3.Connection, ids: Iterable[int]) -> None:
    db.executemany("UPDATE exemptions SET settled = 1 WHERE id = ?", [(i,) for i in ids])


def covered(
    db: sqlite3.Connection, connector: str, exemptions: Sequence[Exemption]
) -> dict[str, int]:
    """The open findings these exemptions waive: fingerprint -> exemption id (the first)."""
    out: dict[str, int] = {}
    by_fingerprint = [e for e in exemptions if e.fingerprint is not None]
    by_record = [e for e in exemptions if e.fingerprint is None and e.record_id]
    by_group = [e for e in exemptions if e.fingerprint is None and not e.record_id]
    if by_fingerprint:
        wanted = {e.fingerprint: e.id for e in reversed(by_fingerprint)}
        rows = db.execute(
            "SELECT fingerprint FROM findings WHERE connector = ? AND status = 'open' "
            "AND fingerprint IN (SELECT value FROM json_each(?))",
            (connector, json.dumps(sorted(wanted))),
        )
        for row in rows:
            out.setdefault(row["fingerprint"], wanted[row["fingerprint"]])
    if by_record:
        pairs = sorted({(e.record_type, e.record_id) for e in by_record})
        rows = db.execute(
            "SELECT f.fingerprint, f.rule, f.reason, f.record_type, f.record_id FROM json_each(?) "
            "AS j CROSS JOIN findings AS f WHERE f.connector = ? AND f.record_type = j.value ->> 0 "
            "AND f.record_id = j.value ->> 1 AND f.status = 'open'",
            (json.dumps(pairs), connector),
        )
        _match(rows, by_record, out)
    by_account = [e for e in by_group if e.account_id]
    by_partner = [e for e in by_group if not e.account_id]
    for column, group in (("account_id", by_account), ("partner_id", by_partner)):
        if not group:
            continue
        keys = sorted({str(getattr(e, column)) for e in group})
        rows = db.execute(
            "SELECT fingerprint, rule, reason, record_type, record_id, account_id, partner_id "
            f"FROM findings WHERE connector = ? AND status = 'open' AND {column} IN "
            "(SELECT value FROM json_each(?))",
            (connector, json.dumps(keys)),
        )
        _match(rows, group, out)
    return out


def _match(
    rows: Iterable[sqlite3.Row], exemptions: Sequence[Exemption], out: dict[str, int]
) -> None:
    for row in rows:
        if row["fingerprint"] in out:
            continue
        keys = row.keys()
        for e in exemptions:
            if e.covers(
                row["fingerprint"],
                row["rule"],
                row["record_type"],
                row["record_id"],
                reason=row["reason"],
                account_id=row["account_id"] if "account_id" in keys else None,
                partner_id=row["partner_id"] if "partner_id" in keys else None,
            ):
                out[row["fingerprint"]] = e.id
                break
