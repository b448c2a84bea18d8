"""An in-memory CRM and a connector over it, for testing sync jobs, actions and plugins.

:class:`FakeCRM` keeps records in docs/contract.md's JSON shape, each with a modification time and a
version; :class:`FakeConnector` implements :class:`tsos_rules.connectors.base.Connector` over it
and passes :class:`tsos_rules.testing.ConnectorContract` (``tests/sdk`` proves it)::

    crm = FakeCRM()
    crm.load(snapshot(opportunities=[deal("o1")]), at=at(-1))
    connector = crm.connector()
    result = connector.read(None)
    crm.update("opportunity", "o1", {"next_step": "Call the CFO"})
    connector.read(result.watermark).changed   # {("opportunity", "o1")}

The fake keeps every written task in :attr:`FakeCRM.tasks` and every action it was sent in
:attr:`FakeCRM.actions`, and :meth:`FakeCRM.fail_next` makes the next read or write raise, so
a test can drive the job through outages without a network.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    Capabilities,
    ReadResult,
    RecordKey,
)
from tsos_rules.errors import ConfigError, FatalConnectorError
from tsos_rules.markers import hookimpl
from tsos_rules.model import COLLECTIONS, Snapshot
from tsos_rules.snapshot.document import SnapshotError, snapshot_from_dict, snapshot_to_dict

__all__ = ["FakeCRM", "FakeConnector", "FakeTask", "fake_connector_plugin"]

#: Singular record type -> snapshot collection, e.g. ``"opportunity" -> "opportunities"``.
COLLECTION_OF: dict[str, str] = {singular: plural for plural, singular, _ in COLLECTIONS}

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"expected a time zone aware datetime, got {moment.isoformat()}")
    return moment.astimezone(dt.UTC)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum member
        return value.value
    return value


@attrs.define
class _Row:
    doc: dict[str, Any]
    modified: dt.datetime
    version: int = 1
    deleted: bool = False


@attrs.define
class FakeTask:
    """A task the connector created for a finding; ``fingerprint`` is its idempotency key."""

    crm_id: str
    fingerprint: str
    record_type: str
    record_id: str
    owner_id: str | None
    subject: str
    description: str
    rule: str
    status: str = "open"


class FakeCRM:
    """The records behind a :class:`FakeConnector`, by ``(record_type, id)``.

    Record types are the singular names (``user``, ``partner``, ``account``, ``lead``,
    ``opportunity``, ``close_date_change``, ``activity``). A close-date change has no id of its
    own; the fake names it ``"<opportunity_id>#<n>"``.
    """

    def __init__(self, *, clock: Clock = _utcnow) -> None:
        self.clock = clock
        self.rows: dict[RecordKey, _Row] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.actions: list[Action] = []
        self.reads = 0
        self._failures: list[tuple[str, Exception]] = []

    # -- changing the CRM, as its users would ----------------------------------------------

    def load(
        self, document: Mapping[str, Any] | Snapshot, *, at: dt.datetime | None = None
    ) -> None:
        """Put every record of a snapshot (a :class:`Snapshot` or its JSON dict) in the CRM."""
        data = snapshot_to_dict(document) if isinstance(document, Snapshot) else document
        for plural, singular, _ in COLLECTIONS:
            for doc in data.get(plural) or ():
                self.put(singular, doc, at=at)

    def put(
        self, record_type: str, doc: Mapping[str, Any], *, at: dt.datetime | None = None
    ) -> str:
        """Create or replace one record (JSON shape); returns its id."""
        if record_type not in COLLECTION_OF:
            raise ValueError(f"record_type: expected one of {sorted(COLLECTION_OF)}")
        stored = {key: _json_value(value) for key, value in doc.items()}
        if record_type == "close_date_change":
            opportunity_id = str(stored.get("opportunity_id"))
            count = sum(
                1 for t, i in self.rows if t == record_type and i.startswith(f"{opportunity_id}#")
            )
            record_id = str(stored.pop("id", None) or f"{opportunity_id}#{count + 1}")
        else:
            record_id = str(stored.get("id"))
        key = (record_type, record_id)
        old = self.rows.get(key)
        moment = _aware(at) if at is not None else self.clock()
        self.rows[key] = _Row(stored, moment, old.version + 1 if old else 1)
        return record_id

    def update(
        self,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime | None = None,
    ) -> None:
        """Change some fields of a record, bumping its version and modification time."""
        row = self._row(record_type, record_id)
        row.doc.update({key: _json_value(value) for key, value in changes.items()})
        row.version += 1
        row.modified = _aware(at) if at is not None else self.clock()

    def delete(self, record_type: str, record_id: str, *, at: dt.datetime | None = None) -> None:
        """Delete a record; the next read reports it in ``deleted``."""
        row = self._row(record_type, record_id)
        row.deleted = True
        row.version += 1
        row.modified = _aware(at) if at is not None else self.clock()

    def get(self, record_type: str, record_id: str) -> dict[str, Any]:
        """A copy of one live record's JSON document."""
        return dict(self._row(record_type, record_id).doc)

    def version(self, record_type: str, record_id: str) -> str:
        return str(self._row(record_type, record_id).version)

    def fail_next(self, operation: Literal["read", "write"], error: Exception) -> None:
        """Make the next ``read`` or ``write`` raise ``error`` (once), e.g. an outage."""
        self._failures.append((operation, error))

    def connector(
        self, *, name: str = "fake", capabilities: Capabilities | None = None
    ) -> FakeConnector:
        return FakeConnector(self, name=name, capabilities=capabilities)

    # -- internals ----------------------------------------------------------------------

    def _row(self, record_type: str, record_id: str) -> _Row:
        row = self.rows.get((record_type, record_id))
        if row is None or row.deleted:
            raise KeyError(f"no {record_type} {record_id!r} in the fake CRM")
        return row

    def _raise_if_failing(self, operation: str) -> None:
        for position, (kind, error) in enumerate(self._failures):
            if kind == operation:
                del self._failures[position]
                raise error

    def _live(self) -> Iterator[tuple[RecordKey, _Row]]:
        return ((key, row) for key, row in self.rows.items() if not row.deleted)


class FakeConnector:
    """A connector over a :class:`FakeCRM`. Watermarks are ISO 8601 timestamps; a read covers
    the window ``(since, until]`` and, the fake being small, carries every live record as
    context."""

    def __init__(
        self,
        crm: FakeCRM | None = None,
        *,
        name: str = "fake",
        capabilities: Capabilities | None = None,
    ) -> None:
        self.crm = crm if crm is not None else FakeCRM()
        self.name = name
        self._capabilities = capabilities or Capabilities(
            incremental=True,
            tasks=True,
            field_updates=True,
            conditional_updates=True,
            idempotent_upsert=True,
            max_batch=200,
        )
        self.closed = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FakeConnector:
        """The factory registered as connector ``fake``: ``snapshot = "file.json"`` seeds it."""
        crm = FakeCRM()
        path = settings.get("snapshot")
        if path is not None:
            try:
                crm.load(json.loads(Path(str(path)).read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"connector.snapshot: cannot load {path}: {exc}") from None
        return cls(crm, name=str(settings.get("name", "fake")))

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        crm = self.crm
        crm._raise_if_failing("read")
        crm.reads += 1
        start = self._parse_watermark(since)
        end = _aware(until) if until is not None else crm.clock()

        def in_window(moment: dt.datetime) -> bool:
            return (start is None or moment > start) and moment <= end

        document: dict[str, list[dict[str, Any]]] = {
            plural: [] for plural in COLLECTION_OF.values()
        }
        keys_by_position: dict[tuple[str, int], RecordKey] = {}
        changed: set[RecordKey] = set()
        versions: dict[RecordKey, str] = {}
        for key, row in crm._live():
            rows = document[COLLECTION_OF[key[0]]]
            keys_by_position[(COLLECTION_OF[key[0]], len(rows))] = key
            rows.append(dict(row.doc))
            versions[key] = str(row.version)
            if in_window(row.modified):
                changed.add(key)
        deleted = frozenset(
            key for key, row in crm.rows.items() if row.deleted and in_window(row.modified)
        )
        try:
            snapshot, errors = snapshot_from_dict(
                document, source=f"{self.name} CRM", skip_bad_records=True
            )
        except SnapshotError as exc:  # the document itself is unusable: nothing to skip to
            raise FatalConnectorError(f"{self.name}: {exc}") from None
        for error in errors:
            bad = keys_by_position.get((error.collection, error.index))
            if bad is not None:
                changed.discard(bad)
                versions.pop(bad, None)
        return ReadResult(
            snapshot=snapshot,
            changed=frozenset(changed),
            watermark=end.isoformat(),
            deleted=deleted,
            versions=versions,
            errors=errors,
            full=start is None,
        )

    def _parse_watermark(self, since: str | None) -> dt.datetime | None:
        if since is None:
            return None
        try:
            return _aware(dt.datetime.fromisoformat(since))
        except ValueError:
            raise FatalConnectorError(
                f"{self.name}: watermark {since!r} is not one this connector wrote"
            ) from None

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        crm = self.crm
        crm._raise_if_failing("write")
        results = []
        for action in actions:
            crm.actions.append(action)
            try:
                results.append(self._write_one(action))
            except Exception as exc:  # one bad item never stops the others
                results.append(
                    ActionResult(
                        action.fingerprint, action.kind, ActionStatus.FAILED, error=str(exc)
                    )
                )
        return results

    def _write_one(self, action: Action) -> ActionResult:
        crm = self.crm

        def result(
            status: ActionStatus, crm_id: str | None = None, error: str | None = None
        ) -> ActionResult:
            return ActionResult(action.fingerprint, action.kind, status, crm_id, error)

        if action.kind is ActionKind.CREATE_TASK:
            task = crm.tasks.get(action.fingerprint)
            if task is not None:
                return result(ActionStatus.ALREADY_DONE, task.crm_id)
            if (action.record_type, action.record_id) not in dict(crm._live()):
                return result(
                    ActionStatus.FAILED,
                    error=f"no {action.record_type} {action.record_id!r} to attach a task to",
                )
            crm_id = f"task-{len(crm.tasks) + 1}"
            crm.tasks[action.fingerprint] = FakeTask(
                crm_id,
                action.fingerprint,
                action.record_type,
                action.record_id,
                action.owner_id,
                action.subject,
                action.description,
                action.rule,
            )
            return result(ActionStatus.WRITTEN, crm_id)
        if action.kind is ActionKind.CLOSE_TASK:
            found = [
                task
                for task in crm.tasks.values()
                if task.fingerprint == action.fingerprint
                or (action.crm_id is not None and task.crm_id == action.crm_id)
            ]
            if not found:
                return result(ActionStatus.ALREADY_DONE)  # never created: nothing to close
            task = found[0]
            if task.status == "closed":
                return result(ActionStatus.ALREADY_DONE, task.crm_id)
            task.status = "closed"
            return result(ActionStatus.WRITTEN, task.crm_id)
        if action.kind is ActionKind.UPDATE_FIELDS:
            try:
                row = crm._row(action.record_type, action.record_id)
            except KeyError as exc:
                return result(ActionStatus.FAILED, error=str(exc.args[0]))
            wanted = {key: _json_value(value) for key, value in action.changes.items()}
            if all(row.doc.get(key) == value for key, value in wanted.items()):
                return result(ActionStatus.ALREADY_DONE, action.record_id)
            if action.expected_version is not None and action.expected_version != str(row.version):
                return result(
                    ActionStatus.STALE,
                    action.record_id,
                    f"{action.record_type} {action.record_id} changed since it was read "
                    f"(version {row.version}, expected {action.expected_version})",
                )
            candidate = {**row.doc, **wanted}
            collection = COLLECTION_OF[action.record_type]
            try:
                snapshot_from_dict({collection: [candidate]}, source=f"{self.name} update")
            except SnapshotError as exc:
                return result(ActionStatus.FAILED, error=str(exc))
            crm.update(action.record_type, action.record_id, wanted)
            return result(ActionStatus.WRITTEN, action.record_id)
        return result(ActionStatus.FAILED, error=f"unsupported action {action.kind}")

    def close(self) -> None:
        self.closed = True


class _FakePlugin:
    """A plugin object registering one :class:`FakeConnector` factory."""

    def __init__(self, crm: FakeCRM | None, name: str) -> None:
        self.crm = crm
        self.name = name

    @hookimpl
    def tsos_rules_register_connectors(self, register: Callable[[str, Any], None]) -> None:
        crm = self.crm

        def factory(settings: Mapping[str, Any]) -> FakeConnector:
            if crm is None:
                return FakeConnector.from_settings({**settings, "name": self.name})
            return FakeConnector(crm, name=self.name)

        register(self.name, factory)


def fake_connector_plugin(crm: FakeCRM | None = None, *, name: str = "fake") -> object:
    """A plugin registering connector ``name`` over ``crm`` (fresh from settings when None);
    register it for one test with the ``tsos_plugin`` fixture."""
    return _FakePlugin(crm, name)
