"""The declarative backend: pack loading and validation, and evaluation on the real durable engine.

Expected results come from the semantics documented in ``tsos_rules.rules.declarative.loader`` and
from an independent plain-Python evaluator (``reference``) of the same conditions. Evaluation tests
run on both backends (``backend``): durable-rules where it loads, and the Python interpreter.
"""

# ruff: noqa: E501  (tables of exact error messages read best one per line)

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tsos_rules import load_declarative_pack
from tsos_rules.engine import Engine
from tsos_rules.errors import ConfigError, InputError, PackValidationError, TsosRulesError
from tsos_rules.facts import OpportunityFacts, build_index
from tsos_rules.findings import Severity
from tsos_rules.model import Account, Lead, Opportunity, Snapshot
from tsos_rules.rules.declarative import loader
from tsos_rules.rules.declarative.loader import (
    OPERATORS,
    PACK_KEYS,
    PARAMETER_KEYS,
    RULE_KEYS,
    DeclarativeRule,
    fact_fields,
)
from tsos_rules.rules.spec import RulePack

try:
    import durable_rules_engine

    from tsos_rules.rules.declarative import runtime
    from tsos_rules.rules.declarative.runtime import CompiledDeclarativePack
except ImportError:  # Python 3.13+: declarative packs run on the Python interpreter
    durable_rules_engine = None

needs_durable = pytest.mark.skipif(
    durable_rules_engine is None, reason="durable-rules cannot be loaded on this Python"
)

PACKS = Path(__file__).parents[2] / "data" / "packs"
SCHEMA = Path(loader.__file__).parents[2] / "schemas" / "declarative-pack.schema.json"
AS_OF = dt.date(2024, 5, 1)
MISSING = object()


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture(params=["durable-rules", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Engines built in the test use this declarative backend (durable-rules where it loads)."""
    if request.param == "durable-rules" and durable_rules_engine is None:
        pytest.skip("durable-rules cannot be loaded on this Python")
    monkeypatch.setenv("TSOS_RULES_DECLARATIVE_BACKEND", request.param)
    return str(request.param)


def rule(rule_id: str = "t.rule", when: Any = None, **keys: Any) -> dict[str, Any]:
    out = {
        "id": rule_id,
        "severity": "warn",
        "record_type": "opportunity",
        "title": "A test rule",
        "reason": "hit",
        "message": "hit",
        "when": {"amount": {"gt": 1}} if when is None else when,
    }
    out.update(keys)
    return out


def document(*rules: dict[str, Any], **keys: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "t",
        "version": "1",
        "parameters": [
            {"name": "limit", "default": 5, "description": "a number"},
            {"name": "names", "default": ["a", "b"]},
            {"name": "pattern", "default": "^ab"},
        ],
        "extra_fields": ["X__c", "Y__c"],
        "rules": list(rules) or [rule()],
    }
    out.update(keys)
    return out


def opportunity(x: Any = MISSING, **fields: Any) -> OpportunityFacts:
    extra = {} if x is MISSING else {"X__c": x}
    deal = Opportunity(id=fields.pop("id", "o1"), extra=extra, **fields)
    return build_index(Snapshot(as_of=AS_OF, opportunities=(deal,))).opportunity(deal)


def fired(pack: RulePack, facts: Any, parameters: Mapping[str, Any] | None = None) -> set[str]:
    engine = Engine([pack], parameters={pack.name: dict(parameters or {})})
    try:
        return {finding.rule for finding in engine.evaluate_facts(facts)}
    finally:
        engine.close()


def refusal(doc: Any) -> str:
    with pytest.raises(PackValidationError) as info:
        load_declarative_pack(doc)
    return str(info.value)


# -- an independent evaluator of the documented semantics ----------------------------------


def kind(value: Any) -> str:
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    return "str" if isinstance(value, str) else "other"


def same(value: Any, operand: Any) -> bool:
    return kind(value) == kind(operand) and (kind(value) == "null" or value == operand)


def leaf(op: str, operand: Any, value: Any) -> bool:
    if op == "eq":
        return same(value, operand)
    if op == "ne":
        return not same(value, operand)
    if op in ("lt", "lte", "gt", "gte"):
        if kind(value) != kind(operand):
            return False
        return {
            "lt": value < operand,
            "lte": value <= operand,
            "gt": value > operand,
            "gte": value >= operand,
        }[op]
    if op == "in":
        return any(same(value, item) for item in operand)
    if op == "exists":
        return (kind(value) != "null") is operand
    assert op == "matches"
    return isinstance(value, str) and re.search(operand, value) is not None


def predicate(
    cond: Mapping[str, Any], params: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], bool]:
    """A condition as a plain Python function of a flat fact."""
    tests: list[Callable[[Mapping[str, Any]], bool]] = []
    for key, value in cond.items():
        if key in ("all", "any"):
            children = [predicate(child, params) for child in value]
            combine = all if key == "all" else any
            tests.append(lambda flat, c=children, f=combine: f(child(flat) for child in c))
            continue
        ops = value if isinstance(value, Mapping) else {"eq": value}
        for op, operand in ops.items():
            resolved = params[operand["param"]] if isinstance(operand, Mapping) else operand
            tests.append(lambda flat, k=key, o=op, v=resolved: leaf(o, v, flat.get(k, MISSING)))
    return lambda flat: all(test(flat) for test in tests)


def reference(cond: Mapping[str, Any], flat: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    return predicate(cond, params)(flat)


# -- operators, one record at a time -------------------------------------------------------

CASES = [
    (
        "eq",
        5,
        [(5, True), (5.0, True), ("5", False), (True, False), (None, False), (MISSING, False)],
    ),
    ("eq", "abc", [("abc", True), ("abd", False), ("ab", False), ("", False)]),
    ("eq", True, [(True, True), (False, False), (1, False), ("true", False)]),
    ("eq", None, [(None, True), (MISSING, True), (0, False), ("", False), (False, False)]),
    ("eq", "", [("", True), (None, False), (MISSING, False)]),
    ("ne", 5, [(5, False), (6, True), ("5", True), (None, True), (MISSING, True), ([5], True)]),
    ("ne", "a", [("a", False), ("b", True), (None, True)]),
    ("ne", None, [(None, False), (MISSING, False), (0, True), ("", True)]),
    ("lt", 10, [(9, True), (10, False), (9.99, True), (-1e20, True), ("1", False), (None, False)]),
    ("lt", 10, [(True, False), (MISSING, False), ([1], False)]),
    ("lte", 10, [(10, True), (10.0, True), (10.5, False)]),
    ("gt", 10, [(11, True), (10, False), ("x", False), ({"a": 11}, False), (2**70, True)]),
    ("gte", 2.5, [(2.5, True), (2, False), (3, True)]),
    ("gt", 1e20, [(1e21, True), (1e19, False)]),
    ("lt", 1e-7, [(1.5e-8, True), (1e-6, False), (0, True)]),
    ("lt", "2024-06-01", [("2024-05-31", True), ("2024-06-01", False), ("2024-10-01", False)]),
    ("lt", "2024-06-01", [(5, False), (None, False)]),
    ("lt", "a#", [('a"', True), ("a$", False)]),
    ("lt", "a ", [("a\t", True), ("a!", False)]),
    ("gt", "z", [("é", True), ("日本", True), ("y", False), ("z", False)]),
    ("lt", "10", [("9", False), ("1", True), ("099", True)]),
    ("in", [1, "x", None], [(1, True), (1.0, True), ("x", True), (None, True), (MISSING, True)]),
    ("in", [1, "x"], [("1", False), (True, False), (2, False), (None, False)]),
    ("in", [True], [(True, True), (1, False)]),
    (
        "exists",
        True,
        [(0, True), ("", True), ([], True), (False, True), (None, False), (MISSING, False)],
    ),
    ("exists", False, [(None, True), (MISSING, True), (0, False), ("", False)]),
    (
        "matches",
        r"^ab\d",
        [("ab1x", True), ("xab1", False), ("ab", False), (5, False), (None, False)],
    ),
    ("matches", r"b\.c", [("ab.c", True), ("abxc", False)]),
    ("matches", "(?i)test", [("A TEST deal", True), ("tst", False)]),
]


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(("op", "operand", "values"), CASES)
def test_operators_follow_the_documented_semantics(
    op: str, operand: Any, values: list[tuple[Any, bool]]
) -> None:
    when = {"X__c": {op: operand}}
    pack = load_declarative_pack(document(rule(when=when)))
    engine = Engine([pack])
    try:
        for value, expected in values:
            facts = opportunity(value)
            assert reference(when, facts.flat(), {}) is expected, (op, operand, value)
            got = bool(engine.evaluate_facts(facts))
            assert got is expected, f"{op} {operand!r} on {value!r}: expected {expected}"
    finally:
        engine.close()


@pytest.mark.usefixtures("backend")
def test_shorthand_several_operators_and_several_keys_are_conjunctions() -> None:
    pack = load_declarative_pack(
        document(
            rule("t.range", when={"amount": {"gte": 10, "lt": 20}}),
            rule("t.implicit-all", when={"is_open": True, "stage": "Qualify"}),
        )
    )
    assert fired(pack, opportunity(amount=10.0, stage="Qualify")) == {"t.range", "t.implicit-all"}
    assert fired(pack, opportunity(amount=20.0, stage="Qualify")) == {"t.implicit-all"}
    assert fired(pack, opportunity(amount=15.0, stage="Other")) == {"t.range"}
    assert fired(pack, opportunity(amount=15.0, is_closed=True, stage="Qualify")) == {"t.range"}


@pytest.mark.usefixtures("backend")
def test_any_and_all_nest() -> None:
    when = {
        "any": [
            {"all": [{"X__c": {"gt": 100}}, {"stage": {"in": ["A", "B"]}}]},
            {"X__c": {"eq": "urgent"}},
            {"all": [{"stage": {"exists": False}}, {"any": [{"X__c": 1}, {"X__c": 2}]}]},
        ]
    }
    pack = load_declarative_pack(document(rule(when=when)))
    cases = [
        ({"x": 101, "stage": "A"}, True),
        ({"x": 101, "stage": "C"}, False),
        ({"x": 100, "stage": "B"}, False),
        ({"x": "urgent", "stage": "C"}, True),
        ({"x": 2}, True),
        ({"x": 2, "stage": "A"}, False),
        ({"x": 3}, False),
    ]
    for fields, expected in cases:
        facts = opportunity(**fields)
        assert reference(when, facts.flat(), {}) is expected
        assert fired(pack, facts) == ({"t.rule"} if expected else set()), fields


@pytest.mark.usefixtures("backend")
def test_rules_only_see_their_record_types() -> None:
    doc = document(
        rule("t.deal", when={"record_id": {"matches": "^x"}}),
        rule("t.both", when={"record_id": {"matches": "^x"}}, record_types=["lead", "account"]),
    )
    del doc["rules"][1]["record_type"]
    pack = load_declarative_pack(doc)
    snapshot = Snapshot(
        as_of=AS_OF,
        accounts=(Account("x-account"),),
        leads=(Lead("x-lead"),),
        opportunities=(Opportunity("x-deal"), Opportunity("y-deal")),
    )
    engine = Engine([pack])
    try:
        found = {(f.record_type, f.record_id, f.rule) for f in engine.evaluate(snapshot)}
    finally:
        engine.close()
    assert found == {
        ("account", "x-account", "t.both"),
        ("lead", "x-lead", "t.both"),
        ("opportunity", "x-deal", "t.deal"),
    }


# -- parameters ----------------------------------------------------------------------------


@pytest.mark.usefixtures("backend")
def test_parameters_are_substituted_at_compile_time_per_engine() -> None:
    pack = load_declarative_pack(PACKS / "hygiene.yaml")
    stalled = opportunity(name="Old", stage_changed_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    strict = Engine([pack], parameters={"hygiene": {"stalled_days": 30}})
    lenient = Engine([pack], parameters={"hygiene": {"stalled_days": 200}})
    default = Engine([pack])
    try:
        for _ in range(3):  # interleaved: the engines never share a ruleset
            assert [f.rule for f in strict.evaluate_facts(stalled)] == ["hygiene.stalled-deal"]
            assert lenient.evaluate_facts(stalled) == []
            assert [f.message for f in default.evaluate_facts(stalled)] == [
                "Deal Old has not changed stage for 121 days (limit 60)"
            ]
    finally:
        strict.close()
        lenient.close()
        default.close()


@pytest.mark.usefixtures("backend")
def test_list_regex_and_bool_parameters() -> None:
    doc = document(
        rule("t.in", when={"stage": {"in": {"param": "names"}}}),
        rule("t.rx", when={"name": {"matches": {"param": "pattern"}}}),
        rule("t.ex", when={"X__c": {"exists": {"param": "flag"}}}),
    )
    doc["parameters"].append({"name": "flag", "default": True})
    pack = load_declarative_pack(doc)
    facts = opportunity(stage="b", name="abc", x=1)
    assert fired(pack, facts) == {"t.in", "t.rx", "t.ex"}
    overrides = {"names": ["c"], "pattern": "^z", "flag": False}
    assert fired(pack, facts, overrides) == set()
    assert fired(pack, opportunity(stage="c", name="zz"), overrides) == {"t.in", "t.rx", "t.ex"}


def test_bad_parameter_overrides_are_config_errors() -> None:
    pack = load_declarative_pack(
        document(
            rule("t.in", when={"stage": {"in": {"param": "names"}}}),
            rule("t.rx", when={"name": {"matches": {"param": "pattern"}}}),
        )
    )
    with pytest.raises(ConfigError, match=r"packs\.t\.pattern: invalid regular expression '\('"):
        Engine([pack], parameters={"t": {"pattern": "("}})
    with pytest.raises(ConfigError, match=r"packs\.t\.names: in needs a non-empty list"):
        Engine([pack], parameters={"t": {"names": []}})
    with pytest.raises(ConfigError, match=r"packs\.t: t\.in: when: the condition expands to 300"):
        Engine([pack], parameters={"t": {"names": [f"v{i}" for i in range(300)]}})
    with pytest.raises(ConfigError, match=r"packs\.t\.pattern: expected str"):
        Engine([pack], parameters={"t": {"pattern": 5}})


# -- messages ------------------------------------------------------------------------------


@pytest.mark.usefixtures("backend")
def test_messages_render_fields_parameters_and_question_marks() -> None:
    doc = document(
        rule(
            message=(
                "{name} worth {amount:,.0f} > {limit}; region {X__c}; {Y__c}; "
                "{stage:,.0f}; {record_id!r}"
            ),
        )
    )
    pack = load_declarative_pack(doc)
    engine = Engine([pack])
    try:
        (finding,) = engine.evaluate_facts(opportunity(name="Big", amount=12345.6, x="EU"))
        assert finding.message == "Big worth 12,346 > 5; region EU; ?; ?; 'o1'"
        assert finding.reason == "hit"
        assert finding.severity is Severity.WARN
        (finding,) = engine.evaluate_facts(opportunity(amount=2.0, stage="Won"))
        assert finding.message == "? worth 2 > 5; region ?; ?; Won; 'o1'"
    finally:
        engine.close()


def test_render_never_raises() -> None:
    spec = load_declarative_pack(document()).specs[0]
    broken = DeclarativeRule(spec=spec, when={"amount": {"gt": 1}}, reason="r", message="{a.b} {")
    assert broken.render({"a": 1}) == "{a.b} {"
    dotted = DeclarativeRule(spec=spec, when={"amount": {"gt": 1}}, reason="r", message="{a.b}")
    assert dotted.render({"a": 1}) == "?"


# -- many records --------------------------------------------------------------------------

POOL: list[Any] = [
    MISSING, None, 0, 1, 5, 5.0, -3, 2.5, 10**6, 1e-7, 1e20, 2**64, True, False,
    "", "5", "abc", "abd", "ab1", 'a"b', "a\\b", "a\tb", "é", "2024-06-01", "2024-05-31",
    "日本", "TEST deal", [1], {"a": 1},
]  # fmt: skip

MANY_RULES = {
    "t.eq": {"X__c": {"eq": 5}},
    "t.ne": {"X__c": {"ne": "abc"}},
    "t.order": {"any": [{"X__c": {"lt": 2.5}}, {"Y__c": {"gte": "abd"}}]},
    "t.dates": {"X__c": {"gt": "2024-05-31", "lte": "2024-06-01"}},
    "t.in": {"Y__c": {"in": [None, 1, "é", False]}},
    "t.exists": {"all": [{"X__c": {"exists": True}}, {"Y__c": {"exists": False}}]},
    "t.matches": {"any": [{"X__c": {"matches": "(?i)^test"}}, {"Y__c": {"matches": r"\d$"}}]},
    "t.param": {"all": [{"amount": {"gt": {"param": "limit"}}}, {"is_open": True}]},
    "t.mixed": {
        "any": [
            {"all": [{"X__c": {"ne": None}}, {"Y__c": {"ne": 5}}, {"stage": {"in": ["a", "b"]}}]},
            {"X__c": {"in": [True, "5", 1e20]}},
        ]
    },
}


@pytest.mark.usefixtures("backend")
def test_many_records_match_a_plain_python_evaluation() -> None:
    rng = random.Random(20240501)
    deals = []
    for index in range(5000):
        extra = {}
        for key in ("X__c", "Y__c"):
            value = rng.choice(POOL)
            if value is not MISSING:
                extra[key] = value
        deals.append(
            Opportunity(
                id=f"006{index:015d}",
                amount=rng.choice([None, 1.0, 5.0, 5.5, 100.0]),
                stage=rng.choice([None, "a", "b", "c"]),
                is_closed=rng.random() < 0.2,
                extra=extra,
            )
        )
    snapshot = Snapshot(as_of=AS_OF, opportunities=tuple(deals))
    pack = load_declarative_pack(
        document(*(rule(rule_id, when=when) for rule_id, when in MANY_RULES.items()))
    )
    engine = Engine([pack], parameters={"t": {"limit": 5}})
    try:
        found = {(f.record_id, f.rule) for f in engine.evaluate(snapshot)}
    finally:
        engine.close()
    index = build_index(snapshot)
    predicates = {rule_id: predicate(when, {"limit": 5}) for rule_id, when in MANY_RULES.items()}
    expected = set()
    for deal in deals:
        flat = index.opportunity(deal).flat()
        expected.update((deal.id, rule_id) for rule_id, test in predicates.items() if test(flat))
    assert found == expected
    assert len(expected) > 5000  # the rules do fire, often


@pytest.mark.usefixtures("backend")
def test_more_rules_than_one_ruleset_holds() -> None:
    """70 rules firing on one record exceed durable's 64 firings per fact: they are split."""
    rules = [rule(f"t.r{i}", when={"amount": {"gt": i}}) for i in range(70)]
    rules.append(rule("t.wide", when={"any": [{"amount": {"gt": i}} for i in range(40)]}))
    pack = load_declarative_pack(document(*rules))
    assert fired(pack, opportunity(amount=1000.0)) == {f"t.r{i}" for i in range(70)} | {"t.wide"}
    assert fired(pack, opportunity(amount=35.5)) == {f"t.r{i}" for i in range(36)} | {"t.wide"}


@needs_durable
def test_threads_get_their_own_rulesets() -> None:
    pack = load_declarative_pack(document(rule(when={"X__c": {"gt": 50}})))
    compiled = CompiledDeclarativePack.build(pack, pack.declarative_rules, {"limit": 5})
    facts = [opportunity(i, id=f"o{i}") for i in range(100)]
    errors: list[str] = []

    def work() -> None:
        for _ in range(5):
            for item in facts:
                got = bool(compiled.evaluate("opportunity", item))
                if got is not (item.flat()["X__c"] > 50):
                    errors.append(item.record_id)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(compiled._slots) == 4
    compiled.close()
    assert compiled._slots == []
    with pytest.raises(TsosRulesError, match="evaluated after close"):
        compiled.evaluate("opportunity", facts[0])
    assert compiled.evaluate("lead", facts[0]) == []  # no rules for leads: nothing to ask


@needs_durable
def test_an_already_observed_answer_is_an_error_not_a_silent_miss() -> None:
    handle = durable_rules_engine.create_ruleset(
        "test-observed", json.dumps({"r0": {"all": [{"m": {"a": 1}}]}})
    )
    try:
        fact = '{"sid":"0","id":"7","a":1}'
        durable_rules_engine.assert_fact(handle, fact)
        with pytest.raises(TsosRulesError, match=r"answered 2 \(already observed\)"):
            runtime._fire(handle, fact)
        assert runtime._fire(handle, '{"sid":"0","id":"8","a":1}') == {"r0"}
    finally:
        durable_rules_engine.delete_ruleset(handle)


@needs_durable
def test_a_refused_fact_is_an_error_and_later_facts_are_still_right() -> None:
    """Past 64 firings durable refuses the fact (error 303): an error, never "no finding"."""
    rules = {f"r{i}": {"all": [{"m": {"$gt": {"n": i}}}]} for i in range(70)}
    handle = durable_rules_engine.create_ruleset("test-refused", json.dumps(rules))
    try:
        with pytest.raises(TsosRulesError, match=r"refused the fact: .*error code: 303"):
            runtime._fire(handle, '{"sid":"0","id":"1","n":100}')
        assert runtime._fire(handle, '{"sid":"0","id":"2","n":2}') == {"r0", "r1"}
        assert runtime._fire(handle, '{"sid":"0","id":"1","n":1}') == {"r0"}
    finally:
        durable_rules_engine.delete_ruleset(handle)


@pytest.mark.usefixtures("backend")
def test_engine_rule_selection_compiles_only_the_selected_rules() -> None:
    pack = load_declarative_pack(
        document(
            rule("t.one", when={"amount": {"gt": 1}}), rule("t.two", when={"amount": {"gt": 2}})
        )
    )
    facts = opportunity(amount=10.0)
    for kwargs, expected in [
        ({"rules": ["t.one"]}, {"t.one"}),
        ({"disabled_rules": ["t.one"]}, {"t.two"}),
        ({"rules": ["t.*"]}, {"t.one", "t.two"}),
    ]:
        engine = Engine([pack], **kwargs)
        try:
            assert {f.rule for f in engine.evaluate_facts(facts)} == expected
        finally:
            engine.close()


# -- loading -------------------------------------------------------------------------------


def test_yaml_and_json_packs_load_to_the_same_rule() -> None:
    from_yaml = load_declarative_pack(PACKS / "hygiene.yaml")
    from_json = load_declarative_pack(str(PACKS / "hygiene.json"))
    yaml_rule = from_yaml.declarative_rules[0]
    json_rule = from_json.declarative_rules[0]
    assert yaml_rule.when == json_rule.when
    assert yaml_rule.message == json_rule.message
    assert [s.id for s in from_yaml.specs] == [
        "hygiene.stalled-deal",
        "hygiene.big-deal-no-tier",
        "hygiene.test-record",
        "hygiene.region-missing",
    ]
    spec = from_yaml.specs[0]
    assert spec.parameters == ("stalled_days",)
    assert spec.reasons == {"stalled": "Deal stalled in its stage"}
    assert spec.semantics == "is_open = true and days_in_stage ≥ {stalled_days}"
    assert from_yaml.specs[1].semantics == (
        'amount ≥ {big_deal} and (partner_tier = null or partner_tier = "")'
    )
    assert yaml_rule.fields == {"is_open", "days_in_stage"}


@pytest.mark.usefixtures("backend")
def test_yaml_dates_are_compared_as_iso_strings() -> None:
    import yaml

    doc = document(rule(when=yaml.safe_load("close_date: {lt: 2024-06-01}")))
    pack = load_declarative_pack(doc)
    assert pack.declarative_rules[0].when == {"close_date": {"lt": "2024-06-01"}}
    assert fired(pack, opportunity(close_date=dt.date(2024, 5, 31))) == {"t.rule"}
    assert fired(pack, opportunity(close_date=dt.date(2024, 6, 1))) == set()


def test_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"duplicate-key\.yaml: line 13: duplicate key 'gt'"):
        load_declarative_pack(PACKS / "duplicate-key.yaml")
    with pytest.raises(InputError, match=r"syntax-error\.yaml: line \d+: "):
        load_declarative_pack(PACKS / "syntax-error.yaml")
    with pytest.raises(InputError, match="cannot read the pack"):
        load_declarative_pack(tmp_path / "absent.yaml")
    duplicate = tmp_path / "dup.json"
    duplicate.write_text('{"name": "a", "name": "b"}')
    with pytest.raises(InputError, match=r"dup\.json: duplicate key 'name'"):
        load_declarative_pack(duplicate)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(PackValidationError, match="expected a mapping of pack keys"):
        load_declarative_pack(listed)
    path = PACKS / "unknown-operator.yaml"
    with pytest.raises(PackValidationError) as info:
        load_declarative_pack(path)
    assert str(info.value) == (
        f"{path}: hygiene.stalled-deal: when.days_in_stage.gtx: unknown operator 'gtx'"
    )


def test_schema_documents_the_keys_the_loader_accepts() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(PACK_KEYS)
    assert set(schema["required"]) == set(loader.REQUIRED_PACK_KEYS)
    defs = schema["$defs"]
    assert set(defs["rule"]["properties"]) == set(RULE_KEYS)
    assert set(defs["rule"]["required"]) == set(loader.REQUIRED_RULE_KEYS)
    assert set(defs["parameter"]["properties"]) == set(PARAMETER_KEYS)
    assert set(defs["fieldTest"]["properties"]) == set(OPERATORS)
    assert defs["recordType"]["enum"] == ["opportunity", "lead", "account", "activity"]
    assert defs["rule"]["properties"]["severity"]["enum"] == [s.value for s in Severity]


def test_fact_fields_come_from_flat() -> None:
    assert {"days_in_stage", "amount", "record_id", "is_open"} <= fact_fields("opportunity")
    assert "days_in_stage" not in fact_fields("lead")
    assert "business_days_to_accept" in fact_fields("lead")
    assert "id" not in fact_fields("account")


# -- validation ----------------------------------------------------------------------------

RULE_REFUSALS = [
    ({"days_in_stage": {"gtx": 60}}, "when.days_in_stage.gtx: unknown operator 'gtx'"),
    ({"amount": {"param": "limit"}}, "when.amount.param: unknown operator 'param' (write {eq: {param: NAME}})"),
    ({"id": {"eq": "x"}}, "when.id: cannot test 'id': reserved by the engine (the record's id is 'record_id')"),
    ({"sid": 1}, "when.sid: cannot test 'sid': reserved by the engine"),
    ({"record_type": "lead"}, "when.record_type: cannot test 'record_type': reserved: the rule's record_type(s) select the records"),
    ({"Nope__c": {"eq": 1}}, "when.Nope__c: unknown field 'Nope__c' for opportunity (declare CRM fields outside the model in extra_fields)"),
    ({"bad-name": 1}, "when.bad-name: 'bad-name' is not a field name (letters, digits, _)"),
    ({True: 1}, "when: True: keys must be strings (quote it in YAML)"),
    ({"amount": {"gt": {"param": "nope"}}}, "when.amount.gt: undeclared parameter 'nope'"),
    ({"amount": {"gt": {"param": "limit", "x": 1}}}, 'when.amount.gt: expected a value or {param: NAME}, got {"param": "limit", "x": 1}'),
    ({"name": {"matches": {"param": "limit"}}}, "when.name.matches: parameter 'limit': matches needs a regular expression string, got 5"),
    ({"all": []}, "when.all: expected a non-empty list of conditions, got []"),
    ({"any": []}, "when.any: expected a non-empty list of conditions, got []"),
    ({"any": {"amount": 1}}, 'when.any: expected a non-empty list of conditions, got {"amount": 1}'),
    ({"all": [{"amount": {"gt": 1}}, "x"]}, 'when.all[1]: expected a condition mapping, got "x"'),
    ({"all": [{}]}, "when.all[0]: empty condition"),
    ({}, "when: the rule tests no field"),
    ("amount > 5", 'when: expected a condition mapping, got "amount > 5"'),
    ({"amount": {}}, "when.amount: no operator (use eq, ne, lt, lte, gt, gte, in, exists, matches)"),
    ({"name": {"matches": "("}}, "when.name.matches: invalid regular expression '(': missing ), unterminated subpattern at position 0"),
    ({"name": {"matches": 5}}, "when.name.matches: matches needs a regular expression string, got 5"),
    ({"amount": {"lt": True}}, "when.amount.lt: lt needs a number or a string, got true"),
    ({"amount": {"gte": None}}, "when.amount.gte: gte needs a number or a string, got null"),
    ({"amount": {"eq": [1]}}, "when.amount.eq: eq needs a string, number, boolean or null, got [1]"),
    ({"amount": [1, 2]}, "when.amount.eq: eq needs a string, number, boolean or null, got [1, 2]"),
    ({"amount": {"eq": float("nan")}}, "when.amount.eq: eq needs a string, number, boolean or null, got NaN"),
    ({"stage": {"in": []}}, "when.stage.in: in needs a non-empty list of strings, numbers, booleans or null, got []"),
    ({"stage": {"in": "a"}}, 'when.stage.in: in needs a non-empty list of strings, numbers, booleans or null, got "a"'),
    ({"stage": {"exists": "yes"}}, 'when.stage.exists: exists needs true or false, got "yes"'),
    ({"stage": {"in": [f"v{i}" for i in range(300)]}}, "when: the condition expands to 300 alternatives in durable-rules (at most 256): shorten 'in' lists or split the rule"),
    ({"all": [{"any": [{"amount": {"gt": i}} for i in range(5)]}] * 3}, "when: 'any' branches can fire 125 times for one record (at most 64): split the rule"),
]  # fmt: skip


@pytest.mark.parametrize(("when", "problem"), RULE_REFUSALS)
def test_conditions_are_refused_naming_the_rule_and_key(when: Any, problem: str) -> None:
    assert refusal(document(rule(when=when))) == f"t.rule: {problem}"


def test_deep_nesting_is_refused() -> None:
    when: dict[str, Any] = {"amount": {"gt": 1}}
    for _ in range(12):
        when = {"all": [when]}
    assert refusal(document(rule(when=when))).endswith(": conditions nest deeper than 10 levels")


def test_fields_must_exist_for_every_record_type_of_the_rule() -> None:
    doc = document(rule(when={"days_in_stage": {"gt": 1}}, record_type="lead"))
    assert refusal(doc) == (
        "t.rule: when.days_in_stage: unknown field 'days_in_stage' for lead "
        "(declare CRM fields outside the model in extra_fields)"
    )
    doc = document(rule(when={"X__c": {"gt": 1}}, record_type="lead"))
    assert load_declarative_pack(doc).specs[0].record_types == ("lead",)


RULE_KEY_REFUSALS = [
    ({"severity": "fatal"}, 't.rule: severity: unknown severity "fatal" (use block, warn or info)'),
    ({"record_type": "contact"}, 't.rule: record_type: unknown record type "contact" (use opportunity, lead, account, activity)'),
    ({"record_types": ["lead"]}, "t.rule: record_types: give exactly one of record_type or record_types"),
    ({"severty": "warn"}, "t.rule: severty: unknown key (known: id, severity, record_type, record_types, title, doctrine, source, remediation, reason, message, when, parameters)"),
    ({"title": " "}, "t.rule: title: must not be empty"),
    ({"title": 5}, "t.rule: title: expected a string, got 5"),
    ({"reason": "Bad Reason"}, "t.rule: reason: 'Bad Reason': use lowercase letters, digits and _"),
    ({"doctrine": None}, "t.rule: doctrine: expected a string, got null"),
    ({"parameters": ["zz"]}, "t.rule: parameters: 'zz' is not declared in the pack's parameters"),
    ({"parameters": "limit"}, "t.rule: parameters: expected a list of parameter names"),
    ({"message": "{nope}"}, "t.rule: message: placeholder {nope}: unknown field 'nope' for opportunity (declare CRM fields outside the model in extra_fields)"),
    ({"message": "{0}"}, "t.rule: message: placeholder {0}: use a plain field or parameter name"),
    ({"message": "{}"}, "t.rule: message: placeholder {}: use a plain field or parameter name"),
    ({"message": "{name.__class__}"}, "t.rule: message: placeholder {name.__class__}: use a plain field or parameter name"),
    ({"message": "{name!z}"}, "t.rule: message: placeholder {name}: unknown conversion !z"),
    ({"message": "{amount:{limit}}"}, "t.rule: message: placeholder {amount}: nested placeholders are not supported"),
    ({"message": "oops {"}, "t.rule: message: bad template: Single '{' encountered in format string"),
    ({"id": "Bad"}, 'rules[0]: id: must read \'t.<rule-name>\' in lowercase, got "Bad"'),
    ({"id": "other.rule"}, "other.rule: id: must read 't.<rule-name>' in lowercase"),
]  # fmt: skip


@pytest.mark.parametrize(("keys", "message"), RULE_KEY_REFUSALS)
def test_rule_keys_are_refused_naming_the_rule_and_key(keys: dict[str, Any], message: str) -> None:
    assert refusal(document(rule(**keys))) == message


def test_missing_rule_keys_and_duplicate_ids() -> None:
    bare = rule()
    del bare["when"]
    assert refusal(document(bare)) == "t.rule: when: missing"
    assert refusal(document(rule(), rule())) == "t.rule: id: defined twice in pack t"
    both = rule(record_types=["lead"])
    assert refusal(document(both)).endswith("give exactly one of record_type or record_types")
    neither = rule()
    del neither["record_type"]
    assert refusal(document(neither)).endswith("give exactly one of record_type or record_types")
    listed = rule(record_types=[])
    del listed["record_type"]
    assert refusal(document(listed)) == (
        "t.rule: record_types: expected a non-empty list of record types"
    )
    listed["record_types"] = ["lead", "lead"]
    assert refusal(document(listed)) == "t.rule: record_types: a record type is listed twice"


def with_pack(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(document())
    doc.update(changes)
    return doc


PACK_REFUSALS = [
    (with_pack(extra=1), "pack 't': extra: unknown key (known: $schema, name, version, description, parameters, extra_fields, rules)"),
    (with_pack(name="Bad Name"), "pack 'Bad Name': name: use lowercase letters, digits, '-' and '_'"),
    (with_pack(version=1.0), "pack 't': version: expected a string, got 1.0"),
    (with_pack(rules=[]), "pack 't': rules: expected a non-empty list of rules"),
    (with_pack(rules=["x"]), "rules[0]: rule: expected a mapping of rule keys"),
    (with_pack(extra_fields="X__c"), "pack 't': extra_fields: expected a list of field names"),
    (with_pack(extra_fields=["id"]), "pack 't': extra_fields[0]: 'id' is reserved by the engine (the record's id is 'record_id')"),
    (with_pack(extra_fields=["a b"]), "pack 't': extra_fields[0]: \"a b\" is not a field name (letters, digits, _)"),
    (with_pack(extra_fields=["A", "A"]), "pack 't': extra_fields[1]: 'A' is listed twice"),
    (with_pack(parameters={"limit": 5}), "pack 't': parameters: expected a list of {name, default, description}"),
    (with_pack(parameters=[{"name": "amount", "default": 1}]), "pack 't': parameters[0].name: 'amount' is also a fact field: message placeholders would be ambiguous"),
    (with_pack(parameters=[{"name": "p", "default": None}]), "pack 't': parameters[0].default: expected a string, number, boolean or a list of them, got null"),
    (with_pack(parameters=[{"name": "p", "default": 1}, {"name": "p", "default": 2}]), "pack 't': parameters[1].name: 'p' is declared twice"),
    (with_pack(parameters=[{"name": "p"}]), "pack 't': parameters[0]: default: missing"),
    (with_pack(parameters=[{"name": "p", "default": 1, "type": "int"}]), "pack 't': parameters[0]: type: unknown key (known: name, default, description)"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "message"), PACK_REFUSALS)
def test_pack_keys_are_refused_naming_the_key(doc: dict[str, Any], message: str) -> None:
    assert refusal(doc) == message


@pytest.mark.usefixtures("backend")
def test_packs_reading_too_many_fields_are_refused() -> None:
    fields = [f"F{i}__c" for i in range(123)]
    doc = document(rule(when={"all": [{field: {"exists": True}} for field in fields]}))
    doc["extra_fields"] = fields
    pack = load_declarative_pack(doc)
    assert pack.declarative_rules[0].fields == set(fields)
    deal = Opportunity(id="o1", extra=dict.fromkeys(fields, 1))
    facts = build_index(Snapshot(as_of=AS_OF, opportunities=(deal,))).opportunity(deal)
    assert fired(pack, facts) == {"t.rule"}
    doc["rules"].append(rule("t.more", when={"Y__c": {"matches": "a"}, "amount": {"gt": 1}}))
    doc["extra_fields"].append("Y__c")
    assert refusal(doc) == (
        "pack 't': rules: opportunity rules read 125 field(s) and 1 pattern(s): a durable-rules "
        "fact holds at most 250 properties (3, plus 2 per field and 1 per pattern); split the pack"
    )


def test_missing_pack_keys() -> None:
    doc = document()
    del doc["version"]
    assert refusal(doc) == "pack 't': version: missing"
    assert refusal({}) == "pack: name: missing"


# -- modules -------------------------------------------------------------------------------

#: Loads and validates a pack the three ways a user can, then says whether durable-rules's C
#: extension got imported; with ``evaluate`` it then evaluates the pack (which must import it).
NATIVE_PROBE = """
import sys
from click.testing import CliRunner

import tsos_rules
from tsos_rules.cli import main

path = sys.argv[1]
pack = tsos_rules.load_declarative_pack(path)
pack.validate()
for args in (["validate-pack", path], ["rules", "validate", path]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
print("validated", "durable_rules_engine" in sys.modules)
if sys.argv[2:] == ["evaluate"]:
    import datetime

    deal = tsos_rules.Opportunity("o1")
    engine = tsos_rules.Engine([pack])
    engine.evaluate(tsos_rules.Snapshot(as_of=datetime.date(2024, 5, 1), opportunities=(deal,)))
    engine.close()
    print("evaluated", "durable_rules_engine" in sys.modules)
"""


def probe_native(*args: str, backend: str = "auto") -> list[str]:
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", NATIVE_PROBE, str(PACKS / "hygiene.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TSOS_RULES_DECLARATIVE_BACKEND": backend},
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_validating_a_pack_imports_no_native_code() -> None:
    assert probe_native() == ["validated False"]
    # By default (auto: the compiled Python backend) evaluating loads no native code either.
    assert probe_native("evaluate") == ["validated False", "evaluated False"]
    # The probe can tell: evaluating on durable-rules loads the C extension (where it loads).
    if durable_rules_engine is not None:
        evaluated = probe_native("evaluate", backend="durable-rules")
        assert evaluated == ["validated False", "evaluated True"]


def test_the_old_import_path_warns_and_names_the_new_module() -> None:
    from tsos_rules.rules import declarative

    expected = {
        "load_declarative_pack": ("tsos_rules", load_declarative_pack),
        "DeclarativeRule": ("tsos_rules.rules.declarative.loader", DeclarativeRule),
        "fact_fields": ("tsos_rules.rules.declarative.loader", fact_fields),
        "MAX_FIRINGS": ("tsos_rules.rules.declarative.compiler", 64),
    }
    if durable_rules_engine is not None:
        expected["CompiledDeclarativePack"] = (
            "tsos_rules.rules.declarative.runtime",
            CompiledDeclarativePack,
        )
    for name, (home, value) in expected.items():
        with pytest.warns(DeprecationWarning, match=f"import it from {re.escape(home)}$"):
            assert getattr(declarative, name) == value
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        declarative.nothing  # noqa: B018


def test_importing_the_new_modules_does_not_warn() -> None:
    native = ", runtime" if durable_rules_engine is not None else ""
    code = (
        f"from tsos_rules.rules.declarative import backend, compiler, interpreter, loader{native}\n"
        "import tsos_rules.rules.declarative as package\n"
        "assert package.loader is loader\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr


# -- choosing the backend ------------------------------------------------------------------


def compiled_kinds(pack: RulePack) -> list[str]:
    engine = Engine([pack])
    try:
        return [type(compiled).__name__ for compiled in engine._compiled]
    finally:
        engine.close()


def test_the_environment_chooses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    pack = load_declarative_pack(document())
    monkeypatch.setenv("TSOS_RULES_DECLARATIVE_BACKEND", "python")
    assert compiled_kinds(pack) == ["InterpretedDeclarativePack"]
    monkeypatch.setenv("TSOS_RULES_DECLARATIVE_BACKEND", "auto")
    loads = durable_rules_engine is not None
    # auto is the compiled Python backend on every Python: faster than durable-rules
    # (docs/declarative-backends.md), with the same findings (test_backend_differential.py).
    auto = "InterpretedDeclarativePack"
    assert compiled_kinds(pack) == [auto]
    monkeypatch.delenv("TSOS_RULES_DECLARATIVE_BACKEND")
    assert compiled_kinds(pack) == [auto]
    monkeypatch.setenv("TSOS_RULES_DECLARATIVE_BACKEND", "fast")
    with pytest.raises(ConfigError) as info:
        Engine([pack])
    assert str(info.value) == (
        "TSOS_RULES_DECLARATIVE_BACKEND='fast': unknown backend (use auto, durable-rules, python)"
    )
    monkeypatch.setenv("TSOS_RULES_DECLARATIVE_BACKEND", "durable-rules")
    if loads:
        assert compiled_kinds(pack) == ["CompiledDeclarativePack"]
    else:
        with pytest.raises(ConfigError, match=r"durable-rules cannot be loaded on Python 3\.\d+ "):
            Engine([pack])


def test_a_bad_backend_is_a_config_error_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from tsos_rules.cli import main

    monkeypatch.setenv("TSOS_RULES_DECLARATIVE_BACKEND", "fast")
    snapshot = tmp_path / "snap.json"
    snapshot.write_text(json.dumps({"as_of": "2024-05-01", "opportunities": [{"id": "o1"}]}))
    pack_dir = tmp_path / "packs"
    pack_dir.mkdir()
    (pack_dir / "t.json").write_text(json.dumps(document()))
    config = tmp_path / "tsos-rules.toml"
    config.write_text(f'[rules]\npack_dirs = ["{pack_dir}"]\n')
    result = CliRunner().invoke(main, ["check", str(snapshot), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "TSOS_RULES_DECLARATIVE_BACKEND='fast': unknown backend" in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("backend")
def test_evaluating_after_close_is_an_error_on_both_backends() -> None:
    pack = load_declarative_pack(document())
    engine = Engine([pack])
    (compiled,) = engine._compiled
    engine.close()
    with pytest.raises(TsosRulesError, match="pack t: evaluated after close"):
        compiled.evaluate("opportunity", opportunity(amount=10.0))
    assert list(compiled.evaluate("lead", opportunity())) == []
