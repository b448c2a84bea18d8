"""A change document (CRM record before and after, plus context) -> validated model records.

The in-line API (:mod:`tsos_rules.inline`) judges what this module parses; CRM in-line adapters
build their changes with it too, so every entry point refuses a malformed change the same way:
a :class:`~tsos_rules.errors.ChangeError` naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from tsos_rules.errors import ChangeError
from tsos_rules.model import (
    COLLECTIONS,
    Account,
    Activity,
    Lead,
    Opportunity,
    Snapshot,
)
from tsos_rules.snapshot.document import SnapshotError, snapshot_from_dict, structure_record

#: The record types a change can be about, with their model class and snapshot collection.
RECORD_TYPES: Final[Mapping[str, tuple[type[Any], str]]] = {
    "opportunity": (Opportunity, "opportunities"),
    "lead": (Lead, "leads"),
    "account": (Account, "accounts"),
    "activity": (Activity, "activities"),
}

#: The after record's field that carries the approval of a close-date move.
APPROVAL_FIELD: Final = "close_date_approved_by"

_COLLECTION_NAMES: Final = frozenset(plural for plural, _, _ in COLLECTIONS)

#: The largest magnitude a number in a change may have: far beyond any amount, and small
#: enough that the rules' sums and percentages cannot overflow a float (and the answer's JSON).
NUMBER_LIMIT: Final = 1e300

Record = Opportunity | Lead | Account | Activity


@attrs.frozen
class ParsedChange:
    """A change after validation: model records, the context snapshot and the date."""

    record_type: str
    before: Record | None
    after: Record | None
    context: Snapshot
    as_of: dt.date | None

    @property
    def record_id(self) -> str:
        record = self.after if self.after is not None else self.before
        assert record is not None
        return record.id


def _shown(value: Any) -> str:
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    except (ValueError, RecursionError):
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _timestamp_fields(cls: type[Any]) -> tuple[str, ...]:
    return tuple(a.name for a in attrs.fields(cls) if a.type in (dt.datetime, dt.datetime | None))


def _number_fields(cls: type[Any]) -> tuple[str, ...]:
    return tuple(a.name for a in attrs.fields(cls) if a.type in (float, float | None))


#: Number fields per record class, range-checked (see :func:`_check_ranges`).
_NUMBERS: Final = {cls: _number_fields(cls) for _, _, cls in COLLECTIONS}
#: Timestamp fields per record class, range-checked (see :func:`_check_ranges`).
_TIMESTAMPS: Final = {cls: _timestamp_fields(cls) for _, _, cls in COLLECTIONS}
_TIMESTAMP_COLLECTIONS: Final = tuple(
    (plural, _TIMESTAMPS[cls]) for plural, _, cls in COLLECTIONS if _TIMESTAMPS[cls]
)


def _in_range(value: dt.date) -> bool:
    return 1 < value.year < 9999


def number_in_range(value: float) -> bool:
    """A finite number within :data:`NUMBER_LIMIT` (the rules' arithmetic cannot overflow)."""
    return math.isfinite(value) and abs(value) <= NUMBER_LIMIT


def _check_ranges(record: Any, where: str) -> None:
    """Refuse numbers beyond :data:`NUMBER_LIMIT` and timestamps a time-zone conversion would
    overflow (years 1 and 9999)."""
    for name in _NUMBERS.get(type(record), ()):
        value = getattr(record, name)
        if value is not None and not number_in_range(value):
            raise ChangeError(f"{where}.{name}", f"number out of range: {_shown(value)}")
    for name in _TIMESTAMPS.get(type(record), ()):
        value = getattr(record, name)
        if value is not None and not _in_range(value):
            raise ChangeError(f"{where}.{name}", f"{value.isoformat()} is out of range")
    if isinstance(record, Opportunity) and record.partner_consent is not None:
        at = record.partner_consent.at
        if at is not None and not _in_range(at):
            raise ChangeError(f"{where}.partner_consent.at", f"{at.isoformat()} is out of range")


def _parse_record(value: Any, record_type: str, where: str) -> Record | None:
    cls, collection = RECORD_TYPES[record_type]
    if value is None:
        return None
    if isinstance(value, cls):
        _check_ranges(value, where)
        return value  # type: ignore[no-any-return]
    if not isinstance(value, Mapping):
        raise ChangeError(
            where, f"expected an object (a {record_type}) or null, got {_shown(value)}"
        )
    data = value if type(value) is dict else dict(value)
    try:
        record = structure_record(data, cls, source=where, collection=collection, index=0)
    except SnapshotError as exc:
        error = exc.errors[0] if exc.errors else None
        if error is None:
            raise ChangeError(where, str(exc)) from None
        field = f"{where}.{error.field}" if error.field else where
        raise ChangeError(field, error.problem) from None
    _check_ranges(record, where)
    return record  # type: ignore[no-any-return]


def _parse_context(context: Snapshot | Mapping[str, Any] | None) -> Snapshot:
    if context is None:
        return Snapshot()
    if isinstance(context, Snapshot):
        return _checked_context(context)
    if not isinstance(context, Mapping):
        raise ChangeError(
            "context", f"expected an object (a snapshot subset), got {_shown(context)}"
        )
    data = context if type(context) is dict else dict(context)
    for key in _COLLECTION_NAMES:
        rows = data.get(key)
        if rows is not None and type(rows) is not list:
            raise ChangeError(f"context.{key}", f"expected a list, got {_shown(rows)}")
    _parse_as_of(data.get("as_of"), "context.as_of")
    try:
        snapshot, _ = snapshot_from_dict(data, source="context")
    except SnapshotError as exc:
        if not exc.errors:
            raise ChangeError("context", str(exc)) from None
        error = exc.errors[0]
        where = f"context.{error.collection}[{error.index}]"
        raise ChangeError(
            f"{where}.{error.field}" if error.field else where, error.problem
        ) from None
    return _checked_context(snapshot)


def _check_approval(deal: Opportunity, where: str) -> None:
    """``close_date_approved_by`` is text (the approver) or null, as the OpenAPI document says."""
    approval = deal.extra.get(APPROVAL_FIELD)
    if approval is not None and type(approval) is not str:
        raise ChangeError(
            f"{where}.{APPROVAL_FIELD}",
            f"expected a string (the approver) or null, got {_shown(approval)}",
        )


def _checked_context(snapshot: Snapshot) -> Snapshot:
    if snapshot.as_of is not None and not _in_range(snapshot.as_of):
        raise ChangeError("context.as_of", f"{snapshot.as_of.isoformat()} is out of range")
    for plural, names in _TIMESTAMP_COLLECTIONS:
        for record in getattr(snapshot, plural):
            for name in names:
                value = getattr(record, name)
                if value is not None and not 1 < value.year < 9999:
                    index = getattr(snapshot, plural).index(record)
                    where = f"context.{plural}[{index}].{name}"
                    raise ChangeError(where, f"{value.isoformat()} is out of range")
    for index, deal in enumerate(snapshot.opportunities):
        _check_approval(deal, f"context.opportunities[{index}]")
        consent = deal.partner_consent
        if consent is not None and consent.at is not None and not _in_range(consent.at):
            where = f"context.opportunities[{index}].partner_consent.at"
            raise ChangeError(where, f"{consent.at.isoformat()} is out of range")
    return snapshot


_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_date_text(value: Any) -> bool:
    if type(value) is not str or not _ISO_DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _parse_as_of(as_of: dt.date | str | None, where: str = "as_of") -> dt.date | None:
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        raise ChangeError(where, f"expected a date YYYY-MM-DD, got a timestamp {as_of.isoformat()}")
    if isinstance(as_of, dt.date):
        day = as_of
    elif _is_date_text(as_of):
        day = dt.date.fromisoformat(as_of)
    else:
        raise ChangeError(where, f"expected a date YYYY-MM-DD, got {_shown(as_of)}")
    if not _in_range(day):
        raise ChangeError(where, f"{day.isoformat()} is out of range")
    return day


def parse_change(
    record_type: Any,
    before: Any,
    after: Any,
    context: Snapshot | Mapping[str, Any] | None = None,
    *,
    as_of: dt.date | str | None = None,
    prefix: str = "change.",
) -> ParsedChange:
    """Validate a change; every error is a :class:`ChangeError` naming the field."""
    if not isinstance(record_type, str) or record_type not in RECORD_TYPES:
        allowed = ", ".join(RECORD_TYPES)
        raise ChangeError(
            f"{prefix}record_type", f"expected one of {allowed}, got {_shown(record_type)}"
        )
    before_record = _parse_record(before, record_type, f"{prefix}before")
    after_record = _parse_record(after, record_type, f"{prefix}after")
    if before_record is None and after_record is None:
        raise ChangeError(f"{prefix}after", "before and after cannot both be null")
    if (
        before_record is not None
        and after_record is not None
        and before_record.id != after_record.id
    ):
        raise ChangeError(
            f"{prefix}after.id",
            f"the after record ({after_record.id!r}) must have the before record's id "
            f"({before_record.id!r})",
        )
    for side, record in (("before", before_record), ("after", after_record)):
        if isinstance(record, Opportunity):
            _check_approval(record, f"{prefix}{side}")
    return ParsedChange(
        record_type=record_type,
        before=before_record,
        after=after_record,
        context=_parse_context(context),
        as_of=_parse_as_of(as_of),
    )
