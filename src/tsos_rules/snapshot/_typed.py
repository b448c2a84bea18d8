"""Typed decoding of a snapshot's collections: msgspec checks types and reads dates in C.

The generated functions of :mod:`tsos_rules.snapshot._fast` read records from parsed JSON, a
check per field in Python; at 100k deals that is most of a load. Here each collection's JSON
is decoded by msgspec straight into a struct of the record's fields (``decode`` with a type),
then copied into the model records. msgspec's checks are a subset of the fast path's: a
collection it refuses for any reason (a wrong type, a date it does not read, a key layout it
cannot learn) is read by the fast path and cattrs as before, so what loads and every error
message are unchanged (``tests/snapshot/test_typed.py`` holds the two paths equal). Datetimes
are decoded as text and read by ``datetime.fromisoformat`` as the fast path reads them: msgspec
reads more spellings (a lowercase ``t``) and rounds a seventh fraction digit.

Keys that are not fields (kept in ``extra``) are learnt from msgspec's "unknown field" error,
at most :data:`MAX_EXTRAS` a collection, the decode being tried again with them.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from typing import Any

import attrs
import msgspec

from tsos_rules.snapshot._fast import (
    MAX_YEAR,
    MIN_YEAR,
    Refused,
    slot_setters,
    split_optional,
)

#: Keys outside a record's fields learnt per collection before it is left to the fast path.
MAX_EXTRAS = 16
#: Decoders kept (one per record class and set of extra keys); beyond, the oldest go.
MAX_DECODERS = 256

_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)` - at `\$\[\d+\]`")
_FIRST_DAY = dt.date(MIN_YEAR, 1, 1)
_LAST_DAY = dt.date(MAX_YEAR, 12, 31)
_PLAIN = (str, bool, int, float)


class _Unsupported(Exception):
    """A field type this module does not decode: the class is left to the fast path."""


@attrs.frozen
class _Reader:
    """A decoder for one record class and set of extra keys, and its copy into records."""

    decoder: msgspec.json.Decoder[list[Any]]
    convert: Callable[[list[Any]], list[Any]]


_READERS: dict[tuple[type[Any], tuple[str, ...]], _Reader | None] = {}


def typed_records(
    cls: type[Any], raw: msgspec.Raw, nested: dict[type[Any], Callable[[Any], Any]]
) -> tuple[list[Any], list[Any]] | None:
    """The records of one collection's JSON ``raw`` as ``cls``, with the decoded structs (to
    keep, not free); None when msgspec or a later check refuses anything in it. ``nested``
    reads a field whose type is a record class (a deal's partner consent) from its JSON."""
    extras: list[str] = []
    while True:
        reader = _reader(cls, tuple(extras), nested)
        if reader is None:
            return None
        try:
            rows = reader.decoder.decode(raw)
        except msgspec.ValidationError as exc:
            unknown = _UNKNOWN_FIELD.fullmatch(str(exc))
            if unknown is None or unknown[1] in extras or len(extras) >= MAX_EXTRAS:
                return None
            extras.append(unknown[1])
            continue
        except Exception:  # not JSON msgspec reads typed: the fast path reads or explains it
            return None
        try:
            return reader.convert(rows), rows
        except Exception:  # a value the fast path refuses: it, or cattrs, says why
            return None


def _reader(
    cls: type[Any], extras: tuple[str, ...], nested: dict[type[Any], Callable[[Any], Any]]
) -> _Reader | None:
    key = (cls, extras)
    if key in _READERS:
        return _READERS[key]
    if len(_READERS) >= MAX_DECODERS:
        _READERS.clear()
    try:
        struct = _struct(cls, extras, nested)
        reader: _Reader | None = _Reader(
            msgspec.json.Decoder(list[struct]),  # type: ignore[valid-type]
            _converter(cls, extras, nested),
        )
    except _Unsupported:
        reader = None
    _READERS[key] = reader
    return reader


def _fields(cls: type[Any]) -> list[attrs.Attribute[Any]]:
    return [field for field in attrs.fields(cls) if field.name != "extra"]


def _struct(
    cls: type[Any], extras: tuple[str, ...], nested: dict[type[Any], Callable[[Any], Any]]
) -> type[msgspec.Struct]:
    """A struct of ``cls``'s fields (same names, types msgspec checks as the fast path does,
    same defaults) and of ``extras`` (any value; absent: UNSET), refusing any other key."""
    fields: list[Any] = []
    for field in _fields(cls):
        inner, optional = split_optional(field.type)
        decoded: Any
        if inner in _PLAIN or inner is dt.date:
            decoded = inner
        elif inner is dt.datetime:
            decoded = str  # read by fromisoformat, as the fast path reads it
        elif inner in nested:
            decoded = Any  # read from its JSON by the fast path's function (None too)
            optional = False
        elif (isinstance(inner, type) and issubclass(inner, enum.Enum)) or inner == tuple[str, ...]:
            decoded = inner
        else:
            raise _Unsupported(field.name)
        if optional:
            decoded = decoded | None
        default: Any = field.default
        if default is attrs.NOTHING:
            fields.append((field.name, decoded))
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            fields.append((field.name, decoded, msgspec.field(default_factory=default.factory)))
        else:
            fields.append((field.name, decoded, default))
    for i, name in enumerate(extras):
        fields.append((f"extra_{i}", Any, msgspec.field(default=msgspec.UNSET, name=name)))
    return msgspec.defstruct(f"{cls.__name__}JSON", fields, forbid_unknown_fields=True)


def _converter(
    cls: type[Any], extras: tuple[str, ...], nested: dict[type[Any], Callable[[Any], Any]]
) -> Callable[[list[Any]], list[Any]]:
    """Compile ``convert(structs) -> [cls, ...]``, with the checks msgspec does not make
    (a date's year, a datetime's text and zone); raises on the first value it refuses."""
    namespace: dict[str, Any] = {
        "cls": cls,
        "new": object.__new__,
        "UNSET": msgspec.UNSET,
        "Refused": Refused,
        "FIRST_DAY": _FIRST_DAY,
        "LAST_DAY": _LAST_DAY,
        "datetime_from_iso": dt.datetime.fromisoformat,
    }
    lines = ["def convert(rows):", "    out = []", "    append = out.append", "    for s in rows:"]
    names: list[tuple[str, str]] = []
    for i, field in enumerate(_fields(cls)):
        var = f"v{i}"
        names.append((field.name, var))
        inner, optional = split_optional(field.type)
        lines.append(f"        {var} = s.{field.name}")
        check: list[str] = []
        if inner is dt.date:
            check = [f"if not FIRST_DAY <= {var} <= LAST_DAY: raise Refused"]
        elif inner is dt.datetime:
            check = [
                f"{var} = datetime_from_iso({var})",
                f"if {var}.tzinfo is None or not {MIN_YEAR} <= {var}.year <= {MAX_YEAR}:",
                "    raise Refused",
            ]
        elif inner in nested:
            namespace[f"nested{i}"] = nested[inner]
            check = [f"{var} = nested{i}({var})"]
        if check and optional:
            check = [f"if {var} is not None:", *(f"    {line}" for line in check)]
        lines.extend(f"        {line}" for line in check)
    # extra keys in sorted order, as the fast path and cattrs build ``extra``
    lines.append("        extra = {}")
    for i, name in sorted(enumerate(extras), key=lambda item: item[1]):
        lines.append(f"        value = s.extra_{i}")
        lines.append(f"        if value is not UNSET: extra[{name!r}] = value")
    setters = slot_setters(cls)
    if setters is None:
        arguments = ", ".join(f"{name}={var}" for name, var in names)
        lines.append(f"        append(cls({arguments}, extra=extra))")
    else:
        lines.append("        r = new(cls)")
        for name, var in [*names, ("extra", "extra")]:
            namespace[f"set_{name}"] = setters[name]
            lines.append(f"        set_{name}(r, {var})")
        lines.append("        append(r)")
    lines.append("    return out")
    source = "\n".join(lines)
    exec(compile(source, f"<typed convert {cls.__name__}>", "exec"), namespace)
    return namespace["convert"]  # type: ignore[no-any-return]
