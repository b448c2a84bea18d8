"""``read_batches`` and ``read_where`` for Salesforce: reads in pages of company groups.

A key pass reads only ids and grouping keys (account ``Name``; a deal's account; a lead's
account, company and converted deal; an activity's ``AccountId`` and ``WhatId``) through the
client's usual paging (REST ``nextRecordsUrl``, or Bulk API 2.0 result pages with
``Sforce-Locator`` above ``bulk_threshold``) and groups the records by company as the facts do
(``connectors/grouping.py``: a shared account id or company name is one company). Each page of
``batch_size`` groups is then read by id (``WHERE Id IN (...)``, chunked so a query stays under
Salesforce's SOQL and URI length limits) with the related rows the whole read brings (converted
leads, close-date history, open activities, team members, approvals); users and partners are
read once each, when a page first names them. An incremental read pages only the groups
holding a record changed in the window; all pages carry the one final watermark.
``read_where`` finds the records whose field holds some values (a filter query, or the records
streamed where the field's value is mapped: ``matching_rows``, which ``stream_where`` shares),
then pages only the groups holding them.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence, Set
from itertools import islice
from typing import Any

import attrs

from tsos_rules.connectors.base import ReadResult, RecordKey, field_of
from tsos_rules.connectors.grouping import KeyGroups
from tsos_rules.connectors.salesforce.mapping import CATALOGUE, SALESFORCE_ID, format_datetime
from tsos_rules.connectors.salesforce.reader import (
    DealContext,
    Reader,
    RecordBatch,
    Row,
    datetime_or_none,
    id_list,
    parse_watermark,
    quote,
    teams,
)
from tsos_rules.connectors.salesforce.stream import records_of, select_of, sobjects
from tsos_rules.model import Snapshot
from tsos_rules.org import company_key

#: Salesforce's limit on one SOQL statement ("SOQL and SOSL Limits": 100,000 characters).
MAX_SOQL_CHARS = 100_000
#: A REST query is a GET: URI and headers together may hold 16,384 bytes (Salesforce help
#: 000386264); the encoded ``q`` parameter is kept well under that.
MAX_QUERY_URI_BYTES = 12_000
#: Records a page when ``read_where`` streams a type to compare a mapped field.
STREAM_PAGE = 5000
#: The activity fields read from the Task's or Event's own lookups, not through the mapping.
_ACTIVITY_COLUMNS = {"what_id": "WhatId", "account_id": "AccountId", "owner_id": "OwnerId"}


def in_chunks(
    prefix: str, values: Iterable[str], size: int, literal: Callable[[str], str]
) -> Iterator[str]:
    """``(...)`` lists of at most ``size`` values each (``literal`` writes one in SOQL), each
    short enough that ``prefix`` (standing for the rest of the query) plus the list stays
    under the SOQL and URI limits."""
    chunk: list[str] = []
    base = len(urllib.parse.quote_plus(prefix)) + 6
    used = base
    for value in values:
        text = literal(value)
        cost = len(urllib.parse.quote_plus(text + ","))
        if chunk and (len(chunk) >= size or used + cost > MAX_QUERY_URI_BYTES):
            yield "(" + ",".join(chunk) + ")"
            chunk, used = [], base
        chunk.append(text)
        used += cost
    if chunk:
        yield "(" + ",".join(chunk) + ")"


def id_chunks(prefix: str, ids: Sequence[str], size: int) -> Iterator[str]:
    """``prefix IN (...)`` id lists of at most ``size`` ids each, under the length limits."""
    return in_chunks(prefix, ids, size, lambda value: id_list([value])[1:-1])


@attrs.define
class _Keys(KeyGroups):
    """What the key pass learned: company groups, and where each activity goes."""

    activities: defaultdict[str, list[tuple[str, str]]] = attrs.field(
        factory=lambda: defaultdict(list)
    )
    """Activities (object, id) by the account or deal node they group with."""
    orphans: list[tuple[str, str]] = attrs.field(factory=list)
    """Activities on no account and no known deal: judged in a page of their own."""


class PagedReader:
    """One self-contained ``ReadResult`` per page of company groups."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._partners: dict[str, Row] = {}
        self._users: dict[str, Row] = {}

    def batches(
        self, since: str | None, until: dt.datetime | None, size: int
    ) -> Iterator[ReadResult]:
        """The read from ``since`` to ``until`` in pages of ``size`` company groups, each with
        the one final watermark; the first page carries the window's deletions."""
        reader = self.reader
        start = parse_watermark(since)
        end = reader.window_end(until)
        if start is not None and end <= start:
            yield ReadResult(Snapshot(), frozenset(), since, full=False)
            return
        changed: set[RecordKey] | None = None  # None: a full read, every group
        deleted: frozenset[RecordKey] = frozenset()
        around: set[str] = set()
        if start is not None:
            changed, gone, around = self._changes(start, end)
            deleted = frozenset(gone)
        quiet = changed is not None and not changed and not around
        keys = _Keys() if quiet else self._key_pass(end, changed, around)
        pages = keys.pages(size, every=changed is None, orphans=bool(keys.orphans))
        watermark = format_datetime(end)
        reader.activity_what = {}
        if not pages:
            yield ReadResult(
                Snapshot(), frozenset(), watermark, deleted=deleted, full=start is None
            )
            return
        for number, nodes in enumerate(pages, 1):
            result = self._page(keys, nodes, start, end)
            yield attrs.evolve(
                result,
                watermark=watermark,
                deleted=(deleted - result.changed) if number == 1 else frozenset(),
                progress=(number, len(pages)),
            )

    def where(
        self, record_type: str, field: str, values: Collection[str], size: int
    ) -> Iterator[ReadResult]:
        """The current records of ``record_type`` whose ``field`` holds one of ``values``,
        judged (as ``affected``) in pages of ``size`` whole companies with their context:
        the matching ids, then a key pass and the pages holding them, read as ``batches``
        reads a page."""
        wanted = set(values)
        if not wanted or not sobjects(self.reader, record_type):
            return
        end = self.reader.window_end(None)
        matched = self._matching(record_type, field, wanted, end)
        if not matched:
            return
        keys = self._key_pass(end, matched)
        for nodes in keys.pages(size, every=False, orphans=bool(keys.orphans)):
            result = self._page(keys, nodes, None, end)
            incomplete = result.incomplete & matched
            judged = (result.changed | result.affected) & matched
            yield attrs.evolve(
                result,
                changed=frozenset(),
                affected=judged - incomplete,
                incomplete=incomplete,
                watermark=None,
                full=False,
            )

    def _matching(
        self, record_type: str, field: str, wanted: Set[str], end: dt.datetime
    ) -> set[RecordKey]:
        """The ids of the records whose ``field`` holds one of ``wanted`` (``matching_rows``,
        reading only what the match needs)."""
        return {
            (record_type, str(row.get("Id")))
            for row in matching_rows(self.reader, record_type, field, wanted, end, whole=False)
        }

    # -- the key pass ------------------------------------------------------------------------

    def _key_rows(
        self, sobject: str, fields: Sequence[str | None], where: str, *, deleted: bool = False
    ) -> Iterator[Row]:
        """Ids, ``fields`` and ``SystemModstamp`` of the rows ``where`` holds (with the deleted
        ones, through ``queryAll``, when ``deleted``)."""
        select = ["Id", "SystemModstamp", *dict.fromkeys(f for f in fields if f)]
        if deleted:
            select.append("IsDeleted")
        own = self.reader.own_activity_filter() if sobject in ("Task", "Event") else ""
        return self.reader.query(
            f"{'changed ids' if deleted else 'keys'} of {sobject}",
            f"SELECT {', '.join(select)} FROM {sobject} WHERE {where}{own}",
            all_rows=deleted,
        )

    def _sobjects(self) -> list[tuple[str, str]]:
        """The objects read, with our record type for each (Event only with ``read.events``)."""
        pairs = [("Account", "account"), ("Opportunity", "opportunity"), ("Lead", "lead")]
        pairs.append(("Task", "activity"))
        if self.reader.settings.events:
            pairs.append(("Event", "activity"))
        return pairs

    def _key_fields(self, sobject: str) -> list[str | None]:
        """The fields that place a row of ``sobject`` in its company group."""
        sf = self.reader.mapping.sf
        if sobject == "Account":
            return [sf("account.name")]
        if sobject == "Opportunity":
            return [sf("opportunity.account_id")]
        if sobject == "Lead":
            return [sf("lead.account_id"), sf("lead.company"), sf("lead.converted_opportunity_id")]
        return ["AccountId", "WhatId"]

    def _changes(
        self, start: dt.datetime, end: dt.datetime
    ) -> tuple[set[RecordKey], set[RecordKey], set[str]]:
        """The records changed and deleted in the window, and the group keys the deleted ones
        held (their company is judged again without them): one ``queryAll`` per object, of
        ids and grouping keys (a quiet run costs these and nothing more)."""
        window = f"SystemModstamp > {format_datetime(start)} AND "
        window += f"SystemModstamp <= {format_datetime(end)}"
        changed: set[RecordKey] = set()
        deleted: set[RecordKey] = set()
        around: set[str] = set()
        for sobject, record_type in self._sobjects():
            fields = self._key_fields(sobject)
            for row in self._key_rows(sobject, fields, window, deleted=True):
                record_id = _text(row.get("Id"))
                if record_id is None:
                    continue
                if row.get("IsDeleted") not in (True, "true"):
                    changed.add((record_type, record_id))
                    continue
                deleted.add((record_type, record_id))
                around |= _nodes(sobject, [_text(row.get(f)) if f else None for f in fields])
        return changed, deleted - changed, around

    def _key_pass(
        self, end: dt.datetime, changed: set[RecordKey] | None, around: Set[str] = frozenset()
    ) -> _Keys:
        """Group every record up to the window's end by company; the groups holding one of
        ``changed`` or one of the keys ``around`` (every group when ``changed`` is None: a
        full read) are the ones to read."""
        keys = _Keys()
        where = f"SystemModstamp <= {format_datetime(end)}"
        sf = self.reader.mapping.sf

        def note(
            record_type: str, record_id: str, node: str, row: Row, partner: str | None
        ) -> None:
            """Mark ``node`` for reading when its record changed (a full read reads all), or
            the partner account its ``partner`` field names did: a partner is an account, and
            the records naming it (a deal's credit against the partner's limit) are judged
            from its fields, though it is in another company."""
            if changed is None:
                return
            named = _text(row.get(partner)) if partner else None
            if (record_type, record_id) in changed or ("account", named or "") in changed:
                keys.touch(node)

        (name_field,) = self._key_fields("Account")
        of_record = sf("account.partner_of_record_id")
        for row in self._key_rows("Account", [name_field, of_record], where):
            account = _text(row.get("Id"))
            if account is not None:
                name = _text(row.get(name_field)) if name_field else None
                note("account", account, keys.account(account, name), row, of_record)
        (deal_account,) = self._key_fields("Opportunity")
        deal_partner = sf("opportunity.partner_id")
        for row in self._key_rows("Opportunity", [deal_account, deal_partner], where):
            deal = _text(row.get("Id"))
            if deal is not None:
                account = _text(row.get(deal_account)) if deal_account else None
                note("opportunity", deal, keys.deal(deal, account), row, deal_partner)
        lead_fields = self._key_fields("Lead")
        lead_partner = sf("lead.partner_id")
        for row in self._key_rows("Lead", [*lead_fields, lead_partner], where):
            lead = _text(row.get("Id"))
            if lead is not None:
                account, company, converted = (
                    _text(row.get(f)) if f else None for f in lead_fields
                )
                note("lead", lead, keys.lead(lead, account, company, converted), row, lead_partner)
        for sobject, _ in self._sobjects()[3:]:
            for row in self._key_rows(sobject, ["AccountId", "WhatId"], where):
                activity = _text(row.get("Id"))
                if activity is None:
                    continue
                node = keys.activity(_text(row.get("AccountId")), _text(row.get("WhatId")))
                note("activity", activity, node, row, None)
                if node:
                    keys.activities[node].append((sobject, activity))
                else:
                    keys.orphans.append((sobject, activity))
        keys.touch_known(around)
        return keys

    # -- one page ----------------------------------------------------------------------------

    def by_ids(self, label: str, sobject: str, select: str, ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = []
        wanted = sorted(i for i in set(ids) if SALESFORCE_ID.match(i))
        prefix = f"SELECT {select} FROM {sobject} WHERE Id IN "
        for chunk in id_chunks(prefix, wanted, self.reader.settings.id_chunk_size):
            rows.extend(self.reader.query(label, prefix + chunk))
        return rows

    def _page(
        self,
        keys: _Keys,
        nodes: list[str] | None,
        start: dt.datetime | None,
        end: dt.datetime,
    ) -> ReadResult:
        """The page's records read by id, with everything their facts need."""
        reader = self.reader
        ids: dict[str, list[str]] = defaultdict(list)
        activities = list(keys.orphans) if nodes is None else []
        for node in nodes or ():
            kind, _, record_id = node.partition(":")
            ids[kind].append(record_id)
            activities.extend(keys.activities.get(node, ()))
        deals = self.by_ids("page deals", "Opportunity", reader.opportunity_select(), ids["deal"])
        leads = self.by_ids("page leads", "Lead", reader.lead_select(), ids["lead"])
        accounts = self.by_ids("page accounts", "Account", reader.account_select(), ids["account"])
        activity_rows: list[Row] = []
        for sobject in ("Task", "Event"):
            wanted = [i for s, i in activities if s == sobject]
            select = reader.activity_select(sobject)
            activity_rows += self.by_ids(f"page {sobject} rows", sobject, select, wanted)

        context = DealContext()
        deal_ids = sorted(str(r.get("Id")) for r in deals if SALESFORCE_ID.match(str(r.get("Id"))))
        # the longest context query (converted leads) sets the chunk length for all of them
        longest = f"SELECT {reader.lead_select()} FROM Lead WHERE ConvertedOpportunityId IN "
        for chunk in id_chunks(longest, deal_ids, reader.settings.id_chunk_size):
            reader.read_deal_context(context, f"IN {chunk}")
        team = teams(context.team)

        def split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
            if start is None:
                return rows, []
            inside: list[Row] = []
            outside: list[Row] = []
            for row in rows:
                stamp = datetime_or_none(row.get("SystemModstamp"))
                fresh = stamp is not None and start < stamp <= end
                (inside if fresh else outside).append(row)
            return inside, outside

        batch = RecordBatch(reader.mapping, end.date(), reader.client.integration_user_id())
        batch.exemption_fields = reader.exemptions
        deal_rel, lead_rel = (
            reader.account_relationship("opportunity"),
            reader.account_relationship("lead"),
        )
        judged: set[RecordKey] = set()
        for changed, rows in zip((True, False), split(deals), strict=True):
            batch.add_opportunities(rows, team, deal_rel, changed=changed)
            judged |= {("opportunity", str(r.get("Id"))) for r in rows}
        for changed, rows in zip((True, False), split(accounts), strict=True):
            for row in rows:
                batch.add_account(row, changed=changed)
            judged |= {("account", str(r.get("Id"))) for r in rows}
        for changed, rows in zip((True, False), split(leads), strict=True):
            batch.add_leads(rows, lead_rel, changed=changed)
            judged |= {("lead", str(r.get("Id"))) for r in rows}
        for changed, rows in zip((True, False), split(activity_rows), strict=True):
            batch.add_activities(rows, changed=changed)
            judged |= {("activity", str(r.get("Id"))) for r in rows}
        batch.add_leads(context.leads, lead_rel, changed=False)
        batch.add_activities(context.activities, changed=False)
        batch.add_history(context.history)
        reader.fill_approvals(batch)
        self.add_people(batch)
        batch.link_leads()

        reader.activity_what.update(
            {a.id: a.what_id for a in batch.activities.values() if a.what_id is not None}
        )
        failed = {(e.record_type, e.record_id or "") for e in batch.errors}
        changed_keys = set(batch.changed) - failed
        affected = (judged - changed_keys) - failed
        affected = {k for k in affected if _holds(batch, k)}
        incomplete = batch.incomplete(changed_keys | affected)
        return ReadResult(
            snapshot=batch.snapshot(),
            changed=frozenset(changed_keys),
            watermark=None,
            versions=batch.versions,
            errors=tuple(batch.errors),
            full=start is None,
            affected=frozenset(affected),
            incomplete=frozenset(incomplete),
        )

    def add_people(self, batch: RecordBatch) -> None:
        """The page's partners and users: each read from the org once, then kept."""
        reader = self.reader
        missing = [i for i in batch.partner_ids() if i not in self._partners]
        select = ", ".join(reader.mapping.partner_fields())
        for row in self.by_ids("partners", "Account", select, missing):
            self._partners[str(row.get("Id"))] = row
        batch.add_partners([self._partners[i] for i in batch.partner_ids() if i in self._partners])
        missing = [i for i in batch.user_ids() if i not in self._users]
        select = ", ".join(reader.mapping.user_fields())
        for row in self.by_ids("users", "User", select, missing):
            self._users[str(row.get("Id"))] = row
        batch.add_users([self._users[i] for i in batch.user_ids() if i in self._users])


def matching_rows(
    reader: Reader,
    record_type: str,
    field: str,
    wanted: Set[str],
    end: dt.datetime,
    *,
    whole: bool,
) -> Iterator[Row]:
    """The rows of the current records of ``record_type`` whose ``field`` holds one of
    ``wanted``: a filter on the Salesforce field where the record's value is that field's own
    (ids, text; ``IN`` lists cut under the SOQL and URI limits, compared again exactly, as
    SOQL compares text without case), else every row streamed and its mapped value compared
    (an enum, a number, an extra field). ``whole``: every field a read selects, the account's
    as parent fields (the records are read from these rows); else what the match needs."""
    column, kind = filter_column(reader, record_type, field)
    for sobject in sobjects(reader, record_type):
        if whole or column is None:
            select = select_of(reader, sobject, parents=whole)
        else:
            select = "Id" if column == "Id" else f"Id, {column}"
        own = reader.own_activity_filter() if record_type == "activity" else ""
        query = f"SELECT {select} FROM {sobject} WHERE SystemModstamp <= {format_datetime(end)}"
        if column is None:
            rows = reader.query(f"{sobject} by {field}", query + own)
            today = end.date()
            while page := list(islice(rows, STREAM_PAGE)):
                snapshot = records_of(reader, record_type, page, today)
                records: tuple[Any, ...] = (
                    *snapshot.opportunities,
                    *snapshot.leads,
                    *snapshot.accounts,
                    *snapshot.activities,
                )
                hits = {record.id for record in records if field_of(record, field) in wanted}
                yield from (row for row in page if row.get("Id") in hits)
            continue
        if kind == "id":  # a value that is no record id names no record (and is refused)
            usable = sorted(v for v in wanted if SALESFORCE_ID.match(v))
            literal = _id_literal
        else:
            usable, literal = sorted(wanted), quote
        prefix = f"{query}{own} AND {column} IN "
        for chunk in in_chunks(prefix, usable, reader.settings.id_chunk_size, literal):
            for row in reader.query(f"{sobject} by {field}", prefix + chunk):
                if _text(row.get("Id")) is not None and row.get(column) in wanted:
                    yield row


def filter_column(reader: Reader, record_type: str, field: str) -> tuple[str | None, str]:
    """The Salesforce field that holds ``field`` exactly as the record has it, and its kind
    (``id`` or ``str``); None where the record's value is mapped from the row."""
    if field == "id":
        return "Id", "id"
    if record_type == "activity" and field in _ACTIVITY_COLUMNS:
        return _ACTIVITY_COLUMNS[field], "id"
    spec = CATALOGUE.get(f"{record_type}.{field}")
    if spec is None or not spec.sync or spec.kind not in ("id", "str"):
        return None, ""
    return reader.mapping.sf(spec.key), spec.kind


def _holds(batch: RecordBatch, key: RecordKey) -> bool:
    record_type, record_id = key
    collections: dict[str, dict[str, Any]] = {
        "opportunity": batch.opportunities,
        "account": batch.accounts,
        "lead": batch.leads,
        "activity": batch.activities,
    }
    return record_id in collections[record_type]


def _nodes(sobject: str, values: list[str | None]) -> set[str]:
    """The group keys a row of ``sobject`` joined, from its ``_key_fields`` values."""
    if sobject == "Account":
        key = company_key(values[0]) if values[0] else ""
        return {f"name:{key}"} if key else set()
    if sobject == "Opportunity":
        return {f"account:{values[0]}"} if values[0] else set()
    if sobject == "Lead":
        account, company, deal = values
        key = company_key(company) if company else ""
        return {
            *([f"account:{account}"] if account else []),
            *([f"name:{key}"] if key else []),
            *([f"deal:{deal}"] if deal else []),
        }
    account, what = values
    return {f"account:{account}"} if account else {f"deal:{what}"} if what else set()


def _id_literal(value: str) -> str:
    return f"'{value}'"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
