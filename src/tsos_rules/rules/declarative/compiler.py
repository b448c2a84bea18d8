"""Compiling declarative conditions to durable-rules rulesets: per record type a plan.

Pure Python (no durable-rules import): the loader compiles every rule to refuse what durable
cannot run, the runtime compiles again with the configured parameter values.

The asserted fact is not the flat dict itself but a typed projection of the fields the rules
test, which makes durable's comparisons exact: per field a type tag and a typed value; strings
hex-encoded (durable compares escaped JSON text and coerces ``"5"`` to ``5``); numbers never in
exponent form (durable rejects them); ``matches`` evaluated with Python's ``re`` (durable's own
regex dialect differs: no ``\\d``, no escapes, no anchors).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from tsos_rules.errors import ConfigError
from tsos_rules.rules.declarative._language import (
    Condition,
    DeclarativeRule,
    is_param,
    leaves,
    operand_problem,
    regex,
    value_kind,
)
from tsos_rules.rules.spec import RECORD_TYPES, RulePack

if TYPE_CHECKING:
    from tsos_rules.facts.records import FlatValues

#: Durable-rules limits, measured: a fact firing more than 64 times is refused (error 303);
#: 512 alternatives in one ruleset hang it (256 kept); 257 identical alternatives fail (error
#: 108: impossible once firings are bounded); a fact has at most 254 properties (error 302).
MAX_FIRINGS = 64
MAX_ALTERNATIVES = 256
MAX_PROPERTIES = 250

#: The session every fact is asserted to (one record is live at a time).
SESSION = "0"

_ORDER_OPS = {"lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}
_TYPED_KEY = {"bool": "b__", "num": "n__", "str": "s__"}
_INT64 = range(-(2**63), 2**63)


class CompileProblem(Exception):
    """A condition durable-rules cannot run; the caller turns it into the right error."""


def _number(value: int | float) -> str:
    """A number as durable-rules parses it right: int64 as is, anything else as a plain float."""
    if isinstance(value, int):
        if value in _INT64:
            return str(value)
        value = float(value)
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text if "." in text else text + ".0"


def _text(value: str) -> str:
    """A string as order-preserving hex: no escapes, never mistaken for a number by durable."""
    return "x" + value.encode("utf-8", "surrogatepass").hex()


def _encode(kind: str, value: Any) -> Any:
    return _text(value) if kind == "str" else value


def _json(node: Any) -> str:
    """JSON for durable-rules: like ``json.dumps`` but numbers via :func:`_number`."""
    if isinstance(node, Mapping):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_json(item) for item in node) + "]"
    if node is None or isinstance(node, bool | str):
        return json.dumps(node)
    return _number(node)


@attrs.frozen
class _Term:
    """A durable-rules condition with its alternative count and worst-case firings per fact."""

    node: dict[str, Any]
    alternatives: int = 1
    firings: int = 1


def _conjunction(terms: Sequence[_Term]) -> _Term:
    if len(terms) == 1:
        return terms[0]
    nodes: list[Any] = []
    for term in terms:
        nodes.extend(term.node["$and"] if set(term.node) == {"$and"} else [term.node])
    return _Term(
        {"$and": nodes},
        math.prod(t.alternatives for t in terms),
        math.prod(t.firings for t in terms),
    )


def _disjunction(terms: Sequence[_Term], *, exclusive: bool = False) -> _Term:
    """``$or`` fires once per true branch: ``exclusive`` branches can never be true together."""
    if len(terms) == 1:
        return terms[0]
    return _Term(
        {"$or": [t.node for t in terms]},
        sum(t.alternatives for t in terms),
        1 if exclusive else sum(t.firings for t in terms),
    )


class Compiler:
    """Compiles the conditions of one record type's rules; collects the fields and regexes."""

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self.parameters = parameters
        self.fields: dict[str, None] = {}
        self.regexes: dict[tuple[str, str], str] = {}

    def rule(self, record_type: str, when: Condition) -> _Term:
        term = _conjunction([_Term({"record_type": record_type}), self.condition(when)])
        if term.alternatives > MAX_ALTERNATIVES:
            raise CompileProblem(
                f"the condition expands to {term.alternatives} alternatives in durable-rules "
                f"(at most {MAX_ALTERNATIVES}): shorten 'in' lists or split the rule"
            )
        if term.firings > MAX_FIRINGS:
            raise CompileProblem(
                f"'any' branches can fire {term.firings} times for one record "
                f"(at most {MAX_FIRINGS}): split the rule"
            )
        return term

    def condition(self, cond: Condition) -> _Term:
        terms = []
        for key, value in cond.items():
            if key == "all":
                terms.append(_conjunction([self.condition(child) for child in value]))
            elif key == "any":
                terms.append(_disjunction([self.condition(child) for child in value]))
            else:
                terms.extend(self.leaf(key, op, operand) for op, operand in value.items())
        return _conjunction(terms)

    def leaf(self, field: str, op: str, operand: Any) -> _Term:
        value = self.parameters[operand["param"]] if is_param(operand) else operand
        problem = operand_problem(op, value)
        if problem:
            raise CompileProblem(problem)
        self.fields[field] = None
        tag = f"t__{field}"
        if op == "eq":
            return self.equal(field, value)
        if op == "ne":
            kind = value_kind(value)
            if kind == "null":
                return _Term({"$neq": {tag: "null"}})
            key = _TYPED_KEY[kind] + field
            branches = [_Term({"$neq": {tag: kind}}), _Term({"$neq": {key: _encode(kind, value)}})]
            return _disjunction(branches, exclusive=True)
        if op in _ORDER_OPS:
            kind = value_kind(value)
            return _Term({_ORDER_OPS[op]: {_TYPED_KEY[kind] + field: _encode(kind, value)}})
        if op == "in":
            unique: dict[tuple[str, Any], None] = {(value_kind(item), item): None for item in value}
            return _disjunction([self.equal(field, item) for _, item in unique], exclusive=True)
        if op == "exists":
            return _Term({"$neq": {tag: "null"}} if value else {tag: "null"})
        key = self.regexes.setdefault((field, value), f"r__{len(self.regexes)}")
        return _Term({key: True})

    def equal(self, field: str, value: Any) -> _Term:
        kind = value_kind(value)
        if kind == "null":
            return _Term({f"t__{field}": "null"})
        return _Term({_TYPED_KEY[kind] + field: _encode(kind, value)})


@attrs.frozen
class Shard:
    """One durable ruleset's worth of rules (``r<i>`` in the definition is ``rules[i]``)."""

    definition: str
    rules: Mapping[str, DeclarativeRule]


@attrs.frozen
class Plan:
    """How one record type is evaluated: the projected fields, regexes and rulesets."""

    record_type: str
    fields: tuple[str, ...]
    regexes: tuple[tuple[str, str, re.Pattern[str]], ...]
    shards: tuple[Shard, ...]

    def fact(self, flat: FlatValues, message_id: int) -> str:
        """The JSON fact asserted for one record: typed projections of the tested fields."""
        parts = [f'"sid":"{SESSION}","id":"{message_id}","record_type":"{self.record_type}"']
        for field in self.fields:
            value: Any = flat.get(field)
            kind = value_kind(value)
            parts.append(f'"t__{field}":"{kind}"')
            if kind == "num":
                parts.append(f'"n__{field}":{_number(value)}')
            elif kind == "str":
                parts.append(f'"s__{field}":"{_text(value)}"')
            elif kind == "bool":
                parts.append(f'"b__{field}":{"true" if value else "false"}')
        for key, field, pattern in self.regexes:
            value = flat.get(field)
            found = isinstance(value, str) and pattern.search(value) is not None
            parts.append(f'"{key}":{"true" if found else "false"}')
        return "{" + ",".join(parts) + "}"


def plan_record_type(
    record_type: str, rules: Sequence[DeclarativeRule], parameters: Mapping[str, Any]
) -> Plan:
    """Compile one record type's rules, packed into as few rulesets as durable's limits allow."""
    compiler = Compiler(parameters)
    shards: list[list[tuple[DeclarativeRule, _Term]]] = [[]]
    for rule in rules:
        try:
            term = compiler.rule(record_type, rule.when)
        except CompileProblem as exc:
            raise CompileProblem(f"{rule.spec.id}: when: {exc}") from None
        current = shards[-1]
        if current and (
            sum(t.firings for _, t in current) + term.firings > MAX_FIRINGS
            or sum(t.alternatives for _, t in current) + term.alternatives > MAX_ALTERNATIVES
        ):
            current = []
            shards.append(current)
        current.append((rule, term))
    built = []
    for members in shards:
        names = {f"r{i}": rule for i, (rule, _) in enumerate(members)}
        definition = {f"r{i}": {"all": [{"m": term.node}]} for i, (_, term) in enumerate(members)}
        built.append(Shard(_json(definition), names))
    regexes = tuple((key, field, regex(p)) for (field, p), key in compiler.regexes.items())
    properties = 3 + 2 * len(compiler.fields) + len(regexes)
    if properties > MAX_PROPERTIES:
        raise CompileProblem(
            f"{record_type} rules read {len(compiler.fields)} field(s) and {len(regexes)} "
            f"pattern(s): a durable-rules fact holds at most {MAX_PROPERTIES} properties "
            "(3, plus 2 per field and 1 per pattern); split the pack"
        )
    return Plan(record_type, tuple(compiler.fields), regexes, tuple(built))


def compile_plans(
    pack: RulePack, rules: Sequence[DeclarativeRule], parameters: Mapping[str, Any]
) -> dict[str, Plan]:
    """Each record type's plan for ``rules`` with resolved ``parameters``.

    A missing or unusable parameter value, or a plan durable cannot run, is a ConfigError.
    """
    for rule in rules:
        for path, _, op, operand in leaves(rule.when, "when"):
            if not is_param(operand):
                continue
            name = operand["param"]
            if name not in parameters:
                raise ConfigError(f"packs.{pack.name}.{name}: no value (used by {rule.spec.id})")
            problem = operand_problem(op, parameters[name])
            if problem:
                raise ConfigError(
                    f"packs.{pack.name}.{name}: {problem} (used by {rule.spec.id} at {path})"
                )
    plans = {}
    for record_type in RECORD_TYPES:
        typed = [rule for rule in rules if record_type in rule.spec.record_types]
        if typed:
            try:
                plans[record_type] = plan_record_type(record_type, typed, parameters)
            except CompileProblem as exc:
                raise ConfigError(f"packs.{pack.name}: {exc}") from None
    return plans
