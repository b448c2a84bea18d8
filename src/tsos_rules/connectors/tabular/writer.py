"""Writes findings back: tasks or outbox rows keyed on the finding's fingerprint, and repairs
that apply only while the record is still at the version that was read.

A task row is the finding's fingerprint plus what a person needs to act (record, owner,
subject, rule, due date); creating it twice finds the first and answers ``already_done``. A
repair updates the row only where its version (or modified-time) column still holds what was
read: otherwise it is ``stale`` and nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, ActionStatus
from tsos_rules.connectors.tabular.mapping import Codec
from tsos_rules.connectors.tabular.settings import TASK_COLUMNS, TabularSettings
from tsos_rules.connectors.tabular.source import Source
from tsos_rules.errors import FatalConnectorError


class Writer:
    """Carries out one plan's actions, one result per action, in order."""

    def __init__(
        self,
        settings: TabularSettings,
        crm: Source,
        store: Source | None,
        codecs: Mapping[str, Codec],
        *,
        now: Callable[[], dt.datetime],
    ) -> None:
        self.settings = settings
        self.crm = crm
        self.store = store
        self.codecs = codecs
        self.now = now
        self._ready = False
        self._ids: dict[str, set[str]] = {}

    @property
    def columns(self) -> Mapping[str, str]:
        return self.settings.write.columns

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        self._ids = {}
        results = []
        for action in actions:
            try:
                results.append(self._one(action))
            except FatalConnectorError:
                raise
            except Exception as exc:  # one bad item never stops the others
                results.append(_result(action, ActionStatus.FAILED, error=str(exc)))
        return results

    def _one(self, action: Action) -> ActionResult:
        if action.kind is ActionKind.UPDATE_FIELDS:
            return self._repair(action)
        store = self._store()
        table, key = self.settings.write.table, self.columns["fingerprint"]
        existing = store.find(table, key, action.fingerprint)
        if action.kind is ActionKind.CLOSE_TASK:
            if existing is None:
                return _result(action, ActionStatus.ALREADY_DONE)  # never created
            status = self.columns["status"]
            if existing.get(status) == self.settings.write.closed_status:
                return _result(action, ActionStatus.ALREADY_DONE, action.fingerprint)
            changes = {
                status: self.settings.write.closed_status,
                self.columns["closed_at"]: self.now().isoformat(timespec="seconds"),
            }
            store.update(table, (key, action.fingerprint), changes, None)
            return _result(action, ActionStatus.WRITTEN, action.fingerprint)
        if existing is not None:
            return _result(action, ActionStatus.ALREADY_DONE, action.fingerprint)
        if not self._exists(action.record_type, action.record_id):
            return _result(
                action,
                ActionStatus.FAILED,
                error=f"no {action.record_type} {action.record_id} in the CRM",
            )
        now = self.now()
        due = now.date() + dt.timedelta(days=self.settings.write.due_days)
        values = {
            "fingerprint": action.fingerprint,
            "record_type": action.record_type,
            "record_id": action.record_id,
            "owner_id": action.owner_id,
            "subject": action.subject,
            "description": action.description,
            "rule": action.rule,
            "status": self.settings.write.open_status,
            "due_date": due.isoformat(),
            "created_at": now.isoformat(timespec="seconds"),
            "closed_at": None,
        }
        store.insert(table, {self.columns[role]: values[role] for role in TASK_COLUMNS})
        return _result(action, ActionStatus.WRITTEN, action.fingerprint)

    def _store(self) -> Source:
        if self.store is None:
            raise FatalConnectorError("tabular: no write target ([connector.write] mode)")
        if not self._ready:
            table = self.settings.write.table
            if self.settings.write.create:
                self.store.ensure_table(
                    table, [self.columns[r] for r in TASK_COLUMNS], self.columns["fingerprint"]
                )
            elif self.store.columns(table) is None:
                raise FatalConnectorError(
                    f"tabular: {self.store.describe()}: the task table {table} does not exist "
                    "(create it, or set [connector.write] create = true)"
                )
            self._ready = True
        return self.store

    def _exists(self, record_type: str, record_id: str) -> bool:
        for mapping in self.settings.mappings(record_type):
            if not self.crm.text:
                if self.crm.find(mapping.table, mapping.id, record_id) is not None:
                    return True
                continue
            if mapping.name not in self._ids:  # CSV: one scan per table per write call
                codec = self.codecs[mapping.name]
                self._ids[mapping.name] = {
                    record
                    for batch in self.crm.batches(
                        mapping.table, where=None, match=mapping.match, size=10_000
                    )
                    for row in batch
                    if (record := codec.record_id(row)) is not None
                }
            if record_id in self._ids[mapping.name]:
                return True
        return False

    def _repair(self, action: Action) -> ActionResult:
        if not self.settings.write.repairs:
            return _result(action, ActionStatus.FAILED, error="the CRM takes no repairs")
        mappings = [m for m in self.settings.mappings(action.record_type) if m.conditional]
        if not mappings:
            return _result(
                action,
                ActionStatus.FAILED,
                error=f"{action.record_type}: no version or modified column to make it conditional",
            )
        for mapping in mappings:
            row = self.crm.find(mapping.table, mapping.id, action.record_id)
            if row is None:
                continue
            codec = self.codecs[mapping.name]
            current = {f: codec.read_value(f, row.get(c)) for f, c in mapping.columns.items()}
            wanted = {f: _json(v) for f, v in action.changes.items()}
            if all(current.get(f) == v for f, v in wanted.items()):
                return _result(action, ActionStatus.ALREADY_DONE, action.record_id)
            if codec.version(row) != action.expected_version:
                return _result(
                    action, ActionStatus.STALE, action.record_id, "changed since it was read"
                )
            changes: dict[str, Any] = {}
            for field, value in action.changes.items():
                column = mapping.columns.get(field)
                if column is None or "." in column:
                    return _result(
                        action,
                        ActionStatus.FAILED,
                        error=f"{field} is not a column of {mapping.table}",
                    )
                changes[column] = codec.encode(field, value, text=self.crm.text)
            expect_column = mapping.version or mapping.modified
            assert expect_column is not None
            if mapping.version is not None:
                changes[mapping.version] = _next_version(row.get(mapping.version), self.crm.text)
            if mapping.modified is not None:
                changes[mapping.modified] = codec.encode_modified(self.now(), text=self.crm.text)
            count = self.crm.update(
                mapping.table,
                (mapping.id, row.get(mapping.id)),
                changes,
                (expect_column, row.get(expect_column)),
            )
            if count == 0:
                return _result(
                    action, ActionStatus.STALE, action.record_id, "changed since it was read"
                )
            return _result(action, ActionStatus.WRITTEN, action.record_id)
        return _result(
            action, ActionStatus.FAILED, error=f"no {action.record_type} {action.record_id}"
        )


def _result(
    action: Action, status: ActionStatus, crm_id: str | None = None, error: str | None = None
) -> ActionResult:
    return ActionResult(action.fingerprint, action.kind, status, crm_id, error)


def _json(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return getattr(value, "value", value)


def _next_version(current: Any, text: bool) -> Any:
    try:
        number = int(str(current).strip()) + 1
    except ValueError:
        number = 1
    return str(number) if text else number
