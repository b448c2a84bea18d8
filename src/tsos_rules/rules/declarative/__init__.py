"""Declarative rule packs: rules as data (YAML or JSON), evaluated by durable-rules.

Admins tune rules and third parties ship packs without writing Python. A pack is one document::

    name: hygiene                     # lowercase letters, digits, "-" and "_"
    version: "1.0"                    # a string: quote it in YAML
    description: Pipeline hygiene checks.
    parameters:                       # tunable values; config overrides keep the default's type
      - name: stalled_days
        default: 60
        description: Days in one stage after which an open deal is stalled.
    extra_fields: [Region__c]         # CRM fields outside the model that rules may test
    rules:
      - id: hygiene.stalled-deal      # "<pack>.<rule-name>", public, never changes once shipped
        severity: warn                # block | warn | info
        record_type: opportunity      # or record_types: [opportunity, lead]
        title: Deal stalled in its stage
        doctrine: "A deal that does not move is not a deal."   # optional quote
        source: DOCTRINE.md           # optional
        remediation: Update the stage or close the deal.       # optional
        reason: stalled               # the finding's reason code
        message: "Deal {name} has not changed stage for {days_in_stage} days"
        parameters: [stalled_days]    # optional: parameters the rule uses are added anyway
        when:
          is_open: true
          days_in_stage: {gte: {param: stalled_days}}

JSON uses the same keys; an optional ``$schema`` key is ignored. The JSON Schema is
``tsos_rules/schemas/declarative-pack.schema.json`` (documentation: validation happens here).

Conditions (``when``) read the record's flat facts (``facts.flat()``: record fields, CRM extras,
derived values such as ``days_in_stage``; the record's id is ``record_id``):

- ``{all: [c, ...]}``, ``{any: [c, ...]}`` (non-empty); a mapping with several keys is ``all``;
- ``{field: {op: value, ...}}`` (several operators on one field are ``all``); ``{field: value}``
  is short for ``{field: {eq: value}}`` when the value is a string, number, boolean or null;
- operators: ``eq``, ``ne``, ``lt``, ``lte``, ``gt``, ``gte``, ``in`` (a list),
  ``exists`` (true/false), ``matches`` (a Python regular expression, searched anywhere in the
  value: anchor it with ``^``/``$``); a value may be ``{param: NAME}``, replaced when the pack
  is compiled by the parameter's configured value.

Semantics (a missing field and ``null`` are the same): values compare only with values of the
same JSON type (``5`` equals ``5.0``; ``"5"`` and ``true`` do not equal ``5``); ``eq: null`` holds
for a missing or null field; ``ne`` is exactly ``not eq``; ``lt``/``lte``/``gt``/``gte`` compare
numbers with numbers and strings with strings (by code point, so ISO dates compare by date) and
are false otherwise; ``in`` is ``eq`` to one of the list; ``exists: true`` means present and not
null; ``matches`` is false for non-strings. List and object values (``channel_reasons``) can only
be tested with ``exists`` (and so ``ne``). Integers beyond ±2**53 compare as floats.

Evaluation drives the durable-rules C extension directly (see ``notes/durable-rules.md``): per
compiled pack, per thread, per record type one ruleset (more when a pack outgrows durable's
limits: 64 firings per fact, ~511 alternatives per ruleset), one fixed session; each record is
asserted as one fact, its actions drained, then retracted. Any other answer than "matched" or
"matched no rule" is a :class:`TsosRulesError`, never "no finding". Packs that could break a
limit at run time (firings, alternatives, 254 properties per fact) are refused when loaded.

The asserted fact is not the flat dict itself but a typed projection of the fields the rules
test, which makes durable's comparisons exact: per field a type tag and a typed value; strings
hex-encoded (durable compares escaped JSON text and coerces ``"5"`` to ``5``); numbers never in
exponent form (durable rejects them); ``matches`` evaluated with Python's ``re`` (durable's own
regex dialect differs: no ``\\d``, no escapes, no anchors).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import json
import math
import re
import string
import threading
import uuid
import weakref
from collections import ChainMap
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import durable_rules_engine
import yaml

from tsos_rules.errors import ConfigError, InputError, PackValidationError, TsosRulesError
from tsos_rules.findings import Finding, Severity
from tsos_rules.rules.spec import RECORD_TYPES, RULE_ID, Parameter, RulePack, RuleSpec, Violation

if TYPE_CHECKING:
    from tsos_rules.facts import RecordFacts

__all__ = [
    "OPERATORS",
    "PACK_KEYS",
    "PARAMETER_KEYS",
    "RULE_KEYS",
    "CompiledDeclarativePack",
    "Condition",
    "DeclarativeRule",
    "describe_condition",
    "fact_fields",
    "load_declarative_pack",
]

#: A condition as data (see the module docstring), normalized by the loader.
Condition = Mapping[str, Any]

#: Keys a pack document may have, and the ones it must have.
PACK_KEYS = ("$schema", "name", "version", "description", "parameters", "extra_fields", "rules")
REQUIRED_PACK_KEYS = ("name", "version", "rules")
#: Keys a rule may have, and the ones it must have (plus one of record_type / record_types).
RULE_KEYS = (
    "id",
    "severity",
    "record_type",
    "record_types",
    "title",
    "doctrine",
    "source",
    "remediation",
    "reason",
    "message",
    "when",
    "parameters",
)
REQUIRED_RULE_KEYS = ("id", "severity", "title", "reason", "message", "when")
PARAMETER_KEYS = ("name", "default", "description")
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists", "matches")

#: Durable-rules limits, measured: a fact firing more than 64 times is refused (error 303);
#: 512 alternatives in one ruleset hang it (256 kept); 257 identical alternatives fail (error
#: 108: impossible once firings are bounded); a fact has at most 254 properties (error 302).
MAX_FIRINGS = 64
MAX_ALTERNATIVES = 256
MAX_PROPERTIES = 250
MAX_DEPTH = 10

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REASON = re.compile(r"[a-z][a-z0-9_]*")
PACK_NAME = re.compile(r"[a-z][a-z0-9_-]*")
RESERVED_FIELDS = {
    "id": "reserved by the engine (the record's id is 'record_id')",
    "sid": "reserved by the engine",
    "record_type": "reserved: the rule's record_type(s) select the records",
    "all": "reserved for combining conditions",
    "any": "reserved for combining conditions",
}

_ORDER_OPS = {"lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}
_SCALAR_KINDS = ("null", "bool", "num", "str")
_TYPED_KEY = {"bool": "b__", "num": "n__", "str": "s__"}
_INT64 = range(-(2**63), 2**63)
_HUGE = 10**300
_SESSION = "0"


class _Problem(Exception):
    """A condition problem found while compiling; the caller turns it into the right error."""


# -- facts ---------------------------------------------------------------------------------


@functools.cache
def fact_fields(record_type: str) -> frozenset[str]:
    """The flat fact fields of a record type, read from ``facts.flat()`` itself (never stale)."""
    from tsos_rules.facts import build_index
    from tsos_rules.model import Account, Activity, Lead, Opportunity, Snapshot

    snapshot = Snapshot(
        as_of=dt.date(2000, 1, 3),
        accounts=(Account("a"),),
        leads=(Lead("l"),),
        opportunities=(Opportunity("o"),),
        activities=(Activity("t"),),
    )
    index = build_index(snapshot)
    facts: RecordFacts
    if record_type == "opportunity":
        facts = index.opportunity(snapshot.opportunities[0])
    elif record_type == "lead":
        facts = index.lead(snapshot.leads[0])
    elif record_type == "account":
        facts = index.account(snapshot.accounts[0])
    elif record_type == "activity":
        facts = index.activity(snapshot.activities[0])
    else:
        raise ValueError(f"unknown record type {record_type!r}")
    return frozenset(facts.flat())


def _kind(value: Any) -> str:
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


def _render(message: str, values: Mapping[str, Any]) -> str:
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
        return _render(self.message, values)

    @property
    def fields(self) -> frozenset[str]:
        """The fact fields the condition reads (a connector may need to fetch them)."""
        return frozenset(field for _, field, _, _ in _leaves(self.when, "when"))

    def finding(self, record_type: str, record_id: str, values: Mapping[str, Any]) -> Finding:
        violation = Violation(reason=self.reason, message=self.render(values))
        return self.spec.finding(record_type, record_id, violation)


def _is_param(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"param"}


def _leaves(cond: Condition, path: str) -> Iterator[tuple[str, str, str, Any]]:
    """Every (path, field, operator, operand) of a normalized condition."""
    for key, value in cond.items():
        if key in ("all", "any"):
            for index, child in enumerate(value):
                yield from _leaves(child, f"{path}.{key}[{index}]")
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
            shown = f"{{{value['param']}}}" if _is_param(value) else _show(value)
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


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# -- operand checks ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _operand_problem(op: str, value: Any) -> str | None:
    """Why ``value`` cannot be the operand of ``op`` (None when it can)."""
    if op in ("eq", "ne"):
        if _kind(value) not in _SCALAR_KINDS:
            return f"{op} needs a string, number, boolean or null, got {_show(value)}"
    elif op in _ORDER_OPS:
        if _kind(value) not in ("num", "str"):
            return f"{op} needs a number or a string, got {_show(value)}"
    elif op == "in":
        if (
            not isinstance(value, list | tuple)
            or not value
            or any(_kind(item) not in _SCALAR_KINDS for item in value)
        ):
            return (
                "in needs a non-empty list of strings, numbers, booleans or null, "
                f"got {_show(value)}"
            )
    elif op == "exists":
        if not isinstance(value, bool):
            return f"exists needs true or false, got {_show(value)}"
    elif op == "matches":
        if not isinstance(value, str):
            return f"matches needs a regular expression string, got {_show(value)}"
        try:
            _regex(value)
        except re.error as exc:
            return f"invalid regular expression {value!r}: {exc}"
    return None


# -- compiling to durable-rules -------------------------------------------------------------


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


class _Compiler:
    """Compiles the conditions of one record type's rules; collects the fields and regexes."""

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self.parameters = parameters
        self.fields: dict[str, None] = {}
        self.regexes: dict[tuple[str, str], str] = {}

    def rule(self, record_type: str, when: Condition) -> _Term:
        term = _conjunction([_Term({"record_type": record_type}), self.condition(when)])
        if term.alternatives > MAX_ALTERNATIVES:
            raise _Problem(
                f"the condition expands to {term.alternatives} alternatives in durable-rules "
                f"(at most {MAX_ALTERNATIVES}): shorten 'in' lists or split the rule"
            )
        if term.firings > MAX_FIRINGS:
            raise _Problem(
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
        value = self.parameters[operand["param"]] if _is_param(operand) else operand
        problem = _operand_problem(op, value)
        if problem:
            raise _Problem(problem)
        self.fields[field] = None
        tag = f"t__{field}"
        if op == "eq":
            return self.equal(field, value)
        if op == "ne":
            kind = _kind(value)
            if kind == "null":
                return _Term({"$neq": {tag: "null"}})
            key = _TYPED_KEY[kind] + field
            branches = [_Term({"$neq": {tag: kind}}), _Term({"$neq": {key: _encode(kind, value)}})]
            return _disjunction(branches, exclusive=True)
        if op in _ORDER_OPS:
            kind = _kind(value)
            return _Term({_ORDER_OPS[op]: {_TYPED_KEY[kind] + field: _encode(kind, value)}})
        if op == "in":
            unique: dict[tuple[str, Any], None] = {(_kind(item), item): None for item in value}
            return _disjunction([self.equal(field, item) for _, item in unique], exclusive=True)
        if op == "exists":
            return _Term({"$neq": {tag: "null"}} if value else {tag: "null"})
        key = self.regexes.setdefault((field, value), f"r__{len(self.regexes)}")
        return _Term({key: True})

    def equal(self, field: str, value: Any) -> _Term:
        kind = _kind(value)
        if kind == "null":
            return _Term({f"t__{field}": "null"})
        return _Term({_TYPED_KEY[kind] + field: _encode(kind, value)})


@attrs.frozen
class _Shard:
    """One durable ruleset's worth of rules (``r<i>`` in the definition is ``rules[i]``)."""

    definition: str
    rules: Mapping[str, DeclarativeRule]


@attrs.frozen
class _Plan:
    """How one record type is evaluated: the projected fields, regexes and rulesets."""

    record_type: str
    fields: tuple[str, ...]
    regexes: tuple[tuple[str, str, re.Pattern[str]], ...]
    shards: tuple[_Shard, ...]

    def fact(self, flat: Mapping[str, Any], message_id: int) -> str:
        """The JSON fact asserted for one record: typed projections of the tested fields."""
        parts = [f'"sid":"{_SESSION}","id":"{message_id}","record_type":"{self.record_type}"']
        for field in self.fields:
            value: Any = flat.get(field)
            kind = _kind(value)
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


def _plan(
    record_type: str, rules: Sequence[DeclarativeRule], parameters: Mapping[str, Any]
) -> _Plan:
    """Compile one record type's rules, packed into as few rulesets as durable's limits allow."""
    compiler = _Compiler(parameters)
    shards: list[list[tuple[DeclarativeRule, _Term]]] = [[]]
    for rule in rules:
        try:
            term = compiler.rule(record_type, rule.when)
        except _Problem as exc:
            raise _Problem(f"{rule.spec.id}: when: {exc}") from None
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
        built.append(_Shard(_json(definition), names))
    regexes = tuple((key, field, _regex(p)) for (field, p), key in compiler.regexes.items())
    properties = 3 + 2 * len(compiler.fields) + len(regexes)
    if properties > MAX_PROPERTIES:
        raise _Problem(
            f"{record_type} rules read {len(compiler.fields)} field(s) and {len(regexes)} "
            f"pattern(s): a durable-rules fact holds at most {MAX_PROPERTIES} properties "
            "(3, plus 2 per field and 1 per pattern); split the pack"
        )
    return _Plan(record_type, tuple(compiler.fields), regexes, tuple(built))


# -- the compiled pack ---------------------------------------------------------------------

_RESULTS = {1: "not handled", 2: "already observed", 3: "deferred"}


def _code(result: Any) -> int:
    return int(result[0] if isinstance(result, tuple) else result)


class _Slot:
    """One thread's rulesets (by record type and shard), its message ids, and their lock."""

    def __init__(self) -> None:
        self.handles: dict[tuple[str, int], int] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()


def _release(slots: list[_Slot], lock: threading.Lock) -> None:
    """Delete every ruleset of every thread; each waits for its thread's evaluation to end."""
    with lock:
        for slot in slots:
            with slot.lock:
                for handle in slot.handles.values():
                    with contextlib.suppress(Exception):
                        durable_rules_engine.delete_ruleset(handle)
                slot.handles.clear()
        slots.clear()


def _rule_name(message: str) -> str:
    """The fired rule of an action message ``{"r3": {"m": ...}}`` (one rule per action)."""
    end = message.find('":{', 2)
    if message.startswith('{"r') and end > 2 and message[3:end].isdigit():
        return message[2:end]
    (name,) = json.loads(message)
    return str(name)


def _fire(handle: int, fact: str) -> set[str]:
    """Assert one fact, drain its actions (the fired rule names), retract it; errors raise."""
    try:
        result = durable_rules_engine.assert_fact(handle, fact)
    except durable_rules_engine.error as exc:
        with contextlib.suppress(Exception):  # it may be stored even so (error 303 does)
            durable_rules_engine.retract_fact(handle, fact)
        raise TsosRulesError(f"durable-rules refused the fact: {exc}") from None
    code, state = _code(result), result[1]
    fired: set[str] = set()
    failed = True
    try:
        if code not in (0, 1):  # 1: the fact matched no rule; anything else loses results
            raise TsosRulesError(f"durable-rules answered {code} ({_RESULTS.get(code, '?')})")
        action = durable_rules_engine.start_action_for_state(handle, state)
        while action:
            try:
                fired.add(_rule_name(action[1] if isinstance(action, tuple) else action))
                action = durable_rules_engine.complete_and_start_action(handle, state)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    durable_rules_engine.abandon_action(handle, state)
                raise TsosRulesError(f"durable-rules action failed: {exc}") from exc
        failed = False
    finally:
        try:
            retracted = _code(durable_rules_engine.retract_fact(handle, fact))
        except durable_rules_engine.error as exc:
            if not failed:
                raise TsosRulesError(f"durable-rules refused the retraction: {exc}") from None
        else:
            if retracted not in (0, 1) and not failed:
                raise TsosRulesError(f"durable-rules answered {retracted} to the retraction")
    return fired


class CompiledDeclarativePack:
    """A declarative pack bound to parameter values; owns its durable rulesets (per thread)."""

    def __init__(
        self, name: str, parameters: Mapping[str, Any], plans: Mapping[str, _Plan]
    ) -> None:
        self.name = name
        self.parameters = dict(parameters)
        self._plans = dict(plans)
        self._local = threading.local()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, self._slots, self._lock)

    @classmethod
    def build(
        cls,
        pack: RulePack,
        rules: Sequence[DeclarativeRule],
        parameters: Mapping[str, Any],
    ) -> CompiledDeclarativePack:
        """Compile ``rules`` with resolved ``parameters``; a bad value is a ConfigError."""
        for rule in rules:
            for path, _, op, operand in _leaves(rule.when, "when"):
                if not _is_param(operand):
                    continue
                name = operand["param"]
                if name not in parameters:
                    raise ConfigError(
                        f"packs.{pack.name}.{name}: no value (used by {rule.spec.id})"
                    )
                problem = _operand_problem(op, parameters[name])
                if problem:
                    raise ConfigError(
                        f"packs.{pack.name}.{name}: {problem} (used by {rule.spec.id} at {path})"
                    )
        plans = {}
        for record_type in RECORD_TYPES:
            typed = [rule for rule in rules if record_type in rule.spec.record_types]
            if typed:
                try:
                    plans[record_type] = _plan(record_type, typed, parameters)
                except _Problem as exc:
                    raise ConfigError(f"packs.{pack.name}: {exc}") from None
        return cls(pack.name, parameters, plans)

    def _slot(self) -> _Slot:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
            with self._lock:
                self._slots.append(slot)
        return slot

    def evaluate(self, record_type: str, facts: RecordFacts) -> list[Finding]:
        """The findings of this pack's rules on one record (assert, drain, retract)."""
        plan = self._plans.get(record_type)
        if plan is None:
            return []
        flat = facts.flat()
        slot = self._slot()
        fired: list[DeclarativeRule] = []
        with slot.lock:
            if self._closed:
                raise TsosRulesError(f"pack {self.name}: evaluated after close()")
            fact = plan.fact(flat, next(slot.ids))
            for index, shard in enumerate(plan.shards):
                handle = slot.handles.get((record_type, index))
                if handle is None:
                    handle = slot.handles[(record_type, index)] = self._create(
                        record_type, index, shard
                    )
                try:
                    names = _fire(handle, fact)
                except TsosRulesError as exc:
                    raise TsosRulesError(
                        f"pack {self.name}: {record_type} {facts.record_id}: {exc}"
                    ) from exc.__cause__
                if not names <= shard.rules.keys():
                    raise TsosRulesError(
                        f"pack {self.name}: {record_type} {facts.record_id}: durable-rules "
                        f"fired unknown rules {sorted(names - shard.rules.keys())}"
                    )
                fired.extend(rule for name, rule in shard.rules.items() if name in names)
        values = ChainMap(flat, self.parameters)
        return [rule.finding(record_type, facts.record_id, values) for rule in fired]

    def _create(self, record_type: str, index: int, shard: _Shard) -> int:
        name = f"tsos-{self.name}-{record_type}-{index}-{uuid.uuid4().hex}"
        try:
            handle: int = durable_rules_engine.create_ruleset(name, shard.definition)
        except durable_rules_engine.error as exc:
            raise TsosRulesError(
                f"pack {self.name}: durable-rules refused the ruleset: {exc}"
            ) from None
        return handle

    def close(self) -> None:
        """Delete the rulesets this pack created, in every thread; evaluating again raises."""
        self._closed = True
        self._finalizer()


# -- loading and validation ----------------------------------------------------------------


def _fail(where: str, key: str, problem: str) -> NoReturn:
    raise PackValidationError(f"{where}: {key}: {problem}")


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _read(path: Path) -> Any:
    """Parse a pack file: JSON for ``.json``, YAML otherwise; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the pack: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {exc.lineno}: {exc.msg}") from None
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{path}: {line}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_declarative_pack(source: str | Path | Mapping[str, Any]) -> RulePack:
    """A validated :class:`RulePack` from a pack file (YAML or JSON) or an already parsed one.

    A ``str`` is a path. Refusals raise :class:`PackValidationError` naming the rule and key.
    """
    if isinstance(source, Mapping):
        return _Loader(source).pack()
    path = Path(source)
    document = _read(path)
    try:
        return _Loader(document).pack()
    except PackValidationError as exc:
        raise PackValidationError(f"{path}: {exc}") from None


def _check_keys(
    raw: Mapping[Any, Any], where: str, known: Sequence[str], required: Sequence[str]
) -> None:
    for key in raw:
        if not isinstance(key, str):
            _fail(where, repr(key), "keys must be strings (quote it in YAML)")
        if key not in known:
            _fail(where, key, f"unknown key (known: {', '.join(known)})")
    for key in required:
        if key not in raw:
            _fail(where, key, "missing")


def _string(raw: Mapping[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        _fail(where, key, f"expected a string, got {_show(value)}")
    return value


class _Loader:
    """Validates one pack document and builds its :class:`RulePack`."""

    def __init__(self, document: Any) -> None:
        self.document = document
        self.name = ""
        self.parameters: dict[str, Parameter] = {}
        self.extra_fields: frozenset[str] = frozenset()

    def pack(self) -> RulePack:
        doc = self.document
        if not isinstance(doc, Mapping):
            raise PackValidationError("pack: expected a mapping of pack keys at the top level")
        name = doc.get("name")
        where = f"pack {name!r}" if isinstance(name, str) else "pack"
        _check_keys(doc, where, PACK_KEYS, REQUIRED_PACK_KEYS)
        self.name = _string(doc, "name", where)
        if not PACK_NAME.fullmatch(self.name):
            _fail(where, "name", "use lowercase letters, digits, '-' and '_'")
        version = _string(doc, "version", where)
        description = _string(doc, "description", where, default="")
        self.extra_fields = self._extra_fields(doc.get("extra_fields", []), where)
        parameters = self._parameters(doc.get("parameters", []), where)
        rules = doc["rules"]
        if not isinstance(rules, list) or not rules:
            _fail(where, "rules", "expected a non-empty list of rules")
        pack = RulePack(
            name=self.name,
            version=version,
            description=description,
            parameters=parameters,
            declarative_rules=tuple(self._rule(raw, index) for index, raw in enumerate(rules)),
        )
        pack.validate()
        defaults = {name: p.default for name, p in self.parameters.items()}
        for record_type in RECORD_TYPES:
            typed = [r for r in pack.declarative_rules if record_type in r.spec.record_types]
            if typed:
                try:
                    _plan(record_type, typed, defaults)
                except _Problem as exc:
                    _fail(where, "rules", str(exc))
        return pack

    def _extra_fields(self, raw: Any, where: str) -> frozenset[str]:
        if not isinstance(raw, list):
            _fail(where, "extra_fields", "expected a list of field names")
        seen: set[str] = set()
        for index, field in enumerate(raw):
            key = f"extra_fields[{index}]"
            if not isinstance(field, str) or not FIELD_NAME.fullmatch(field):
                _fail(where, key, f"{_show(field)} is not a field name (letters, digits, _)")
            if field in RESERVED_FIELDS:
                _fail(where, key, f"{field!r} is {RESERVED_FIELDS[field]}")
            if field in seen:
                _fail(where, key, f"{field!r} is listed twice")
            seen.add(field)
        return frozenset(seen)

    def _parameters(self, raw: Any, where: str) -> tuple[Parameter, ...]:
        if not isinstance(raw, list):
            _fail(where, "parameters", "expected a list of {name, default, description}")
        all_fields = self.extra_fields.union(*(fact_fields(t) for t in RECORD_TYPES))
        out = []
        for index, item in enumerate(raw):
            key = f"parameters[{index}]"
            if not isinstance(item, Mapping):
                _fail(where, key, "expected a mapping with name, default, description")
            _check_keys(item, f"{where}: {key}", PARAMETER_KEYS, ("name", "default"))
            name = item["name"]
            if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
                _fail(where, f"{key}.name", f"{_show(name)} is not a name (letters, digits, _)")
            if name in self.parameters:
                _fail(where, f"{key}.name", f"{name!r} is declared twice")
            if name in all_fields:
                _fail(
                    where,
                    f"{key}.name",
                    f"{name!r} is also a fact field: message placeholders would be ambiguous",
                )
            default = item["default"]
            if isinstance(default, dt.date):
                default = default.isoformat()
            if not (
                _kind(default) in ("bool", "num", "str")
                or (isinstance(default, list) and _operand_problem("in", default) is None)
            ):
                _fail(
                    where,
                    f"{key}.default",
                    f"expected a string, number, boolean or a list of them, got {_show(default)}",
                )
            description = _string(item, "description", f"{where}: {key}", default="")
            self.parameters[name] = Parameter(name, default, description)
            out.append(self.parameters[name])
        return tuple(out)

    def _rule(self, raw: Any, index: int) -> DeclarativeRule:
        where = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            _fail(where, "rule", "expected a mapping of rule keys")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
            _fail(
                where,
                "id",
                f"must read '{self.name}.<rule-name>' in lowercase, got {_show(rule_id)}",
            )
        where = rule_id
        _check_keys(raw, where, RULE_KEYS, REQUIRED_RULE_KEYS)
        severity = raw["severity"]
        if severity not in {s.value for s in Severity}:
            _fail(
                where, "severity", f"unknown severity {_show(severity)} (use block, warn or info)"
            )
        record_types = self._record_types(raw, where)
        title = _string(raw, "title", where)
        if not title.strip():
            _fail(where, "title", "must not be empty")
        reason = _string(raw, "reason", where)
        if not REASON.fullmatch(reason):
            _fail(where, "reason", f"{reason!r}: use lowercase letters, digits and _")
        checker = _ConditionChecker(self, where, record_types)
        when = raw["when"]
        if isinstance(when, Mapping) and not when:
            _fail(where, "when", "the rule tests no field")
        normalized = checker.condition(when, "when", 0)
        message = _string(raw, "message", where)
        checker.template(message)
        used = list(checker.parameters)
        listed = raw.get("parameters", [])
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            _fail(where, "parameters", "expected a list of parameter names")
        for name in listed:
            if name not in self.parameters:
                _fail(where, "parameters", f"{name!r} is not declared in the pack's parameters")
        spec = RuleSpec(
            id=rule_id,
            severity=Severity(severity),
            record_types=record_types,
            title=title,
            doctrine=_string(raw, "doctrine", where, default=""),
            source=_string(raw, "source", where, default=""),
            semantics=describe_condition(normalized),
            remediation=_string(raw, "remediation", where, default=""),
            reasons={reason: title},
            parameters=tuple(dict.fromkeys([*listed, *used])),
        )
        rule = DeclarativeRule(spec=spec, when=normalized, reason=reason, message=message)
        defaults = {name: p.default for name, p in self.parameters.items()}
        for record_type in record_types:
            try:
                _Compiler(defaults).rule(record_type, normalized)
            except _Problem as exc:
                _fail(where, "when", str(exc))
        return rule

    def _record_types(self, raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
        if ("record_type" in raw) == ("record_types" in raw):
            _fail(where, "record_types", "give exactly one of record_type or record_types")
        if "record_type" in raw:
            key, values = "record_type", [raw["record_type"]]
        else:
            key, values = "record_types", raw["record_types"]
            if not isinstance(values, list) or not values:
                _fail(where, key, "expected a non-empty list of record types")
        for value in values:
            if value not in RECORD_TYPES:
                _fail(
                    where,
                    key,
                    f"unknown record type {_show(value)} (use {', '.join(RECORD_TYPES)})",
                )
        if len(set(values)) != len(values):
            _fail(where, key, "a record type is listed twice")
        return tuple(values)


class _ConditionChecker:
    """Validates and normalizes one rule's condition and message template."""

    def __init__(self, loader: _Loader, rule_id: str, record_types: tuple[str, ...]) -> None:
        self.loader = loader
        self.rule_id = rule_id
        self.record_types = record_types
        self.parameters: dict[str, None] = {}

    def fail(self, key: str, problem: str) -> NoReturn:
        _fail(self.rule_id, key, problem)

    def known(self, name: str) -> str | None:
        """Why ``name`` is not a readable field of every record type of the rule (or None)."""
        if name in self.loader.extra_fields:
            return None
        for record_type in self.record_types:
            if name not in fact_fields(record_type):
                return (
                    f"unknown field {name!r} for {record_type} "
                    "(declare CRM fields outside the model in extra_fields)"
                )
        return None

    def condition(self, node: Any, path: str, depth: int) -> Condition:
        if depth > MAX_DEPTH:
            self.fail(path, f"conditions nest deeper than {MAX_DEPTH} levels")
        if not isinstance(node, Mapping):
            self.fail(path, f"expected a condition mapping, got {_show(node)}")
        if not node:
            self.fail(path, "empty condition")
        parts: list[Condition] = []
        for key, value in node.items():
            if not isinstance(key, str):
                self.fail(path, f"{key!r}: keys must be strings (quote it in YAML)")
            here = f"{path}.{key}"
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    self.fail(here, f"expected a non-empty list of conditions, got {_show(value)}")
                children = [
                    self.condition(child, f"{here}[{index}]", depth + 1)
                    for index, child in enumerate(value)
                ]
                parts.append({key: children})
            else:
                parts.append({key: self.field(key, value, here)})
        if len(parts) == 1:
            return parts[0]
        return {"all": parts}

    def field(self, name: str, value: Any, path: str) -> dict[str, Any]:
        if name in RESERVED_FIELDS:
            self.fail(path, f"cannot test {name!r}: {RESERVED_FIELDS[name]}")
        if not FIELD_NAME.fullmatch(name):
            self.fail(path, f"{name!r} is not a field name (letters, digits, _)")
        problem = self.known(name)
        if problem:
            self.fail(path, problem)
        if not isinstance(value, Mapping):
            value = {"eq": value}
        if not value:
            self.fail(path, "no operator (use eq, ne, lt, lte, gt, gte, in, exists, matches)")
        ops: dict[str, Any] = {}
        for op, operand in value.items():
            here = f"{path}.{op}"
            if op not in OPERATORS:
                hint = " (write {eq: {param: NAME}})" if op == "param" else ""
                self.fail(here, f"unknown operator {op!r}{hint}")
            ops[op] = self.operand(op, operand, here)
        return ops

    def operand(self, op: str, operand: Any, path: str) -> Any:
        if isinstance(operand, Mapping):
            if set(operand) != {"param"} or not isinstance(operand["param"], str):
                self.fail(path, f"expected a value or {{param: NAME}}, got {_show(operand)}")
            name = operand["param"]
            parameter = self.loader.parameters.get(name)
            if parameter is None:
                self.fail(path, f"undeclared parameter {name!r}")
            problem = _operand_problem(op, parameter.default)
            if problem:
                self.fail(path, f"parameter {name!r}: {problem}")
            self.parameters[name] = None
            return {"param": name}
        if isinstance(operand, dt.date):  # YAML reads an unquoted 2024-06-30 as a date
            operand = operand.isoformat()
        elif isinstance(operand, list):
            operand = [item.isoformat() if isinstance(item, dt.date) else item for item in operand]
        problem = _operand_problem(op, operand)
        if problem:
            self.fail(path, problem)
        return operand

    def template(self, message: str) -> None:
        try:
            parsed = list(string.Formatter().parse(message))
        except ValueError as exc:
            self.fail("message", f"bad template: {exc}")
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if conversion not in (None, "r", "s", "a"):
                self.fail("message", f"placeholder {{{name}}}: unknown conversion !{conversion}")
            if not FIELD_NAME.fullmatch(name):
                self.fail("message", f"placeholder {{{name}}}: use a plain field or parameter name")
            if spec and "{" in spec:
                self.fail(
                    "message", f"placeholder {{{name}}}: nested placeholders are not supported"
                )
            if name not in self.loader.parameters:
                problem = self.known(name)
                if problem:
                    self.fail("message", f"placeholder {{{name}}}: {problem}")
