"""The local CRM's read of records with only what links to them directly, not their companies.

An aggregate's readers (a partner's deals, when its commit total moved) are judged again by the
few rules that read the total, which need the record, its account (and the account's partner of
record), its owner and team, and its partner: one query by the records' ids and one by their
accounts' ids, instead of every record of their company groups.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.local.crm import CrmTable, team_of
from tsos_rules.connectors.local.reader import (
    BY_HUMAN,
    COLUMNS,
    IN_LIST,
    SOURCE,
    GroupReader,
    loads,
)
from tsos_rules.snapshot.document import snapshot_from_dict


def where_field(field: str, values: Iterable[str], columns: Sequence[str]) -> tuple[str, list[Any]]:
    """The SQL condition (and its parameters) of ``field`` holding one of ``values``: a relation
    column or the id when it is one (indexed), else the record's JSON field."""
    wanted = json.dumps(list(values))
    if field == "id" or field in columns:
        return f"{field} {IN_LIST}", [wanted]
    path = '$."' + field.replace('"', '""') + '"'
    return f"json_extract(data, ?) {IN_LIST}", [path, wanted]


def matching_ids(
    db: sqlite3.Connection, table: CrmTable, high: int, field: str, values: Iterable[str]
) -> list[str]:
    """The ids of the current records of ``table`` whose ``field`` is one of ``values``, sorted:
    one indexed query."""
    where, params = where_field(field, values, table.columns)
    human = f" AND {BY_HUMAN}" if table.name == "activities" else ""
    return [
        row[0]
        for row in db.execute(
            f"SELECT id FROM {table.name} WHERE is_deleted = 0 AND modstamp <= ?{human} "
            f"AND {where} ORDER BY id",
            [high, *params],
        )
    ]


def load_linked(reader: GroupReader, table: CrmTable, ids: Sequence[str]) -> ReadResult:
    """The records of ``table`` named by ``ids`` as ``affected``, with their accounts, the
    accounts' partners of record, their owners and team members, and their partners."""
    db = reader.db
    rows = {
        row["id"]: row
        for row in db.execute(
            f"SELECT {COLUMNS[table.record_type]} FROM {table.name} WHERE id {IN_LIST} "
            f"AND is_deleted = 0 AND modstamp <= {reader.high}",
            (json.dumps(list(ids)),),
        )
    }
    columns = set(table.columns)
    account_ids = {r["account_id"] for r in rows.values() if "account_id" in columns}
    if table.record_type == "account":
        account_rows: dict[str, sqlite3.Row] = {}
    else:
        account_rows = {
            row["id"]: row
            for row in db.execute(
                f"SELECT {COLUMNS['account']} FROM accounts WHERE id {IN_LIST} AND is_deleted = 0 "
                f"AND modstamp <= {reader.high}",
                (json.dumps(sorted(i for i in account_ids if i)),),
            )
        }
    previous = (
        reader.previous_partners([i for i, r in rows.items() if not r["partner_id"]])
        if table.record_type == "opportunity"
        else {}
    )
    records = []
    for record_id, row in rows.items():
        record = loads(row["data"])
        if not isinstance(record, dict):
            record = {"id": record_id, "data": record}
        if record_id in previous:
            record["previous_partner_id"] = previous[record_id]
        records.append(record)
    accounts = [_record(row) for row in account_rows.values()]
    users, partners = reader.people()
    user_ids: set[str] = set()
    partner_ids: set[str] = set(previous.values())
    for row in rows.values():
        if "owner_id" in columns and row["owner_id"]:
            user_ids.add(row["owner_id"])
        for column in ("partner_id", "partner_of_record_id"):
            if column in columns and row[column]:
                partner_ids.add(row[column])
    for record in records:
        user_ids.update(team_of(record))
    partner_ids.update(
        r["partner_of_record_id"] for r in account_rows.values() if r["partner_of_record_id"]
    )
    data: dict[str, list[Any]] = {
        table.collection: records,
        "users": [users[u] for u in sorted(user_ids) if u in users],
        "partners": [partners[p] for p in sorted(partner_ids) if p in partners],
    }
    if account_rows:
        data["accounts"] = accounts
    snapshot, errors = snapshot_from_dict(data, source=SOURCE, skip_bad_records=True)
    bad = {error.record_id for error in errors if error.record_id is not None}
    incomplete = frozenset(
        (table.record_type, record_id)
        for record_id, row in rows.items()
        if record_id in bad or any(row[c] in bad for c in table.columns if row[c])
    )
    judged = frozenset((table.record_type, record_id) for record_id in rows)
    versions: dict[RecordKey, str] = {
        (table.record_type, record_id): str(row["modstamp"]) for record_id, row in rows.items()
    }
    versions.update((("account", i), str(r["modstamp"])) for i, r in account_rows.items())
    return ReadResult(
        snapshot=snapshot,
        changed=frozenset(),
        watermark=None,
        versions=versions,
        errors=tuple(errors),
        affected=judged - incomplete,
        incomplete=incomplete,
    )


def _record(row: sqlite3.Row) -> Any:
    record = loads(row["data"])
    return record if isinstance(record, dict) else {"id": row["id"], "data": record}
