"""Generated structure functions for bulk loads: cattrs' semantics, without per-field dispatch.

cattrs (``snapshot_io.CONVERTER``) defines how a record is read and explains every error. For a
100k-deal snapshot its per-field hook calls cost ~16 µs a record, most of a ``check`` run, so
bulk loads first try a function generated here from the same attrs fields, with the type checks
inlined. Any record it refuses is handed to cattrs, which either reads it or names the field:
both paths accept exactly the same documents (``tests/test_bulk_structure.py`` checks this).
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs


class Refused(Exception):
    """The fast path does not take this record; cattrs will read or diagnose it."""


_MISSING = object()
#: Dates outside these years are refused: date arithmetic (time zones, quarter ends) must not
#: overflow on a record that says year 1 or 9999.
MIN_YEAR = 2
MAX_YEAR = 9998


def _date(value: Any) -> dt.date:
    if type(value) is str and len(value) == 10 and value[4] == "-" and value[7] == "-":
        parsed = dt.date.fromisoformat(value)
        if MIN_YEAR <= parsed.year <= MAX_YEAR:
            return parsed
    raise Refused


def _datetime(value: Any) -> dt.datetime:
    if type(value) is str:
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is not None and MIN_YEAR <= parsed.year <= MAX_YEAR:
            return parsed
    raise Refused


def _strings(value: Any) -> tuple[str, ...]:
    if type(value) is list:
        for item in value:
            if type(item) is not str:
                raise Refused
        return tuple(value)
    raise Refused


def _number(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    raise Refused


def _split_optional(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def make_bulk_structure(
    cls: type[Any], nested: dict[type[Any], Callable[[Any], Any]] | None = None
) -> Callable[[Any], Any]:
    """Generate ``structure(data) -> cls`` for an attrs record class; raises on anything odd."""
    nested = nested or {}
    namespace: dict[str, Any] = {
        "cls": cls,
        "Refused": Refused,
        "MISSING": _MISSING,
        "date": _date,
        "datetime": _datetime,
        "strings": _strings,
        "number": _number,
        "set_extra": object.__setattr__,
    }
    lines = ["def structure(d):", "    if type(d) is not dict: raise Refused"]
    names: list[str] = []
    known: list[str] = []
    for i, field in enumerate(attrs.fields(cls)):
        if field.name == "extra":
            continue
        known.append(field.name)
        var = f"v{i}"
        names.append(var)
        inner, optional = _split_optional(field.type)
        required = field.default is attrs.NOTHING
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            namespace[f"factory{i}"] = default.factory
            default_expr = f"factory{i}()"
        else:
            namespace[f"default{i}"] = default
            default_expr = f"default{i}"
        key = repr(field.name)
        if required:
            lines.append(f"    {var} = d[{key}]")
        else:
            lines.append(f"    {var} = d.get({key}, MISSING)")
            lines.append(f"    if {var} is MISSING: {var} = {default_expr}")
            lines.append("    else:")
        indent = "    " if required else "        "
        check = _check(inner, var, i, namespace, nested)
        if optional:
            lines.append(f"{indent}if {var} is not None:")
            lines.extend(f"{indent}    {line}" for line in check)
        else:
            lines.extend(f"{indent}{line}" for line in check)
    namespace["KNOWN"] = frozenset(known)
    lines.append(f"    r = cls({', '.join(names)})")
    lines.append(f"    if len(d) > {len(known)} or not KNOWN.issuperset(d):")
    lines.append("        set_extra(r, 'extra', {k: d[k] for k in sorted(d.keys() - KNOWN)})")
    lines.append("    return r")
    exec(compile("\n".join(lines), f"<bulk structure {cls.__name__}>", "exec"), namespace)
    return namespace["structure"]  # type: ignore[no-any-return]


def _check(
    tp: Any, var: str, i: int, namespace: dict[str, Any], nested: dict[type[Any], Any]
) -> list[str]:
    """Lines that validate (and convert) ``var`` as type ``tp``, raising Refused otherwise."""
    if tp is str:
        return [f"if type({var}) is not str: raise Refused"]
    if tp is bool:
        return [f"if type({var}) is not bool: raise Refused"]
    if tp is int:
        return [f"if type({var}) is not int: raise Refused"]
    if tp is float:
        return [f"{var} = number({var})"]
    if tp is dt.date:
        return [f"{var} = date({var})"]
    if tp is dt.datetime:
        return [f"{var} = datetime({var})"]
    if tp == tuple[str, ...]:
        return [f"{var} = strings({var})"]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        namespace[f"members{i}"] = {member.value: member for member in tp}
        return [f"{var} = members{i}[{var}]"]
    if tp in nested:
        namespace[f"nested{i}"] = nested[tp]
        return [f"{var} = nested{i}({var})"]
    raise TypeError(f"no bulk structure for {tp!r}")


def _unstructure_value(value: Any) -> Any:
    """A model value as JSON: dates as ISO strings, enums as values, tuples as lists."""
    if value is None or type(value) in (str, bool, int, float):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, tuple):
        return [_unstructure_value(item) for item in value]
    if attrs.has(type(value)):
        return make_bulk_unstructure(type(value))(value)
    return value


_UNSTRUCTURE: dict[type[Any], Callable[[Any], dict[str, Any]]] = {}


def make_bulk_unstructure(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """``unstructure(record) -> dict``: the record's JSON shape with its extras, like cattrs'."""
    known = _UNSTRUCTURE.get(cls)
    if known is not None:
        return known
    names = tuple(field.name for field in attrs.fields(cls) if field.name != "extra")
    plain = (str, bool, int, float, type(None))

    def unstructure(record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(record, name)
            out[name] = value if type(value) in plain else _unstructure_value(value)
        out.update(record.extra)
        return out

    _UNSTRUCTURE[cls] = unstructure
    return unstructure
