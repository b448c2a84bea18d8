"""Reads the mapped tables into a snapshot: full, or the window ``(since, until]``.

Every mapped table is read in batches of ``batch_size`` rows. A full read judges every record.
An incremental read judges the rows whose modified-time column falls in the window, plus the
other records of the same account (the single-owner and partner-of-record rules compare them),
and brings every record those need as context (owner, account, partner, lead, history,
activities). A row that does not map is skipped and named; the records that depend on it are
held back (``incomplete``) rather than judged without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.tabular.mapping import RECORDS, Codec
from tsos_rules.connectors.tabular.retry import retrying
from tsos_rules.connectors.tabular.settings import TableMapping, TabularSettings
from tsos_rules.connectors.tabular.source import Row, Source, Within
from tsos_rules.errors import ConfigError, SkippableRecordError
from tsos_rules.snapshot.document import RecordError, snapshot_from_dict

T = TypeVar("T")
JUDGED = ("account", "lead", "opportunity", "activity")

#: Relations by id that a record's facts read: (field, record type it names).
TO_ONE: dict[str, tuple[tuple[str, str], ...]] = {
    "opportunity": (
        ("account_id", "account"),
        ("owner_id", "user"),
        ("partner_id", "partner"),
        ("lead_id", "lead"),
        ("team_user_ids", "user"),
    ),
    "lead": (
        ("owner_id", "user"),
        ("partner_id", "partner"),
        ("account_id", "account"),
    ),
    "account": (("partner_of_record_id", "partner"),),
    "activity": (("owner_id", "user"), ("account_id", "account"), ("what_id", "opportunity")),
    "close_date_change": (("opportunity_id", "opportunity"), ("changed_by", "user")),
    "user": (),
    "partner": (),
}
#: Records that point at a deal and belong with it: (record type, field naming the deal).
OF_DEAL = (
    ("lead", "converted_opportunity_id"),
    ("close_date_change", "opportunity_id"),
    ("activity", "what_id"),
)


@attrs.define
class LoadedRows:
    """Every mapped row read in this run, mapped (or named as bad)."""

    records: dict[RecordKey, dict[str, Any]] = attrs.field(factory=dict)
    modified: dict[RecordKey, dt.datetime | None] = attrs.field(factory=dict)
    versions: dict[RecordKey, str] = attrs.field(factory=dict)
    deleted: dict[RecordKey, dt.datetime | None] = attrs.field(factory=dict)
    errors: list[RecordError] = attrs.field(factory=list)
    bad: set[RecordKey] = attrs.field(factory=set)
    origin: dict[RecordKey, TableMapping] = attrs.field(factory=dict)


class Reader:
    """Turns the source's rows into ``ReadResult``s."""

    def __init__(
        self,
        settings: TabularSettings,
        source: Source,
        codecs: Mapping[str, Codec],
        *,
        now: Callable[[], dt.datetime],
    ) -> None:
        self.settings = settings
        self.source = source
        self.codecs = codecs
        self.now = now

    @property
    def incremental(self) -> bool:
        """Every table of judged records has a modified-time column."""
        return all(m.incremental for m in self.settings.tables.values() if m.record in JUDGED)

    def read(self, since: str | None, until: dt.datetime | None) -> ReadResult:
        end = self._end(until)
        start = _watermark(since) if since and self.incremental else None
        loaded = self.retried(self._load)
        in_window = window_predicate(start, end)
        deleted = frozenset(k for k, at in loaded.deleted.items() if start and in_window(at))
        if start is None:
            changed = {k for k in loaded.records if k[0] in JUDGED}
            affected: set[RecordKey] = set()
            wanted = set(loaded.records)
        else:
            changed = {
                k for k in loaded.records if k[0] in JUDGED and in_window(loaded.modified[k])
            }
            affected = _same_account(changed, loaded.records) - changed
            wanted = with_related(changed | affected, loaded.records)
        incomplete = incomplete_keys(changed | affected, loaded)
        return self.result_of(
            loaded,
            wanted,
            changed=frozenset(changed - incomplete),
            affected=frozenset(affected - incomplete),
            incomplete=frozenset(incomplete),
            deleted=deleted,
            watermark=end.isoformat(),
            full=start is None,
        )

    def read_batches(
        self, since: str | None, until: dt.datetime | None, size: int
    ) -> Iterator[ReadResult]:
        """Pages of company groups from an SQL source (``paging``); a CSV folder is read
        whole, as one batch: a file has no index, so reading it per page would rescan it."""
        from tsos_rules.connectors.tabular.paging import PagedReader, pageable

        if size < 1:
            raise ConfigError(f"sync.batch_size: expected 1 or more, got {size}")
        if not pageable(self):
            yield self.read(since, until)
            return
        end = self._end(until)
        start = _watermark(since) if since and self.incremental else None
        yield from PagedReader(self).batches(start, end, size)

    def _end(self, until: dt.datetime | None) -> dt.datetime:
        end = until or self.now() - dt.timedelta(seconds=self.settings.watermark_lag_seconds)
        return end.astimezone(dt.UTC)

    # -- loading ---------------------------------------------------------------------------

    def retried(self, build: Callable[[], T]) -> T:
        """``build()`` rebuilt whole after a transient source error, a bounded number of times."""
        return retrying(
            build,
            attempts=self.settings.read_attempts,
            delay=self.settings.retry_delay_seconds,
        )

    def _load(self) -> LoadedRows:
        loaded = LoadedRows()
        for mapping in self.settings.tables.values():
            self.load_table(loaded, mapping)
        return loaded

    def load_table(
        self, loaded: LoadedRows, mapping: TableMapping, within: Within | None = None
    ) -> list[RecordKey]:
        """Map the table's rows (only those ``within`` when given) into ``loaded``; their keys.

        A row without an id is keyed by its position in a whole-table read, by its content in a
        read of some rows (the same row read twice is then one record)."""
        codec = self.codecs[mapping.name]
        joined = self._joined(mapping) if within is None else None
        position = 0
        keys: list[RecordKey] = []
        for batch in self.source.batches(
            mapping.table,
            where=mapping.where,
            match=mapping.match,
            size=self.settings.batch_size,
            within=within,
        ):
            if within is not None and mapping.join_key is not None:
                joined = self._joined(mapping, [row.get(mapping.join_key) for row in batch])
            for row in batch:
                if joined is not None and mapping.join_key is not None:
                    row = {**row, **joined.get(_join_key(row.get(mapping.join_key)), {})}
                place = position if within is None else _digest(row)
                keys.append(self._load_row(loaded, mapping, codec, row, place))
                position += 1
        return keys

    def _joined(
        self, mapping: TableMapping, keys: list[Any] | None = None
    ) -> dict[str, Row] | None:
        """The joined table's rows by key (only ``keys`` when given), columns written
        ``TABLE.COLUMN``."""
        if mapping.join_table is None or mapping.join_key is None:
            return None
        out: dict[str, Row] = {}
        within = None if keys is None else (mapping.join_key, keys)
        for batch in self.source.batches(
            mapping.join_table,
            where=None,
            match={},
            size=self.settings.batch_size,
            within=within,
        ):
            for row in batch:
                key = _join_key(row.get(mapping.join_key))
                out.setdefault(key, {f"{mapping.join_table}.{c}": v for c, v in row.items()})
        return out

    def _load_row(
        self, loaded: LoadedRows, mapping: TableMapping, codec: Codec, row: Row, place: int | str
    ) -> RecordKey:
        record_id = codec.record_id(row)
        if mapping.record == "close_date_change" and record_id is None:
            record_id = f"{mapping.name}#{place}"
        key = (mapping.record, record_id or f"{mapping.name}#{place}")
        if isinstance(place, str) and (
            key in loaded.records or key in loaded.bad or key in loaded.deleted
        ):
            return key  # read twice in one page (by its account and by its deal)
        _, collection = RECORDS[mapping.record]
        position = place if isinstance(place, int) else len(loaded.errors)
        try:
            modified = codec.modified(row)
        except ValueError as exc:
            self._bad(loaded, key, collection, position, record_id, "modified", str(exc))
            return key
        if codec.is_deleted(row):
            loaded.deleted[key] = modified
            return key
        try:
            record = codec.decode(row)
        except SkippableRecordError as exc:
            self._bad(loaded, key, collection, position, record_id, exc.field, exc.reason)
            return key
        loaded.records[key] = record
        loaded.modified[key] = modified
        loaded.origin[key] = mapping
        version = codec.version(row)
        if version is not None:
            loaded.versions[key] = version
        return key

    def _bad(
        self,
        loaded: LoadedRows,
        key: RecordKey,
        collection: str,
        position: int,
        record_id: str | None,
        field: str | None,
        problem: str,
    ) -> None:
        loaded.bad.add(key)
        loaded.errors.append(
            RecordError(NAME_SOURCE, collection, position, record_id, field, problem)
        )

    # -- the result ------------------------------------------------------------------------

    def result_of(
        self,
        loaded: LoadedRows,
        wanted: Iterable[RecordKey],
        **fields: Any,
    ) -> ReadResult:
        document: dict[str, list[dict[str, Any]]] = {plural: [] for _, plural in RECORDS.values()}
        positions: dict[tuple[str, int], RecordKey] = {}
        for key in sorted(wanted):
            record = loaded.records.get(key)
            if record is None:
                continue
            rows = document[RECORDS[key[0]][1]]
            positions[(RECORDS[key[0]][1], len(rows))] = key
            rows.append(record)
        snapshot, errors = snapshot_from_dict(document, source=NAME_SOURCE, skip_bad_records=True)
        named: list[RecordError] = []
        dropped: set[RecordKey] = set()
        for error in errors:
            key = positions[(error.collection, error.index)]
            dropped.add(key)
            named.append(self._name_column(error, loaded.origin[key], key))
        present = set(positions.values())
        versions = {k: v for k, v in loaded.versions.items() if k in present}
        changed: frozenset[RecordKey] = fields.pop("changed")
        affected: frozenset[RecordKey] = fields.pop("affected")
        incomplete: frozenset[RecordKey] = fields.pop("incomplete")
        if dropped:  # the records that needed a dropped one cannot be judged either
            more = incomplete_keys(
                changed | affected, attrs.evolve(loaded, bad=loaded.bad | dropped)
            )
            incomplete |= more - dropped
            changed -= more | dropped
            affected -= more | dropped
        return ReadResult(
            snapshot=snapshot,
            changed=changed,
            affected=affected,
            incomplete=incomplete,
            versions=versions,
            errors=(*loaded.errors, *named),
            **fields,
        )

    def _name_column(
        self, error: RecordError, mapping: TableMapping, key: RecordKey
    ) -> RecordError:
        """A value the snapshot refused (an enum outside its values): name table and column."""
        column = mapping.columns.get(error.field or "")
        where = f"{mapping.table}.{column}: " if column else f"{mapping.table}: "
        return attrs.evolve(error, record_id=key[1], problem=where + error.problem)


NAME_SOURCE = "tabular"


def _watermark(since: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(since)
    except ValueError:
        raise ConfigError(f"tabular: watermark {since!r} is not a timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def window_predicate(
    start: dt.datetime | None, end: dt.datetime
) -> Callable[[dt.datetime | None], bool]:
    def inside(moment: dt.datetime | None) -> bool:
        if moment is None:
            return start is None
        return (start is None or moment > start) and moment <= end

    return inside


def _digest(row: Row) -> str:
    """A short stable name for a row without an id, from its values."""
    text = repr(sorted((str(k), str(v)) for k, v in row.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _join_key(value: Any) -> str:
    return "" if value is None else str(value).strip()


def ids_of(record: Mapping[str, Any], field: str) -> list[str]:
    value = record.get(field)
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return [str(value)] if value else []


def _account_of(key: RecordKey, record: Mapping[str, Any]) -> str | None:
    if key[0] == "account":
        return key[1]
    value = record.get("account_id")
    return str(value) if value else None


def _same_account(
    keys: set[RecordKey], records: Mapping[RecordKey, dict[str, Any]]
) -> set[RecordKey]:
    """The judged records sharing an account with any of ``keys``."""
    accounts = {a for k in keys if (a := _account_of(k, records.get(k, {})))}
    return {
        key
        for key, record in records.items()
        if key[0] in JUDGED and _account_of(key, record) in accounts
    }


def with_related(
    judged: set[RecordKey], records: Mapping[RecordKey, dict[str, Any]]
) -> set[RecordKey]:
    """``judged`` with everything their facts read: what belongs with each deal, then every
    record named by id from any record present, until nothing new comes."""
    wanted = set(judged)
    deals = {k[1] for k in judged if k[0] == "opportunity"}
    if deals:
        for key, record in records.items():
            for record_type, field in OF_DEAL:
                if key[0] == record_type and record.get(field) in deals:
                    wanted.add(key)
    frontier = list(wanted)
    while frontier:
        key = frontier.pop()
        record = records.get(key, {})
        for field, target in TO_ONE[key[0]]:
            for target_id in ids_of(record, field):
                other = (target, target_id)
                if other in records and other not in wanted:
                    wanted.add(other)
                    frontier.append(other)
    return wanted


def incomplete_keys(keys: Iterable[RecordKey], loaded: LoadedRows) -> set[RecordKey]:
    """Judged records that name, or belong with, a record that could not be read."""
    if not loaded.bad:
        return set()
    bad_ids = set(loaded.bad)
    bad_deals = {i for t, i in loaded.bad if t == "opportunity"}
    held = set()
    for key in keys:
        record = loaded.records.get(key, {})
        named = {(target, i) for field, target in TO_ONE[key[0]] for i in ids_of(record, field)}
        if named & bad_ids or (
            key[0] in ("activity", "lead")
            and bad_deals
            & set(ids_of(record, "what_id") + ids_of(record, "converted_opportunity_id"))
        ):
            held.add(key)
    return held
