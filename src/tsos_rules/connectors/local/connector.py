"""The ``local`` connector: an embedded demo CRM in one SQLite file, behaving like a real CRM.

Every record carries a ``modstamp`` (like Salesforce's ``SystemModstamp``): microseconds from a
clock that only moves forward, taken once per write transaction, so every record written in one
transaction shares it. SQLite serialises writers, so a read that stops at the clock value it
sees in its own snapshot can never miss a change committed later: the watermark is that clock
value, and the next read takes ``modstamp > watermark``. Deletes leave tombstones; field history
and close-date history are kept; tasks carry the finding's fingerprint in ``external_id`` so that
creating one twice is a no-op; a field update naming a stale version is refused.

Reads come in self-contained batches of *company groups*: an account with every lead, deal and
activity of the same company (the unit the single-owner and partner-of-record rules compare).
A change re-reads and re-judges its whole group, plus the groups that depend on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    Capabilities,
    Problem,
    ReadResult,
    RecordKey,
)
from tsos_rules.errors import ConfigError, FatalConnectorError, RetriableConnectorError
from tsos_rules.markers import hookimpl
from tsos_rules.model import Snapshot
from tsos_rules.org import company_key
from tsos_rules.snapshot.document import RecordError, snapshot_from_dict
from tsos_rules.sync.state import default_data_dir

log = logging.getLogger(__name__)

NAME = "local"
SOURCE = "local CRM"
#: The user id the sync writes as: its tasks are hidden from reads, its repairs are approved.
INTEGRATION_USER = "tsos-rules"
DEMO_OPPORTUNITIES = 5000
DEMO_SEED = 7
#: Days a new task is due after it is created.
TASK_DUE_DAYS = 2


def default_crm_path() -> Path:
    return default_data_dir() / "demo-crm.sqlite3"


@attrs.frozen
class _Table:
    """One CRM object: its snapshot collection and the relation columns kept beside the JSON."""

    record_type: str
    name: str
    collection: str
    columns: tuple[str, ...]
    grouped: bool


TABLES: dict[str, _Table] = {
    t.record_type: t
    for t in (
        _Table("user", "users", "users", (), False),
        _Table("partner", "partners", "partners", (), False),
        _Table("account", "accounts", "accounts", ("partner_of_record_id",), True),
        _Table(
            "lead",
            "leads",
            "leads",
            ("account_id", "owner_id", "partner_id", "converted_opportunity_id"),
            True,
        ),
        _Table(
            "opportunity",
            "opportunities",
            "opportunities",
            ("account_id", "owner_id", "partner_id", "lead_id"),
            True,
        ),
        _Table(
            "activity",
            "activities",
            "activities",
            ("what_id", "account_id", "owner_id"),
            True,
        ),
    )
}
GROUPED = tuple(t for t in TABLES.values() if t.grouped)


def _schema() -> str:
    parts = [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "stamp INTEGER NOT NULL)",
        "INSERT OR IGNORE INTO clock VALUES (1, 0)",
    ]
    for table in TABLES.values():
        cols = "".join(f", {c} TEXT" for c in table.columns)
        group = ", grp TEXT, prev_grp TEXT, grp_changed INTEGER" if table.grouped else ""
        extra = ", external_id TEXT UNIQUE, created_by TEXT" if table.name == "activities" else ""
        parts.append(
            f"CREATE TABLE IF NOT EXISTS {table.name} (id TEXT PRIMARY KEY, "
            f"modstamp INTEGER NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0{cols}{group}"
            f"{extra}, data TEXT NOT NULL)"
        )
        parts.append(f"CREATE INDEX IF NOT EXISTS {table.name}_modstamp ON {table.name} (modstamp)")
        if table.grouped:
            parts.append(f"CREATE INDEX IF NOT EXISTS {table.name}_grp ON {table.name} (grp)")
        for column in table.columns:
            parts.append(
                f"CREATE INDEX IF NOT EXISTS {table.name}_{column} ON {table.name} ({column})"
            )
    parts += [
        "CREATE TABLE IF NOT EXISTS opportunity_team (opportunity_id TEXT NOT NULL, "
        "user_id TEXT NOT NULL, PRIMARY KEY (opportunity_id, user_id))",
        "CREATE INDEX IF NOT EXISTS opportunity_team_user ON opportunity_team (user_id)",
        "CREATE TABLE IF NOT EXISTS close_date_history (seq INTEGER PRIMARY KEY, "
        "opportunity_id TEXT NOT NULL, modstamp INTEGER NOT NULL, data TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS close_date_history_opp ON close_date_history (opportunity_id)",
        "CREATE INDEX IF NOT EXISTS close_date_history_modstamp ON close_date_history (modstamp)",
        "CREATE TABLE IF NOT EXISTS field_history (seq INTEGER PRIMARY KEY, "
        "record_type TEXT NOT NULL, record_id TEXT NOT NULL, field TEXT NOT NULL, "
        "old_value TEXT, new_value TEXT, changed_at TEXT NOT NULL, changed_by TEXT, "
        "modstamp INTEGER NOT NULL)",
        "CREATE INDEX IF NOT EXISTS field_history_record "
        "ON field_history (record_type, record_id, field)",
        "CREATE INDEX IF NOT EXISTS field_history_modstamp ON field_history (modstamp)",
        "CREATE TABLE IF NOT EXISTS write_log (idempotency_key TEXT PRIMARY KEY, "
        "record_id TEXT, at TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS group_bridges (a TEXT NOT NULL, b TEXT NOT NULL, "
        "PRIMARY KEY (a, b))",
        "CREATE INDEX IF NOT EXISTS group_bridges_b ON group_bridges (b)",
    ]
    return ";\n".join(parts)


# -- clock and watermarks -------------------------------------------------------------------


def _now_micros() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)


def encode_watermark(stamp: int) -> str:
    """A modstamp as an ISO 8601 UTC timestamp with microseconds (readable in the run log)."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=stamp)
    return moment.isoformat(timespec="microseconds")


def decode_watermark(watermark: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(watermark)
    except ValueError:
        raise ConfigError(f"local connector: watermark {watermark!r} is not a timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- company groups -------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A relation value as the CRM column holds it (None for blanks)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _account_group(account_id: str, data: Mapping[str, Any]) -> str:
    """A named account groups by its normalised name, an unnamed one by its id (facts.py)."""
    name = data.get("name")
    if isinstance(name, str) and name:
        return "name:" + company_key(name)
    return f"account:{account_id}"


class _Grouper:
    """A record's company group, mirroring facts.company_keys_of: records sharing an account
    id or a company name are one company. A lead whose account is unnamed or missing but that
    names a company carries both keys: it *bridges* the two groups (see ``lead_bridge``)."""

    def __init__(self, account_group: Callable[[str], tuple[bool, str] | None]) -> None:
        #: account id -> (has a name, group), or None when the account does not exist
        self.account_group = account_group

    def opportunity(self, record_id: str, data: Mapping[str, Any]) -> str:
        account_id = _text(data.get("account_id"))
        if account_id is None:
            return f"opportunity:{record_id}"
        found = self.account_group(account_id)
        return found[1] if found else f"account:{account_id}"

    def _lead_keys(self, record_id: str, data: Mapping[str, Any]) -> tuple[str, str | None]:
        account_id = _text(data.get("account_id"))
        found = self.account_group(account_id) if account_id else None
        if found and found[0]:
            return found[1], None
        company = data.get("company")
        name = "name:" + company_key(company) if isinstance(company, str) and company else None
        account = f"account:{account_id}" if account_id else None
        if name and account:
            return name, account
        return name or account or f"lead:{record_id}", None

    def lead(self, record_id: str, data: Mapping[str, Any]) -> str:
        return self._lead_keys(record_id, data)[0]

    def lead_bridge(self, record_id: str, data: Mapping[str, Any]) -> tuple[str, str] | None:
        """The two groups this lead joins, when it joins two."""
        group, other = self._lead_keys(record_id, data)
        return (min(group, other), max(group, other)) if other else None

    def activity(
        self, record_id: str, data: Mapping[str, Any], opportunity_group: str | None
    ) -> str:
        account_id = _text(data.get("account_id"))
        found = self.account_group(account_id) if account_id else None
        if found:
            return found[1]
        if opportunity_group:
            return opportunity_group
        return f"account:{account_id}" if account_id else f"activity:{record_id}"


_BRIDGE = "INSERT OR IGNORE INTO group_bridges VALUES (?, ?)"
#: Bump when the grouping changes: files grouped otherwise are regrouped when opened.
GROUPING = "2"


# -- the CRM --------------------------------------------------------------------------------


class LocalCRM:
    """The demo CRM's database: seeding, the edits people make, and the connector's reads and
    writes. Tests and the benchmark use its edit methods to play the sales team."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")
            self.db.executescript(_schema())
            if self.is_seeded() and self.meta("grouping") != GROUPING:
                self.regroup()
        except sqlite3.DatabaseError as exc:
            raise FatalConnectorError(f"{self.path}: not a usable local CRM: {exc}") from None
        except OSError as exc:
            raise FatalConnectorError(f"{self.path}: cannot open: {exc.strerror}") from None

    def close(self) -> None:
        self.db.close()

    # -- meta and clock -----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def is_seeded(self) -> bool:
        return self.meta("seeded_at") is not None

    def _tick(self) -> int:
        """The modstamp of the current write transaction (call inside BEGIN IMMEDIATE)."""
        last = int(self.db.execute("SELECT stamp FROM clock").fetchone()[0])
        stamp = max(_now_micros(), last + 1)
        self.db.execute("UPDATE clock SET stamp = ?", (stamp,))
        return stamp

    def clock(self) -> int:
        return int(self.db.execute("SELECT stamp FROM clock").fetchone()[0])

    def _transaction(self) -> _Tx:
        return _Tx(self.db)

    # -- seeding --------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty the CRM (every record, history, task and the write log)."""
        with self._transaction():
            for table in TABLES.values():
                self.db.execute(f"DELETE FROM {table.name}")
            for name in (
                "opportunity_team",
                "close_date_history",
                "field_history",
                "write_log",
                "group_bridges",
                "meta",
            ):
                self.db.execute(f"DELETE FROM {name}")

    def seed(self, org: Mapping[str, Any]) -> dict[str, int]:
        """Load a snapshot dict (CONTRACT shape) as the CRM's content, in one transaction."""
        return self.seed_records(_iter_snapshot(org), as_of=org.get("as_of"))

    def seed_records(
        self, records: Iterable[tuple[str, Mapping[str, Any]]], *, as_of: Any = None
    ) -> dict[str, int]:
        """Load ``(collection, record)`` pairs in snapshot order (users, partners, accounts,
        leads, deals, history, activities) in one transaction: they share one modstamp.

        Where a channel deal has lost its partner, the field history gets the removal (from the
        account's partner of record), as a CRM with field history tracking would have it.
        """
        counts: dict[str, int] = {}
        accounts: dict[str, tuple[bool, str, str | None]] = {}
        opportunity_groups: dict[str, str] = {}
        grouper = _Grouper(lambda aid: accounts[aid][:2] if aid in accounts else None)
        db = self.db
        with self._transaction():
            stamp = self._tick()
            now = dt.datetime.now(dt.UTC).isoformat()
            pending: dict[str, list[tuple[Any, ...]]] = {}

            def flush() -> None:
                for sql, rows in pending.items():
                    db.executemany(sql, rows)
                pending.clear()

            for count, (collection, record) in enumerate(records):
                counts[collection] = counts.get(collection, 0) + 1
                if collection == "close_date_changes":
                    opportunity_id = _text(record.get("opportunity_id")) or ""
                    pending.setdefault(
                        "INSERT INTO close_date_history (opportunity_id, modstamp, data) "
                        "VALUES (?, ?, ?)",
                        [],
                    ).append((opportunity_id, stamp, json.dumps(record)))
                    continue
                table = _BY_COLLECTION.get(collection)
                if table is None:
                    continue
                record_id = _text(record.get("id")) or f"{table.record_type}-{count}"
                group = None
                if table.record_type == "account":
                    name = record.get("name")
                    named = isinstance(name, str) and bool(name)
                    group = _account_group(record_id, record)
                    por = _text(record.get("partner_of_record_id"))
                    accounts[record_id] = (named, group, por)
                elif table.record_type == "lead":
                    group = grouper.lead(record_id, record)
                    bridge = grouper.lead_bridge(record_id, record)
                    if bridge:
                        pending.setdefault(_BRIDGE, []).append(bridge)
                elif table.record_type == "opportunity":
                    group = grouper.opportunity(record_id, record)
                    opportunity_groups[record_id] = group
                    for user_id in _team(record):
                        pending.setdefault(
                            "INSERT OR IGNORE INTO opportunity_team VALUES (?, ?)", []
                        ).append((record_id, user_id))
                    self._seed_partner_removal(record_id, record, accounts, stamp, pending)
                elif table.record_type == "activity":
                    what = _text(record.get("what_id"))
                    group = grouper.activity(
                        record_id, record, opportunity_groups.get(what) if what else None
                    )
                sql, row = _insert_row(table, record_id, stamp, record, group)
                pending.setdefault(sql, []).append(row)
                if count % 20_000 == 0:
                    flush()
            flush()
            self._set_meta("seeded_at", now)
            self._set_meta("grouping", GROUPING)
            if as_of is not None:
                self._set_meta("seed_as_of", str(as_of))
        return counts

    def _seed_partner_removal(
        self,
        record_id: str,
        record: Mapping[str, Any],
        accounts: Mapping[str, tuple[bool, str, str | None]],
        stamp: int,
        pending: dict[str, list[tuple[Any, ...]]],
    ) -> None:
        if record.get("partner_id") or record.get("is_closed"):
            return
        account = accounts.get(_text(record.get("account_id")) or "")
        if account is None or account[2] is None:
            return
        changed_at = record.get("stage_changed_at") or dt.datetime.now(dt.UTC).isoformat()
        pending.setdefault(
            "INSERT INTO field_history (record_type, record_id, field, old_value, new_value, "
            "changed_at, changed_by, modstamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [],
        ).append(
            (
                "opportunity",
                record_id,
                "partner_id",
                json.dumps(account[2]),
                "null",
                changed_at,
                _text(record.get("owner_id")),
                stamp,
            )
        )

    def regroup(self) -> None:
        """Recompute every record's company group and the bridges (a file from an older
        grouping); modstamps are untouched, and the sync's next full run judges the result."""
        with self._transaction():
            self.db.execute("DELETE FROM group_bridges")
            for record_type in ("account", "opportunity", "lead", "activity"):
                table = TABLES[record_type]
                human = " WHERE created_by IS NULL" if table.name == "activities" else ""
                for row in self.db.execute(f"SELECT id, data FROM {table.name}{human}").fetchall():
                    group = self._group_of(table, row[0], json.loads(row[1]))
                    self.db.execute(
                        f"UPDATE {table.name} SET grp = ? WHERE id = ?", (group, row[0])
                    )
            self._set_meta("grouping", GROUPING)

    def seed_demo(
        self, *, opportunities: int = DEMO_OPPORTUNITIES, seed: int = DEMO_SEED, as_of: dt.date
    ) -> dict[str, int]:
        """Re-seed with the generated demo org (``tsos_rules.connectors.local.demo``)."""
        from tsos_rules.connectors.local.demo import generate_org

        org = generate_org(opportunities=opportunities, seed=seed, as_of=as_of)
        self.reset()
        counts = self.seed(org)
        with self._transaction():
            self._set_meta("demo_seed", str(seed))
            self._set_meta("demo_opportunities", str(opportunities))
        return counts

    # -- what people do in the CRM -----------------------------------------------------------

    def get(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        """A record's fields as stored (None when absent or deleted)."""
        table = _table(record_type)
        row = self.db.execute(
            f"SELECT data FROM {table.name} WHERE id = ? AND is_deleted = 0", (record_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def version(self, record_type: str, record_id: str) -> str | None:
        table = _table(record_type)
        row = self.db.execute(
            f"SELECT modstamp FROM {table.name} WHERE id = ?", (record_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def update(
        self,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        by: str | None = None,
        approved_by: str | None = None,
    ) -> str:
        """Edit one record as user ``by``; returns its new version. A close-date change is
        recorded in the history with ``approved_by``; every field change in field history."""
        return self.update_many(
            [(record_type, record_id, changes)], by=by, approved_by=approved_by
        )[0]

    def update_many(
        self,
        edits: Sequence[tuple[str, str, Mapping[str, Any]]],
        *,
        by: str | None = None,
        approved_by: str | None = None,
    ) -> list[str]:
        """Several edits in one transaction (they share one modstamp, as a bulk edit does)."""
        versions = []
        with self._transaction():
            stamp = self._tick()
            for record_type, record_id, changes in edits:
                table = _table(record_type)
                row = self.db.execute(
                    f"SELECT data FROM {table.name} WHERE id = ? AND is_deleted = 0", (record_id,)
                ).fetchone()
                if row is None:
                    raise KeyError(f"{record_type} {record_id} does not exist")
                self._apply_update(
                    table, record_id, json.loads(row[0]), changes, stamp, by, approved_by
                )
                versions.append(str(stamp))
        return versions

    def insert(self, record_type: str, record: Mapping[str, Any]) -> str:
        """Create a record (its ``id`` is required); returns its version."""
        table = _table(record_type)
        record_id = _text(record.get("id"))
        if record_id is None:
            raise ValueError("insert: the record needs an id")
        with self._transaction():
            stamp = self._tick()
            group = self._group_of(table, record_id, record) if table.grouped else None
            sql, row = _insert_row(table, record_id, stamp, record, group)
            self.db.execute(sql.replace("INSERT", "INSERT OR REPLACE", 1), row)
            if record_type == "opportunity":
                self._set_team(record_id, record)
        return str(stamp)

    def add_close_date_change(self, change: Mapping[str, Any]) -> None:
        """Append a history row as the CRM's own audit would (bumps the deal's modstamp)."""
        opportunity_id = str(change["opportunity_id"])
        with self._transaction():
            stamp = self._tick()
            self.db.execute(
                "INSERT INTO close_date_history (opportunity_id, modstamp, data) VALUES (?, ?, ?)",
                (opportunity_id, stamp, json.dumps(dict(change))),
            )
            self.db.execute(
                "UPDATE opportunities SET modstamp = ? WHERE id = ?", (stamp, opportunity_id)
            )

    def delete(self, record_type: str, record_id: str) -> None:
        """Delete a record, leaving a tombstone that the next incremental read reports."""
        table = _table(record_type)
        with self._transaction():
            stamp = self._tick()
            self.db.execute(
                f"UPDATE {table.name} SET is_deleted = 1, modstamp = ? WHERE id = ?",
                (stamp, record_id),
            )

    def tasks(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Tasks the sync created, with their ``id`` and ``external_id``."""
        rows = self.db.execute(
            "SELECT id, external_id, modstamp, data FROM activities WHERE created_by = ? "
            "ORDER BY id",
            (INTEGRATION_USER,),
        ).fetchall()
        out = []
        for row in rows:
            data = dict(json.loads(row["data"]))
            data.update(id=row["id"], external_id=row["external_id"], modstamp=row["modstamp"])
            if status is None or data.get("status") == status:
                out.append(data)
        return out

    def close_date_history(self, opportunity_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT data FROM close_date_history WHERE opportunity_id = ? ORDER BY seq",
            (opportunity_id,),
        ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]

    def counts(self) -> dict[str, int]:
        """Live records per object, and the sync's tasks."""
        out = {
            t.collection: int(
                self.db.execute(
                    f"SELECT count(*) FROM {t.name} WHERE is_deleted = 0"
                    + (" AND created_by IS NULL" if t.name == "activities" else "")
                ).fetchone()[0]
            )
            for t in TABLES.values()
        }
        out["close_date_changes"] = int(
            self.db.execute("SELECT count(*) FROM close_date_history").fetchone()[0]
        )
        out["tasks"] = len(self.tasks())
        return out

    # -- internals shared by edits and the connector's writes ----------------------------------

    def _group_of(self, table: _Table, record_id: str, data: Mapping[str, Any]) -> str:
        grouper = _Grouper(self._lookup_account_group)
        if table.record_type == "account":
            return _account_group(record_id, data)
        if table.record_type == "lead":
            bridge = grouper.lead_bridge(record_id, data)
            if bridge:
                self.db.execute(_BRIDGE, bridge)
            return grouper.lead(record_id, data)
        if table.record_type == "opportunity":
            return grouper.opportunity(record_id, data)
        what = _text(data.get("what_id"))
        opp_group = None
        if what:
            row = self.db.execute("SELECT grp FROM opportunities WHERE id = ?", (what,)).fetchone()
            opp_group = row[0] if row else None
        return grouper.activity(record_id, data, opp_group)

    def _lookup_account_group(self, account_id: str) -> tuple[bool, str] | None:
        row = self.db.execute(
            "SELECT data FROM accounts WHERE id = ? AND is_deleted = 0", (account_id,)
        ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        name = data.get("name")
        return (isinstance(name, str) and bool(name), _account_group(account_id, data))

    def _set_team(self, record_id: str, data: Mapping[str, Any]) -> None:
        self.db.execute("DELETE FROM opportunity_team WHERE opportunity_id = ?", (record_id,))
        self.db.executemany(
            "INSERT OR IGNORE INTO opportunity_team VALUES (?, ?)",
            [(record_id, user_id) for user_id in _team(data)],
        )

    def _apply_update(
        self,
        table: _Table,
        record_id: str,
        old: Mapping[str, Any],
        changes: Mapping[str, Any],
        stamp: int,
        by: str | None,
        approved_by: str | None,
    ) -> None:
        db = self.db
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        new = {**old, **changes}
        for field, value in changes.items():
            if old.get(field) != value:
                db.execute(
                    "INSERT INTO field_history (record_type, record_id, field, old_value, "
                    "new_value, changed_at, changed_by, modstamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        table.record_type,
                        record_id,
                        field,
                        json.dumps(old.get(field)),
                        json.dumps(value),
                        now,
                        by,
                        stamp,
                    ),
                )
        if table.record_type == "opportunity" and old.get("close_date") != new.get("close_date"):
            change = {
                "opportunity_id": record_id,
                "old": old.get("close_date"),
                "new": new.get("close_date"),
                "changed_at": now,
                "changed_by": by,
                "approved_by": approved_by,
                "stage": new.get("stage"),
                "forecast_category": new.get("forecast_category"),
            }
            db.execute(
                "INSERT INTO close_date_history (opportunity_id, modstamp, data) VALUES (?, ?, ?)",
                (record_id, stamp, json.dumps(change)),
            )
        values = {c: _text(new.get(c)) for c in table.columns}
        assignments = ", ".join(f"{c} = :{c}" for c in table.columns)
        sets = f"modstamp = :stamp, data = :data{', ' + assignments if assignments else ''}"
        params: dict[str, Any] = {
            **values,
            "stamp": stamp,
            "data": json.dumps(new),
            "id": record_id,
        }
        if table.grouped:
            old_group = db.execute(
                f"SELECT grp FROM {table.name} WHERE id = ?", (record_id,)
            ).fetchone()[0]
            group = self._group_of(table, record_id, new)
            params["grp"] = group
            sets += ", grp = :grp"
            if group != old_group:
                params["prev_grp"] = old_group
                sets += ", prev_grp = :prev_grp, grp_changed = :stamp"
        db.execute(f"UPDATE {table.name} SET {sets} WHERE id = :id", params)
        if table.record_type == "opportunity":
            self._set_team(record_id, new)
        if table.record_type in ("account", "opportunity"):
            self._regroup_dependents(table.record_type, record_id)

    def _regroup_dependents(self, record_type: str, record_id: str) -> None:
        """Keep the group of records that take it from this account or deal (no modstamp bump:
        they did not change; the changed record's old and new groups are both re-read)."""
        db = self.db
        if record_type == "account":
            dependents = [
                (TABLES[t], row[0], json.loads(row[1]))
                for t, name in (("lead", "leads"), ("opportunity", "opportunities"))
                for row in db.execute(
                    f"SELECT id, data FROM {name} WHERE account_id = ?", (record_id,)
                )
            ]
        else:
            dependents = []
        dependents += [
            (TABLES["activity"], row[0], json.loads(row[1]))
            for row in db.execute(
                "SELECT id, data FROM activities WHERE created_by IS NULL AND "
                + ("account_id = ?" if record_type == "account" else "what_id = ?"),
                (record_id,),
            )
        ]
        for table, dep_id, data in dependents:
            db.execute(
                f"UPDATE {table.name} SET grp = ? WHERE id = ?",
                (self._group_of(table, dep_id, data), dep_id),
            )
        if record_type == "account":
            for row in db.execute(
                "SELECT id, data FROM activities WHERE created_by IS NULL AND what_id IN "
                "(SELECT id FROM opportunities WHERE account_id = ?)",
                (record_id,),
            ).fetchall():
                db.execute(
                    "UPDATE activities SET grp = ? WHERE id = ?",
                    (self._group_of(TABLES["activity"], row[0], json.loads(row[1])), row[0]),
                )


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")


_BY_COLLECTION = {t.collection: t for t in TABLES.values()}


def _table(record_type: str) -> _Table:
    try:
        return TABLES[record_type]
    except KeyError:
        raise ValueError(f"no such record type: {record_type!r}") from None


def _team(data: Mapping[str, Any]) -> list[str]:
    team = data.get("team_user_ids")
    return [u for u in team if isinstance(u, str)] if isinstance(team, list) else []


def _insert_row(
    table: _Table, record_id: str, stamp: int, data: Mapping[str, Any], group: str | None
) -> tuple[str, tuple[Any, ...]]:
    columns = ["id", "modstamp", *table.columns]
    values: list[Any] = [record_id, stamp, *(_text(data.get(c)) for c in table.columns)]
    if table.grouped:
        columns.append("grp")
        values.append(group)
    columns.append("data")
    values.append(json.dumps(data))
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", tuple(values)


def _iter_snapshot(org: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for collection in (
        "users",
        "partners",
        "accounts",
        "leads",
        "opportunities",
        "close_date_changes",
        "activities",
    ):
        for record in org.get(collection) or ():
            yield collection, record


def iter_org_json(path: str | Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Stream ``(collection, record)`` from a file written by ``demo_org.write_org_json``
    (one record per line), so a million-deal org is seeded without holding it in memory."""
    collection = ""
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip().rstrip(",")
            if line.startswith('"') and line.endswith("["):
                collection = line.split('"')[1]
                continue
            if line.startswith('"') and line.endswith("[]"):
                continue
            if line.startswith(","):
                line = line[1:]
            if line.startswith("{") and line.endswith("}") and collection:
                yield collection, json.loads(line)


# -- the connector --------------------------------------------------------------------------

#: The keys of a ``[connector]`` table with ``type = "local"``.
SETTINGS = ("type", "path", "seed", "opportunities", "seed_if_missing")


class LocalConnector:
    """The embedded demo CRM: one SQLite file, seeded with a generated org on first use."""

    name = NAME

    def __init__(self, crm: LocalCRM) -> None:
        self.crm = crm
        self._reader: sqlite3.Connection | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LocalConnector:
        """Build from the ``[connector]`` table; seeds the demo org on first use."""
        for key in settings:
            if key not in SETTINGS:
                raise ConfigError(
                    f"connector.{key}: unknown setting for the local connector "
                    f"(known: {', '.join(SETTINGS)})"
                )
        path = settings.get("path")
        if path is not None and not isinstance(path, str):
            raise ConfigError(f"connector.path: expected a file path string, got {path!r}")
        for key, default in (("seed", DEMO_SEED), ("opportunities", DEMO_OPPORTUNITIES)):
            value = settings.get(key, default)
            if type(value) is not int or value < 0:
                raise ConfigError(f"connector.{key}: expected a whole number >= 0, got {value!r}")
        seed_if_missing = settings.get("seed_if_missing", True)
        if type(seed_if_missing) is not bool:
            raise ConfigError("connector.seed_if_missing: expected true or false")
        crm_path = Path(path).expanduser() if path else default_crm_path()
        existed = crm_path.exists()
        if not existed and not seed_if_missing:
            raise FatalConnectorError(f"{crm_path}: no local CRM there (seed_if_missing = false)")
        crm = LocalCRM(crm_path)
        if not crm.is_seeded():
            if not seed_if_missing:
                raise FatalConnectorError(f"{crm_path}: the local CRM was never seeded")
            opportunities = int(settings.get("opportunities", DEMO_OPPORTUNITIES))
            log.info("seeding the demo CRM at %s with %d deals", crm_path, opportunities)
            crm.seed_demo(
                opportunities=opportunities,
                seed=int(settings.get("seed", DEMO_SEED)),
                as_of=dt.date.today(),
            )
        return cls(crm)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            incremental=True,
            tasks=True,
            field_updates=True,
            conditional_updates=True,
            idempotent_upsert=True,
            max_batch=500,
        )

    def check(self, ladder: Sequence[str]) -> list[Problem]:
        """What ``tsos-rules connectors check local`` reports (see ``local/check.py``)."""
        from tsos_rules.connectors.local.check import check_crm

        return check_crm(self.crm, ladder)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.crm.close()

    # -- reads ------------------------------------------------------------------------------

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        """One read of everything changed since ``since``, as a single batch."""
        batches = list(self.read_batches(since, until=until, batch_size=1 << 62))
        if len(batches) == 1:
            return batches[0]
        return _merge(batches)

    def read_batches(
        self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """Records changed after ``since`` up to the clock (or ``until``), by company group.

        The clock value read first is the new watermark: a change committed later has a higher
        modstamp and is read next time. Each batch is read in its own read transaction (one
        consistent picture per batch, without pinning the whole database for a long run); a
        record changed during the run may be read in its newer state now and again next run,
        which is harmless because judging is idempotent.
        """
        if batch_size < 1:
            raise ConfigError(f"sync.batch_size: expected 1 or more, got {batch_size}")
        db = self._reader_db()
        try:
            yield from self._read(db, since, until, batch_size)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RetriableConnectorError(f"{self.crm.path}: {exc}") from None
            raise FatalConnectorError(f"{self.crm.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise FatalConnectorError(f"{self.crm.path}: {exc}") from None

    def _reader_db(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = sqlite3.connect(self.crm.path, isolation_level=None, timeout=30.0)
            self._reader.row_factory = sqlite3.Row
            self._reader.execute("PRAGMA cache_size=-65536")
        return self._reader

    def _read(
        self, db: sqlite3.Connection, since: str | None, until: dt.datetime | None, size: int
    ) -> Iterator[ReadResult]:
        high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
        if until is not None:
            high = min(high, decode_watermark(until.isoformat()))
        low = decode_watermark(since) if since else None
        watermark = encode_watermark(high)
        reader = _BatchReader(db, high)
        pages: Iterator[dict[str, frozenset[RecordKey] | None]]
        if low is None:
            total = reader.count_groups()
            pages = ({group: None for group in page} for page in reader.all_groups(size))
            changed: set[RecordKey] | None = None
            deleted: frozenset[RecordKey] = frozenset()
            changed_people: set[RecordKey] = set()
        else:
            db.execute("BEGIN")
            try:
                found = reader.changes(low)
            finally:
                db.execute("COMMIT")
            plan = found.plan()
            spread, _ = reader.expand(g for g, keys in plan.items() if keys is None)
            plan.update({group: None for group in spread})
            groups = sorted(plan)
            total = len(groups)
            pages = (
                {group: plan[group] for group in groups[i : i + size]}
                for i in range(0, len(groups), size)
            )
            changed = found.changed
            deleted = frozenset(found.deleted)
            changed_people = found.people
        done = 0
        yielded = False
        for page in pages:
            done += len(page)
            db.execute("BEGIN")
            try:
                batch = reader.load(page, changed)
            finally:
                db.execute("COMMIT")
            if not yielded:
                batch = attrs.evolve(
                    batch, deleted=deleted, changed=batch.changed | frozenset(changed_people)
                )
            yield attrs.evolve(batch, watermark=watermark, progress=(done, total))
            yielded = True
        if not yielded:
            yield ReadResult(
                snapshot=Snapshot(),
                changed=frozenset(changed_people),
                watermark=watermark,
                deleted=deleted,
                full=low is None,
                progress=(0, 0),
            )

    # -- writes -----------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Every action in one transaction, each in its own savepoint: one refused item never
        undoes or stops the others."""
        db = self.crm.db
        results: list[ActionResult] = []
        try:
            with self.crm._transaction():
                stamp = self.crm._tick()
                for index, action in enumerate(actions):
                    db.execute(f"SAVEPOINT a{index}")
                    try:
                        result = self._apply(action, stamp)
                    except Exception as exc:  # one item's failure is that item's result
                        db.execute(f"ROLLBACK TO a{index}")
                        result = ActionResult(
                            action.fingerprint,
                            action.kind,
                            ActionStatus.FAILED,
                            error=f"{type(exc).__name__}: {exc}",
                        )
                    db.execute(f"RELEASE a{index}")
                    results.append(result)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RetriableConnectorError(f"{self.crm.path}: {exc}") from None
            raise FatalConnectorError(f"{self.crm.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise FatalConnectorError(f"{self.crm.path}: {exc}") from None
        return results

    def _apply(self, action: Action, stamp: int) -> ActionResult:
        if action.kind is ActionKind.CREATE_TASK:
            return self._create_task(action, stamp)
        if action.kind is ActionKind.CLOSE_TASK:
            return self._close_task(action, stamp)
        return self._update_fields(action, stamp)

    def _result(
        self, action: Action, status: ActionStatus, crm_id: str | None = None, error: str = ""
    ) -> ActionResult:
        return ActionResult(action.fingerprint, action.kind, status, crm_id, error or None)

    def _create_task(self, action: Action, stamp: int) -> ActionResult:
        """Upsert on ``external_id``: an open task for this finding exists after the call."""
        db = self.crm.db
        row = db.execute(
            "SELECT id, data FROM activities WHERE external_id = ?", (action.fingerprint,)
        ).fetchone()
        now = dt.datetime.now(dt.UTC)
        if row is not None:
            data = json.loads(row["data"])
            if data.get("status") == "open":
                return self._result(action, ActionStatus.ALREADY_DONE, row["id"])
            data.update(
                status="open",
                subject=action.subject,
                description=action.description,
                reopened_at=now.isoformat(timespec="seconds"),
            )
            db.execute(
                "UPDATE activities SET data = ?, modstamp = ?, is_deleted = 0 WHERE id = ?",
                (json.dumps(data), stamp, row["id"]),
            )
            return self._result(action, ActionStatus.WRITTEN, row["id"])
        number = int(self.crm.meta("task_seq") or 0) + 1
        self.crm._set_meta("task_seq", str(number))
        task_id = f"00T{number:012d}"
        due = (now.date() + dt.timedelta(days=TASK_DUE_DAYS)).isoformat()
        data = {
            "id": task_id,
            "what_id": action.record_id,
            "what_type": action.record_type,
            "owner_id": action.owner_id,
            "subject": action.subject,
            "description": action.description,
            "status": "open",
            "due_date": due,
            "rule": action.rule,
            "created_at": now.isoformat(timespec="seconds"),
            "type": "task",
        }
        db.execute(
            "INSERT INTO activities (id, modstamp, what_id, owner_id, external_id, created_by, "
            "data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                task_id,
                stamp,
                action.record_id,
                action.owner_id,
                action.fingerprint,
                INTEGRATION_USER,
                json.dumps(data),
            ),
        )
        return self._result(action, ActionStatus.WRITTEN, task_id)

    def _close_task(self, action: Action, stamp: int) -> ActionResult:
        db = self.crm.db
        row = db.execute(
            "SELECT id, data FROM activities WHERE external_id = ?", (action.fingerprint,)
        ).fetchone()
        if row is None:
            # Never created (a run killed before its write): nothing to close is closed.
            return self._result(action, ActionStatus.ALREADY_DONE)
        data = json.loads(row["data"])
        if data.get("status") != "open":
            return self._result(action, ActionStatus.ALREADY_DONE, row["id"])
        data.update(
            status="completed",
            closed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            resolution=action.description or "finding resolved",
        )
        db.execute(
            "UPDATE activities SET data = ?, modstamp = ? WHERE id = ?",
            (json.dumps(data), stamp, row["id"]),
        )
        return self._result(action, ActionStatus.WRITTEN, row["id"])

    def _update_fields(self, action: Action, stamp: int) -> ActionResult:
        """A conditional update: applied only if the record is still at ``expected_version``."""
        db = self.crm.db
        table = _table(action.record_type)
        changes = dict(action.changes)
        key = hashlib.sha256(
            json.dumps(
                [action.fingerprint, action.expected_version, changes], sort_keys=True
            ).encode()
        ).hexdigest()
        if db.execute("SELECT 1 FROM write_log WHERE idempotency_key = ?", (key,)).fetchone():
            return self._result(action, ActionStatus.ALREADY_DONE, action.record_id)
        row = db.execute(
            f"SELECT modstamp, data FROM {table.name} WHERE id = ? AND is_deleted = 0",
            (action.record_id,),
        ).fetchone()
        if row is None:
            return self._result(action, ActionStatus.FAILED, error="record not found")
        if action.expected_version is not None and str(row["modstamp"]) != action.expected_version:
            return self._result(
                action,
                ActionStatus.STALE,
                action.record_id,
                f"record changed since it was read (version {row['modstamp']}, "
                f"expected {action.expected_version})",
            )
        self.crm._apply_update(
            table,
            action.record_id,
            json.loads(row["data"]),
            changes,
            stamp,
            INTEGRATION_USER,
            INTEGRATION_USER,
        )
        db.execute(
            "INSERT INTO write_log VALUES (?, ?, ?)",
            (key, action.record_id, dt.datetime.now(dt.UTC).isoformat()),
        )
        return self._result(action, ActionStatus.WRITTEN, action.record_id)


#: Fields through which a change can alter *other* records' findings (facts.py): the ids that
#: link records, the names that group a company's records, and the status, channel, source and
#: partner fields that decide ownership conflicts and channel deals. A change to any other field
#: re-judges only the record itself (and the records that embed it: a lead's deals, an
#: activity's deal), with its company's leads and deals read as context.
LINK_FIELDS: Mapping[str, frozenset[str]] = {
    "lead": frozenset(
        {
            "company",
            "account_id",
            "owner_id",
            "partner_id",
            "source",
            "status",
            "converted_opportunity_id",
        }
    ),
    "opportunity": frozenset(
        {"account_id", "owner_id", "partner_id", "lead_id", "channel", "is_closed"}
    ),
    "activity": frozenset({"what_id", "account_id"}),
}


@attrs.define
class _Changes:
    changed: set[RecordKey] = attrs.field(factory=set)
    deleted: set[RecordKey] = attrs.field(factory=set)
    people: set[RecordKey] = attrs.field(factory=set)
    #: groups every member of which is re-judged
    groups: set[str] = attrs.field(factory=set)
    #: records re-judged on their own, by group
    solo: dict[str, set[RecordKey]] = attrs.field(factory=dict)

    def add_solo(self, group: str | None, key: RecordKey) -> None:
        if group:
            self.solo.setdefault(group, set()).add(key)

    def plan(self) -> dict[str, frozenset[RecordKey] | None]:
        """Each group to read, with the records to judge in it (None: all of them)."""
        out: dict[str, frozenset[RecordKey] | None] = {g: None for g in self.groups if g}
        for group, keys in self.solo.items():
            if group not in out:
                out[group] = frozenset(keys)
        return out


def _json(values: Iterable[Any]) -> str:
    return json.dumps(list(values))


_IN = "IN (SELECT value FROM json_each(?))"
_HUMAN = "created_by IS NULL"
_WINDOW = "modstamp > ? AND modstamp <= ?"


class _BatchReader:
    """Reads company groups from one read transaction and builds self-contained batches."""

    def __init__(self, db: sqlite3.Connection, high: int) -> None:
        self.db = db
        self.high = high
        self.users: dict[str, Any] | None = None
        self.partners: dict[str, Any] | None = None

    # -- which groups --------------------------------------------------------------------

    def _arms(self, select: str, where: str) -> list[str]:
        arms = []
        for table in GROUPED:
            human = f" AND {_HUMAN}" if table.name == "activities" else ""
            arms.append(f"{select} FROM {table.name} WHERE is_deleted = 0{human}{where}")
        return arms

    def count_groups(self) -> int:
        arms = self._arms("SELECT grp", f" AND modstamp <= {self.high}")
        return int(self.db.execute(f"SELECT count(*) FROM ({' UNION '.join(arms)})").fetchone()[0])

    def all_groups(self, size: int) -> Iterator[list[str]]:
        """Every group, in pages of ``size`` (keyset pagination on the group key)."""
        last = ""
        limit = min(size, 1 << 31)
        while True:
            arms = [
                f"SELECT * FROM ({arm} ORDER BY grp LIMIT {limit})"
                for arm in self._arms("SELECT DISTINCT grp", " AND grp > :last")
            ]
            rows = self.db.execute(
                f"{' UNION '.join(arms)} ORDER BY 1 LIMIT {limit}", {"last": last}
            ).fetchall()
            if not rows:
                return
            page = [row[0] for row in rows]
            last = page[-1]
            yield page

    def changes(self, low: int) -> _Changes:
        """What changed in ``(low, high]``, and what each change makes the job re-judge."""
        db, window = self.db, (low, self.high)
        found = _Changes()
        fields: dict[RecordKey, set[str]] = {}
        for row in db.execute(
            f"SELECT record_type, record_id, field FROM field_history WHERE {_WINDOW}", window
        ):
            fields.setdefault((row[0], row[1]), set()).add(row[2])
        dated = {
            row[0]
            for row in db.execute(
                f"SELECT DISTINCT opportunity_id FROM close_date_history WHERE {_WINDOW}", window
            )
        }
        group_of: dict[RecordKey, str] = {}
        linked: dict[str, list[str]] = {}  # record type -> ids changed in a linking way
        solo: dict[str, list[str]] = {}  # record type -> ids changed in their own fields only
        for table in GROUPED:
            human = f" AND {_HUMAN}" if table.name == "activities" else ""
            for row in db.execute(
                f"SELECT id, grp, prev_grp, grp_changed, is_deleted FROM {table.name} "
                f"WHERE {_WINDOW}{human}",
                window,
            ):
                key = (table.record_type, row["id"])
                group_of[key] = row["grp"]
                if row["prev_grp"] and (row["grp_changed"] or 0) > low:
                    found.groups.add(row["prev_grp"])
                if row["is_deleted"]:
                    found.deleted.add(key)
                    found.groups.add(row["grp"])
                    continue
                found.changed.add(key)
                touched = fields.get(key)
                own_only = (
                    table.record_type in LINK_FIELDS
                    and (touched is not None or (key[0] == "opportunity" and key[1] in dated))
                    and not (touched or set()) & LINK_FIELDS[table.record_type]
                )
                if own_only:
                    found.add_solo(row["grp"], key)
                    solo.setdefault(table.record_type, []).append(row["id"])
                else:
                    found.groups.add(row["grp"])
                    linked.setdefault(table.record_type, []).append(row["id"])
        for row in db.execute(
            "SELECT o.id, o.grp FROM opportunities o WHERE o.is_deleted = 0 AND o.id IN "
            f"(SELECT DISTINCT opportunity_id FROM close_date_history WHERE {_WINDOW})",
            window,
        ):
            if row["grp"] not in found.groups:
                found.add_solo(row["grp"], ("opportunity", row["id"]))
        people: dict[str, list[str]] = {}
        for record_type in ("user", "partner"):
            for row in db.execute(
                f"SELECT id FROM {TABLES[record_type].name} WHERE {_WINDOW}", window
            ):
                found.people.add((record_type, row["id"]))
                people.setdefault(record_type, []).append(row["id"])
        self._dependents(found, linked, solo, people)
        return found

    def _dependents(
        self,
        found: _Changes,
        linked: Mapping[str, list[str]],
        solo: Mapping[str, list[str]],
        people: Mapping[str, list[str]],
    ) -> None:
        """Records in other groups that read a changed record: whole groups when the change
        links differently, else just the records that embed it (a lead's deals, a task's deal)."""
        db = self.db
        group_wide: list[tuple[str, tuple[Any, ...]]] = []
        if linked.get("account"):
            arg = _json(linked["account"])
            for name in ("leads", "opportunities", "activities"):
                group_wide.append((f"SELECT grp FROM {name} WHERE account_id {_IN}", (arg,)))
        for kind, source in (("group", linked), ("solo", solo)):
            embedding: list[tuple[str, tuple[Any, ...]]] = []
            if source.get("lead"):
                arg = _json(source["lead"])
                embedding.append((f"SELECT id, grp FROM opportunities WHERE lead_id {_IN}", (arg,)))
                embedding.append(
                    (
                        "SELECT o.id, o.grp FROM opportunities o JOIN leads l "
                        f"ON o.id = l.converted_opportunity_id WHERE l.id {_IN}",
                        (arg,),
                    )
                )
            if source.get("activity"):
                embedding.append(
                    (
                        "SELECT o.id, o.grp FROM opportunities o JOIN activities a "
                        f"ON o.id = a.what_id WHERE a.id {_IN}",
                        (_json(source["activity"]),),
                    )
                )
            for sql, params in embedding:
                for row in db.execute(sql, params):
                    if kind == "group":
                        found.groups.add(row["grp"])
                    else:
                        found.add_solo(row["grp"], ("opportunity", row["id"]))
        if people.get("user"):
            arg = _json(people["user"])
            for name in ("leads", "opportunities", "activities"):
                group_wide.append((f"SELECT grp FROM {name} WHERE owner_id {_IN}", (arg,)))
            group_wide.append(
                (
                    "SELECT o.grp FROM opportunities o JOIN opportunity_team t "
                    f"ON o.id = t.opportunity_id WHERE t.user_id {_IN}",
                    (arg,),
                )
            )
        if people.get("partner"):
            arg = _json(people["partner"])
            for name, column in (
                ("leads", "partner_id"),
                ("opportunities", "partner_id"),
                ("accounts", "partner_of_record_id"),
            ):
                group_wide.append((f"SELECT grp FROM {name} WHERE {column} {_IN}", (arg,)))
        for sql, params in group_wide:
            found.groups.update(row[0] for row in db.execute(sql, params) if row[0])

    def expand(self, groups: Iterable[str]) -> tuple[set[str], list[tuple[str, str]]]:
        """``groups`` and every group bridged to them, transitively, with the bridges used."""
        seen = set(groups)
        frontier = list(seen)
        edges: list[tuple[str, str]] = []
        while frontier:
            arg = _json(frontier)
            frontier = []
            for a, b in self.db.execute(
                f"SELECT a, b FROM group_bridges WHERE a {_IN} "
                f"UNION SELECT a, b FROM group_bridges WHERE b {_IN}",
                (arg, arg),
            ):
                edges.append((a, b))
                for group in (a, b):
                    if group not in seen:
                        seen.add(group)
                        frontier.append(group)
        return seen, edges

    # -- one batch -------------------------------------------------------------------------

    def _people(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.users is None or self.partners is None:
            self.users = {
                row[0]: json.loads(row[1])
                for row in self.db.execute(
                    f"SELECT id, data FROM users WHERE is_deleted = 0 AND modstamp <= {self.high}"
                )
            }
            self.partners = {
                row[0]: json.loads(row[1])
                for row in self.db.execute(
                    "SELECT id, data FROM partners WHERE is_deleted = 0 "
                    f"AND modstamp <= {self.high}"
                )
            }
        return self.users, self.partners

    def load(
        self,
        plan: Mapping[str, frozenset[RecordKey] | None],
        changed: set[RecordKey] | None,
    ) -> ReadResult:
        """One batch: the records to judge, with every record their facts read as context.

        ``plan`` maps each group to the records to judge in it (None: all of them); the
        groups' accounts, leads and deals are always read, since ownership conflicts and
        channel accounts compare them; activities and history only for the judged records.
        """
        db = self.db
        whole = [g for g, keys in plan.items() if keys is None]
        rows: dict[str, dict[str, sqlite3.Row]] = {}
        groups, bridges = self.expand(plan)  # bridged groups come along as context
        arg = _json(groups)
        for table in GROUPED:
            if table.name == "activities":
                continue
            rows[table.record_type] = {
                row["id"]: row
                for row in db.execute(
                    f"SELECT * FROM {table.name} WHERE grp {_IN} AND is_deleted = 0", (arg,)
                )
            }
        rows["activity"] = {
            row["id"]: row
            for row in db.execute(
                f"SELECT * FROM activities WHERE grp {_IN} AND is_deleted = 0 AND {_HUMAN}",
                (_json(whole),),
            )
        }
        whole_set = set(whole)
        judged: dict[RecordKey, str] = {}
        for record_type, by_id in rows.items():
            for record_id, row in by_id.items():
                if row["grp"] in whole_set:
                    judged[(record_type, record_id)] = row["grp"]
        solo_activities = []
        for group, keys in plan.items():
            for key in keys or ():
                if key[0] == "activity":
                    solo_activities.append(key[1])
                if key[1] in rows.get(key[0], {}) or key[0] == "activity":
                    judged[key] = group

        def context(record_type: str, sql: str, params: tuple[Any, ...]) -> None:
            by_id = rows[record_type]
            for row in db.execute(sql, params):
                by_id.setdefault(row["id"], row)

        context(
            "activity",
            f"SELECT * FROM activities WHERE id {_IN} AND is_deleted = 0",
            (_json(solo_activities),),
        )
        judged = {key: group for key, group in judged.items() if key[1] in rows.get(key[0], {})}
        opportunities = rows["opportunity"]
        judged_deals = [i for (t, i) in judged if t == "opportunity"]
        deal_ids = _json(judged_deals)
        lead_ids = [r["lead_id"] for r in opportunities.values() if r["lead_id"]]
        context(
            "lead", f"SELECT * FROM leads WHERE id {_IN} AND is_deleted = 0", (_json(lead_ids),)
        )
        context(
            "lead",
            f"SELECT * FROM leads WHERE converted_opportunity_id {_IN} AND is_deleted = 0",
            (_json(opportunities),),
        )
        context(
            "activity",
            f"SELECT * FROM activities WHERE what_id {_IN} AND is_deleted = 0 AND {_HUMAN}",
            (deal_ids,),
        )
        account_ids = {
            r["account_id"]
            for record_type in ("lead", "opportunity", "activity")
            for r in rows[record_type].values()
            if r["account_id"]
        } - set(rows["account"])
        context(
            "account",
            f"SELECT * FROM accounts WHERE id {_IN} AND is_deleted = 0",
            (_json(account_ids),),
        )
        history = db.execute(
            f"SELECT opportunity_id, data FROM close_date_history WHERE opportunity_id {_IN} "
            f"AND modstamp <= {self.high} ORDER BY seq",
            (deal_ids,),
        ).fetchall()
        partnerless = [i for i in judged_deals if not opportunities[i]["partner_id"]]
        previous_partner: dict[str, str] = {}
        for row in db.execute(
            "SELECT record_id, old_value, new_value FROM field_history WHERE "
            f"record_type = 'opportunity' AND field = 'partner_id' AND record_id {_IN} "
            f"AND modstamp <= {self.high} ORDER BY seq",
            (_json(partnerless),),
        ):
            old = json.loads(row["old_value"]) if row["old_value"] else None
            new = json.loads(row["new_value"]) if row["new_value"] else None
            if old and not new and isinstance(old, str):
                previous_partner[row["record_id"]] = old

        data: dict[str, list[dict[str, Any]]] = {}
        for record_type, by_id in rows.items():
            records = []
            for record_id, row in by_id.items():
                record = json.loads(row["data"])
                if not isinstance(record, dict):
                    record = {"id": record_id, "data": record}
                if record_type == "opportunity" and record_id in previous_partner:
                    record["previous_partner_id"] = previous_partner[record_id]
                records.append(record)
            data[TABLES[record_type].collection] = records
        data["close_date_changes"] = [json.loads(row["data"]) for row in history]
        users, partners = self._people()
        user_ids: set[str] = set()
        partner_ids: set[str] = set(previous_partner.values())
        for record_type in ("lead", "opportunity", "activity"):
            for row in rows[record_type].values():
                if row["owner_id"]:
                    user_ids.add(row["owner_id"])
        for row in opportunities.values():
            if row["partner_id"]:
                partner_ids.add(row["partner_id"])
        for row in rows["lead"].values():
            if row["partner_id"]:
                partner_ids.add(row["partner_id"])
        for row in rows["account"].values():
            if row["partner_of_record_id"]:
                partner_ids.add(row["partner_of_record_id"])
        for record in data["opportunities"]:
            user_ids.update(_team(record))
        data["users"] = [users[u] for u in sorted(user_ids) if u in users]
        data["partners"] = [partners[p] for p in sorted(partner_ids) if p in partners]

        snapshot, errors = snapshot_from_dict(data, source=SOURCE, skip_bad_records=True)
        errors = tuple(_name_history_errors(errors, data["close_date_changes"]))
        incomplete = _incomplete(errors, judged, rows, bridges)
        judged_keys = frozenset(judged)
        versions = {
            (record_type, record_id): str(row["modstamp"])
            for record_type, by_id in rows.items()
            for record_id, row in by_id.items()
        }
        if changed is None:
            changed_here = judged_keys
            affected: frozenset[RecordKey] = frozenset()
        else:
            changed_here = judged_keys & changed
            affected = judged_keys - changed_here
        return ReadResult(
            snapshot=snapshot,
            changed=changed_here - incomplete,
            watermark=None,
            versions=versions,
            errors=errors,
            full=changed is None,
            affected=affected - incomplete,
            incomplete=incomplete & judged_keys,
        )


def _name_history_errors(
    errors: Sequence[RecordError], history: Sequence[Any]
) -> Iterator[RecordError]:
    """A bad close-date history row has no id of its own: name it by its deal's id."""
    for error in errors:
        if error.collection == "close_date_changes" and error.record_id is None:
            raw = history[error.index] if error.index < len(history) else None
            deal = raw.get("opportunity_id") if isinstance(raw, dict) else None
            if isinstance(deal, str):
                error = attrs.evolve(error, record_id=deal)
        yield error


def _incomplete(
    errors: Sequence[RecordError],
    members: Mapping[RecordKey, str],
    rows: Mapping[str, Mapping[str, sqlite3.Row]],
    bridges: Sequence[tuple[str, str]] = (),
) -> frozenset[RecordKey]:
    """Members that cannot be judged because a record they depend on failed to load: every
    member of a group holding a bad record, and of groups whose deals use a bad related record."""
    if not errors:
        return frozenset()
    bad: set[RecordKey] = set()
    bad_groups: set[str] = set()
    for error in errors:
        if error.collection == "close_date_changes":
            if error.record_id is not None:
                bad.add(("opportunity", error.record_id))
        elif error.record_id is not None:
            bad.add((error.record_type, error.record_id))
    for record_type, record_id in bad:
        row = rows.get(record_type, {}).get(record_id)  # only grouped records are in rows
        group = row["grp"] if row is not None else None
        if group:
            bad_groups.add(group)
    bad_ids = {record_id for _, record_id in bad}
    for (record_type, record_id), group in members.items():
        row = rows[record_type][record_id]
        related = [row[c] for c in TABLES[record_type].columns]
        if record_type == "opportunity":
            related += [record_id]  # its history rows and the lead converted into it
        if any(value in bad_ids for value in related if value):
            bad_groups.add(group)
    for record_type, by_id in rows.items():
        if record_type in ("lead", "activity"):
            for record_id, row in by_id.items():
                target = row["converted_opportunity_id" if record_type == "lead" else "what_id"]
                if (
                    (record_type, record_id) in bad
                    and target
                    and ("opportunity", target) in members
                ):
                    bad_groups.add(members[("opportunity", target)])
    grown = True
    while grown:  # a company spans bridged groups: hold all of it
        grown = False
        for left, right in bridges:
            if (left in bad_groups) != (right in bad_groups):
                bad_groups.update((left, right))
                grown = True
    return frozenset(key for key, group in members.items() if group in bad_groups)


def _merge(batches: Sequence[ReadResult]) -> ReadResult:
    """One ReadResult from several batches (for ``read``; batches never share judged records)."""
    collections: dict[str, dict[str, Any]] = {}
    history: list[Any] = []
    for batch in batches:
        for name in ("users", "partners", "accounts", "leads", "opportunities", "activities"):
            target = collections.setdefault(name, {})
            for record in getattr(batch.snapshot, name):
                target.setdefault(record.id, record)
        history.extend(batch.snapshot.close_date_changes)
    snapshot = Snapshot(
        users=tuple(collections["users"].values()),
        partners=tuple(collections["partners"].values()),
        accounts=tuple(collections["accounts"].values()),
        leads=tuple(collections["leads"].values()),
        opportunities=tuple(collections["opportunities"].values()),
        close_date_changes=tuple(history),
        activities=tuple(collections["activities"].values()),
    )
    return ReadResult(
        snapshot=snapshot,
        changed=frozenset().union(*(b.changed for b in batches)),
        watermark=batches[-1].watermark,
        deleted=frozenset().union(*(b.deleted for b in batches)),
        versions={k: v for b in batches for k, v in b.versions.items()},
        errors=tuple(e for b in batches for e in b.errors),
        full=batches[-1].full,
        affected=frozenset().union(*(b.affected for b in batches)),
        incomplete=frozenset().union(*(b.incomplete for b in batches)),
        progress=batches[-1].progress,
    )


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """Register the embedded demo CRM as connector ``local``."""
    register(NAME, LocalConnector.from_settings)
