"""The state store (SQLite): watermarks, every finding's lifecycle, the run log, and the
write-ahead journal of CRM writes (``journal`` before sending, settled by ``commit_batch``)."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, ActionStatus, RecordKey
from tsos_rules.errors import ConfigError, StateError
from tsos_rules.findings import Finding, Severity
from tsos_rules.sync.state import exemptions as _exemptions
from tsos_rules.sync.state import tallies as _tallies
from tsos_rules.sync.state import worklist as _worklist
from tsos_rules.sync.state.exemptions import Exemption
from tsos_rules.sync.state.lock import RunLock
from tsos_rules.sync.state.migrations import MIGRATIONS, SCHEMA_VERSION


@attrs.frozen
class Cursor:
    """Where the last completed run of a connector left off."""

    watermark: str | None = None
    last_full_as_of: dt.date | None = None
    config_digest: str | None = None


@attrs.frozen
class FindingState:
    """A finding as the state store knows it: identity, lifecycle and the actions taken."""

    fingerprint: str
    rule: str
    severity: str
    record_type: str
    record_id: str
    reason: str
    message: str
    owner_id: str | None
    status: str
    first_seen: str
    task_id: str | None
    task_status: str | None
    repair_status: str | None
    repair_changes: Mapping[str, Any] | None
    owner_name: str | None = None

    @property
    def record_key(self) -> RecordKey:
        return (self.record_type, self.record_id)

    @property
    def has_open_task(self) -> bool:
        return self.task_id is not None and self.task_status == "open"

    def finding(self, *, doctrine: str = "", details: Mapping[str, Any] | None = None) -> Finding:
        """The stored finding as the engine would produce it (the state keeps no doctrine;
        ``details`` when the caller read them)."""
        return Finding(
            rule=self.rule,
            severity=Severity(self.severity),
            record_type=self.record_type,
            record_id=self.record_id,
            reason=self.reason,
            message=self.message,
            doctrine=doctrine,
            details=dict(details or {}),
        )


@attrs.frozen
class PendingWrite:
    """A CRM write journalled before it was sent, not yet settled by a state commit."""

    fingerprint: str
    kind: ActionKind
    record_type: str
    record_id: str
    rule: str
    owner_id: str | None
    run_id: int
    attempts: int = 0
    """Runs that tried to settle it and failed."""
    refused: bool = False
    """The CRM answered ``failed`` for it (nothing was written); otherwise its outcome is
    unknown (the run stopped after journalling it)."""
    last_error: str | None = None
    """The CRM's answer to the last attempt, when it refused it."""
    action: Action | None = None
    """The write itself, to send again (None for entries journalled before schema 5)."""


@attrs.frozen
class SeenFinding:
    """A finding produced in this run, with the owner and partner the report groups by."""

    finding: Finding
    owner_id: str | None = None
    owner_name: str | None = None
    partner_id: str | None = None
    partner_name: str | None = None
    record_name: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    record_url: str | None = None
    shadow: bool = False
    """Judged under a rule in ``shadow`` mode: stored and listed, never written back."""


@attrs.frozen
class OwnerTally:
    """One owner's findings in one run, for ``tsos-rules history --by owner``. ``owner_id`` is
    ``""`` for findings on records with no owner."""

    owner_id: str
    owner_name: str | None = None
    new: int = 0
    resolved: int = 0
    open: int = 0
    open_block: int = 0


@attrs.frozen
class Pruned:
    """What a retention pass removed: run-log rows (with their per-owner counts and action
    log) and resolved findings, all older than ``before``."""

    before: str
    runs: int = 0
    owner_rows: int = 0
    actions: int = 0
    findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Push:
    """One push of a deal's close date to a later date, for the report's time chart."""

    opportunity_id: str
    changed_on: dt.date
    locked: bool
    approved: bool


_FINDING_COLUMNS = (
    "fingerprint, rule, severity, record_type, record_id, reason, message, owner_id, status, "
    "first_seen, task_id, task_status, repair_status, repair_changes, owner_name"
)


def _finding_state(row: sqlite3.Row) -> FindingState:
    changes = row["repair_changes"]
    return FindingState(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        severity=row["severity"],
        record_type=row["record_type"],
        record_id=row["record_id"],
        reason=row["reason"],
        message=row["message"],
        owner_id=row["owner_id"],
        status=row["status"],
        first_seen=row["first_seen"],
        task_id=row["task_id"],
        task_status=row["task_status"],
        repair_status=row["repair_status"],
        repair_changes=json.loads(changes) if changes else None,
        owner_name=row["owner_name"],
    )


class StateStore:
    """One state file. Each batch of a run is committed in one transaction, after its writes.

    With ``dry_run`` every change goes into one transaction that is rolled back on close, so a
    dry run sees its own would-be state (counts, resolutions) and leaves the content untouched
    (a missing file is still created, and an old one migrated).
    """

    def __init__(self, path: Path, *, dry_run: bool = False) -> None:
        self.path = path
        self.dry_run = dry_run
        opened: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = opened = sqlite3.connect(path, isolation_level=None, timeout=BUSY_SECONDS)
            self.db.row_factory = sqlite3.Row
            _switch_to_wal(self.db)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._migrate()
        except BaseException as exc:
            if opened is not None:
                opened.close()  # a refused file leaves no connection open behind it
            error = self._opening_error(exc)
            if error is exc:
                raise
            raise error from None
        if dry_run:
            self.db.execute("BEGIN IMMEDIATE")

    def _opening_error(self, exc: BaseException) -> BaseException:
        """What opening the state file failed with, in words that say what to do."""
        path = self.path
        if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
            return StateError(
                f"{path}: the state file stayed locked by another process for "
                f"{BUSY_SECONDS:.0f} s; try again when the other run has finished"
            )
        if isinstance(exc, sqlite3.DatabaseError):
            return self.damaged(exc)
        if isinstance(exc, OSError):
            return StateError(f"{path}: cannot open the state file: {exc.strerror}")
        return exc

    @property
    def lock_path(self) -> Path:
        return lock_path_for(self.path)

    def damaged(self, exc: sqlite3.DatabaseError) -> StateError:
        """The error for a state file SQLite cannot use, with the way out."""
        path = self.path
        return StateError(
            f"{path}: not a usable state file ({exc}). To recover, move it aside with its "
            f"-wal and -shm files (mv {path} {path}.damaged) and run again: the next run is a "
            "full run that rebuilds the state, and the tasks already in the CRM are found "
            "again by their fingerprint, not written twice"
        )

    def lock(self) -> RunLock:
        return RunLock(self.lock_path)

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: state schema version {current} is newer than this tsos-rules "
                f"understands ({SCHEMA_VERSION}); upgrade tsos-rules"
            )
        for version, _, sql in MIGRATIONS:
            if version <= current:
                continue
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.schema_version() >= version:  # another process migrated meanwhile
                    self.db.execute("COMMIT")
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # -- transactions ---------------------------------------------------------------------

    def _begin(self) -> None:
        if not self.dry_run:
            self.db.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        if not self.dry_run:
            self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if not self.dry_run and self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def close(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()

    # -- bulk loading -------------------------------------------------------------------

    def defer_finding_indexes(self) -> bool:
        """On a state without findings, drop the findings' secondary indexes until
        ``build_deferred_indexes``: a first full run of a big org inserts every finding, and
        keeping a dozen indexes up to date row by row cost it far more than building them once
        after (a 200k-deal first sync: state commits 15.8 -> 9.9 s, the build 2 s). The key and
        ``findings_by_record`` (each batch looks up its records' findings) stay. Each dropped
        index's definition is kept in the state, so a run that stops before the build leaves
        it to the next run. False (nothing dropped) when there are findings or in a dry run."""
        if self.dry_run or self.db.execute("SELECT 1 FROM findings LIMIT 1").fetchone():
            return False
        self._begin()
        try:
            rows = self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'findings' AND sql IS NOT NULL AND name != ? ORDER BY name",
                (_KEPT_FINDINGS_INDEX,),
            ).fetchall()
            for name, sql in rows:
                self.db.execute(
                    "INSERT OR REPLACE INTO deferred_indexes (name, sql) VALUES (?, ?)", (name, sql)
                )
                self.db.execute(f'DROP INDEX "{name}"')
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return bool(rows)

    def build_deferred_indexes(self) -> int:
        """Build the indexes ``defer_finding_indexes`` dropped (by this run or by one that
        stopped before building them); how many were built. A dry run builds none: it leaves
        the state's content as it found it."""
        if self.dry_run:
            return 0
        rows = self.db.execute("SELECT name, sql FROM deferred_indexes ORDER BY name").fetchall()
        if not rows:
            return 0
        self._begin()
        try:
            for name, sql in rows:
                if not self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
                ).fetchone():
                    self.db.execute(sql)
                self.db.execute("DELETE FROM deferred_indexes WHERE name = ?", (name,))
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return len(rows)

    # -- cursors and runs ---------------------------------------------------------------

    def cursor(self, connector: str) -> Cursor:
        row = self.db.execute(
            "SELECT watermark, last_full_as_of, config_digest FROM cursors WHERE connector = ?",
            (connector,),
        ).fetchone()
        if row is None:
            return Cursor()
        full = row["last_full_as_of"]
        return Cursor(
            row["watermark"],
            dt.date.fromisoformat(full) if full else None,
            row["config_digest"],
        )

    def start_run(
        self,
        connector: str,
        *,
        as_of: dt.date,
        mode: str,
        full: bool,
        dry_run: bool,
        watermark_from: str | None,
    ) -> int:
        """Log a new run; any earlier run still marked running died without finishing."""
        now = _now()
        self._begin()
        try:
            self.db.execute(
                "UPDATE runs SET outcome = 'interrupted', finished_at = ? "
                "WHERE connector = ? AND outcome = 'running'",
                (now, connector),
            )
            cur = self.db.execute(
                "INSERT INTO runs (connector, pid, started_at, as_of, mode, full, dry_run, "
                "watermark_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    connector,
                    os.getpid(),
                    now,
                    as_of.isoformat(),
                    mode,
                    full,
                    dry_run,
                    watermark_from,
                ),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(
        self,
        run_id: int,
        connector: str,
        *,
        outcome: str,
        exit_code: int,
        counts: Mapping[str, Any],
        error: str | None = None,
        watermark: str | None = None,
        advance: bool = False,
        full_as_of: dt.date | None = None,
        config_digest: str | None = None,
        owners: Sequence[OwnerTally] = (),
        prune_before: dt.datetime | None = None,
    ) -> Pruned | None:
        """Close the run's log entry; with ``advance``, store the new watermark (and full date).
        ``owners`` are the run's per-owner counts; with ``prune_before``, the retention pass
        runs in the same transaction (see :meth:`prune`)."""
        now = _now()
        pruned = None
        self._begin()
        try:
            self.db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, exit_code = ?, counts = ?, "
                "error = ?, watermark_to = ? WHERE id = ?",
                (now, outcome, exit_code, json.dumps(counts), error, watermark, run_id),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO run_owner_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, connector, *attrs.astuple(o)) for o in owners],
            )
            if prune_before is not None:
                pruned = self._prune(connector, prune_before, keep_run=run_id, limit=PRUNED_PER_RUN)
            if advance:
                self.db.execute(
                    "INSERT INTO cursors (connector, watermark, updated_at, config_digest) "
                    "VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (connector) DO UPDATE SET watermark = excluded.watermark, "
                    "updated_at = excluded.updated_at, config_digest = excluded.config_digest",
                    (connector, watermark, now, config_digest),
                )
                if full_as_of is not None:
                    self.db.execute(
                        "UPDATE cursors SET last_full_as_of = ?, last_full_at = ? "
                        "WHERE connector = ?",
                        (full_as_of.isoformat(), now, connector),
                    )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return pruned

    def prune(self, connector: str, before: dt.datetime) -> Pruned:
        """Remove everything older than ``before`` (``tsos-rules history --prune``), in one
        transaction; see :meth:`_prune` for what is kept."""
        self._begin()
        try:
            pruned = self._prune(connector, before, keep_run=None, limit=None)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return pruned

    def _prune(
        self, connector: str, before: dt.datetime, *, keep_run: int | None, limit: int | None
    ) -> Pruned:
        """Delete finished runs started before ``before`` (with their per-owner counts and
        action log) and findings resolved before it, the oldest first and at most ``limit``
        of each (a sync's share; the rest goes with the next runs). Never touched: open
        findings, a resolved finding with a task still open or a write still pending, one an
        exemption names, exemptions themselves (the audit trail), pending writes, the running
        run."""
        cutoff = before.astimezone(dt.UTC).isoformat(timespec="microseconds")
        db = self.db
        cap = -1 if limit is None else limit  # LIMIT -1: no limit
        kept = -1 if keep_run is None else keep_run
        ids = json.dumps(
            [
                row[0]
                for row in db.execute(
                    "SELECT id FROM runs WHERE connector = ? AND started_at < ? "
                    "AND outcome != 'running' AND id != ? ORDER BY id LIMIT ?",
                    (connector, cutoff, kept, cap),
                )
            ]
        )
        old_runs = "SELECT value FROM json_each(?)"
        owner_rows = db.execute(
            f"DELETE FROM run_owner_counts WHERE run_id IN ({old_runs})", (ids,)
        ).rowcount
        actions = db.execute(
            f"DELETE FROM actions WHERE connector = ? AND run_id IN ({old_runs})",
            (connector, ids),
        ).rowcount
        runs = db.execute(f"DELETE FROM runs WHERE id IN ({old_runs})", (ids,)).rowcount
        findings = db.execute(
            "DELETE FROM findings WHERE rowid IN (SELECT rowid FROM findings "
            "WHERE connector = ? AND status = 'resolved' "
            "AND resolved_at < ? AND coalesce(task_status, '') != 'open' "
            "AND fingerprint NOT IN (SELECT fingerprint FROM pending_writes WHERE connector = ?) "
            "AND fingerprint NOT IN (SELECT fingerprint FROM exemptions "
            "WHERE connector = ? AND fingerprint IS NOT NULL) ORDER BY resolved_at LIMIT ?)",
            (connector, cutoff, connector, connector, cap),
        ).rowcount
        return Pruned(cutoff, runs, owner_rows, actions, findings)

    def owner_history(self, connector: str, run_ids: Sequence[int]) -> dict[int, list[OwnerTally]]:
        """The per-owner counts of these runs (runs before schema 7 have none)."""
        rows = self.db.execute(
            "SELECT * FROM run_owner_counts WHERE connector = ? AND run_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY run_id, owner_id",
            (connector, json.dumps(list(run_ids))),
        ).fetchall()
        out: dict[int, list[OwnerTally]] = {run_id: [] for run_id in run_ids}
        for row in rows:
            out.setdefault(row["run_id"], []).append(
                OwnerTally(
                    row["owner_id"],
                    row["owner_name"],
                    row["new"],
                    row["resolved"],
                    row["open"],
                    row["open_block"],
                )
            )
        return out

    def open_by_owner(self, connector: str) -> dict[str, tuple[str | None, int, int]]:
        """Open findings (not shadow) per owner id (``""``: no owner): (name, open, blocks)."""
        rows = self.db.execute(
            "SELECT CASE WHEN owner_none THEN NULL ELSE owner_id END AS id, "
            "max(CASE WHEN owner_named THEN owner_name END) AS name, sum(n) AS total, "
            "sum(CASE WHEN severity = 'block' THEN n ELSE 0 END) AS blocks FROM open_tallies "
            "WHERE connector = ? AND shadow = 0 AND n > 0 GROUP BY id ORDER BY id",
            (connector,),
        ).fetchall()
        out: dict[str, tuple[str | None, int, int]] = {}
        for row in rows:
            key = row["id"] or ""
            name, n, blocks = out.get(key, (None, 0, 0))
            out[key] = (name or row["name"], n + row["total"], blocks + (row["blocks"] or 0))
        return out

    def runs(self, connector: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The run log, newest first."""
        sql = "SELECT * FROM runs"
        params: tuple[Any, ...] = ()
        if connector is not None:
            sql += " WHERE connector = ?"
            params = (connector,)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["counts"] = json.loads(item["counts"]) if item["counts"] else None
            out.append(item)
        return out

    # -- findings -----------------------------------------------------------------------

    def open_findings_for(
        self,
        connector: str,
        keys: Iterable[RecordKey],
        *,
        rules: Collection[str] | None = None,
    ) -> dict[str, FindingState]:
        """Open findings on the given records, by fingerprint; with ``rules``, only theirs (an
        aggregate's readers judged again by a few rules: most of their findings are others')."""
        by_type: dict[str, list[str]] = {}
        for record_type, record_id in keys:
            by_type.setdefault(record_type, []).append(record_id)
        # One query a record type, the ids a flat JSON list: CROSS JOIN keeps json_each
        # outside, so each record is one look-up in findings_by_record instead of a scan of
        # every open finding (and no [type, id] pair is parsed again per row).
        columns = ", ".join(f"f.{c.strip()}" for c in _FINDING_COLUMNS.split(","))
        sql = (
            f"SELECT {columns} FROM json_each(?) AS j CROSS JOIN findings AS f "
            "WHERE f.connector = ? AND f.record_type = ? AND f.record_id = j.value "
            "AND f.status = 'open'"
        )
        if rules is not None:
            sql += " AND f.rule IN (SELECT value FROM json_each(?))"
        wanted = (json.dumps(sorted(rules)),) if rules is not None else ()
        rows: list[Any] = []
        for record_type, ids in sorted(by_type.items()):
            rows += self.db.execute(sql, (json.dumps(ids), connector, record_type, *wanted))
        return {row["fingerprint"]: _finding_state(row) for row in rows}

    def findings(
        self, connector: str, *, status: str | None = None, record_id: str | None = None
    ) -> list[FindingState]:
        """Findings of a connector (for reports and tests), optionally filtered."""
        sql = f"SELECT {_FINDING_COLUMNS} FROM findings WHERE connector = ?"
        params: list[Any] = [connector]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if record_id is not None:
            sql += " AND record_id = ?"
            params.append(record_id)
        rows = self.db.execute(sql + " ORDER BY record_type, record_id, rule, reason", params)
        return [_finding_state(row) for row in rows]

    def findings_by_fingerprint(
        self, connector: str, fingerprints: Iterable[str]
    ) -> dict[str, FindingState]:
        """The stored findings (open or resolved) with these fingerprints."""
        wanted = sorted(set(fingerprints))
        if not wanted:
            return {}
        rows = self.db.execute(
            f"SELECT {_FINDING_COLUMNS} FROM findings WHERE connector = ? "
            "AND fingerprint IN (SELECT value FROM json_each(?))",
            (connector, json.dumps(wanted)),
        ).fetchall()
        return {row["fingerprint"]: _finding_state(row) for row in rows}

    def unseen_open(
        self, connector: str, run_id: int, *, exclude: frozenset[RecordKey], chunk: int = 2000
    ) -> Iterator[list[FindingState]]:
        """Open findings this (full) run did not see again: their records are gone or clean."""
        last = ""
        while True:
            rows = self.db.execute(
                f"SELECT {_FINDING_COLUMNS} FROM findings WHERE connector = ? AND status = 'open' "
                "AND last_run < ? AND fingerprint > ? ORDER BY fingerprint LIMIT ?",
                (connector, run_id, last, chunk),
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["fingerprint"]
            states = [_finding_state(row) for row in rows]
            kept = [s for s in states if s.record_key not in exclude]
            if kept:
                yield kept

    # -- write-ahead journal ----------------------------------------------------------------

    def journal(self, connector: str, run_id: int, actions: Sequence[Action]) -> None:
        """Record ``actions`` as pending and commit, durably, *before* they are sent to the CRM.

        This commit is synced to disk even with ``synchronous=NORMAL`` (a power cut must not
        lose an entry whose write reached the CRM). An entry for the same (finding, kind) left
        by an earlier run is taken over by this run (keeping its count of failed attempts)."""
        if not actions:
            return
        now = _now()
        db = self.db
        full = not self.dry_run and not db.in_transaction
        if full:
            db.execute("PRAGMA synchronous=FULL")
        try:
            self._begin()
            try:
                db.executemany(
                    "INSERT INTO pending_writes (connector, fingerprint, kind, record_type, "
                    "record_id, rule, owner_id, run_id, planned_at, action) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (connector, fingerprint, kind) DO UPDATE SET "
                    "record_type = excluded.record_type, record_id = excluded.record_id, "
                    "rule = excluded.rule, owner_id = excluded.owner_id, "
                    "run_id = excluded.run_id, planned_at = excluded.planned_at, "
                    "action = excluded.action, refused = 0",
                    [
                        (
                            connector,
                            a.fingerprint,
                            a.kind.value,
                            a.record_type,
                            a.record_id,
                            a.rule,
                            a.owner_id,
                            run_id,
                            now,
                            _action_json(a),
                        )
                        for a in actions
                    ],
                )
                self._commit()
            except BaseException:
                self._rollback()
                raise
        finally:
            if full:
                db.execute("PRAGMA synchronous=NORMAL")

    def pending_writes(
        self,
        connector: str,
        *,
        before_run: int | None = None,
        fingerprints: Iterable[str] | None = None,
    ) -> list[PendingWrite]:
        """Journalled writes not settled yet (with ``before_run``: those left by earlier runs;
        with ``fingerprints``: those of these findings), in the order they were planned."""
        sql = (
            "SELECT fingerprint, kind, record_type, record_id, rule, owner_id, run_id, "
            "attempts, refused, last_error, action FROM pending_writes WHERE connector = ?"
        )
        params: tuple[Any, ...] = (connector,)
        if before_run is not None:
            sql += " AND run_id < ?"
            params += (before_run,)
        if fingerprints is not None:
            sql += " AND fingerprint IN (SELECT value FROM json_each(?))"
            params += (json.dumps(sorted(set(fingerprints))),)
        rows = self.db.execute(sql + " ORDER BY planned_at, fingerprint, kind", params)
        return [
            PendingWrite(
                fingerprint=row["fingerprint"],
                kind=ActionKind(row["kind"]),
                record_type=row["record_type"],
                record_id=row["record_id"],
                rule=row["rule"],
                owner_id=row["owner_id"],
                run_id=row["run_id"],
                attempts=row["attempts"],
                refused=bool(row["refused"]),
                last_error=row["last_error"],
                action=_action_from_json(row["action"]),
            )
            for row in rows
        ]

    def pending_count(self, connector: str) -> int:
        """Writes still pending: refused by the CRM, or journalled by a run that stopped."""
        sql = "SELECT count(*) FROM pending_writes WHERE connector = ?"
        return int(self.db.execute(sql, (connector,)).fetchone()[0])

    def commit_batch(
        self,
        connector: str,
        run_id: int,
        *,
        seen: Sequence[SeenFinding] = (),
        resolved: Sequence[str] = (),
        results: Sequence[tuple[ActionResult, Mapping[str, Any] | None]] = (),
        pushes: tuple[Sequence[str], Sequence[Push]] | None = None,
        settled: Sequence[tuple[str, ActionKind]] = (),
        retried: Sequence[str] = (),
        refused: Sequence[tuple[str, ActionKind, str | None]] = (),
        abandoned: Sequence[tuple[str, ActionKind, str]] = (),
        full: bool = True,
    ) -> None:
        """Record one batch in one transaction: findings seen, findings resolved, the results
        of the writes already made for them, the judged deals' close-date pushes, the journal
        entries (fingerprint, kind) those results settle, the fingerprints whose journal
        entries a failed write leaves pending for another attempt (one more attempt counted), the
        entries the CRM refused (fingerprint, kind, error: marked as refused) and the entries
        given up (fingerprint, kind, why: logged as ``abandoned`` actions, then dropped).

        A ``full`` run marks every finding it sees with its run (``unseen_open`` resolves the
        others). An incremental run has nothing to mark: a finding it sees stored as it is now
        is not written at all, and one whose text changed gets its text alone."""
        now = _now()
        db = self.db
        self._begin()
        try:
            stored = self._stored(connector, [s.finding.fingerprint for s in seen] + list(resolved))
            kept = [s for s in seen if _as_stored(stored.get(s.finding.fingerprint), s)]
            done = {s.finding.fingerprint for s in kept}
            # a kept finding counts as it did: its tally key is made of the columns it keeps
            self._tally(
                connector,
                [s for s in seen if s.finding.fingerprint not in done],
                resolved,
                {fp: row for fp, row in stored.items() if fp not in done},
            )
            if kept:
                seen = [s for s in seen if s.finding.fingerprint not in done]
                # Only the columns no index holds (and, in a full run, last_run): the full
                # upsert rewrites every index entry of the row, several times the cost on a big
                # state. An incremental run writes only the rows whose text differs, most of
                # what it sees being as stored: SQLite compares them where they lie, and a row
                # the condition leaves out is not written at all.
                mark = ", last_run = ?" if full else ""
                unchanged = (
                    ""
                    if full
                    else " AND (message IS NOT ? OR details IS NOT ? OR record_name IS NOT ? "
                    "OR record_url IS NOT ?)"
                )
                texts = [(s, _details(s.finding)) for s in kept]
                db.executemany(
                    "UPDATE findings SET message = ?, details = ?, record_name = ?, "
                    f"record_url = ?, last_seen = ?{mark} "
                    f"WHERE connector = ? AND fingerprint = ?{unchanged}",
                    [
                        (
                            s.finding.message,
                            details,
                            s.record_name,
                            s.record_url,
                            now,
                            *((run_id,) if full else ()),
                            connector,
                            s.finding.fingerprint,
                            *(
                                ()
                                if full
                                else (s.finding.message, details, s.record_name, s.record_url)
                            ),
                        )
                        for s, details in texts
                    ],
                )
            db.executemany(
                "INSERT INTO findings (connector, fingerprint, rule, severity, record_type, "
                "record_id, reason, message, details, owner_id, owner_name, partner_id, "
                "partner_name, record_name, account_id, account_name, record_url, shadow, status, "
                "first_seen, last_seen, last_run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?) "
                "ON CONFLICT (connector, fingerprint) DO UPDATE SET "
                "severity = excluded.severity, message = excluded.message, "
                "details = excluded.details, owner_id = excluded.owner_id, "
                "owner_name = excluded.owner_name, partner_id = excluded.partner_id, "
                "partner_name = excluded.partner_name, record_name = excluded.record_name, "
                "account_id = excluded.account_id, account_name = excluded.account_name, "
                "record_url = excluded.record_url, shadow = excluded.shadow, "
                "last_seen = excluded.last_seen, "
                "last_run = excluded.last_run, "
                "reopened = reopened + (status = 'resolved'), "
                "resolved_at = NULL, status = 'open'",
                [
                    (
                        connector,
                        s.finding.fingerprint,
                        s.finding.rule,
                        s.finding.severity.value,
                        s.finding.record_type,
                        s.finding.record_id,
                        s.finding.reason,
                        s.finding.message,
                        _details(s.finding),
                        s.owner_id,
                        s.owner_name,
                        s.partner_id,
                        s.partner_name,
                        s.record_name,
                        s.account_id,
                        s.account_name,
                        s.record_url,
                        s.shadow,
                        now,
                        now,
                        run_id,
                    )
                    for s in seen
                ],
            )
            db.executemany(
                "UPDATE findings SET status = 'resolved', resolved_at = ?, last_run = ? "
                "WHERE connector = ? AND fingerprint = ? AND status = 'open'",
                [(now, run_id, connector, fingerprint) for fingerprint in resolved],
            )
            self._record_results(connector, run_id, now, results)
            db.executemany(
                "DELETE FROM pending_writes WHERE connector = ? AND fingerprint = ? AND kind = ?",
                [(connector, fingerprint, kind.value) for fingerprint, kind in settled],
            )
            db.executemany(
                "UPDATE pending_writes SET attempts = attempts + 1 "
                "WHERE connector = ? AND fingerprint = ?",
                [(connector, fingerprint) for fingerprint in retried],
            )
            db.executemany(
                "UPDATE pending_writes SET refused = 1, "
                "last_error = ? WHERE connector = ? AND fingerprint = ? AND kind = ?",
                [(error, connector, fp, kind.value) for fp, kind, error in refused],
            )
            for fingerprint, kind, why in abandoned:
                db.execute(
                    "INSERT INTO actions (run_id, connector, fingerprint, kind, status, error, "
                    "at) VALUES (?, ?, ?, ?, 'abandoned', ?, ?)",
                    (run_id, connector, fingerprint, kind.value, why, now),
                )
                db.execute(
                    "DELETE FROM pending_writes "
                    "WHERE connector = ? AND fingerprint = ? AND kind = ?",
                    (connector, fingerprint, kind.value),
                )
            if pushes is not None:
                self._replace_pushes(connector, *pushes)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _stored(self, connector: str, fingerprints: Sequence[str]) -> dict[str, sqlite3.Row]:
        """The stored rows (open or resolved) of these findings, by fingerprint: the columns a
        commit compares and counts by."""
        if not fingerprints:
            return {}
        rows = self.db.execute(
            f"SELECT fingerprint, status, resolved_at, {_tallies.COLUMNS}, account_id, "
            "account_name FROM findings WHERE connector = ? "
            "AND fingerprint IN (SELECT value FROM json_each(?))",
            (connector, json.dumps(sorted(set(fingerprints)))),
        )
        return {row["fingerprint"]: row for row in rows}

    def _tally(
        self,
        connector: str,
        seen: Sequence[SeenFinding],
        resolved: Sequence[str],
        rows: Mapping[str, sqlite3.Row],
    ) -> None:
        """Move the open tallies by what this commit does to the findings (``rows``: as they
        are stored): the seen ones are stored open (keeping a stored finding's rule), then the
        resolved ones close."""
        before = {
            fp: _tallies.key_of(*(row[c] for c in _tallies.KEY_COLUMNS))
            for fp, row in rows.items()
            if row["status"] == "open"
        }
        after = dict(before)
        for s in seen:
            row = rows.get(s.finding.fingerprint)
            after[s.finding.fingerprint] = _tallies.key_of(
                connector,
                s.shadow,
                s.finding.rule if row is None else row["rule"],
                s.finding.severity.value,
                s.owner_id,
                s.owner_name,
                s.partner_id,
                s.partner_name,
            )
        for fingerprint in resolved:
            after.pop(fingerprint, None)
        delta = collections.Counter(after.values())
        delta.subtract(before.values())
        _tallies.move(self.db, delta)

    def recount(self, connector: str) -> None:
        """Count the open findings and pushes again from the tables (``tallies.recount``)."""
        self._begin()
        try:
            _tallies.recount(self.db, connector)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _replace_pushes(
        self, connector: str, opportunity_ids: Sequence[str], pushes: Sequence[Push]
    ) -> None:
        """Make the stored close-date pushes of these deals ``pushes``, touching only those that
        differ: most are as stored, and each row written also moves the monthly tallies."""
        wanted = collections.Counter(
            (p.opportunity_id, p.changed_on.isoformat(), int(p.locked), int(p.approved))
            for p in pushes
        )
        gone: list[int] = []
        removed: list[tuple[str, int, int]] = []
        for rowid, *push in self.db.execute(
            "SELECT rowid, opportunity_id, changed_on, locked, approved FROM close_date_pushes "
            "WHERE connector = ? AND opportunity_id IN (SELECT value FROM json_each(?))",
            (connector, json.dumps(list(opportunity_ids))),
        ):
            key = tuple(push)
            if wanted[key] > 0:
                wanted[key] -= 1
            else:
                gone.append(rowid)
                removed.append(key[1:])
        if gone:
            self.db.execute(
                "DELETE FROM close_date_pushes WHERE rowid IN (SELECT value FROM json_each(?))",
                (json.dumps(gone),),
            )
        added = list(wanted.elements())
        self.db.executemany(
            "INSERT INTO close_date_pushes VALUES (?, ?, ?, ?, ?)",
            [(connector, *push) for push in added],
        )
        _tallies.move_pushes(self.db, connector, [push[1:] for push in added], removed)

    def _record_results(
        self,
        connector: str,
        run_id: int,
        now: str,
        results: Sequence[tuple[ActionResult, Mapping[str, Any] | None]],
    ) -> None:
        """Log every result in ``actions`` and record what it did on its finding, in the
        results' order (a task closed then opened again for one finding ends open), with one
        statement per run of results of the same kind."""
        db = self.db
        db.executemany(
            "INSERT INTO actions (run_id, connector, fingerprint, kind, status, crm_id, error, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    connector,
                    result.fingerprint,
                    result.kind.value,
                    result.status.value,
                    result.crm_id,
                    result.error,
                    now,
                )
                for result, _ in results
            ],
        )
        updates: list[tuple[str, tuple[Any, ...]]] = []
        for result, changes in results:
            update = _finding_update(connector, now, result, changes)
            if update is not None:
                updates.append(update)
        for sql, group in itertools.groupby(updates, key=lambda update: update[0]):
            db.executemany(sql, [params for _, params in group])

    # -- reporting ----------------------------------------------------------------------

    def open_counts(self, connector: str, by: str) -> list[tuple[str, str, int]]:
        """Open findings counted by ``rule``, ``owner`` or ``partner``: (key, label, count)."""
        if by not in _TALLY_KEYS:
            raise ConfigError(f"open_counts: by must be rule, owner or partner, not {by!r}")
        rows = self.db.execute(
            f"SELECT {_TALLY_KEYS[by]} AS k, max({_TALLY_LABELS[by]}) AS label, "
            "sum(n) AS total FROM open_tallies WHERE connector = ? AND shadow = 0 AND n > 0 "
            "GROUP BY k ORDER BY total DESC, k",
            (connector,),
        ).fetchall()
        return [(row["k"], row["label"], row["total"]) for row in rows]

    def open_counts_by_severity(self, connector: str, by: str) -> list[tuple[str, str, str, int]]:
        """Open findings counted by ``owner`` or ``partner`` and severity, for the report's
        stacked bars: (key, label, severity, count)."""
        if by not in ("owner", "partner"):
            raise ConfigError(f"open_counts_by_severity: by must be owner or partner, not {by!r}")
        rows = self.db.execute(
            f"SELECT {_TALLY_KEYS[by]} AS k, max({_TALLY_LABELS[by]}) AS label, severity, "
            "sum(n) AS total FROM open_tallies WHERE connector = ? AND shadow = 0 AND n > 0 "
            "GROUP BY k, severity ORDER BY k, severity",
            (connector,),
        ).fetchall()
        return [(row["k"], row["label"], row["severity"], row["total"]) for row in rows]

    def open_count(self, connector: str, *, severity: str | None = None) -> int:
        sql = "SELECT coalesce(sum(n), 0) FROM open_tallies WHERE connector = ? AND shadow = 0"
        params: tuple[Any, ...] = (connector,)
        if severity is not None:
            sql += " AND severity = ?"
            params += (severity,)
        return int(self.db.execute(sql, params).fetchone()[0])

    def forget(self, connector: str) -> None:
        """Drop a connector's findings, pushes, watermark and journal (its CRM was re-seeded)."""
        self._begin()
        try:
            for table in (
                "findings",
                "close_date_pushes",
                "cursors",
                "actions",
                "pending_writes",
                "rule_texts",
                "exemptions",
                "aggregate_shares",
                "aggregate_sets",
                "aggregate_bounds",
                "open_tallies",
                "push_months",
            ):
                self.db.execute(f"DELETE FROM {table} WHERE connector = ?", (connector,))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    # -- the packs' aggregates ---------------------------------------------------------------

    def aggregate_digest(self, connector: str) -> str | None:
        """Which aggregates the stored shares were read for (None: none were stored)."""
        row = self.db.execute(
            "SELECT digest FROM aggregate_sets WHERE connector = ?", (connector,)
        ).fetchone()
        return str(row[0]) if row else None

    def aggregate_shares(self, connector: str) -> Iterator[tuple[str, str, float]]:
        """Every stored share as ``(aggregate, key, value)``, streamed."""
        yield from self.db.execute(
            "SELECT aggregate, key, value FROM aggregate_shares WHERE connector = ?",
            (connector,),
        )

    def aggregate_shares_of(
        self, connector: str, refs: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[str, float]]:
        """The stored shares of ``(aggregate, record type, record id)`` refs: ``(key, value)``."""
        ids: dict[tuple[str, str], list[str]] = {}
        for aggregate, record_type, record_id in refs:
            ids.setdefault((aggregate, record_type), []).append(record_id)
        out: dict[tuple[str, str, str], tuple[str, float]] = {}
        for (aggregate, record_type), record_ids in ids.items():
            for start in range(0, len(record_ids), 5000):
                for row in self.db.execute(
                    "SELECT record_id, key, value FROM aggregate_shares WHERE connector = ? "
                    "AND aggregate = ? AND record_type = ? "
                    "AND record_id IN (SELECT value FROM json_each(?))",
                    (
                        connector,
                        aggregate,
                        record_type,
                        json.dumps(record_ids[start : start + 5000]),
                    ),
                ):
                    out[(aggregate, record_type, row[0])] = (row[1], row[2])
        return out

    def aggregate_adders(self, connector: str, aggregate: str, keys: Iterable[str]) -> list[str]:
        """Ids of the records whose stored share adds to one of ``keys`` of ``aggregate``."""
        return [
            str(row[0])
            for row in self.db.execute(
                "SELECT record_id FROM aggregate_shares WHERE connector = ? AND aggregate = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (connector, aggregate, json.dumps(sorted(keys))),
            )
        ]

    def aggregate_bounds(
        self, connector: str, aggregate: str, keys: Iterable[str]
    ) -> dict[str, float]:
        """The stored bound of each of ``keys`` that has one: the total above which one of its
        readers without a finding would get one (``Aggregate.flags_above``)."""
        return {
            str(row[0]): float(row[1])
            for row in self.db.execute(
                "SELECT key, bound FROM aggregate_bounds WHERE connector = ? AND aggregate = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (connector, aggregate, json.dumps(sorted(keys))),
            )
        }

    def save_aggregate_bounds(
        self,
        connector: str,
        aggregate: str,
        *,
        exact: Mapping[str, float],
        lowered: Mapping[str, float],
        forgotten: Collection[str] = (),
        replace: bool,
    ) -> None:
        """Store the bounds of keys whose every reader was judged (``exact``), lower those of
        keys only some of whose readers were (``lowered``; a key without a stored bound keeps
        none) and drop those of ``forgotten``. ``replace`` drops every other stored bound of
        ``aggregate``."""
        self._begin()
        try:
            db = self.db
            if replace:
                db.execute(
                    "DELETE FROM aggregate_bounds WHERE connector = ? AND aggregate = ?",
                    (connector, aggregate),
                )
            db.execute(
                "DELETE FROM aggregate_bounds WHERE connector = ? AND aggregate = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (connector, aggregate, json.dumps(sorted(forgotten))),
            )
            db.executemany(
                "UPDATE aggregate_bounds SET bound = min(bound, ?) "
                "WHERE connector = ? AND aggregate = ? AND key = ?",
                [(value, connector, aggregate, key) for key, value in lowered.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO aggregate_bounds VALUES (?, ?, ?, ?)",
                [(connector, aggregate, key, value) for key, value in exact.items()],
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def forget_aggregate_bounds(self, connector: str) -> None:
        """Drop every stored bound: after a run that did not finish, the stored findings may
        have been judged with totals the bounds were not kept for."""
        self._begin()
        try:
            self.db.execute("DELETE FROM aggregate_bounds WHERE connector = ?", (connector,))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def open_finding_records(
        self,
        connector: str,
        record_type: str,
        rules: Iterable[str],
        *,
        scope: tuple[str, Iterable[str]] | None = None,
    ) -> list[str]:
        """Ids of the ``record_type`` records holding an open finding of one of ``rules``;
        with ``scope`` (``("partner_id", ids)``: owner_id, partner_id or account_id), only
        the findings stored with one of those ids there.

        Driven by the rules (``CROSS JOIN`` keeps that order): left to itself, SQLite walked
        every open finding of the record type (2.8 s at a million deals, against 0.2 s)."""
        sql = (
            "SELECT DISTINCT f.record_id FROM json_each(?) AS r CROSS JOIN findings AS f "
            "WHERE f.connector = ? AND f.rule = r.value AND f.status = 'open' "
            "AND f.record_type = ?"
        )
        params: list[Any] = [json.dumps(sorted(rules)), connector, record_type]
        if scope is not None:
            column, ids = scope
            if column not in _SCOPE_COLUMNS:
                raise ValueError(f"not a finding's scope column: {column!r}")
            sql += f" AND f.{column} IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(ids)))
        return [str(row[0]) for row in self.db.execute(sql + " ORDER BY f.record_id", params)]

    def open_findings_scoped(
        self,
        connector: str,
        record_type: str,
        rules: Mapping[str, str],
        column: str,
        ids: Iterable[str],
    ) -> list[tuple[FindingState, SeenFinding]]:
        """The open findings of ``rules`` (id: doctrine) on ``record_type`` records stored with
        one of ``ids`` in ``column`` (owner_id, partner_id or account_id), each as its state
        and as it was last seen (its details, names and link)."""
        if column not in _SCOPE_COLUMNS:
            raise ValueError(f"not a finding's scope column: {column!r}")
        columns = ", ".join(f"f.{c.strip()}" for c in _FINDING_COLUMNS.split(","))
        rows = self.db.execute(
            f"SELECT {columns}, f.details, f.partner_id, f.partner_name, f.record_name, "
            "f.account_id, f.account_name, f.record_url, f.shadow "
            "FROM json_each(?) AS r CROSS JOIN findings AS f "
            "WHERE f.connector = ? AND f.rule = r.value AND f.status = 'open' "
            f"AND f.record_type = ? AND f.{column} IN (SELECT value FROM json_each(?)) "
            "ORDER BY f.record_id, f.fingerprint",
            (json.dumps(sorted(rules)), connector, record_type, json.dumps(sorted(ids))),
        )
        found = []
        for row in rows:
            state = _finding_state(row)
            details = row["details"]
            finding = state.finding(
                doctrine=rules.get(state.rule, ""),
                details=json.loads(details) if details else None,
            )
            seen = SeenFinding(
                finding,
                state.owner_id,
                state.owner_name,
                row["partner_id"],
                row["partner_name"],
                record_name=row["record_name"],
                account_id=row["account_id"],
                account_name=row["account_name"],
                record_url=row["record_url"],
                shadow=bool(row["shadow"]),
            )
            found.append((state, seen))
        return found

    def last_run_finished(self, connector: str, before_run: int) -> bool:
        """Whether the run logged last before ``before_run`` finished (not failed, stopped)."""
        row = self.db.execute(
            "SELECT outcome FROM runs WHERE connector = ? AND id < ? ORDER BY id DESC LIMIT 1",
            (connector, before_run),
        ).fetchone()
        return row is not None and row[0] == "ok"

    def save_aggregate_shares(
        self,
        connector: str,
        digest: str,
        shares: Mapping[tuple[str, str, str], tuple[str, float] | None],
        *,
        replace: bool,
    ) -> None:
        """Store records' shares (None: the record adds nothing now); ``replace`` drops every
        share stored before (a full read's shares are all of them)."""
        self._begin()
        try:
            db = self.db
            if replace:
                db.execute("DELETE FROM aggregate_shares WHERE connector = ?", (connector,))
            db.executemany(
                "DELETE FROM aggregate_shares WHERE connector = ? AND aggregate = ? "
                "AND record_type = ? AND record_id = ?",
                [(connector, *ref) for ref, share in shares.items() if share is None],
            )
            db.executemany(
                "INSERT OR REPLACE INTO aggregate_shares VALUES (?, ?, ?, ?, ?, ?)",
                [(connector, *ref, *share) for ref, share in shares.items() if share is not None],
            )
            db.execute("INSERT OR REPLACE INTO aggregate_sets VALUES (?, ?)", (connector, digest))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def open_by_rule_severity(self, connector: str) -> dict[str, tuple[str, int]]:
        rows = self.db.execute(
            "SELECT rule, max(severity) AS severity, sum(n) AS total FROM open_tallies "
            "WHERE connector = ? AND shadow = 0 AND n > 0 GROUP BY rule",
            (connector,),
        ).fetchall()
        return {row["rule"]: (row["severity"], row["total"]) for row in rows}

    def pushes_by_month(self, connector: str) -> list[tuple[str, int, int]]:
        """Close-date pushes per month: (YYYY-MM, all pushes, unapproved pushes on locked deals)."""
        rows = self.db.execute(
            "SELECT month, n, bad FROM push_months WHERE connector = ? AND n > 0 ORDER BY month",
            (connector,),
        ).fetchall()
        return [(row["month"], row["n"], row["bad"] or 0) for row in rows]

    # -- the admin's worklist and exemptions ---------------------------------------------

    def save_rule_texts(self, connector: str, texts: Mapping[str, tuple[str, str, str]]) -> None:
        """The loaded rules' (title, doctrine, remediation), for the worklist's "what to do"."""
        self._begin()
        try:
            self.db.executemany(
                "INSERT INTO rule_texts VALUES (?, ?, ?, ?, ?) ON CONFLICT (connector, rule) "
                "DO UPDATE SET title = excluded.title, doctrine = excluded.doctrine, "
                "remediation = excluded.remediation",
                [(connector, rule, *text) for rule, text in sorted(texts.items())],
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def worklist(
        self, connector: str, query: _worklist.WorklistQuery, *, now: dt.datetime | None = None
    ) -> list[_worklist.WorklistRow]:
        """The stored findings ``query`` selects (see :mod:`.worklist`)."""
        now = now or dt.datetime.now(dt.UTC)
        exempt = self.exempt_open(connector, now.date())
        return _worklist.query(self.db, connector, query, now=now, exempt=exempt)

    def add_exemption(
        self,
        connector: str,
        *,
        rule: str,
        record_type: str,
        record_id: str,
        reason: str,
        approver: str,
        expires: dt.date,
        fingerprint: str | None = None,
        account_id: str | None = None,
        partner_id: str | None = None,
    ) -> int:
        """Store an exemption from ``tsos-rules exempt add`` (one finding, a rule on one
        record, or a rule on every record of an account or a partner)."""
        self._begin()
        try:
            new = _exemptions.add(
                self.db,
                connector,
                fingerprint=fingerprint,
                rule=rule,
                record_type=record_type,
                record_id=record_id,
                reason=reason,
                approver=approver,
                expires=expires,
                now=_now(),
                account_id=account_id,
                partner_id=partner_id,
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return new

    def exemptions(self, connector: str) -> list[Exemption]:
        """Every exemption of a connector, active, expired or revoked (the audit trail)."""
        return _exemptions.listed(self.db, connector)

    def revoke_exemption(self, connector: str, exemption_id: int, *, by: str) -> None:
        self._begin()
        try:
            _exemptions.revoke(self.db, connector, exemption_id, by, _now())
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def active_exemptions(self, connector: str, today: dt.date) -> list[Exemption]:
        return _exemptions.active(self.db, connector, today)

    def exempt_open(self, connector: str, today: dt.date) -> dict[str, int]:
        """Open findings under an active exemption: fingerprint -> exemption id."""
        return _exemptions.covered(self.db, connector, self.active_exemptions(connector, today))

    def lapsed_exemptions(self, connector: str, today: dt.date) -> list[Exemption]:
        """Expired or revoked exemptions whose findings the sync has not reopened yet."""
        return _exemptions.lapsed_unsettled(self.db, connector, today)

    def lapsed_findings(
        self, connector: str, lapsed: Sequence[Exemption]
    ) -> dict[str, FindingState]:
        """The open findings a lapsed exemption covered, by fingerprint."""
        waived = _exemptions.covered(self.db, connector, lapsed)
        return self.findings_by_fingerprint(connector, waived)

    def mirror_exemptions(
        self,
        connector: str,
        source: str,
        wanted: Sequence[Exemption],
        *,
        scope: Iterable[RecordKey] | None = None,
    ) -> tuple[int, int]:
        """Make the active exemptions of ``source`` (config or crm) the ``wanted`` ones: add
        those not stored (by ``source_key``), revoke those gone. ``scope``: only the stored ones
        on these records are compared (a CRM batch), else all of the source. Returns (added,
        revoked); the audit trail keeps both."""
        now = _now()
        self._begin()
        try:
            stored = [
                e
                for e in _exemptions.listed(self.db, connector)
                if e.source == source and e.revoked_at is None
            ]
            if scope is not None:
                keys = set(scope)
                stored = [e for e in stored if (e.record_type, e.record_id) in keys]
            have = {e.source_key: e for e in stored}
            keep = {e.source_key for e in wanted}
            added = 0
            for e in wanted:
                if e.source_key in have:
                    continue
                _exemptions.add(
                    self.db,
                    connector,
                    fingerprint=None,
                    rule=e.rule,
                    record_type=e.record_type,
                    record_id=e.record_id,
                    reason=e.reason,
                    approver=e.approver,
                    expires=e.expires,
                    now=now,
                    source=source,
                    account_id=e.account_id,
                    partner_id=e.partner_id,
                    source_key=e.source_key,
                )
                added += 1
            gone = [e for key, e in have.items() if key not in keep]
            for e in gone:
                _exemptions.revoke(self.db, connector, e.id, f"{source}: removed", now)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return added, len(gone)

    def settle_exemptions(self, ids: Iterable[int]) -> None:
        self._begin()
        try:
            _exemptions.mark_settled(self.db, ids)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def shadow_count(self, connector: str) -> int:
        return int(
            self.db.execute(
                "SELECT coalesce(sum(n), 0) FROM open_tallies WHERE connector = ? AND shadow = 1",
                (connector,),
            ).fetchone()[0]
        )


#: The open tallies' (migration 10) key and label columns by what open findings are counted
#: by: the findings' ``coalesce(id, '')`` and ``max(coalesce(name, id, ''))``.
_TALLY_KEYS = {"rule": "rule", "owner": "owner_id", "partner": "partner_id"}
_TALLY_LABELS = {
    "rule": "rule",
    "owner": "CASE WHEN owner_named THEN owner_name ELSE owner_id END",
    "partner": "partner_label",
}


def _details(finding: Finding) -> str | None:
    return json.dumps(dict(finding.details), default=str) if finding.details else None


def _as_stored(row: sqlite3.Row | None, seen: SeenFinding) -> bool:
    """Whether a seen finding is stored open with every indexed column as it is now, so only
    its text and last run need writing."""
    return (
        row is not None
        and row["status"] == "open"
        and row["resolved_at"] is None
        and row["severity"] == seen.finding.severity.value
        and row["shadow"] == int(seen.shadow)
        and row["owner_id"] == seen.owner_id
        and row["owner_name"] == seen.owner_name
        and row["partner_id"] == seen.partner_id
        and row["partner_name"] == seen.partner_name
        and row["account_id"] == seen.account_id
        and row["account_name"] == seen.account_name
    )


def lock_path_for(state_path: Path) -> Path:
    """The run lock's file, beside the state file (taken before the state is opened)."""
    return state_path.with_name(state_path.name + ".lock")


_TASK_OPENED = (
    "UPDATE findings SET task_id = ?, task_status = 'open' WHERE connector = ? AND fingerprint = ?"
)
_TASK_CLOSED = (
    "UPDATE findings SET task_status = 'closed', task_id = coalesce(task_id, ?) "
    "WHERE connector = ? AND fingerprint = ?"
)
_REPAIRED = (
    "UPDATE findings SET repair_status = ?, repair_at = ?, repair_changes = ? "
    "WHERE connector = ? AND fingerprint = ?"
)


def _finding_update(
    connector: str, now: str, result: ActionResult, changes: Mapping[str, Any] | None
) -> tuple[str, tuple[Any, ...]] | None:
    """The statement recording what a write did on its finding (None: nothing to record)."""
    done = result.status in (ActionStatus.WRITTEN, ActionStatus.ALREADY_DONE)
    key = (connector, result.fingerprint)
    if result.kind is ActionKind.CREATE_TASK and done:
        return _TASK_OPENED, (result.crm_id, *key)
    if result.kind is ActionKind.CLOSE_TASK and done:
        return _TASK_CLOSED, (result.crm_id, *key)
    if result.kind is ActionKind.UPDATE_FIELDS:
        repaired = json.dumps(dict(changes or {}), default=str)
        return _REPAIRED, (result.status.value, now, repaired, *key)
    return None


#: Every field of an action, in declaration order: what the journal stores.
_ACTION_FIELDS = tuple(field.name for field in attrs.fields(Action))

#: Dates, times and dataclasses go through ``default=str``, as with ``json.dumps``.
_ORJSON_AS_STR = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _action_json(action: Action) -> str:
    """An action as the journal stores it (``kind`` by value; anything else JSON cannot hold,
    such as a date, as its ``str``), read back by ``_action_from_json``."""
    data = {name: getattr(action, name) for name in _ACTION_FIELDS}
    data["kind"] = action.kind.value
    data["changes"] = dict(action.changes)
    try:
        return orjson.dumps(data, default=str, option=_ORJSON_AS_STR).decode()
    except orjson.JSONEncodeError:  # what orjson refuses (an int over 64 bits, a NaN key)
        return json.dumps(data, default=str)


def _action_from_json(raw: str | None) -> Action | None:
    if not raw:
        return None
    data = json.loads(raw)
    data["kind"] = ActionKind(data["kind"])
    return Action(**data)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


#: What one sync's retention pass removes at most (of runs, and of resolved findings): the
#: first sync after years without pruning must not hold its transaction for minutes; the
#: rest goes with the next runs (``tsos-rules history --prune`` removes everything at once).
PRUNED_PER_RUN = 20_000

#: Pages the write-ahead log holds before a commit copies them into the database (SQLite's
#: default is 1,000: a batch's commit is larger, so every commit paid a checkpoint and its
#: fsync). Durability does not depend on it: see docs/sync.md, *Crash safety*.
WAL_CHECKPOINT_PAGES = 16_384
#: The findings index a first full run keeps while it writes: each batch reads by it.
_KEPT_FINDINGS_INDEX = "findings_by_record"

#: How long opening the state waits for another process that holds it.
BUSY_SECONDS = 30.0
#: The columns holding the owner, partner and account a finding was stored with.
_SCOPE_COLUMNS = frozenset({"owner_id", "partner_id", "account_id"})


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, retried while other processes switch the same new file:
    SQLite can answer "database is locked" at once there, without waiting for the busy
    timeout."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
