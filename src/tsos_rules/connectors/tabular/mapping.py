"""Rows <-> snapshot records: columns, value maps, date formats and the time zone.

``decode`` turns one source row into a snapshot-shaped dict (JSON values), raising
:class:`SkippableRecordError` naming the table, column and value it could not read; ``encode``
goes the other way for repairs (and for tests that play the CRM's users).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import types
import typing
import zoneinfo
from collections.abc import Mapping
from typing import Any

import attrs

from tsos_rules import model
from tsos_rules.connectors.tabular.settings import TableMapping
from tsos_rules.errors import SkippableRecordError

#: Record type -> its model class and snapshot collection.
RECORDS: dict[str, tuple[type[Any], str]] = {
    singular: (cls, plural) for plural, singular, cls in model.COLLECTIONS
}
TRUE = frozenset({"1", "true", "t", "yes", "y", "x", "-1"})
FALSE = frozenset({"0", "false", "f", "no", "n", ""})
BLANK = ""
ANY = "*"
LIST_SEPARATOR = ";"


def _kind(annotation: Any) -> str:
    """``date``, ``datetime``, ``number``, ``int``, ``bool``, ``list``, ``enum`` or ``str``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _kind(args[0]) if len(args) == 1 else "str"
    if annotation is dt.datetime:
        return "datetime"
    if annotation is dt.date:
        return "date"
    if annotation is float:
        return "number"
    if annotation is int:
        return "int"
    if annotation is bool:
        return "bool"
    if typing.get_origin(annotation) is tuple:
        return "list"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "enum"
    return "str"


def _kinds(cls: type[Any]) -> dict[str, str]:
    hints = typing.get_type_hints(cls, vars(model))
    return {f.name: _kind(hints[f.name]) for f in attrs.fields(cls) if f.name != "extra"}


#: Record type -> field -> kind (fields not listed are kept as text in ``extra``).
KINDS: dict[str, dict[str, str]] = {record: _kinds(cls) for record, (cls, _) in RECORDS.items()}
#: The fields that are nested objects: not mappable to one column.
UNMAPPABLE = frozenset({"partner_consent"})


def kind_of(record: str, field: str) -> str:
    return KINDS[record].get(field, "str")


@attrs.frozen
class Codec:
    """Reads and writes the values of one table mapping."""

    mapping: TableMapping
    zone: zoneinfo.ZoneInfo
    date_format: str | None = None
    datetime_format: str | None = None

    # -- reading -------------------------------------------------------------------------

    def record_id(self, row: Mapping[str, Any]) -> str | None:
        value = row.get(self.mapping.id)
        text = _text(value)
        return text.strip() if text is not None and text.strip() else None

    def decode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The snapshot record of one row; a value that does not read raises, naming it."""
        mapping = self.mapping
        record_id = self.record_id(row)
        if record_id is None:
            raise SkippableRecordError(
                mapping.record, "?", mapping.id, f"{mapping.table}.{mapping.id} is blank"
            )
        out: dict[str, Any] = {"id": record_id} if mapping.record != "close_date_change" else {}
        out.update(mapping.constants)
        for field, column in mapping.columns.items():
            raw = row.get(column)
            try:
                value = self.read_value(field, raw)
            except ValueError as exc:
                raise SkippableRecordError(
                    mapping.record,
                    record_id,
                    field,
                    f"{mapping.table}.{column} = {_shown(raw)}: {exc}",
                ) from None
            if value is not None:  # a blank leaves the field at its default
                out[field] = value
        return out

    def read_value(self, field: str, raw: Any) -> Any:
        """One column's value as the snapshot's JSON value (None for blanks)."""
        mapping = self.mapping
        kind = kind_of(mapping.record, field)
        table = mapping.values.get(field)
        if table is not None:
            key = _key(raw)
            if key in table:
                return table[key]
            if key != BLANK and ANY in table:
                return table[ANY]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if kind == "date":
            return self._date(field, raw).isoformat()
        if kind == "datetime":
            return self._datetime(field, raw).isoformat()
        if kind in ("number", "int"):
            number = _number(raw)
            return int(number) if kind == "int" and number == int(number) else number
        if kind == "bool":
            return _bool(raw)
        if kind == "list":
            return [part.strip() for part in str(raw).split(LIST_SEPARATOR) if part.strip()]
        text = _text(raw)
        return text.strip() if isinstance(text, str) else text

    def _date(self, field: str, raw: Any) -> dt.date:
        if isinstance(raw, dt.datetime):
            return raw.date()
        if isinstance(raw, dt.date):
            return raw
        text = str(raw).strip()
        fmt = self.mapping.formats.get(field) or self.date_format
        if fmt:
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError:
                raise ValueError(f"not a date in the format {fmt!r}") from None
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            raise ValueError("not a date YYYY-MM-DD (set a format for it)") from None

    def _datetime(self, field: str, raw: Any) -> dt.datetime:
        if isinstance(raw, dt.datetime):
            moment = raw
        elif isinstance(raw, dt.date):
            moment = dt.datetime.combine(raw, dt.time())
        else:
            text = str(raw).strip()
            fmt = self.mapping.formats.get(field) or self.datetime_format
            if fmt:
                try:
                    moment = dt.datetime.strptime(text, fmt)
                except ValueError:
                    raise ValueError(f"not a timestamp in the format {fmt!r}") from None
            else:
                try:
                    moment = dt.datetime.fromisoformat(text)
                except ValueError:
                    raise ValueError("not an ISO 8601 timestamp (set a format for it)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment

    def modified(self, row: Mapping[str, Any]) -> dt.datetime | None:
        """When the row last changed (None when the table maps no modified column)."""
        column = self.mapping.modified
        if column is None:
            return None
        raw = row.get(column)
        if raw is None or raw == "":
            raise ValueError(f"{self.mapping.table}.{column} is blank")
        try:
            return self._datetime("", raw).astimezone(dt.UTC)
        except ValueError as exc:
            raise ValueError(f"{self.mapping.table}.{column} = {_shown(raw)}: {exc}") from None

    def version(self, row: Mapping[str, Any]) -> str | None:
        column = self.mapping.version or self.mapping.modified
        if column is None:
            return None
        return _version_text(row.get(column))

    def is_deleted(self, row: Mapping[str, Any]) -> bool:
        column = self.mapping.deleted
        if column is None:
            return False
        try:
            return _bool(row.get(column))
        except ValueError:
            return False

    # -- writing -------------------------------------------------------------------------

    def encode_modified(self, moment: dt.datetime, *, text: bool) -> Any:
        """A new modified time for the row, in the source's time zone."""
        local = moment.astimezone(self.zone)
        if not text:
            return local
        return local.strftime(self.datetime_format) if self.datetime_format else local.isoformat()

    def encode(self, field: str, value: Any, *, text: bool) -> Any:
        """A snapshot value as the column holds it: the value map read backwards, dates in
        the column's format (or as date objects for typed SQL columns when ``text`` is False).
        """
        mapping = self.mapping
        kind = kind_of(mapping.record, field)
        if isinstance(value, enum.Enum):
            value = value.value
        table = mapping.values.get(field)
        if table is not None:
            for raw, mapped in table.items():
                if raw not in (ANY,) and mapped == value and type(mapped) is type(value):
                    return None if raw == BLANK else raw
        if value is None:
            return None
        if kind == "date":
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            fmt = mapping.formats.get(field) or self.date_format
            if fmt:
                return day.strftime(fmt)
            return day.isoformat() if text else day
        if kind == "datetime":
            moment = (
                value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
            )
            moment = moment.astimezone(self.zone)
            fmt = mapping.formats.get(field) or self.datetime_format
            if fmt:
                return moment.strftime(fmt)
            return moment.isoformat() if text else moment
        if kind == "list":
            return LIST_SEPARATOR.join(str(v) for v in value)
        if kind == "bool" and text:
            return "true" if value else "false"
        if text and not isinstance(value, str):
            return str(value)
        return value


def _key(raw: Any) -> str:
    if raw is None:
        return BLANK
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw == int(raw):
        return str(int(raw))
    return str(raw).strip()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("not a number")
    if isinstance(raw, int | float | decimal.Decimal):
        return float(raw)
    text = str(raw).strip().replace(",", "")
    for sign in ("$", "€", "£", "%"):
        text = text.replace(sign, "")
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number") from None


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float | decimal.Decimal):
        return raw != 0
    text = "" if raw is None else str(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError("not true or false (1/0, yes/no, true/false)")


def _version_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return _text(value)


def _shown(value: Any) -> str:
    text = repr(value if not isinstance(value, dt.date | decimal.Decimal) else str(value))
    return text if len(text) <= 60 else text[:57] + "..."
