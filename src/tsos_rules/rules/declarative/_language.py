"""The declarative rule language: a rule as data, and what its conditions mean.

Shared by the loader (validation), the compiler (translation) and the runtime (findings); the
format and the semantics are documented in :mod:`tsos_rules.rules.declarative.loader`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from tsos_rules.findings import Finding
from tsos_rules.rules.spec import RuleSpec, Violation

#: A condition as data (see the loader's docstring), normalized by the loader.
Condition = Mapping[str, Any]

#: The operators a field test may use.
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists", "matches")
ORDER_OPERATORS = ("lt", "lte", "gt", "gte")
#: The kinds ``eq``/``ne``/``in`` accept (lists and objects only ``exists``).
SCALAR_KINDS = ("null", "bool", "num", "str")

_HUGE = 10**300


def value_kind(value: Any) -> str:
    """The JSON type a value compares as: null, bool, num, str, or other (lists, objects)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "num" if abs(value) < _HUGE else "other"
    if isinstance(value, float):
        return "num" if math.isfinite(value) else "other"
    if isinstance(value, str):
        return "str"
    return "other"


# -- messages ------------------------------------------------------------------------------


_Part = tuple[str, str | None, str | None, str | None]
_CONVERSIONS: dict[str, Callable[[object], str]] = {"r": repr, "s": str, "a": ascii}


@functools.lru_cache(maxsize=4096)
def _template(message: str) -> tuple[_Part, ...] | None:
    """A message split into (literal, name, format spec, conversion) parts; None if malformed."""
    try:
        return tuple(string.Formatter().parse(message))
    except ValueError:
        return None


_UNSET: Any = object()


class MessageValues(Mapping[str, Any]):
    """What a finding's message renders from: a record's flat facts, then the pack's parameters.

    ``ChainMap(flat, parameters)`` read-only, with a ``get`` that asks each map once (a
    :class:`~tsos_rules.facts.FlatView` computes a value when it is first read).
    """

    __slots__ = ("_flat", "_parameters")

    def __init__(self, flat: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
        self._flat = flat
        self._parameters = parameters

    def get(self, name: str, default: Any = None) -> Any:
        value = self._flat.get(name, _UNSET)
        return self._parameters.get(name, default) if value is _UNSET else value

    def __getitem__(self, name: str) -> Any:
        value = self.get(name, _UNSET)
        if value is _UNSET:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._parameters), **dict.fromkeys(self._flat)})

    def __len__(self) -> int:
        return len({*self._parameters, *self._flat})


def render(message: str, values: Mapping[str, Any]) -> str:
    """``str.format_map`` that never raises: unknown or null names render as ``?``."""
    parts = _template(message)
    if parts is None:
        return message
    out = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if value is None:
            value = "?"
        elif conversion in _CONVERSIONS:
            value = _CONVERSIONS[conversion](value)
        try:
            out.append(format(value, spec or ""))
        except (TypeError, ValueError):
            out.append(str(value))
    return "".join(out)


# -- rules ---------------------------------------------------------------------------------


@attrs.frozen
class DeclarativeRule:
    """A rule as data: metadata, a condition over flat facts, and the finding it produces."""

    spec: RuleSpec
    when: Condition
    reason: str
    message: str

    def render(self, values: Mapping[str, Any]) -> str:
        """The message with ``{name}`` filled from ``values``; never raises."""
        return render(self.message, values)

    @property
    def fields(self) -> frozenset[str]:
        """The fact fields the condition reads (a connector may need to fetch them)."""
        return frozenset(field for _, field, _, _ in leaves(self.when, "when"))

    def finding(self, record_type: str, record_id: str, values: Mapping[str, Any]) -> Finding:
        violation = Violation(reason=self.reason, message=self.render(values))
        return self.spec.finding(record_type, record_id, violation)


def is_param(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"param"}


def leaves(cond: Condition, path: str) -> Iterator[tuple[str, str, str, Any]]:
    """Every (path, field, operator, operand) of a normalized condition."""
    for key, value in cond.items():
        if key in ("all", "any"):
            for index, child in enumerate(value):
                yield from leaves(child, f"{path}.{key}[{index}]")
        else:
            for op, operand in value.items():
                yield f"{path}.{key}.{op}", key, op, operand


def describe_condition(cond: Condition, *, nested: bool = False) -> str:
    """A one-line human reading of a condition, for ``explain`` ("What it checks")."""
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        text = f" {'and' if key == 'all' else 'or'} ".join(
            describe_condition(child, nested=True) for child in cond[key]
        )
        return f"({text})" if nested and len(cond[key]) > 1 else text
    parts = []
    for field, ops in cond.items():
        for op, value in ops.items():
            shown = f"{{{value['param']}}}" if is_param(value) else show(value)
            if op in ("exists", "matches", "in"):
                if op == "exists" and value is True:
                    parts.append(f"{field} is set")
                elif op == "exists" and value is False:
                    parts.append(f"{field} is not set")
                else:
                    verb = {"exists": "is set =", "matches": "matches", "in": "is one of"}[op]
                    parts.append(f"{field} {verb} {shown}")
            else:
                symbol = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}[op]
                parts.append(f"{field} {symbol} {shown}")
    text = " and ".join(parts)
    return f"({text})" if nested and len(parts) > 1 else text


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# -- operand checks ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def operand_problem(op: str, value: Any) -> str | None:
    """Why ``value`` cannot be the operand of ``op`` (None when it can)."""
    if op in ("eq", "ne"):
        if value_kind(value) not in SCALAR_KINDS:
            return f"{op} needs a string, number, boolean or null, got {show(value)}"
    elif op in ORDER_OPERATORS:
        if value_kind(value) not in ("num", "str"):
            return f"{op} needs a number or a string, got {show(value)}"
    elif op == "in":
        if (
            not isinstance(value, list | tuple)
            or not value
            or any(value_kind(item) not in SCALAR_KINDS for item in value)
        ):
            return (
                "in needs a non-empty list of strings, numbers, booleans or null, "
                f"got {show(value)}"
            )
    elif op == "exists":
        if not isinstance(value, bool):
            return f"exists needs true or false, got {show(value)}"
    elif op == "matches":
        if not isinstance(value, str):
            return f"matches needs a regular expression string, got {show(value)}"
        try:
            regex(value)
        except re.error as exc:
            return f"invalid regular expression {value!r}: {exc}"
    return None
