"""Loading declarative rule packs: read a pack file strictly, validate it, build its rules.

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

Compiling the conditions for durable-rules is :mod:`.compiler`, evaluating them :mod:`.runtime`;
this module imports neither the durable-rules C extension nor anything that does, so validating
a pack needs no native code.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tsos_rules.errors import InputError, PackValidationError
from tsos_rules.findings import Severity
from tsos_rules.rules.declarative._language import (
    OPERATORS,
    Condition,
    DeclarativeRule,
    describe_condition,
    operand_problem,
    show,
    value_kind,
)
from tsos_rules.rules.declarative.compiler import CompileProblem, Compiler, plan_record_type
from tsos_rules.rules.spec import RECORD_TYPES, RULE_ID, Parameter, RulePack, RuleSpec

if TYPE_CHECKING:
    from tsos_rules.facts import RecordFacts

__all__ = [
    "OPERATORS",
    "PACK_KEYS",
    "PARAMETER_KEYS",
    "RULE_KEYS",
    "Condition",
    "DeclarativeRule",
    "describe_condition",
    "fact_fields",
    "load_declarative_pack",
]

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


def _fail(where: str, key: str, problem: str) -> NoReturn:
    raise PackValidationError(f"{where}: {key}: {problem}")


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
    # Imported here: PyYAML takes ~11 ms to import, which only reading a YAML pack should pay.
    from tsos_rules.rules.declarative._yaml import parse_yaml

    return parse_yaml(text, path)


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
        _fail(where, key, f"expected a string, got {show(value)}")
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
                    plan_record_type(record_type, typed, defaults)
                except CompileProblem as exc:
                    _fail(where, "rules", str(exc))
        return pack

    def _extra_fields(self, raw: Any, where: str) -> frozenset[str]:
        if not isinstance(raw, list):
            _fail(where, "extra_fields", "expected a list of field names")
        seen: set[str] = set()
        for index, field in enumerate(raw):
            key = f"extra_fields[{index}]"
            if not isinstance(field, str) or not FIELD_NAME.fullmatch(field):
                _fail(where, key, f"{show(field)} is not a field name (letters, digits, _)")
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
                _fail(where, f"{key}.name", f"{show(name)} is not a name (letters, digits, _)")
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
                value_kind(default) in ("bool", "num", "str")
                or (isinstance(default, list) and operand_problem("in", default) is None)
            ):
                _fail(
                    where,
                    f"{key}.default",
                    f"expected a string, number, boolean or a list of them, got {show(default)}",
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
                f"must read '{self.name}.<rule-name>' in lowercase, got {show(rule_id)}",
            )
        where = rule_id
        _check_keys(raw, where, RULE_KEYS, REQUIRED_RULE_KEYS)
        severity = raw["severity"]
        if severity not in {s.value for s in Severity}:
            _fail(where, "severity", f"unknown severity {show(severity)} (use block, warn or info)")
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
                Compiler(defaults).rule(record_type, normalized)
            except CompileProblem as exc:
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
                    f"unknown record type {show(value)} (use {', '.join(RECORD_TYPES)})",
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
            self.fail(path, f"expected a condition mapping, got {show(node)}")
        if not node:
            self.fail(path, "empty condition")
        parts: list[Condition] = []
        for key, value in node.items():
            if not isinstance(key, str):
                self.fail(path, f"{key!r}: keys must be strings (quote it in YAML)")
            here = f"{path}.{key}"
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    self.fail(here, f"expected a non-empty list of conditions, got {show(value)}")
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
                self.fail(path, f"expected a value or {{param: NAME}}, got {show(operand)}")
            name = operand["param"]
            parameter = self.loader.parameters.get(name)
            if parameter is None:
                self.fail(path, f"undeclared parameter {name!r}")
            problem = operand_problem(op, parameter.default)
            if problem:
                self.fail(path, f"parameter {name!r}: {problem}")
            self.parameters[name] = None
            return {"param": name}
        if isinstance(operand, dt.date):  # YAML reads an unquoted 2024-06-30 as a date
            operand = operand.isoformat()
        elif isinstance(operand, list):
            operand = [item.isoformat() if isinstance(item, dt.date) else item for item in operand]
        problem = operand_problem(op, operand)
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
