"""The Python interpreter against durable-rules, the reference engine: the same findings, always.

Generated packs (conditions over every operator, nesting, parameters, message templates) judge
generated flat facts on both backends, and the shipped packs judge a generated org; every
finding (rule, record, reason, message, order) must be equal. Runs where durable-rules loads.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("durable_rules_engine", reason="durable-rules cannot be loaded on this Python")

from tsos_rules import load_declarative_pack
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.errors import PackValidationError
from tsos_rules.facts import build_index
from tsos_rules.model import Opportunity, Snapshot
from tsos_rules.rules.declarative._language import value_kind
from tsos_rules.rules.declarative.interpreter import InterpretedDeclarativePack
from tsos_rules.rules.declarative.runtime import CompiledDeclarativePack
from tsos_rules.rules.spec import RulePack
from tsos_rules.snapshot.document import snapshot_from_dict

ROOT = Path(__file__).parents[3]
SHIPPED = [
    ROOT / "tests" / "data" / "packs" / "hygiene.yaml",
    ROOT / "tests" / "data" / "packs" / "hygiene.json",
    ROOT
    / "contrib"
    / "tsos-rules-pipeline-hygiene"
    / "src"
    / "tsos_rules_pipeline_hygiene"
    / "pipeline-hygiene.yaml",
]
FIELDS = ("F0__c", "F1__c", "F2__c")
AS_OF = dt.date(2024, 5, 1)

# Values where the two could part: int64 and double edges, -0.0, prefixes, escapes, non-ASCII,
# lone surrogates, look-alike types ("5", true, 1.0), lists and objects.
EDGES: list[Any] = [
    None, 0, -0.0, 1, 1.0, 5, 5.0, -3, 2.5, 0.1, 0.30000000000000004, 1e-7, 1e20, 1e300,
    2**53, 2**53 + 1, float(2**53), 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**299,
    True, False, "", "5", "1.0", "true", "null", "a", "ab", "abc", "abd", "b", "A", "é", "日本",
    "\U0001f600", "\ud800", "a\x00b", 'a"b', "a\\b", "a\tb", "2024-05-31", "2024-06-01",
    "TEST deal", " a", "a ",
]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(EDGES),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
values = st.one_of(
    scalars,
    st.floats(),  # NaN and infinities are neither numbers nor null to the language
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from("ab"), st.integers(0, 3), max_size=1),
)
numbers_or_text = scalars.filter(lambda v: isinstance(v, int | float | str) and v is not True)
patterns = st.sampled_from(["^a", "b$", r"\d", "(?i)test", "^$", "é", r"\.", "a|b", "x*"])


@st.composite
def field_tests(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists", "matches"]))
    operand: Any
    if op in ("eq", "ne"):
        operand = draw(st.one_of(scalars, st.just({"param": "p_num"}), st.just({"param": "p_str"})))
    elif op in ("lt", "lte", "gt", "gte"):
        operand = draw(
            st.one_of(numbers_or_text, st.just({"param": "p_num"}), st.just({"param": "p_str"}))
        )
        if isinstance(operand, bool):
            operand = 1
    elif op == "in":
        operand = draw(
            st.one_of(st.lists(scalars, min_size=1, max_size=3), st.just({"param": "p_in"}))
        )
    elif op == "exists":
        operand = draw(st.booleans())
    else:
        operand = draw(st.one_of(patterns, st.just({"param": "p_rx"})))
    return {draw(st.sampled_from(FIELDS)): {op: operand}}


conditions = st.recursive(
    field_tests(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
    ),
    max_leaves=6,
)
parameters = st.fixed_dictionaries(
    {
        "p_num": st.one_of(st.sampled_from([0, 5, 2.5, 2**53 + 1, 2**63]), st.integers(-9, 9)),
        "p_str": st.sampled_from(["", "a", "ab", "é", "2024-06-01"]),
        "p_in": st.lists(scalars, min_size=1, max_size=3),
        "p_rx": patterns,
    }
)


def pack_document(whens: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "g",
        "version": "1",
        "parameters": [
            {"name": "p_num", "default": 5},
            {"name": "p_str", "default": "a"},
            {"name": "p_in", "default": [1, "a"]},
            {"name": "p_rx", "default": "^a"},
        ],
        "extra_fields": list(FIELDS),
        "rules": [
            {
                "id": f"g.rule-{index}",
                "severity": "warn",
                "record_type": "opportunity",
                "title": f"Rule {index}",
                "reason": "hit",
                "message": "{F0__c} {F1__c!r} {F2__c:>4} {p_num} {p_str!a} {record_id}",
                "when": when,
            }
            for index, when in enumerate(whens)
        ],
    }


def both(pack: RulePack, values: dict[str, Any], snapshot: Snapshot) -> tuple[list[Any], list[Any]]:
    """Every finding of ``pack`` on every record of ``snapshot``: (durable-rules, interpreter)."""
    index = build_index(snapshot)
    rules = pack.declarative_rules
    durable = CompiledDeclarativePack.build(pack, rules, values)
    python = InterpretedDeclarativePack.build(pack, rules, values)
    found: tuple[list[Any], list[Any]] = ([], [])
    try:
        for record_type, records, build in index.judged_records(
            frozenset(t for rule in rules for t in rule.spec.record_types)
        ):
            for record in records:
                facts = build(record)
                found[0].extend(durable.evaluate(record_type, facts))
                found[1].extend(python.evaluate(record_type, facts))
    finally:
        durable.close()
        python.close()
    return found


def operands(node: Any) -> list[Any]:
    """Every literal operand in a raw condition (list items one by one)."""
    if isinstance(node, list):
        return [item for child in node for item in operands(child)]
    if not isinstance(node, dict):
        return [node]
    if set(node) == {"param"}:
        return []
    return [item for child in node.values() for item in operands(child)]


def near(value: Any) -> list[Any]:
    """Values a wrong comparison would judge differently from ``value``."""
    if isinstance(value, bool) or value is None:
        return [value]
    if isinstance(value, int | float):
        return [value, value + 1, value - 1, float(value), str(value)]
    if isinstance(value, str):
        return [value, value + "a", value[:-1], value.upper(), " " + value]
    return [value]


@st.composite
def judged(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """Conditions, parameter values, and facts whose values sit on and around the operands."""
    whens = draw(st.lists(conditions, min_size=1, max_size=4))
    chosen = draw(parameters)
    pool = [v for operand in [*operands(whens), *chosen.values()] for v in near(operand)]
    pool = [v for v in pool if not isinstance(v, list)] or [None]
    fact_values = st.one_of(st.sampled_from(pool), st.sampled_from(pool), values)
    facts = draw(
        st.lists(
            st.dictionaries(st.sampled_from(FIELDS), fact_values, max_size=len(FIELDS)),
            min_size=1,
            max_size=12,
        )
    )
    return whens, chosen, facts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=judged())
def test_generated_packs_give_the_same_findings_on_both_backends(
    case: tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]],
) -> None:
    whens, values, facts = case
    try:
        pack = load_declarative_pack(pack_document(whens))
    except PackValidationError:
        assume(False)  # beyond durable's limits (alternatives, firings): refused on both
        raise
    deals = tuple(Opportunity(id=f"o{i}", extra=extra) for i, extra in enumerate(facts))
    durable, python = both(pack, values, Snapshot(as_of=AS_OF, opportunities=deals))
    assert python == durable


REFUSED = object()


def operand_for(op: str, value: Any) -> Any:
    """``value`` as an operand of ``op``, or REFUSED where the language refuses it."""
    if op in ("eq", "ne"):
        return value
    if op in ("lt", "lte", "gt", "gte"):
        return (
            value
            if isinstance(value, int | float | str) and not isinstance(value, bool)
            else REFUSED
        )
    if op == "in":
        return [value, "zz"]
    if op == "exists":
        return value if isinstance(value, bool) else REFUSED
    return value if isinstance(value, str) else REFUSED


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists", "matches"])
def test_every_operator_on_every_edge_value_agrees(op: str) -> None:
    """Each operator with each edge value as operand, on a record holding each edge value."""
    whens = []
    for operand in [*EDGES, True, False, "^a", r"\d$", "(?i)TEST", "^$"]:
        resolved = operand_for(op, operand)
        if resolved is not REFUSED and value_kind(operand) != "other":
            whens.append({"F0__c": {op: resolved}})
    pack = load_declarative_pack(pack_document(whens))
    deals = [Opportunity(id=f"o{i}", extra={"F0__c": v}) for i, v in enumerate(EDGES)]
    deals.append(Opportunity(id="missing"))
    values = pack.resolve_parameters(None)
    durable, python = both(pack, values, Snapshot(as_of=AS_OF, opportunities=tuple(deals)))
    assert python == durable
    assert durable  # the operator does hold for some pairs


#: Other parameter values for the shipped packs (names a pack lacks are dropped).
TUNED: dict[str, Any] = {"stalled_days": 7, "big_deal": 1000, "late_stages": ["closing"]}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_packs_give_the_same_findings_on_both_backends(path: Path) -> None:
    pack = load_declarative_pack(path)
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=1500, seed=11, as_of=AS_OF))
    defaults = pack.resolve_parameters(None)
    tuned = {name: TUNED.get(name, value) for name, value in defaults.items()}
    assert tuned != defaults
    for values in (defaults, tuned):
        durable, python = both(pack, values, snapshot)
        assert python == durable
        assert len(durable) > 10  # the packs do fire on the generated org
