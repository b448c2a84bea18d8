"""Reads an SQL source in pages of company groups, so a sync never holds the whole org.

A first pass reads only the key columns of the judged tables (ids, account, company name, the
deal a lead or activity belongs with, modified time, deleted flag) and groups the records by
company the way the facts do (``CompanyGroups``: a shared account id or company name is one
company). Each page of groups is then read with ``WHERE column IN (...)`` (bound parameter
lists, chunked under the drivers' limits): the accounts, their deals, leads and activities, the
deals' close-date history, and any record those name by id; users and partners are read once.
The first pass holds one small key per account, deal and lead, never the rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import attrs

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.grouping import KeyGroups
from tsos_rules.connectors.tabular.mapping import Codec
from tsos_rules.connectors.tabular.reader import (
    JUDGED,
    TO_ONE,
    LoadedRows,
    Reader,
    ids_of,
    incomplete_keys,
    window_predicate,
    with_related,
)
from tsos_rules.connectors.tabular.settings import TableMapping
from tsos_rules.model import Snapshot

#: Per record type, the fields the grouping reads (a key pass reads only their columns).
KEY_FIELDS = {
    "account": ("name",),
    "opportunity": ("account_id",),
    "lead": ("account_id", "company", "converted_opportunity_id"),
    "activity": ("account_id", "what_id"),
    "close_date_change": ("opportunity_id",),
}
#: Fields whose column a page query filters on: they must be plain columns holding the id.
LINKS = {
    "opportunity": ("account_id", "lead_id"),
    "lead": ("account_id", "converted_opportunity_id"),
    "activity": ("account_id", "what_id"),
    "close_date_change": ("opportunity_id",),
}
REFERENCE = ("user", "partner")


def pageable(reader: Reader) -> bool:
    """An SQL source whose link columns are plain columns without value maps."""
    if reader.source.text:
        return False
    for mapping in reader.settings.tables.values():
        for field in (*LINKS.get(mapping.record, ()), *KEY_FIELDS.get(mapping.record, ())):
            column = mapping.columns.get(field)
            if column is not None and ("." in column or field in mapping.values):
                return False
    return True


@attrs.define
class _Keys(KeyGroups):
    """What the key pass learned: company groups and the records in the read window."""

    orphans: set[str] = attrs.field(factory=set)
    """Activities on no account and no known deal: judged in a page of their own."""
    deleted: set[RecordKey] = attrs.field(factory=set)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(int(value) if isinstance(value, float) and value == int(value) else value).strip()
    return text or None


class PagedReader:
    """``read_batches`` for SQL sources: one self-contained ``ReadResult`` per page."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.settings = reader.settings

    def batches(
        self, start: dt.datetime | None, end: dt.datetime, size: int
    ) -> Iterator[ReadResult]:
        """One result per page of ``size`` company groups holding a record to judge (every
        group in a full read); the first page carries the window's deletions."""
        reader = self.reader
        keys = reader.retried(lambda: self._key_pass(start, end))
        reference = reader.retried(self._reference)
        pages = keys.pages(size, every=False, orphans=bool(keys.orphans))
        watermark = end.isoformat()
        common: dict[str, Any] = {"watermark": watermark, "full": start is None}
        deleted = frozenset(keys.deleted)
        if not pages:
            yield ReadResult(snapshot=Snapshot(), changed=frozenset(), deleted=deleted, **common)
            return
        in_window = window_predicate(start, end)
        for number, nodes in enumerate(pages, 1):
            loaded, judged = reader.retried(partial(self._page, reference, keys, nodes))
            judged -= loaded.bad
            if start is None:
                changed, affected = set(judged), set()
            else:
                changed = {k for k in judged if in_window(loaded.modified.get(k))}
                affected = judged - changed
            incomplete = incomplete_keys(judged, loaded)
            result = reader.result_of(
                loaded,
                with_related(judged, loaded.records),
                changed=frozenset(changed - incomplete),
                affected=frozenset(affected - incomplete),
                incomplete=frozenset(incomplete),
                deleted=deleted if number == 1 else frozenset(),
                **common,
            )
            if number > 1:  # reference rows' errors are named once, with the first page
                result = attrs.evolve(result, errors=result.errors[len(reference.errors) :])
            yield attrs.evolve(result, progress=(number, len(pages)))

    # -- the key pass ----------------------------------------------------------------------

    def _key_pass(self, start: dt.datetime | None, end: dt.datetime) -> _Keys:
        keys = _Keys()
        in_window = window_predicate(start, end)
        order = ("account", "opportunity", "lead", "activity")
        for record in order:
            for mapping in self.settings.mappings(record):
                codec = self.reader.codecs[mapping.name]
                for row in self._key_rows(mapping):
                    self._key_row(keys, mapping, codec, row, start, in_window)
        return keys

    def _key_rows(self, mapping: TableMapping) -> Iterator[dict[str, object]]:
        fields = KEY_FIELDS.get(mapping.record, ())
        columns = [mapping.id, *(mapping.columns[f] for f in fields if f in mapping.columns)]
        columns += [c for c in (mapping.modified, mapping.deleted) if c is not None]
        for batch in self.reader.source.batches(
            mapping.table,
            where=mapping.where,
            match=mapping.match,
            size=self.settings.batch_size,
            columns=list(dict.fromkeys(c for c in columns if "." not in c)),
        ):
            yield from batch

    def _key_row(
        self,
        keys: _Keys,
        mapping: TableMapping,
        codec: Codec,
        row: dict[str, object],
        start: dt.datetime | None,
        in_window: Callable[[dt.datetime | None], bool],
    ) -> None:
        record_id = codec.record_id(row)
        if record_id is None:
            return  # named as a bad row by the page that reads it

        def value(field: str) -> str | None:
            column = mapping.columns.get(field)
            return _text(row.get(column)) if column is not None else None

        account = value("account_id")
        if mapping.record == "account":
            node = keys.account(record_id, value("name"))
        elif mapping.record == "opportunity":
            node = keys.deal(record_id, account)
        elif mapping.record == "lead":
            node = keys.lead(
                record_id, account, value("company"), value("converted_opportunity_id")
            )
        else:  # an activity: grouped with its account, else its deal
            node = keys.activity(account, value("what_id"))
            if not node:
                keys.orphans.add(record_id)
        try:
            modified = codec.modified(row)
            bad = False
        except ValueError:
            modified, bad = None, True
        if codec.is_deleted(row):
            if start is not None and in_window(modified):
                keys.deleted.add((mapping.record, record_id))
            return
        if start is None or bad or in_window(modified):
            keys.touch(node)

    # -- one page --------------------------------------------------------------------------

    def _reference(self) -> LoadedRows:
        """Users and partners: read once, shared by every page."""
        loaded = LoadedRows()
        for record in REFERENCE:
            for mapping in self.settings.mappings(record):
                self.reader.load_table(loaded, mapping)
        return loaded

    def _page(
        self, reference: LoadedRows, keys: _Keys, nodes: list[str] | None
    ) -> tuple[LoadedRows, set[RecordKey]]:
        """The page's records with everything they name; the keys of those it judges."""
        loaded = LoadedRows(
            records=dict(reference.records),
            modified=dict(reference.modified),
            versions=dict(reference.versions),
            errors=list(reference.errors),
            bad=set(reference.bad),
            origin=dict(reference.origin),
        )
        judged: set[RecordKey] = set()
        if nodes is None:  # activities on no account and no known deal
            judged |= self._rows(loaded, "activity", None, sorted(keys.orphans))
        else:
            accounts = sorted(n.split(":", 1)[1] for n in nodes if n.startswith("account:"))
            deals = sorted(n.split(":", 1)[1] for n in nodes if n.startswith("deal:"))
            leads = sorted(n.split(":", 1)[1] for n in nodes if n.startswith("lead:"))
            judged |= self._rows(loaded, "account", None, accounts)
            judged |= self._rows(loaded, "opportunity", "account_id", accounts)
            judged |= self._rows(loaded, "opportunity", None, deals)
            judged |= self._rows(loaded, "lead", None, leads)
            judged |= self._rows(loaded, "lead", "account_id", accounts)
            page_deals = sorted(k[1] for k in judged if k[0] == "opportunity")
            judged |= self._rows(loaded, "activity", "account_id", accounts)
            for key in self._rows(loaded, "activity", "what_id", page_deals):
                if not loaded.records.get(key, {}).get("account_id"):
                    judged.add(key)
            self._rows(loaded, "lead", "converted_opportunity_id", page_deals)
            self._rows(loaded, "close_date_change", "opportunity_id", page_deals)
        self._named(loaded)
        return loaded, {k for k in judged if k[0] in JUDGED}

    def _rows(
        self, loaded: LoadedRows, record: str, field: str | None, values: list[str]
    ) -> set[RecordKey]:
        """Load the rows of ``record`` whose ``field`` (its id when None) is among ``values``."""
        found: set[RecordKey] = set()
        if not values:
            return found
        for mapping in self.settings.mappings(record):
            column = mapping.id if field is None else mapping.columns.get(field)
            if column is None:
                continue
            found.update(self.reader.load_table(loaded, mapping, (column, values)))
        return found

    def _named(self, loaded: LoadedRows) -> None:
        """Read the accounts, deals and leads the page's records name but it does not hold
        (a lead of another company's deal, the deal an activity is on), until none is left."""
        for _ in range(4):  # deal -> lead -> account -> (partner): a short chain
            missing: dict[str, set[str]] = defaultdict(set)
            for key, record in list(loaded.records.items()):
                for field, target in TO_ONE[key[0]]:
                    if target in REFERENCE:
                        continue
                    for target_id in ids_of(record, field):
                        other = (target, target_id)
                        if other not in loaded.records and other not in loaded.bad:
                            missing[target].add(target_id)
            if not missing:
                return
            before = len(loaded.records) + len(loaded.bad)
            for target, ids in missing.items():
                self._rows(loaded, target, None, sorted(ids))
            if len(loaded.records) + len(loaded.bad) == before:
                return  # named records that do not exist
