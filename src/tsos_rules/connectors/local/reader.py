"""The local CRM's incremental reader: what changed since a watermark, in company-group batches.

Reads come in self-contained batches of *company groups* (``grouping``). A change re-reads and
re-judges its whole group, plus the groups that depend on it; a change to a record's own fields
only re-judges that record, with its company read as context.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import orjson

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.local.crm import GROUPED, TABLES, team_of
from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import RecordError, snapshot_from_dict

SOURCE = "local CRM"


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


def loads(text: str | bytes) -> Any:
    """A stored record's JSON: parsed by orjson (several times faster than ``json``), or by
    ``json`` for what only it accepts (``NaN``, integers beyond 64 bits), so nothing a record
    held before reads differently."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


#: SQL: a column's value is one of a JSON array's items (the one parameter).
IN_LIST = "IN (SELECT value FROM json_each(?))"
#: SQL: an activity a person logged, not one the sync wrote.
BY_HUMAN = "created_by IS NULL"
_WINDOW = "modstamp > ? AND modstamp <= ?"
#: SQL: a row outside the groups a batch already read whole (the second parameter).
_OUTSIDE = f"(grp IS NULL OR grp NOT {IN_LIST})"
#: The columns a read takes of each grouped table: its relations, group, version and JSON (the
#: bookkeeping columns are never used, and converting them cost time on every row).
COLUMNS = {t.record_type: ", ".join(("id", "modstamp", "grp", *t.columns, "data")) for t in GROUPED}


def changed_rows_sql(table: str) -> str:
    """The rows of a grouped ``table`` written in a modstamp window, people's edits only (an
    activity the sync wrote itself is no change: the partial index skips them)."""
    human = f" AND {BY_HUMAN}" if table == "activities" else ""
    return f"SELECT id, grp, prev_grp, grp_changed, is_deleted FROM {table} WHERE {_WINDOW}{human}"


class GroupReader:
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
            human = f" AND {BY_HUMAN}" if table.name == "activities" else ""
            arms.append(f"{select} FROM {table.name} WHERE is_deleted = 0{human}{where}")
        return arms

    def all_groups(self) -> list[str]:
        """Every group holding a record not deleted, sorted, in one query: paging it by keyset
        cost a query over every table per batch (about a tenth of a full read)."""
        arms = self._arms("SELECT grp", " AND grp > ''")
        sql = f"SELECT grp FROM ({' UNION '.join(arms)}) ORDER BY 1"
        return [row[0] for row in self.db.execute(sql)]

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
            for row in db.execute(changed_rows_sql(table.name), window):
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
                group_wide.append((f"SELECT grp FROM {name} WHERE account_id {IN_LIST}", (arg,)))
        for kind, source in (("group", linked), ("solo", solo)):
            embedding: list[tuple[str, tuple[Any, ...]]] = []
            if source.get("lead"):
                arg = _json(source["lead"])
                embedding.append(
                    (f"SELECT id, grp FROM opportunities WHERE lead_id {IN_LIST}", (arg,))
                )
                embedding.append(
                    (
                        "SELECT o.id, o.grp FROM opportunities o JOIN leads l "
                        f"ON o.id = l.converted_opportunity_id WHERE l.id {IN_LIST}",
                        (arg,),
                    )
                )
            if source.get("activity"):
                embedding.append(
                    (
                        "SELECT o.id, o.grp FROM opportunities o JOIN activities a "
                        f"ON o.id = a.what_id WHERE a.id {IN_LIST}",
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
                group_wide.append((f"SELECT grp FROM {name} WHERE owner_id {IN_LIST}", (arg,)))
            group_wide.append(
                (
                    "SELECT o.grp FROM opportunities o JOIN opportunity_team t "
                    f"ON o.id = t.opportunity_id WHERE t.user_id {IN_LIST}",
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
                group_wide.append((f"SELECT grp FROM {name} WHERE {column} {IN_LIST}", (arg,)))
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
                f"SELECT a, b FROM group_bridges WHERE a {IN_LIST} "
                f"UNION SELECT a, b FROM group_bridges WHERE b {IN_LIST}",
                (arg, arg),
            ):
                edges.append((a, b))
                for group in (a, b):
                    if group not in seen:
                        seen.add(group)
                        frontier.append(group)
        return seen, edges

    # -- one batch -------------------------------------------------------------------------

    def people(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every user and partner by id (read once per reader: the org has few)."""
        if self.users is None or self.partners is None:
            self.users = {
                row[0]: loads(row[1])
                for row in self.db.execute(
                    f"SELECT id, data FROM users WHERE is_deleted = 0 AND modstamp <= {self.high}"
                )
            }
            self.partners = {
                row[0]: loads(row[1])
                for row in self.db.execute(
                    "SELECT id, data FROM partners WHERE is_deleted = 0 "
                    f"AND modstamp <= {self.high}"
                )
            }
        return self.users, self.partners

    def previous_partners(self, partnerless: Sequence[str]) -> dict[str, str]:
        """The partner the field history shows was last removed from each of these deals
        (``previous_partner_id``: the channel repair puts it back)."""
        found: dict[str, str] = {}
        for row in self.db.execute(
            "SELECT record_id, old_value, new_value FROM field_history WHERE "
            f"record_type = 'opportunity' AND field = 'partner_id' AND record_id {IN_LIST} "
            f"AND modstamp <= {self.high} ORDER BY seq",
            (_json(partnerless),),
        ):
            old = loads(row["old_value"]) if row["old_value"] else None
            new = loads(row["new_value"]) if row["new_value"] else None
            if old and not new and isinstance(old, str):
                found[row["record_id"]] = old
        return found

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
                    f"SELECT {COLUMNS[table.record_type]} FROM {table.name} "
                    f"WHERE grp {IN_LIST} AND is_deleted = 0",
                    (arg,),
                )
            }
        rows["activity"] = {
            row["id"]: row
            for row in db.execute(
                f"SELECT {COLUMNS['activity']} FROM activities "
                f"WHERE grp {IN_LIST} AND is_deleted = 0 AND {BY_HUMAN}",
                (_json(whole),),
            )
        }
        whole_set = set(whole)
        judged: dict[RecordKey, str] = {}
        if whole_set:
            for record_type, by_id in rows.items():
                for record_id, row in by_id.items():
                    group = row["grp"]
                    if group in whole_set:
                        judged[(record_type, record_id)] = group
        solo = [(key, group) for group, keys in plan.items() for key in keys or ()]

        def context(record_type: str, sql: str, params: tuple[Any, ...]) -> None:
            by_id = rows[record_type]
            for row in db.execute(sql, params):
                by_id.setdefault(row["id"], row)

        context(
            "activity",
            f"SELECT {COLUMNS['activity']} FROM activities WHERE id {IN_LIST} AND is_deleted = 0",
            (_json(key[1] for key, _ in solo if key[0] == "activity"),),
        )
        for key, group in solo:  # those still there (an activity: after the read above)
            if key[1] in rows.get(key[0], ()):
                judged[key] = group
        opportunities = rows["opportunity"]
        judged_deals = [i for (t, i) in judged if t == "opportunity"]
        deal_ids = _json(judged_deals)
        # The context below skips what the reads above already hold: in a full read nearly
        # every deal's leads and tasks are in its own group, and were fetched twice.
        leads = rows["lead"]
        lead_ids = [r["lead_id"] for r in opportunities.values() if r["lead_id"]]
        context(
            "lead",
            f"SELECT {COLUMNS['lead']} FROM leads WHERE id {IN_LIST} AND is_deleted = 0",
            (_json(i for i in lead_ids if i not in leads),),
        )
        context(
            "lead",
            f"SELECT {COLUMNS['lead']} FROM leads WHERE converted_opportunity_id {IN_LIST} "
            f"AND is_deleted = 0 AND {_OUTSIDE}",
            (_json(opportunities), arg),
        )
        context(
            "activity",
            f"SELECT {COLUMNS['activity']} FROM activities WHERE what_id {IN_LIST} "
            f"AND is_deleted = 0 AND {BY_HUMAN} AND {_OUTSIDE}",
            (deal_ids, _json(whole)),
        )
        account_ids = {
            r["account_id"]
            for record_type in ("lead", "opportunity", "activity")
            for r in rows[record_type].values()
            if r["account_id"]
        } - set(rows["account"])
        context(
            "account",
            f"SELECT {COLUMNS['account']} FROM accounts WHERE id {IN_LIST} AND is_deleted = 0",
            (_json(account_ids),),
        )
        history = db.execute(
            f"SELECT opportunity_id, data FROM close_date_history WHERE opportunity_id {IN_LIST} "
            f"AND modstamp <= {self.high} ORDER BY seq",
            (deal_ids,),
        ).fetchall()
        previous_partner = self.previous_partners(
            [i for i in judged_deals if not opportunities[i]["partner_id"]]
        )

        data: dict[str, list[dict[str, Any]]] = {}
        for record_type, by_id in rows.items():
            records = []
            for record_id, row in by_id.items():
                record = loads(row["data"])
                if not isinstance(record, dict):
                    record = {"id": record_id, "data": record}
                if record_type == "opportunity" and record_id in previous_partner:
                    record["previous_partner_id"] = previous_partner[record_id]
                records.append(record)
            data[TABLES[record_type].collection] = records
        data["close_date_changes"] = [loads(row["data"]) for row in history]
        users, partners = self.people()
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
            user_ids.update(team_of(record))
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


def merge_batches(batches: Sequence[ReadResult]) -> ReadResult:
    """One ReadResult from several batches (for ``read``; batches never share judged records)."""
    collections: dict[str, dict[str, Any]] = {}
    history: list[Any] = []
    waivers: dict[str, Any] = {}
    for batch in batches:
        waivers.update((w.record_id, w) for w in batch.snapshot.exemptions)
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
        exemptions=tuple(waivers.values()),
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
