"""The ``local`` connector: an embedded demo CRM in one SQLite file, behaving like a real CRM.

The database and its clock live in ``crm``, the company grouping in ``grouping``, the batch
reader in ``reader``; this module is the connector the sync talks to: settings, reads by batch,
and writes (tasks upserted on the finding's fingerprint; a field update naming a stale version
is refused).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.config import SettingsTable, default_data_dir
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
from tsos_rules.connectors.local import NAME as NAME
from tsos_rules.connectors.local.crm import (
    DEMO_OPPORTUNITIES,
    DEMO_SEED,
    INTEGRATION_USER,
    TABLES,
    LocalCRM,
    decode_watermark,
    encode_watermark,
    table_of,
)
from tsos_rules.connectors.local.linked import load_linked, matching_ids, where_field
from tsos_rules.connectors.local.reader import (
    BY_HUMAN,
    SOURCE,
    GroupReader,
    loads,
    merge_batches,
)
from tsos_rules.errors import (
    ConfigError,
    ConnectorError,
    FatalConnectorError,
    RetriableConnectorError,
)
from tsos_rules.model import CrmExemption, Snapshot
from tsos_rules.snapshot.document import snapshot_from_dict

log = logging.getLogger(__name__)

#: Days a new task is due after it is created.
TASK_DUE_DAYS = 2


def default_crm_path() -> Path:
    return default_data_dir() / "demo-crm.sqlite3"


#: The keys of a ``[connector]`` table with ``type = "local"``.
SETTINGS = ("type", "path", "seed", "opportunities", "seed_if_missing", "exemptions")


@attrs.frozen
class WaiverFields:
    """``[connector.exemptions]`` for the demo CRM: the opportunity keys holding a waiver
    (``until_field``, a date, required; ``reason_field``, ``rules_field`` optional), read into
    the snapshot's ``exemptions`` as the Salesforce connector reads its fields."""

    until_field: str | None = None
    reason_field: str | None = None
    rules_field: str | None = None

    @classmethod
    def parse(cls, table: SettingsTable) -> WaiverFields:
        if not table.data:
            return cls()
        until = table.string("until_field")
        if not until:
            raise table.error("until_field", "required when [connector.exemptions] is given")
        fields = cls(until, table.string("reason_field"), table.string("rules_field"))
        table.done()
        return fields

    def read(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with the waivers its opportunities hold (an unreadable date is logged
        and skipped)."""
        if not self.until_field:
            return snapshot
        found = []
        for deal in snapshot.opportunities:
            raw = deal.extra.get(self.until_field)
            if raw in (None, ""):
                continue
            try:
                until = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
            except ValueError:
                log.warning("opportunity %s: %s = %r is not a date", deal.id, self.until_field, raw)
                continue
            reason = deal.extra.get(self.reason_field) if self.reason_field else None
            rules = deal.extra.get(self.rules_field) if self.rules_field else None
            found.append(
                CrmExemption(
                    record_type="opportunity",
                    record_id=deal.id,
                    until=until,
                    reason=str(reason) if reason else None,
                    rules=tuple(
                        part.strip() for part in re.split(r"[;,]", str(rules or "")) if part.strip()
                    ),
                    field=self.until_field,
                )
            )
        return attrs.evolve(snapshot, exemptions=tuple(found))


class LocalConnector:
    """The embedded demo CRM: one SQLite file, seeded with a generated org on first use."""

    name = NAME

    def __init__(self, crm: LocalCRM, waivers: WaiverFields | None = None) -> None:
        self.crm = crm
        self.waivers = waivers or WaiverFields()
        self._reader: sqlite3.Connection | None = None  # reads go through crm.db unless set

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LocalConnector:
        """Build from the ``[connector]`` table; seeds the demo org on first use."""
        table = SettingsTable(settings, "connector", owner="the local connector")
        path = table.string("path")
        seed = table.integer("seed", DEMO_SEED, low=0)
        opportunities = table.integer("opportunities", DEMO_OPPORTUNITIES, low=0)
        seed_if_missing = table.boolean("seed_if_missing", True)
        waivers = WaiverFields.parse(table.table("exemptions"))
        table.done(*SETTINGS)
        crm_path = Path(path).expanduser() if path else default_crm_path()
        existed = crm_path.exists()
        if existed and not crm_path.is_file():
            kind = "a directory" if crm_path.is_dir() else "not a regular file"
            raise table.error("path", f"{crm_path} is {kind}: give the demo CRM's SQLite file")
        if not existed and not seed_if_missing:
            raise FatalConnectorError(f"{crm_path}: no local CRM there (seed_if_missing = false)")
        crm = LocalCRM(crm_path)
        if not crm.is_seeded():
            if not seed_if_missing:
                raise FatalConnectorError(f"{crm_path}: the local CRM was never seeded")
            log.info("seeding the demo CRM at %s with %d deals", crm_path, opportunities)
            crm.seed_demo(
                opportunities=opportunities,
                seed=seed,
                as_of=dt.date.today(),
            )
        return cls(crm, waivers)

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
        self._close_reader()
        self.crm.close()

    # -- reads ------------------------------------------------------------------------------

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        """One read of everything changed since ``since``, as a single batch."""
        batches = list(self.read_batches(since, until=until, batch_size=1 << 62))
        if len(batches) == 1:
            return batches[0]
        return merge_batches(batches)

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
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        finally:
            # One read's connection lives as long as the read (or until close()), so nothing
            # is left open when a caller forgets close() (Python 3.13 warns about that).
            self._close_reader()

    def read_where(
        self, record_type: str, field: str, values: Collection[str], *, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` whose ``field`` is one of ``values``, judged (as
        ``affected``) with their company groups as context, ``batch_size`` groups a batch."""
        table = TABLES.get(record_type)
        if table is None or not table.grouped or not values:
            return
        if batch_size < 1:
            raise ConfigError(f"sync.batch_size: expected 1 or more, got {batch_size}")
        where, params = where_field(field, values, table.columns)
        db = self._reader_db()
        try:
            high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
            reader = GroupReader(db, high)
            plan: dict[str, set[RecordKey]] = {}
            for row in db.execute(
                f"SELECT id, grp FROM {table.name} WHERE is_deleted = 0 AND modstamp <= ? "
                f"AND {where}",
                [high, *params],
            ):
                plan.setdefault(row[1], set()).add((record_type, row[0]))
            groups = sorted(plan)
            for start in range(0, len(groups), batch_size):
                page = {g: frozenset(plan[g]) for g in groups[start : start + batch_size]}
                db.execute("BEGIN")
                try:
                    batch = reader.load(page, set())
                finally:
                    db.execute("COMMIT")
                yield attrs.evolve(batch, snapshot=self.waivers.read(batch.snapshot), full=False)
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        finally:
            self._close_reader()

    def stream_where(
        self, record_type: str, field: str, values: Collection[str], *, page_size: int = 5000
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` whose ``field`` is one of ``values``, judged (as
        ``affected``) with only their accounts, owners, team and partners (``linked.py``), not
        their company groups: one indexed query for the ids, then ``page_size`` a page."""
        table = TABLES.get(record_type)
        if table is None or not table.grouped or not values:
            return
        db = self._reader_db()
        try:
            high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
            reader = GroupReader(db, high)
            ids = matching_ids(db, table, high, field, values)
            for start in range(0, len(ids), max(1, page_size)):
                db.execute("BEGIN")
                try:
                    batch = load_linked(reader, table, ids[start : start + max(1, page_size)])
                finally:
                    db.execute("COMMIT")
                yield attrs.evolve(batch, snapshot=self.waivers.read(batch.snapshot))
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        finally:
            self._close_reader()

    def ids_where(self, record_type: str, field: str, values: Collection[str]) -> list[str]:
        """The ids ``stream_where`` would read, from one indexed query (``ReaderIds``)."""
        table = TABLES.get(record_type)
        if table is None or not table.grouped or not values:
            return []
        db = self._reader_db()
        try:
            high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
            return matching_ids(db, table, high, field, values)
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        finally:
            self._close_reader()

    def stream_records(self, record_type: str, *, page_size: int = 5000) -> Iterator[ReadResult]:
        """Every current record of ``record_type`` alone, ``page_size`` a page (keyset pages
        on the id, each in its own read transaction): a full sync's totals read."""
        table = TABLES.get(record_type)
        if table is None:
            return
        db = self._reader_db()
        try:
            high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
            human = f" AND {BY_HUMAN}" if table.name == "activities" else ""
            query = (
                f"SELECT id, data FROM {table.name} WHERE is_deleted = 0 "
                f"AND modstamp <= ? AND id > ?{human} ORDER BY id LIMIT ?"
            )
            for rows in _keyset_pages(db, query, (high,), page_size):
                records = []
                for record_id, data in rows:
                    record = loads(data)
                    records.append(record if isinstance(record, dict) else {"id": record_id})
                snapshot, _ = snapshot_from_dict(
                    {table.collection: records}, source=SOURCE, skip_bad_records=True
                )
                yield ReadResult(snapshot=snapshot, changed=frozenset(), watermark=None)
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        finally:
            self._close_reader()

    def stream_changed(
        self, record_type: str, since: str, *, page_size: int = 5000
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` changed after ``since`` up to the clock, alone,
        ``page_size`` a page (keyset pages on the id), and those deleted, in ``deleted``: an
        incremental sync's totals read, without the company groups its own read brings."""
        table = TABLES.get(record_type)
        if table is None:
            return
        db = self._reader_db()
        try:
            high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
            low = decode_watermark(since)
            human = f" AND {BY_HUMAN}" if table.name == "activities" else ""
            query = (
                f"SELECT id, is_deleted, data FROM {table.name} WHERE modstamp > ? "
                f"AND modstamp <= ? AND id > ?{human} ORDER BY id LIMIT ?"
            )
            for rows in _keyset_pages(db, query, (low, high), page_size):
                records = []
                deleted = set()
                for record_id, is_deleted, data in rows:
                    if is_deleted:
                        deleted.add((record_type, record_id))
                        continue
                    record = loads(data)
                    records.append(record if isinstance(record, dict) else {"id": record_id})
                snapshot, _ = snapshot_from_dict(
                    {table.collection: records}, source=SOURCE, skip_bad_records=True
                )
                yield ReadResult(
                    snapshot=snapshot,
                    changed=frozenset(),
                    watermark=None,
                    deleted=frozenset(deleted),
                )
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        finally:
            self._close_reader()

    def _crm_error(self, exc: sqlite3.DatabaseError) -> ConnectorError:
        """The demo CRM's database error as the sync sees it: locked or busy is worth a retry."""
        message = f"{self.crm.path}: {exc}"
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        ):
            return RetriableConnectorError(message)
        return FatalConnectorError(message)

    def _reader_db(self) -> sqlite3.Connection:
        """The connection reads go through: the CRM's own. SQLite empties a connection's page
        cache whenever another connection has written, so a reader of its own lost its cache
        to every batch's task writes (a 200k full sync: 22.0 -> 20.7 s of reading)."""
        return self._reader if self._reader is not None else self.crm.db

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _read(
        self, db: sqlite3.Connection, since: str | None, until: dt.datetime | None, size: int
    ) -> Iterator[ReadResult]:
        high = int(db.execute("SELECT stamp FROM clock").fetchone()[0])
        if until is not None:
            high = min(high, decode_watermark(until.isoformat()))
        low = decode_watermark(since) if since else None
        watermark = encode_watermark(high)
        reader = GroupReader(db, high)
        pages: Iterator[dict[str, frozenset[RecordKey] | None]]
        if low is None:
            every = reader.all_groups()
            total = len(every)
            pages = ({group: None for group in every[i : i + size]} for i in range(0, total, size))
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
            yield attrs.evolve(
                batch,
                snapshot=self.waivers.read(batch.snapshot),
                watermark=watermark,
                progress=(done, total),
            )
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
        """Every action in one transaction, on disk when it returns (as a real CRM's answer
        is); one refused item never undoes or stops the others.

        A run of task creations goes in a few statements (``_create_tasks``); every other
        action, and the creations of a run that something in it refused, one at a time, each
        in its own savepoint: the tasks, their ids and the results are the same either way."""
        results: list[ActionResult] = []
        try:
            with self.crm.transaction(durable=True):
                stamp = self.crm.tick()
                for run in _runs(actions):
                    created = self._create_tasks(run, stamp) if len(run) > 1 else None
                    if created is None:
                        created = [self._apply_alone(action, stamp) for action in run]
                    results.extend(created)
        except sqlite3.DatabaseError as exc:
            raise self._crm_error(exc) from None
        return results

    def _apply_alone(self, action: Action, stamp: int) -> ActionResult:
        """One action in its own savepoint: its failure is its result, and undoes only it."""
        db = self.crm.db
        db.execute("SAVEPOINT one")
        try:
            result = self._apply(action, stamp)
        except Exception as exc:  # one item's failure is that item's result
            db.execute("ROLLBACK TO one")
            result = ActionResult(
                action.fingerprint,
                action.kind,
                ActionStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}",
            )
        db.execute("RELEASE one")
        return result

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
            db.execute(_REOPEN_TASK, (_reopened(data, action, now), stamp, row["id"]))
            return self._result(action, ActionStatus.WRITTEN, row["id"])
        number = int(self.crm.meta("task_seq") or 0) + 1
        self.crm.set_meta("task_seq", str(number))
        db.execute(_INSERT_TASK, _new_task(action, number, stamp, now))
        return self._result(action, ActionStatus.WRITTEN, _task_id(number))

    def _create_tasks(self, run: Sequence[Action], stamp: int) -> list[ActionResult] | None:
        """Task creations in a few statements, with the results, ids and rows that
        ``_create_task`` one action after the other gives; None (and nothing written) when a
        statement fails, so that the run goes one at a time and only the bad item fails."""
        db = self.crm.db
        db.execute("SAVEPOINT tasks")
        try:
            results = self._insert_tasks(run, stamp)
        except Exception:  # which item? one at a time says, and fails only that one
            db.execute("ROLLBACK TO tasks")
            db.execute("RELEASE tasks")
            return None
        db.execute("RELEASE tasks")
        return results

    def _insert_tasks(self, run: Sequence[Action], stamp: int) -> list[ActionResult]:
        db = self.crm.db
        rows = db.execute(
            "SELECT external_id, id, data FROM activities "
            "WHERE external_id IN (SELECT value FROM json_each(?))",
            (json.dumps([action.fingerprint for action in run]),),
        )
        stored = {row["external_id"]: (row["id"], row["data"]) for row in rows}
        now = dt.datetime.now(dt.UTC)
        first = number = int(self.crm.meta("task_seq") or 0)
        opened: dict[str, str] = {}  # fingerprint -> id of its open task, as the run goes
        reopens: list[tuple[str, int, str]] = []
        inserts: list[tuple[Any, ...]] = []
        results: list[ActionResult] = []
        for action in run:
            fingerprint = action.fingerprint
            task_id = opened.get(fingerprint)
            if task_id is not None:
                results.append(self._result(action, ActionStatus.ALREADY_DONE, task_id))
                continue
            if fingerprint in stored:
                task_id, raw = stored[fingerprint]
                opened[fingerprint] = task_id
                data = json.loads(raw)
                if data.get("status") == "open":
                    results.append(self._result(action, ActionStatus.ALREADY_DONE, task_id))
                    continue
                reopens.append((_reopened(data, action, now), stamp, task_id))
                results.append(self._result(action, ActionStatus.WRITTEN, task_id))
                continue
            number += 1
            inserts.append(_new_task(action, number, stamp, now))
            opened[fingerprint] = _task_id(number)
            results.append(self._result(action, ActionStatus.WRITTEN, _task_id(number)))
        db.executemany(_REOPEN_TASK, reopens)
        db.executemany(_INSERT_TASK, inserts)
        if number != first:
            self.crm.set_meta("task_seq", str(number))
        return results

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
        table = table_of(action.record_type)
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
        self.crm.apply_update(
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


_INSERT_TASK = (
    "INSERT INTO activities (id, modstamp, what_id, owner_id, external_id, created_by, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_REOPEN_TASK = "UPDATE activities SET data = ?, modstamp = ?, is_deleted = 0 WHERE id = ?"


def _runs(actions: Sequence[Action]) -> Iterator[Sequence[Action]]:
    """``actions`` in order, each run of task creations together, any other action alone."""
    start = 0
    while start < len(actions):
        end = start + 1
        if actions[start].kind is ActionKind.CREATE_TASK:
            while end < len(actions) and actions[end].kind is ActionKind.CREATE_TASK:
                end += 1
        yield actions[start:end]
        start = end


def _task_id(number: int) -> str:
    return f"00T{number:012d}"


def _new_task(action: Action, number: int, stamp: int, now: dt.datetime) -> tuple[Any, ...]:
    """The ``activities`` row of the task numbered ``number`` for ``action``."""
    task_id = _task_id(number)
    data = {
        "id": task_id,
        "what_id": action.record_id,
        "what_type": action.record_type,
        "owner_id": action.owner_id,
        "subject": action.subject,
        "description": action.description,
        "status": "open",
        "due_date": (now.date() + dt.timedelta(days=TASK_DUE_DAYS)).isoformat(),
        "rule": action.rule,
        "created_at": now.isoformat(timespec="seconds"),
        "type": "task",
    }
    return (
        task_id,
        stamp,
        action.record_id,
        action.owner_id,
        action.fingerprint,
        INTEGRATION_USER,
        json.dumps(data),
    )


def _reopened(data: dict[str, Any], action: Action, now: dt.datetime) -> str:
    """A closed task's ``data``, open again with the action's subject and description."""
    data.update(
        status="open",
        subject=action.subject,
        description=action.description,
        reopened_at=now.isoformat(timespec="seconds"),
    )
    return json.dumps(data)


def _keyset_pages(
    db: sqlite3.Connection, query: str, params: tuple[Any, ...], page_size: int
) -> Iterator[list[Any]]:
    """The rows of ``query`` (its last two parameters: the id to start after, the limit) in
    keyset pages on the id, each read in its own transaction so a page sees one state."""
    last = ""
    while True:
        db.execute("BEGIN")
        try:
            rows = db.execute(query, (*params, last, max(1, page_size))).fetchall()
        finally:
            db.execute("COMMIT")
        if not rows:
            return
        last = rows[-1][0]
        yield rows
