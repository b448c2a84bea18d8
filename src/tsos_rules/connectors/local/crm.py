"""The demo CRM's database (SQLite): its schema, clock and watermarks, and the edits people make.

Every record carries a ``modstamp`` (like Salesforce's ``SystemModstamp``): microseconds from a
clock that only moves forward, taken once per write transaction, so every record written in one
transaction shares it. SQLite serialises writers, so a read that stops at the clock value it
sees in its own snapshot can never miss a change committed later: the watermark is that clock
value, and the next read takes ``modstamp > watermark``. Deletes leave tombstones; field history
and close-date history are kept; tasks carry the finding's fingerprint in ``external_id`` so that
creating one twice is a no-op.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.connectors.local.grouping import (
    BRIDGE_INSERT,
    GROUPING,
    CompanyGrouper,
    group_of_account,
    text_or_none,
)
from tsos_rules.errors import ConfigError, FatalConnectorError

#: The user id the sync writes as: its tasks are hidden from reads, its repairs are approved.
INTEGRATION_USER = "tsos-rules"
DEMO_OPPORTUNITIES = 5000
DEMO_SEED = 7


@attrs.frozen
class CrmTable:
    """One CRM object: its snapshot collection and the relation columns kept beside the JSON."""

    record_type: str
    name: str
    collection: str
    columns: tuple[str, ...]
    grouped: bool


TABLES: dict[str, CrmTable] = {
    t.record_type: t
    for t in (
        CrmTable("user", "users", "users", (), False),
        CrmTable("partner", "partners", "partners", (), False),
        CrmTable("account", "accounts", "accounts", ("partner_of_record_id",), True),
        CrmTable(
            "lead",
            "leads",
            "leads",
            ("account_id", "owner_id", "partner_id", "converted_opportunity_id"),
            True,
        ),
        CrmTable(
            "opportunity",
            "opportunities",
            "opportunities",
            ("account_id", "owner_id", "partner_id", "lead_id"),
            True,
        ),
        CrmTable(
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
        if table.name == "activities":
            # a read of what changed skips the sync's own tasks: without this, the first
            # incremental run after a full one walked every task that run wrote
            parts.append(
                "CREATE INDEX IF NOT EXISTS activities_human_modstamp ON activities (modstamp) "
                "WHERE created_by IS NULL"
            )
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


#: Pages the write-ahead log holds before a commit copies them into the database: SQLite's
#: 1,000 made every commit of a sync's batch of tasks pay a checkpoint and its fsync. The
#: connector's writes are synced at their commit instead (``_transaction(durable=True)``).
WAL_CHECKPOINT_PAGES = 16_384


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
            # The savepoints of a batch's task writes journal every page they change: in a
            # temporary file, a 200k-deal full sync wrote 1.2 GB of them (14.8 -> 13.2 s).
            self.db.execute("PRAGMA temp_store=MEMORY")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
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

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def is_seeded(self) -> bool:
        return self.meta("seeded_at") is not None

    def tick(self) -> int:
        """The modstamp of the current write transaction (call inside BEGIN IMMEDIATE)."""
        last = int(self.db.execute("SELECT stamp FROM clock").fetchone()[0])
        stamp = max(_now_micros(), last + 1)
        self.db.execute("UPDATE clock SET stamp = ?", (stamp,))
        return stamp

    def clock(self) -> int:
        return int(self.db.execute("SELECT stamp FROM clock").fetchone()[0])

    def transaction(self, *, durable: bool = False) -> _Tx:
        """A write transaction; ``durable``: synced to disk at its commit (``synchronous=FULL``
        for it), not only at the next checkpoint."""
        return _Tx(self.db, durable=durable)

    # -- seeding --------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty the CRM (every record, history, task and the write log)."""
        with self.transaction():
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
        grouper = CompanyGrouper(lambda aid: accounts[aid][:2] if aid in accounts else None)
        db = self.db
        with self.transaction():
            stamp = self.tick()
            now = dt.datetime.now(dt.UTC).isoformat()
            pending: dict[str, list[tuple[Any, ...]]] = {}

            def flush() -> None:
                for sql, rows in pending.items():
                    db.executemany(sql, rows)
                pending.clear()

            for count, (collection, record) in enumerate(records):
                counts[collection] = counts.get(collection, 0) + 1
                if collection == "close_date_changes":
                    opportunity_id = text_or_none(record.get("opportunity_id")) or ""
                    pending.setdefault(
                        "INSERT INTO close_date_history (opportunity_id, modstamp, data) "
                        "VALUES (?, ?, ?)",
                        [],
                    ).append((opportunity_id, stamp, json.dumps(record)))
                    continue
                table = _BY_COLLECTION.get(collection)
                if table is None:
                    continue
                record_id = text_or_none(record.get("id")) or f"{table.record_type}-{count}"
                group = None
                if table.record_type == "account":
                    name = record.get("name")
                    named = isinstance(name, str) and bool(name)
                    group = group_of_account(record_id, record)
                    por = text_or_none(record.get("partner_of_record_id"))
                    accounts[record_id] = (named, group, por)
                elif table.record_type == "lead":
                    group = grouper.lead(record_id, record)
                    bridge = grouper.lead_bridge(record_id, record)
                    if bridge:
                        pending.setdefault(BRIDGE_INSERT, []).append(bridge)
                elif table.record_type == "opportunity":
                    group = grouper.opportunity(record_id, record)
                    opportunity_groups[record_id] = group
                    for user_id in team_of(record):
                        pending.setdefault(
                            "INSERT OR IGNORE INTO opportunity_team VALUES (?, ?)", []
                        ).append((record_id, user_id))
                    self._seed_partner_removal(record_id, record, accounts, stamp, pending)
                elif table.record_type == "activity":
                    what = text_or_none(record.get("what_id"))
                    group = grouper.activity(
                        record_id, record, opportunity_groups.get(what) if what else None
                    )
                sql, row = _insert_row(table, record_id, stamp, record, group)
                pending.setdefault(sql, []).append(row)
                if count % 20_000 == 0:
                    flush()
            flush()
            self.set_meta("seeded_at", now)
            self.set_meta("grouping", GROUPING)
            if as_of is not None:
                self.set_meta("seed_as_of", str(as_of))
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
        account = accounts.get(text_or_none(record.get("account_id")) or "")
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
                text_or_none(record.get("owner_id")),
                stamp,
            )
        )

    def regroup(self) -> None:
        """Recompute every record's company group and the bridges (a file from an older
        grouping); modstamps are untouched, and the sync's next full run judges the result."""
        with self.transaction():
            self.db.execute("DELETE FROM group_bridges")
            for record_type in ("account", "opportunity", "lead", "activity"):
                table = TABLES[record_type]
                human = " WHERE created_by IS NULL" if table.name == "activities" else ""
                for row in self.db.execute(f"SELECT id, data FROM {table.name}{human}").fetchall():
                    group = self._group_of(table, row[0], json.loads(row[1]))
                    self.db.execute(
                        f"UPDATE {table.name} SET grp = ? WHERE id = ?", (group, row[0])
                    )
            self.set_meta("grouping", GROUPING)

    def seed_demo(
        self, *, opportunities: int = DEMO_OPPORTUNITIES, seed: int = DEMO_SEED, as_of: dt.date
    ) -> dict[str, int]:
        """Re-seed with the generated demo org (``tsos_rules.connectors.local.demo``)."""
        from tsos_rules.connectors.local.demo import generate_org

        org = generate_org(opportunities=opportunities, seed=seed, as_of=as_of)
        self.reset()
        counts = self.seed(org)
        with self.transaction():
            self.set_meta("demo_seed", str(seed))
            self.set_meta("demo_opportunities", str(opportunities))
        return counts

    # -- what people do in the CRM -----------------------------------------------------------

    def get(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        """A record's fields as stored (None when absent or deleted)."""
        table = table_of(record_type)
        row = self.db.execute(
            f"SELECT data FROM {table.name} WHERE id = ? AND is_deleted = 0", (record_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def version(self, record_type: str, record_id: str) -> str | None:
        table = table_of(record_type)
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
        with self.transaction():
            stamp = self.tick()
            for record_type, record_id, changes in edits:
                table = table_of(record_type)
                row = self.db.execute(
                    f"SELECT data FROM {table.name} WHERE id = ? AND is_deleted = 0", (record_id,)
                ).fetchone()
                if row is None:
                    raise KeyError(f"{record_type} {record_id} does not exist")
                self.apply_update(
                    table, record_id, json.loads(row[0]), changes, stamp, by, approved_by
                )
                versions.append(str(stamp))
        return versions

    def insert(self, record_type: str, record: Mapping[str, Any]) -> str:
        """Create a record (its ``id`` is required); returns its version."""
        table = table_of(record_type)
        record_id = text_or_none(record.get("id"))
        if record_id is None:
            raise ValueError("insert: the record needs an id")
        with self.transaction():
            stamp = self.tick()
            group = self._group_of(table, record_id, record) if table.grouped else None
            sql, row = _insert_row(table, record_id, stamp, record, group)
            self.db.execute(sql.replace("INSERT", "INSERT OR REPLACE", 1), row)
            if record_type == "opportunity":
                self._set_team(record_id, record)
        return str(stamp)

    def add_close_date_change(self, change: Mapping[str, Any]) -> None:
        """Append a history row as the CRM's own audit would (bumps the deal's modstamp)."""
        opportunity_id = str(change["opportunity_id"])
        with self.transaction():
            stamp = self.tick()
            self.db.execute(
                "INSERT INTO close_date_history (opportunity_id, modstamp, data) VALUES (?, ?, ?)",
                (opportunity_id, stamp, json.dumps(dict(change))),
            )
            self.db.execute(
                "UPDATE opportunities SET modstamp = ? WHERE id = ?", (stamp, opportunity_id)
            )

    def delete(self, record_type: str, record_id: str) -> None:
        """Delete a record, leaving a tombstone that the next incremental read reports."""
        table = table_of(record_type)
        with self.transaction():
            stamp = self.tick()
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

    def _group_of(self, table: CrmTable, record_id: str, data: Mapping[str, Any]) -> str:
        grouper = CompanyGrouper(self._lookup_account_group)
        if table.record_type == "account":
            return group_of_account(record_id, data)
        if table.record_type == "lead":
            bridge = grouper.lead_bridge(record_id, data)
            if bridge:
                self.db.execute(BRIDGE_INSERT, bridge)
            return grouper.lead(record_id, data)
        if table.record_type == "opportunity":
            return grouper.opportunity(record_id, data)
        what = text_or_none(data.get("what_id"))
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
        return (isinstance(name, str) and bool(name), group_of_account(account_id, data))

    def _set_team(self, record_id: str, data: Mapping[str, Any]) -> None:
        self.db.execute("DELETE FROM opportunity_team WHERE opportunity_id = ?", (record_id,))
        self.db.executemany(
            "INSERT OR IGNORE INTO opportunity_team VALUES (?, ?)",
            [(record_id, user_id) for user_id in team_of(data)],
        )

    def apply_update(
        self,
        table: CrmTable,
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
        values = {c: text_or_none(new.get(c)) for c in table.columns}
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

    def __init__(self, db: sqlite3.Connection, *, durable: bool = False) -> None:
        self.db = db
        self.durable = durable

    def __enter__(self) -> sqlite3.Connection:
        self._synchronous("FULL")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._synchronous("NORMAL")
            raise
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:
                self.db.execute("ROLLBACK")
        finally:
            self._synchronous("NORMAL")

    def _synchronous(self, level: str) -> None:
        """SQLite refuses to change it inside a transaction (there is nothing to sync then)."""
        if self.durable and not self.db.in_transaction:
            self.db.execute(f"PRAGMA synchronous={level}")


_BY_COLLECTION = {t.collection: t for t in TABLES.values()}


def table_of(record_type: str) -> CrmTable:
    try:
        return TABLES[record_type]
    except KeyError:
        raise ValueError(f"no such record type: {record_type!r}") from None


def team_of(data: Mapping[str, Any]) -> list[str]:
    team = data.get("team_user_ids")
    return [u for u in team if isinstance(u, str)] if isinstance(team, list) else []


def _insert_row(
    table: CrmTable, record_id: str, stamp: int, data: Mapping[str, Any], group: str | None
) -> tuple[str, tuple[Any, ...]]:
    columns = ["id", "modstamp", *table.columns]
    values: list[Any] = [record_id, stamp, *(text_or_none(data.get(c)) for c in table.columns)]
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
