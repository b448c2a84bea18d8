"""Evaluating compiled declarative packs in pure Python: the same language, no native code.

durable-rules (:mod:`.runtime`) is the reference engine of the pack language; this evaluator
gives the same findings, in the same order, where its C extension cannot load (Python 3.13+
removed ``PyEval_CallObject``, which it calls). It reproduces what the compiler encodes for
durable, not a second reading of the docs: a value's JSON kind from ``value_kind``; integers
inside int64 compare as integers with each other, every other pair of numbers as doubles;
strings by code point; ``matches`` with ``re.search``. Packs are compiled with the same
:func:`~.compiler.compile_plans`, so both backends accept and refuse the same packs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tsos_rules.errors import TsosRulesError
from tsos_rules.facts.records import FlatValues, FlatView
from tsos_rules.findings import Finding
from tsos_rules.rules.declarative._language import (
    Condition,
    DeclarativeRule,
    MessageValues,
    is_param,
    regex,
    value_kind,
)
from tsos_rules.rules.declarative.compiler import compile_plans
from tsos_rules.rules.spec import RulePack

if TYPE_CHECKING:
    from tsos_rules.facts import RecordFacts

__all__ = ["InterpretedDeclarativePack", "compiled_predicate", "predicate"]

#: A compiled condition: true when a record's flat facts (a dict or a FlatView) satisfy it.
Predicate = Callable[[FlatValues], bool]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def _as_durable(value: int | float) -> int | float:
    """A number as durable-rules holds it: int64 as is, anything else as a double."""
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return int(value)
    return float(value)


def _numbers(compare: Callable[[Any, Any], bool], operand: int | float) -> Callable[[Any], bool]:
    """``compare(value, operand)`` on durable's numbers: two int64s exactly, else as doubles."""
    right = _as_durable(operand)
    right_float = float(right)

    def test(value: Any) -> bool:
        if value_kind(value) != "num":
            return False
        left = _as_durable(value)
        if isinstance(left, int) and isinstance(right, int):
            return compare(left, right)
        return compare(float(left), right_float)

    return test


def _equal(value: Any) -> Callable[[Any], bool]:
    """A test of one fact value for ``eq`` ``value`` (same kind, then equal)."""
    kind = value_kind(value)
    if kind == "null":
        return lambda got: got is None
    if kind == "num":
        return _numbers(operator.eq, value)
    if kind == "str":
        text = str(value)
        return lambda got: isinstance(got, str) and str(got) == text
    flag = bool(value)
    return lambda got: isinstance(got, bool) and got is flag


def _leaf(op: str, value: Any) -> Callable[[Any], bool]:
    """A test of one fact value for one operator and its resolved operand."""
    if op == "eq":
        return _equal(value)
    if op == "ne":
        equal = _equal(value)
        return lambda got: not equal(got)
    if op in _ORDER:
        compare = _ORDER[op]
        if value_kind(value) == "num":
            return _numbers(compare, value)
        text = str(value)
        return lambda got: isinstance(got, str) and compare(str(got), text)
    if op == "in":
        tests = [_equal(item) for item in value]
        return lambda got: any(test(got) for test in tests)
    if op == "exists":
        present = bool(value)
        return lambda got: (got is not None) is present
    pattern: re.Pattern[str] = regex(value)
    return lambda got: isinstance(got, str) and pattern.search(got) is not None


def _field(field: str, test: Callable[[Any], bool]) -> Predicate:
    return lambda flat: test(flat.get(field))


def predicate(cond: Condition, parameters: Mapping[str, Any]) -> Predicate:
    """A normalized condition as a function of a flat fact; ``{param: NAME}`` resolved now."""
    tests: list[Predicate] = []
    for key, value in cond.items():
        if key in ("all", "any"):
            children = [predicate(child, parameters) for child in value]
            tests.append(_every(children) if key == "all" else _some(children))
            continue
        for op, operand in value.items():
            resolved = parameters[operand["param"]] if is_param(operand) else operand
            tests.append(_field(key, _leaf(op, resolved)))
    return tests[0] if len(tests) == 1 else _every(tests)


def compiled_predicate(cond: Condition, parameters: Mapping[str, Any], *, name: str) -> Predicate:
    """:func:`predicate` as one generated function: the same leaf tests, in the same order and
    with the same short-circuits, joined by ``and``/``or`` instead of closures over closures."""
    namespace: dict[str, Any] = {}

    def expression(node: Condition) -> str:
        parts: list[str] = []
        for key, value in node.items():
            if key in ("all", "any"):
                joiner = " and " if key == "all" else " or "
                parts.append("(" + joiner.join(expression(child) for child in value) + ")")
                continue
            for op, operand in value.items():
                resolved = parameters[operand["param"]] if is_param(operand) else operand
                test = f"t{len(namespace)}"
                namespace[test] = _leaf(op, resolved)
                parts.append(f"{test}(get({key!r}))")
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    source = f"def test(flat):\n    get = flat.get\n    return bool({expression(cond)})\n"
    exec(compile(source, f"<declarative rule {name}>", "exec"), namespace)
    return namespace["test"]  # type: ignore[no-any-return]


def _every(tests: Sequence[Predicate]) -> Predicate:
    return lambda flat: all(test(flat) for test in tests)


def _some(tests: Sequence[Predicate]) -> Predicate:
    return lambda flat: any(test(flat) for test in tests)


class InterpretedDeclarativePack:
    """A declarative pack bound to parameter values, evaluated in Python (no native state)."""

    def __init__(
        self,
        name: str,
        parameters: Mapping[str, Any],
        checks: Mapping[str, Sequence[tuple[DeclarativeRule, Predicate]]],
    ) -> None:
        self.name = name
        self.parameters = dict(parameters)
        self._checks = {record_type: tuple(rules) for record_type, rules in checks.items()}
        self._closed = False

    @classmethod
    def build(
        cls,
        pack: RulePack,
        rules: Sequence[DeclarativeRule],
        parameters: Mapping[str, Any],
    ) -> InterpretedDeclarativePack:
        """Compile ``rules`` as for durable-rules (same refusals), then as Python predicates."""
        plans = compile_plans(pack, rules, parameters)
        checks = {
            record_type: [
                (rule, compiled_predicate(rule.when, parameters, name=rule.spec.id))
                for shard in plan.shards
                for rule in shard.rules.values()
            ]
            for record_type, plan in plans.items()
        }
        return cls(pack.name, parameters, checks)

    def evaluate(self, record_type: str, facts: RecordFacts) -> list[Finding]:
        """The findings of this pack's rules on one record, in the order durable gives them."""
        checks = self._checks.get(record_type)
        if checks is None:
            return []
        if self._closed:
            raise TsosRulesError(f"pack {self.name}: evaluated after close()")
        # Tested and rendered through a FlatView: only the fields the rules and their messages
        # read are computed, never the whole flat dict.
        view = FlatView(facts)
        fired = [rule for rule, test in checks if test(view)]
        if not fired:
            return []
        values = MessageValues(view, self.parameters)
        return [rule.finding(record_type, facts.record_id, values) for rule in fired]

    def close(self) -> None:
        """Nothing native to release; evaluating again raises, as for durable-rules."""
        self._closed = True
