"""A connector over a folder of JSON-lines files: the example of docs/tutorial-connector.md.

The "CRM" is a folder holding one file per object (``opportunities.jsonl``, ``accounts.jsonl``,
...), one record per line in the snapshot's JSON shape plus three system fields: ``_modified``
(ISO 8601 timestamp), ``_version`` (a counter) and ``_deleted``. Tasks the sync creates go to
``tasks.jsonl``. Run this file to see a read, a change, an incremental read and a write::

    python docs/examples/jsonl_connector.py
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tsos_rules import FatalConnectorError, RetriableConnectorError, hookimpl
from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    Capabilities,
    ReadResult,
    RecordKey,
)
from tsos_rules.snapshot.document import RecordError, snapshot_from_dict

#: Record type -> the file (and snapshot collection) that holds it.
FILES = {
    "user": "users",
    "partner": "partners",
    "account": "accounts",
    "lead": "leads",
    "opportunity": "opportunities",
    "close_date_change": "close_date_changes",
    "activity": "activities",
}
SYSTEM = ("_modified", "_version", "_deleted")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


class JsonlConnector:
    """Implements tsos_rules.connectors.base.Connector over a folder of .jsonl files."""

    name = "jsonl"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> JsonlConnector:
        """The factory: ``[connector] type = "jsonl"`` and ``folder = "..."``."""
        return cls(str(settings["folder"]))

    def capabilities(self) -> Capabilities:
        return Capabilities(
            incremental=True,
            tasks=True,
            field_updates=True,
            conditional_updates=True,
            idempotent_upsert=True,
            max_batch=100,
        )

    def close(self) -> None:
        """Nothing to release: files are opened per call."""

    # -- the storage ----------------------------------------------------------------------

    def _load(self, collection: str) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            raise FatalConnectorError(f"jsonl: {self.folder} is not a CRM folder")
        path = self.folder / f"{collection}.jsonl"
        try:
            text = path.read_text(encoding="utf-8") if path.exists() else ""
        except (BlockingIOError, TimeoutError) as exc:  # another writer holds the file
            raise RetriableConnectorError(f"jsonl: {path}: {exc}") from None
        except OSError as exc:
            raise FatalConnectorError(f"jsonl: {path}: {exc.strerror}") from None
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows.append({"_broken": f"line {number} is not JSON"})
        return rows

    def _save(self, collection: str, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (self.folder / f"{collection}.jsonl").write_text(text, encoding="utf-8")

    # -- reads ------------------------------------------------------------------------------

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        start = dt.datetime.fromisoformat(since) if since else None
        end = _utc(until) if until else dt.datetime.now(dt.UTC)
        records: dict[RecordKey, dict[str, Any]] = {}
        changed: set[RecordKey] = set()
        deleted: set[RecordKey] = set()
        versions: dict[RecordKey, str] = {}
        errors: list[RecordError] = []
        for record_type, collection in FILES.items():
            for index, row in enumerate(self._load(collection)):
                record_id = str(row.get("id") or f"{row.get('opportunity_id')}#{index}")
                key = (record_type, record_id)
                if "_broken" in row:
                    errors.append(
                        RecordError("jsonl", collection, index, None, None, row["_broken"])
                    )
                    continue
                modified = dt.datetime.fromisoformat(row["_modified"])
                in_window = (start is None or modified > start) and modified <= end
                if row.get("_deleted"):
                    if in_window:
                        deleted.add(key)
                    continue
                records[key] = row
                versions[key] = str(row["_version"])
                if in_window:
                    changed.add(key)
        if start is not None:  # an incremental read: the changed records and their relatives
            wanted = _with_related(changed, records)
            records = {key: row for key, row in records.items() if key in wanted}
        document: dict[str, list[dict[str, Any]]] = {c: [] for c in FILES.values()}
        positions: dict[tuple[str, int], RecordKey] = {}
        for key, row in records.items():
            rows = document[FILES[key[0]]]
            positions[(FILES[key[0]], len(rows))] = key
            rows.append({k: v for k, v in row.items() if k not in SYSTEM})
        snapshot, bad = snapshot_from_dict(document, source="jsonl", skip_bad_records=True)
        for error in bad:  # a record that does not map is skipped and reported, not fatal
            changed.discard(positions[(error.collection, error.index)])
        return ReadResult(
            snapshot=snapshot,
            changed=frozenset(key for key in changed if key[0] != "close_date_change"),
            watermark=end.isoformat(),
            deleted=frozenset(deleted),
            versions=versions,
            errors=(*errors, *bad),
            full=start is None,
        )

    # -- writes -----------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        results = []
        for action in actions:
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
        def result(
            status: ActionStatus, crm_id: str | None = None, error: str | None = None
        ) -> ActionResult:
            return ActionResult(action.fingerprint, action.kind, status, crm_id, error)

        now = dt.datetime.now(dt.UTC).isoformat()
        if action.kind in (ActionKind.CREATE_TASK, ActionKind.CLOSE_TASK):
            tasks = self._load("tasks")
            existing = next((t for t in tasks if t["fingerprint"] == action.fingerprint), None)
            if action.kind is ActionKind.CREATE_TASK:
                if existing is not None:  # idempotent on the finding's fingerprint
                    return result(ActionStatus.ALREADY_DONE, existing["id"])
                task_id = f"task-{len(tasks) + 1}"
                tasks.append(
                    {
                        "id": task_id,
                        "fingerprint": action.fingerprint,
                        "what_id": action.record_id,
                        "owner_id": action.owner_id,
                        "subject": action.subject,
                        "status": "open",
                        "_modified": now,
                    }
                )
                self._save("tasks", tasks)
                return result(ActionStatus.WRITTEN, task_id)
            if existing is None:
                return result(ActionStatus.ALREADY_DONE)  # never created: nothing to close
            if existing["status"] == "closed":
                return result(ActionStatus.ALREADY_DONE, existing["id"])
            existing.update(status="closed", _modified=now)
            self._save("tasks", tasks)
            return result(ActionStatus.WRITTEN, existing["id"])
        collection = FILES[action.record_type]
        rows = self._load(collection)
        row = next((r for r in rows if r.get("id") == action.record_id), None)
        if row is None or row.get("_deleted"):
            return result(ActionStatus.FAILED, error=f"no {action.record_type} {action.record_id}")
        if all(row.get(field) == value for field, value in action.changes.items()):
            return result(ActionStatus.ALREADY_DONE, action.record_id)
        if action.expected_version is not None and str(row["_version"]) != action.expected_version:
            return result(ActionStatus.STALE, action.record_id, "changed since it was read")
        row.update(action.changes)
        row.update(_version=row["_version"] + 1, _modified=now)
        self._save(collection, rows)
        return result(ActionStatus.WRITTEN, action.record_id)


def _with_related(
    changed: set[RecordKey], records: Mapping[RecordKey, dict[str, Any]]
) -> set[RecordKey]:
    """The changed records plus every record their rules read (owner, account, partner, ...)."""
    wanted = set(changed)

    def add(record_type: str, record_id: Any) -> None:
        if record_id and (record_type, str(record_id)) in records:
            wanted.add((record_type, str(record_id)))

    for record_type, record_id in changed:
        row = records.get((record_type, record_id), {})
        add("user", row.get("owner_id"))
        add("partner", row.get("partner_id"))
        add("account", row.get("account_id"))
        add("partner", row.get("partner_of_record_id"))
        if record_type == "opportunity":
            add("lead", row.get("lead_id"))
            for user_id in row.get("team_user_ids") or ():
                add("user", user_id)
            for (other_type, other_id), other in records.items():
                linked = (
                    other.get("opportunity_id") == record_id or other.get("what_id") == record_id
                )
                if linked or other.get("converted_opportunity_id") == record_id:
                    wanted.add((other_type, other_id))
    for record_type, record_id in list(wanted):  # the partner of record of every account present
        if record_type == "account":
            add("partner", records[(record_type, record_id)].get("partner_of_record_id"))
    return wanted


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    register("jsonl", JsonlConnector.from_settings)


def seed_folder(folder: Path, document: Mapping[str, Any], at: dt.datetime) -> None:
    """Write a snapshot document into ``folder`` as the CRM's content, modified at ``at``."""
    folder.mkdir(parents=True, exist_ok=True)
    for collection in FILES.values():
        rows = [
            {**record, "_modified": _utc(at).isoformat(), "_version": 1, "_deleted": False}
            for record in document.get(collection, [])
        ]
        (folder / f"{collection}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
        )


def edit_record(
    folder: Path, record_type: str, record_id: str, changes: Mapping[str, Any], at: dt.datetime
) -> None:
    """What a CRM user does: change fields of one record, bumping version and modified time."""
    path = folder / f"{FILES[record_type]}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        if row.get("id") == record_id:
            row.update(changes)
            row.update(_version=row["_version"] + 1, _modified=_utc(at).isoformat())
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def main() -> int:
    from tsos_rules.testing import channel_account, channel_deal, deal, snapshot

    start = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed_folder(
            folder,
            snapshot(
                accounts=[channel_account("a1")], opportunities=[channel_deal("o1"), deal("o2")]
            ),
            start,
        )
        connector = JsonlConnector(folder)
        first = connector.read(None, until=start + dt.timedelta(hours=1))
        print("first read:", sorted(first.changed))
        edit_record(
            folder, "opportunity", "o2", {"next_step": "TBD"}, start + dt.timedelta(hours=2)
        )
        second = connector.read(first.watermark, until=start + dt.timedelta(hours=3))
        print("second read:", sorted(second.changed))
        task = Action(ActionKind.CREATE_TASK, "f" * 32, "opportunity", "o2", subject="Next step")
        print("write:", [r.status.value for r in connector.write([task, task])])
        connector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
