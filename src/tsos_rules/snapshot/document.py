"""Snapshot JSON <-> model records, with cattrs.

Loading is strict about types (an id is a string, a date is ``YYYY-MM-DD``, an enumeration takes
only its listed values) and lenient about shape (unknown keys are kept in ``extra``). Every error
names the document, the record (collection, index and id) and the field, on one line.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import mmap
import operator
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import attrs
import msgspec
import orjson

from tsos_rules.errors import InputError
from tsos_rules.errors import SnapshotError as SnapshotError
from tsos_rules.model import (
    COLLECTIONS,
    ENUMS,
    EXEMPTION_RECORD_TYPES,
    CrmExemption,
    PartnerConsent,
    Snapshot,
)
from tsos_rules.snapshot._fast import (
    MAX_YEAR,
    MIN_YEAR,
    make_bulk_structure,
    make_bulk_structure_rows,
)
from tsos_rules.snapshot._typed import typed_records

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")


@attrs.frozen
class RecordError:
    """Why one record of a document could not be used."""

    source: str
    collection: str
    index: int
    record_id: str | None
    field: str | None
    problem: str

    @property
    def record_type(self) -> str:
        return _SINGULAR.get(self.collection, self.collection)

    def __str__(self) -> str:
        where = f"{self.collection}[{self.index}]"
        if self.record_id is not None:
            where += f" (id {self.record_id})"
        field = f"{self.field}: " if self.field else ""
        return f"{self.source}: {where}: {field}{self.problem}"


_SINGULAR = {plural: singular for plural, singular, _ in COLLECTIONS}


class FieldProblem(ValueError):
    """A value of the wrong type; the message reads "expected X, got Y"."""


def shown(value: Any) -> str:
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _structure_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise FieldProblem(f"expected a string, got {shown(value)}")


def _structure_float(value: Any, _: type) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # an integer of more than 308 digits, read exactly
            raise FieldProblem(f"expected a number, got {shown(value)} (too large)") from None
    raise FieldProblem(f"expected a number, got {shown(value)}")


def _structure_int(value: Any, _: type) -> int:
    if type(value) is int:
        return int(value)
    raise FieldProblem(f"expected a whole number, got {shown(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    raise FieldProblem(f"expected true or false, got {shown(value)}")


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def structure_date(value: Any, _: type) -> dt.date:
    if type(value) is str and _ISO_DATE.fullmatch(value):
        try:
            parsed = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if MIN_YEAR <= parsed.year <= MAX_YEAR:
                return parsed
            raise FieldProblem(f"expected a year from {MIN_YEAR} to {MAX_YEAR}, got {value!r}")
    raise FieldProblem(f"expected a date YYYY-MM-DD, got {shown(value)}")


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    if type(value) is str:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if not MIN_YEAR <= parsed.year <= MAX_YEAR:
                raise FieldProblem(
                    f"expected a year from {MIN_YEAR} to {MAX_YEAR}, got {shown(value)}"
                )
            if parsed.tzinfo is not None:
                return parsed
            raise FieldProblem(f"expected an ISO 8601 timestamp with an offset, got {shown(value)}")
    raise FieldProblem(f"expected an ISO 8601 timestamp, got {shown(value)}")


def _structure_enum(value: Any, cls: type[enum.StrEnum]) -> enum.StrEnum:
    try:
        return cls(value)
    except (ValueError, TypeError):
        allowed = ", ".join(member.value for member in cls)
        raise FieldProblem(f"expected one of {allowed}, got {shown(value)}") from None


def _structure_str_tuple(value: Any, _: type) -> tuple[str, ...]:
    if type(value) is list and all(type(item) is str for item in value):
        return tuple(value)
    raise FieldProblem(f"expected a list of strings, got {shown(value)}")


_RECORD_CLASSES: tuple[type[Any], ...] = (
    PartnerConsent,
    CrmExemption,
    *(cls for _, _, cls in COLLECTIONS),
)
for _cls in _RECORD_CLASSES:  # the model's string annotations, as types (both paths read them)
    attrs.resolve_types(_cls)


def _make_converter() -> cattrs.Converter:
    import cattrs

    converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(dt.date, structure_date)
    converter.register_structure_hook(dt.datetime, _structure_datetime)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
    for enum_cls in ENUMS:
        # Registered per class: the str hook above would otherwise match these str subclasses.
        converter.register_structure_hook(enum_cls, _structure_enum)
    for base_type in (str, float, int, bool, dt.date, dt.datetime, *ENUMS):
        # A direct hook per optional type: cattrs' generic Optional dispatch is the hot spot
        # of loading a large snapshot.
        _register_optional(converter, base_type)
    converter.register_unstructure_hook(dt.date, lambda d: d.isoformat())
    converter.register_unstructure_hook(dt.datetime, lambda d: d.isoformat())
    converter.register_unstructure_hook(tuple, list)
    for cls in _RECORD_CLASSES:
        _register_record(converter, cls)
    return converter


def _register_optional(converter: cattrs.Converter, base_type: type) -> None:
    hook = converter.get_structure_hook(base_type)
    optional = base_type | None

    def structure(value: Any, _: type) -> Any:
        return None if value is None else hook(value, base_type)

    converter.register_structure_hook_func(lambda t: t == optional, structure)


def _register_record(converter: cattrs.Converter, cls: type[Any]) -> None:
    """Structure ``cls`` from a dict, keeping unknown keys in its ``extra`` field."""
    from cattrs.gen import make_dict_structure_fn, override

    base = make_dict_structure_fn(cls, converter, extra=override(omit=True))
    known = frozenset(a.name for a in attrs.fields(cls) if a.name != "extra")

    def structure(data: Any, _: type) -> Any:
        if type(data) is not dict:
            raise FieldProblem(f"expected an object, got {shown(data)}")
        record = base(data, cls)
        if len(data) > len(known) or not data.keys() <= known:
            extra = {key: data[key] for key in sorted(data.keys() - known)}
            # The record is brand new and not yet shared: filling its extras in place is safe
            # and much cheaper than attrs.evolve on large snapshots.
            object.__setattr__(record, "extra", extra)
        return record

    def unstructure(record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in attrs.fields(cls):
            if field.name == "extra":
                continue
            out[field.name] = converter.unstructure(getattr(record, field.name))
        out.update(record.extra)
        return out

    converter.register_structure_hook(cls, structure)
    converter.register_unstructure_hook(cls, unstructure)


_CONVERTERS: list[cattrs.Converter] = []


def converter() -> cattrs.Converter:
    """The cattrs converter, built on first use: a bulk load that the fast path reads whole
    never needs it, and importing and building it is a quarter of ``check``'s start-up."""
    if not _CONVERTERS:
        _CONVERTERS.append(_make_converter())
    return _CONVERTERS[0]


def __getattr__(name: str) -> Any:
    """``CONVERTER``: the converter of :func:`converter` (the name older code imports)."""
    if name == "CONVERTER":
        return converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CONSENT = make_bulk_structure(PartnerConsent)
_NESTED: dict[type[Any], Callable[[Any], Any]] = {PartnerConsent: _CONSENT}
#: Fast structure functions for bulk loads; cattrs reads or diagnoses whatever they refuse.
BULK_STRUCTURE: dict[type[Any], Callable[[Any], Any]] = {
    cls: make_bulk_structure(cls, {PartnerConsent: _CONSENT}) for _, _, cls in COLLECTIONS
}
#: The same over a whole collection; a collection it refuses is read record by record.
_BULK_ROWS: dict[type[Any], Callable[[list[Any]], list[Any]]] = {
    cls: make_bulk_structure_rows(cls, {PartnerConsent: _CONSENT}) for _, _, cls in COLLECTIONS
}


def _find_problem(data: Any, cls: type[Any]) -> tuple[str | None, str | None]:
    """Name the first field of ``data`` that does not structure into ``cls``, and why."""
    if type(data) is not dict:
        return None, f"expected an object, got {shown(data)}"
    for field in attrs.fields(cls):
        if field.name == "extra":
            continue
        if field.name not in data:
            if field.default is attrs.NOTHING:
                return field.name, "required field is missing"
            continue
        value = data[field.name]
        if attrs.has(_optional_inner(field.type)) and value is not None:
            inner, problem = _find_problem(value, _optional_inner(field.type))
            if problem is not None:
                return f"{field.name}.{inner}" if inner else field.name, problem
            continue
        try:
            converter().structure(value, field.type)
        except FieldProblem as exc:
            return field.name, str(exc)
        except Exception as exc:  # cattrs reports other shapes in its own words
            return field.name, f"invalid value {shown(value)} ({exc.__class__.__name__})"
    return None, None


def _optional_inner(tp: Any) -> Any:
    args = getattr(tp, "__args__", ())
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def structure_record(data: Any, cls: type[T], *, source: str, collection: str, index: int) -> T:
    """Structure one record or raise a SnapshotError naming it and the offending field."""
    try:
        return converter().structure(data, cls)
    except Exception:
        field, problem = _find_problem(data, cls)
        record_id = data.get("id") if isinstance(data, dict) else None
        problem = problem or "record could not be read"
        error = RecordError(
            source,
            collection,
            index,
            record_id if isinstance(record_id, str) else None,
            field,
            problem,
        )
        raise SnapshotError(str(error), [error]) from None


_ID = operator.attrgetter("id")
_IDENTIFIED = frozenset(cls for _, _, cls in COLLECTIONS if "id" in attrs.fields_dict(cls))


def _without_duplicates(
    records: list[Any],
    row_count: int,
    skipped: set[int],
    source: str,
    plural: str,
    skip_bad_records: bool,
    errors: list[RecordError],
) -> list[Any]:
    """Records with an id seen before are refused: "last one wins" would silently hide one.

    With ``skip_bad_records`` the first keeps its place and each later one is reported.
    """
    if len(set(map(_ID, records))) == len(records):
        return records
    positions = [index for index in range(row_count) if index not in skipped]
    first: dict[str, int] = {}
    kept = []
    for record, index in zip(records, positions, strict=True):
        if record.id in first:
            problem = f"duplicate id: also at {plural}[{first[record.id]}]"
            error = RecordError(source, plural, index, record.id, "id", problem)
            if not skip_bad_records:
                raise SnapshotError(str(error), [error])
            errors.append(error)
            continue
        first[record.id] = index
        kept.append(record)
    return kept


def snapshot_from_dict(
    data: Any,
    *,
    source: str = "<snapshot>",
    skip_bad_records: bool = False,
    structured: Mapping[str, list[Any]] | None = None,
) -> tuple[Snapshot, tuple[RecordError, ...]]:
    """Build a Snapshot from parsed JSON.

    With ``skip_bad_records`` a bad record is left out and reported in the returned errors;
    otherwise the first bad record raises :class:`SnapshotError`. ``structured``: collections
    already read into records (by :func:`_decode_typed`), in place of ``data``'s.
    """
    if type(data) is not dict:
        raise SnapshotError(f"{source}: expected a JSON object at the top level, got {shown(data)}")
    errors: list[RecordError] = []
    values: dict[str, Any] = {}
    for plural, _, cls in COLLECTIONS:
        skipped: list[int] = []
        slow: list[Any] = []  # rows read one by one: cattrs reads or names what is refused
        if structured is not None and plural in structured:
            records = structured[plural]
            rows = records
        else:
            rows = data.get(plural, [])
            if rows is None:
                rows = []
            if type(rows) is not list:
                raise SnapshotError(f"{source}: {plural}: expected a list, got {shown(rows)}")
            try:
                records = _BULK_ROWS[cls](rows)
            except Exception:
                records, slow = [], rows
        structure = BULK_STRUCTURE[cls]
        for index, row in enumerate(slow):
            try:
                records.append(structure(row))
            except Exception:
                try:
                    records.append(
                        structure_record(row, cls, source=source, collection=plural, index=index)
                    )
                except SnapshotError as exc:
                    if not skip_bad_records:
                        raise
                    errors.extend(cast("tuple[RecordError, ...]", exc.errors))
                    skipped.append(index)
        if cls in _IDENTIFIED:
            records = _without_duplicates(
                records, len(rows), set(skipped), source, plural, skip_bad_records, errors
            )
        values[plural] = tuple(records)
    as_of = data.get("as_of")
    if as_of is not None:
        try:
            values["as_of"] = structure_date(as_of, dt.date)
        except FieldProblem as exc:
            raise SnapshotError(f"{source}: as_of: {exc}") from None
    values["exemptions"] = _crm_exemptions(data.get("exemptions"), source, skip_bad_records, errors)
    known = {plural for plural, _, _ in COLLECTIONS} | {"as_of", "exemptions"}
    values["extra"] = {key: value for key, value in data.items() if key not in known}
    return Snapshot(**values), tuple(errors)


def _crm_exemptions(
    rows: Any, source: str, skip_bad_records: bool, errors: list[RecordError]
) -> tuple[CrmExemption, ...]:
    """The optional top-level ``exemptions``: waivers held in a CRM field (docs/contract.md)."""
    if rows is None:
        return ()
    if type(rows) is not list:
        raise SnapshotError(f"{source}: exemptions: expected a list, got {shown(rows)}")
    out = []
    for index, row in enumerate(rows):
        try:
            item = structure_record(
                row, CrmExemption, source=source, collection="exemptions", index=index
            )
            if item.record_type not in EXEMPTION_RECORD_TYPES:
                raise _bad_exemption(
                    source,
                    index,
                    item.record_id,
                    "record_type",
                    f"expected one of {', '.join(EXEMPTION_RECORD_TYPES)}, "
                    f"got {item.record_type!r}",
                )
            if not item.record_id:
                raise _bad_exemption(source, index, None, "record_id", "must not be empty")
        except SnapshotError as exc:
            if not skip_bad_records:
                raise
            errors.extend(cast("tuple[RecordError, ...]", exc.errors))
            continue
        out.append(item)
    return tuple(out)


def _bad_exemption(
    source: str, index: int, record_id: str | None, field: str, problem: str
) -> SnapshotError:
    error = RecordError(source, "exemptions", index, record_id, field, problem)
    return SnapshotError(str(error), [error])


#: Environment variable: the largest snapshot document ``load_snapshot`` reads, in bytes.
MAX_BYTES_ENV = "TSOS_RULES_MAX_SNAPSHOT_BYTES"
#: Default cap: about 2.5 million deals in the JSON shape (154 MB per 100k deals).
DEFAULT_MAX_BYTES = 4 * 1024**3

_UTF8_BOM = b"\xef\xbb\xbf"


def max_snapshot_bytes() -> int:
    """The size cap for one snapshot document: ``$TSOS_RULES_MAX_SNAPSHOT_BYTES`` or 4 GiB."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"{MAX_BYTES_ENV}: expected a positive number of bytes, got {raw!r}")
    return value


def _read_capped(handle: IO[bytes], source: str, limit: int) -> bytes:
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise _too_large(source, limit)
    return data


def _too_large(source: str, limit: int) -> SnapshotError:
    return SnapshotError(
        f"{source}: larger than the {limit:,}-byte limit for a snapshot "
        f"(raise it with {MAX_BYTES_ENV})"
    )


def read_path(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file or a pipe, at most ``limit``."""
    raw = _map_path(path, limit)
    if isinstance(raw, mmap.mmap):
        with raw:
            return raw[:]
    return raw


def _map_path(path: str | Path, limit: int) -> bytes | mmap.mmap:
    """A regular file mapped read-only (the parser reads the page cache itself: no copy of
    the document in memory, less to fault in), or a pipe's bytes read whole."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode):
                if info.st_size > limit:
                    raise _too_large(source, limit)
                if info.st_size:  # empty (or sized 0 like /proc files): read as before
                    try:
                        # The mapping outlives the file object (it has its own descriptor).
                        # Replace a snapshot by renaming a new file over it, not by
                        # truncating it in place: reading a truncated mapping is a crash.
                        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                    except (OSError, ValueError):
                        pass  # a file system that cannot map files: read it
            elif not stat.S_ISFIFO(info.st_mode):
                raise SnapshotError(f"{source}: not a regular file (a device or socket)")
            return _read_capped(handle, source, limit)
    except IsADirectoryError:
        raise SnapshotError(f"{source}: is a directory, not a snapshot file") from None
    except OSError as exc:
        raise SnapshotError(f"{source}: cannot read: {exc.strerror or exc}") from None


def _parse(text: str | bytes | memoryview, source: str) -> Any:
    """The JSON document in ``text`` (a UTF-8 byte order mark already removed).

    msgspec parses it (faster than orjson here, and it allocates ~40 % less for a large
    document). A document msgspec refuses is parsed again by orjson, whose messages (with a
    line and column) users see; both accept the same documents, except that msgspec reads an
    integer beyond 64 bits exactly where orjson rounds it to a float (docs/contract.md).
    """
    try:
        return msgspec.json.decode(text)
    except (ValueError, RecursionError):  # DecodeError, or a str that is not UTF-8 encodable
        pass
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg:
            raise SnapshotError(f"{source}: not UTF-8 text") from None
        raise SnapshotError(
            f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise SnapshotError(f"{source}: not valid JSON: nested too deeply") from None


_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_COLLECTION_CLASSES = {plural: cls for plural, _, cls in COLLECTIONS}


def _decode_typed(
    text: str | bytes | memoryview, keep: list[Any] | None
) -> tuple[dict[str, Any], dict[str, list[Any]]] | None:
    """The document's top-level values, its collections read straight into records where
    msgspec decodes them typed (:mod:`tsos_rules.snapshot._typed`); None when msgspec does not
    read it as a JSON object (:func:`_parse` then reads it, or says why not)."""
    try:
        top = _TOP_LEVEL.decode(text)
    except Exception:  # not an object, not JSON: _parse reads it or explains
        return None
    data: dict[str, Any] = {}
    structured: dict[str, list[Any]] = {}
    for key, raw in top.items():
        cls = _COLLECTION_CLASSES.get(key)
        typed = typed_records(cls, raw, _NESTED) if cls is not None else None
        if typed is not None:
            structured[key], decoded = typed
            if keep is not None:
                keep.append(decoded)
            continue
        try:
            data[key] = msgspec.json.decode(raw)
        except Exception:  # as above
            return None
    return data, structured


def decode_document(
    text: str | bytes | memoryview, source: str, keep: list[Any] | None = None
) -> tuple[Any, dict[str, list[Any]] | None]:
    """A snapshot document decoded for :func:`snapshot_from_dict`: its parsed JSON less the
    collections read straight into records, and those records (None when msgspec did not read
    it as an object: the whole document parsed, or a SnapshotError saying why it cannot be)."""
    typed = _decode_typed(text, keep)
    if typed is not None:
        return typed
    return _parse(text, source), None


def load_snapshot(
    stream_or_path: str | Path | IO[str],
    *,
    skip_bad_records: bool = False,
    max_bytes: int | None = None,
    keep: list[Any] | None = None,
) -> tuple[Snapshot, tuple[RecordError, ...]]:
    """Read a snapshot JSON document from a path or an open text stream (such as stdin).

    Only regular files and pipes are read, at most ``max_bytes`` (default
    :func:`max_snapshot_bytes`); a UTF-8 byte order mark is accepted. With ``keep``, the parsed
    document is appended to it: a one-shot command that exits without freeing memory saves
    the time freeing it takes (~0.15 s at 100k deals).
    """
    limit = max_bytes if max_bytes is not None else max_snapshot_bytes()
    text: str | bytes | memoryview
    if isinstance(stream_or_path, str | Path):
        source = str(stream_or_path)
        raw = _map_path(stream_or_path, limit)
        if isinstance(raw, mmap.mmap):
            # Unmapped when the last view of it goes (not closed here: a parse error's
            # traceback may still hold one).
            view = memoryview(raw)
            text = view[3:] if view[:3] == _UTF8_BOM else view
            del view
        else:
            text = raw.removeprefix(_UTF8_BOM)
        del raw
    else:
        source = getattr(stream_or_path, "name", "<stdin>")
        binary = getattr(stream_or_path, "buffer", None)
        if binary is not None:
            text = _read_capped(binary, source, limit).removeprefix(_UTF8_BOM)
        else:
            read = stream_or_path.read(limit + 1)
            if len(read) > limit:
                raise _too_large(source, limit)
            text = read.removeprefix("\ufeff")
            del read
    data, structured = decode_document(text, source, keep)
    del text
    if keep is not None:
        keep.append(data)
    return snapshot_from_dict(
        data, source=source, skip_bad_records=skip_bad_records, structured=structured
    )


def snapshot_to_dict(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as docs/contract.md's JSON shape (unknown keys written back where they were)."""
    out: dict[str, Any] = {}
    if snapshot.as_of is not None:
        out["as_of"] = snapshot.as_of.isoformat()
    for plural, _, _ in COLLECTIONS:
        out[plural] = [converter().unstructure(record) for record in getattr(snapshot, plural)]
    if snapshot.exemptions:
        out["exemptions"] = [converter().unstructure(e) for e in snapshot.exemptions]
    out.update(snapshot.extra)
    return out


def record_from_dict(data: Mapping[str, Any], cls: type[T], *, source: str, where: str) -> T:
    """Structure one record given on its own (an in-line change), naming ``where`` on error."""
    try:
        return converter().structure(dict(data) if isinstance(data, Mapping) else data, cls)
    except Exception:
        field, problem = _find_problem(data, cls)
        problem = problem or "record could not be read"
        raise InputError(f"{source}: {where}: {field + ': ' if field else ''}{problem}") from None
