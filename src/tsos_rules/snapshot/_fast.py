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


class _OtherLayout(Exception):
    """A layout's function was given a record with another number of keys."""


_MISSING = object()
#: Dates outside these years are refused: date arithmetic (time zones, quarter ends) must not
#: overflow on a record that says year 1 or 9999.
MIN_YEAR = 2
MAX_YEAR = 9998

#: Dates already read, by their text: a snapshot's hundreds of thousands of dates take a few
#: thousand values, and a lookup costs a third of a parse (and shares one object per day).
#: Only dates that passed every check are kept; cleared when it holds :data:`MAX_DATES`.
_DATES: dict[str, dt.date] = {}
MAX_DATES = 65536


def _read_date(text: str) -> dt.date:
    """``text`` as a date, as the generated functions' date check reads it (after a miss in
    :data:`_DATES`), kept for the next record with the same date."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise Refused
    value = dt.date.fromisoformat(text)
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise Refused
    if len(_DATES) >= MAX_DATES:
        _DATES.clear()
    _DATES[text] = value
    return value


def split_optional(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


#: Distinct key layouts (shapes) learnt per record class; a snapshot has a handful, and beyond
#: this the generic function serves the rest rather than compiling one per record.
MAX_SHAPES = 64


def make_bulk_structure(
    cls: type[Any], nested: dict[type[Any], Callable[[Any], Any]] | None = None
) -> Callable[[Any], Any]:
    """Generate ``structure(data) -> cls`` for an attrs record class; raises on anything odd.

    A snapshot's records of one type share a few key layouts, so the first record of each
    layout compiles a function for exactly those keys (no missing-key checks, extras known in
    advance); the input is never modified.
    """
    layout_of = _layouts(cls, nested or {})
    last: list[Callable[[Any], Any]] = []  # the function of the previous record's layout

    def structure(data: Any) -> Any:
        if type(data) is not dict:
            raise Refused
        if last:
            # Most records have the previous one's layout. A layout's function first checks
            # the key count, then reads every key of its layout, so it either raises (a
            # KeyError for a missing key: find the right layout below) or had exactly the
            # same keys, in whatever order (the result does not depend on the order).
            try:
                return last[0](data)
            except (_OtherLayout, KeyError):
                pass
        function = layout_of(data)
        last[:] = [function]
        return function(data)

    return structure


def make_bulk_structure_rows(
    cls: type[Any], nested: dict[type[Any], Callable[[Any], Any]] | None = None
) -> Callable[[list[Any]], list[Any]]:
    """Generate ``structure_rows(rows) -> [cls, ...]``: :func:`make_bulk_structure` over a
    whole collection, without a call per record; raises on the first record it refuses."""
    layout_of = _layouts(cls, nested or {})

    def structure_rows(rows: list[Any]) -> list[Any]:
        out: list[Any] = []
        append = out.append
        function: Callable[[Any], Any] | None = None
        for data in rows:
            if type(data) is not dict:
                raise Refused
            if function is not None:
                try:  # the previous record's layout, as in make_bulk_structure
                    append(function(data))
                    continue
                except (_OtherLayout, KeyError):
                    pass
            function = layout_of(data)
            append(function(data))
        return out

    return structure_rows


def _layouts(
    cls: type[Any], nested: dict[type[Any], Callable[[Any], Any]]
) -> Callable[[dict[str, Any]], Callable[[Any], Any]]:
    """``layout_of(data)``: the structure function compiled for ``data``'s key layout (one per
    layout, up to :data:`MAX_SHAPES`; beyond, the generic function for any layout)."""
    fields = [field for field in attrs.fields(cls) if field.name != "extra"]
    generic: list[Callable[[Any], Any]] = []  # compiled when first needed, as the layouts
    shapes: dict[tuple[str, ...], Callable[[Any], Any]] = {}

    def layout_of(data: dict[str, Any]) -> Callable[[Any], Any]:
        shape = tuple(data)
        function = shapes.get(shape)
        if function is None:
            if len(shapes) >= MAX_SHAPES:
                if not generic:
                    generic.append(_generate(cls, fields, None, nested))
                return generic[0]
            function = shapes[shape] = _generate(cls, fields, shape, nested)
        return function

    return layout_of


def _generate(
    cls: type[Any],
    fields: list[attrs.Attribute[Any]],
    shape: tuple[str, ...] | None,
    nested: dict[type[Any], Callable[[Any], Any]],
) -> Callable[[Any], Any]:
    """Compile a structure function for one key layout (``shape``), or for any (``None``)."""
    namespace: dict[str, Any] = {
        "cls": cls,
        "Refused": Refused,
        "MISSING": _MISSING,
        "known_date": _DATES.get,
        "read_date": _read_date,
        "datetime_from_iso": dt.datetime.fromisoformat,
    }
    lines = ["def structure(d):"]
    if shape is None:
        lines.append("    if type(d) is not dict: raise Refused")
    else:
        namespace["OtherLayout"] = _OtherLayout
        lines.append(f"    if len(d) != {len(shape)}: raise OtherLayout")
    names: dict[str, str] = {}
    for i, field in enumerate(fields):
        var = f"v{i}"
        names[field.name] = var
        inner, optional = split_optional(field.type)
        default: Any = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            namespace[f"factory{i}"] = default.factory
            default_expr = f"factory{i}()"
        else:
            namespace[f"default{i}"] = default
            default_expr = f"default{i}"
        key = repr(field.name)
        check = _check(inner, var, i, namespace, nested)
        if optional:
            check = [f"if {var} is not None:", *(f"    {line}" for line in check)]
        if shape is None:
            if field.default is attrs.NOTHING:
                lines.append(f"    {var} = d[{key}]")
                lines.extend(f"    {line}" for line in check)
            else:
                lines.append(f"    {var} = d.get({key}, MISSING)")
                lines.append(f"    if {var} is MISSING: {var} = {default_expr}")
                lines.append("    else:")
                lines.extend(f"        {line}" for line in check)
        elif field.name in shape:
            lines.append(f"    {var} = d[{key}]")
            lines.extend(f"    {line}" for line in check)
        elif field.default is attrs.NOTHING:
            lines.append("    raise Refused")  # a required field is missing
        else:
            lines.append(f"    {var} = {default_expr}")
    known = [field.name for field in fields]
    if shape is None:
        namespace["KNOWN"] = frozenset(known)
        lines.append("    extra = {}")
        lines.append(f"    if len(d) > {len(known)} or not KNOWN.issuperset(d):")
        lines.append("        extra = {k: d[k] for k in sorted(d.keys() - KNOWN)}")
    else:
        unknown = sorted(set(shape) - set(known))
        lines.append("    extra = {" + ", ".join(f"{k!r}: d[{k!r}]" for k in unknown) + "}")
    setters = slot_setters(cls)
    if setters is None:
        lines.append(f"    r = cls({', '.join(names.values())}, extra=extra)")
    else:
        # What attrs' __init__ does for a plain frozen slotted class, without its call and its
        # per-field object.__setattr__: about half the cost of building a record.
        namespace["new"] = object.__new__
        lines.append("    r = new(cls)")
        for name, var in [*names.items(), ("extra", "extra")]:
            namespace[f"set_{name}"] = setters[name]
            lines.append(f"    set_{name}(r, {var})")
    lines.append("    return r")
    label = "any layout" if shape is None else f"{len(shape)} keys"
    source = "\n".join(lines)
    exec(compile(source, f"<bulk structure {cls.__name__}, {label}>", "exec"), namespace)
    return namespace["structure"]  # type: ignore[no-any-return]


def slot_setters(cls: type[Any]) -> dict[str, Callable[[Any, Any], None]] | None:
    """Each field's slot setter, when attrs' ``__init__`` only stores the values (frozen,
    slotted, no validators, converters, post-init or hash cache); else None."""
    fields = attrs.fields(cls)
    plain = (
        "__slots__" in cls.__dict__
        and not hasattr(cls, "__attrs_post_init__")
        and not hasattr(cls, "__attrs_pre_init__")
        and all(f.init and f.validator is None and f.converter is None for f in fields)
        and all(f.name in cls.__dict__ for f in fields)
        and "__attrs_cached_hash__" not in cls.__slots__
    )
    if not plain:
        return None
    return {f.name: cls.__dict__[f.name].__set__ for f in fields}


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
        return [
            f"if type({var}) is not float:",
            f"    if type({var}) is not int: raise Refused",
            f"    {var} = float({var})",
        ]
    if tp is dt.date:  # what _date does; most dates were read before (see _DATES)
        return [
            f"if type({var}) is not str: raise Refused",
            f"{var} = known_date({var}) or read_date({var})",
        ]
    if tp is dt.datetime:  # likewise _datetime
        return [
            f"if type({var}) is not str: raise Refused",
            f"{var} = datetime_from_iso({var})",
            f"if {var}.tzinfo is None or not {MIN_YEAR} <= {var}.year <= {MAX_YEAR}:",
            "    raise Refused",
        ]
    if tp == tuple[str, ...]:
        return [
            f"if type({var}) is not list: raise Refused",
            f"for item in {var}:",
            "    if type(item) is not str: raise Refused",
            f"{var} = tuple({var})",
        ]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        namespace[f"members{i}"] = {member.value: member for member in tp}
        return [f"{var} = members{i}[{var}]"]
    if tp in nested:
        namespace[f"nested{i}"] = nested[tp]
        return [f"{var} = nested{i}({var})"]
    raise TypeError(f"no bulk structure for {tp!r}")


def unstructure_value(value: Any) -> Any:
    """A model value as JSON: dates as ISO strings, enums as values, tuples as lists."""
    if value is None or type(value) in (str, bool, int, float):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, tuple):
        return [unstructure_value(item) for item in value]
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
            out[name] = value if type(value) in plain else unstructure_value(value)
        out.update(record.extra)
        return out

    _UNSTRUCTURE[cls] = unstructure
    return unstructure
