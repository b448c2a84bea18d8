"""A sync judges each batch with ``Engine.judge_each``: the same findings, in the same order,
as asking ``evaluate_facts`` record by record, contrib packs included."""

from __future__ import annotations

import datetime as dt

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine.engine import Engine
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = dt.date(2026, 11, 24)


def test_judge_each_finds_what_evaluate_facts_finds_record_by_record() -> None:
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=600, seed=11, as_of=AS_OF))
    engine = Engine.from_config()
    assert len({spec.id.split(".")[0] for spec in engine.specs.values()}) > 1  # several packs
    index = engine.index(snapshot, AS_OF)
    builders = {"account": index.account, "activity": index.activity, "lead": index.lead}
    builders["opportunity"] = index.opportunity
    keys = {
        (record_type, record.id)
        for record_type, records, _ in index.judged_records(engine.record_types)
        for n, record in enumerate(records)
        if n % 3  # a batch judges some records and reads the others as context
    }
    got = [
        (facts.record_type, facts.record_id, list(found))
        for facts, found in engine.judge_each(index, frozenset(keys))
    ]
    expected = []
    for record_type, records, _ in index.judged_records(engine.record_types):
        for record in records:
            if (record_type, record.id) in keys:
                facts = builders[record_type](record)
                found = engine.evaluate_facts(facts)
                expected.append((record_type, record.id, list(found)))
    assert got == expected
    assert sum(len(f) for _, _, f in got) > 100  # plenty of findings, in every pack's order
    engine.close()


def test_judge_each_with_rules_finds_those_rules_findings_alone() -> None:
    """A sync re-judging an aggregate's readers asks a few rules only: their findings, in the
    same order, and none of the others' (a declarative pack's rules filtered too)."""
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=600, seed=11, as_of=AS_OF))
    engine = Engine.from_config()
    index = engine.index(snapshot, AS_OF)
    keys = frozenset(
        (record_type, record.id)
        for record_type, records, _ in index.judged_records(engine.record_types)
        for record in records
    )
    every = [(f.record_id, f) for _, found in engine.judge_each(index, keys) for f in found]
    counts: dict[str, int] = {}
    for _, finding in every:
        counts[finding.rule] = counts.get(finding.rule, 0) + 1
    # the rule with the most findings in the declarative pack, and in the Python packs
    ranked = sorted(counts, key=lambda rule: (-counts[rule], rule))
    declarative = next(r for r in ranked if r.startswith("pipeline-hygiene."))
    python = next(r for r in ranked if not r.startswith("pipeline-hygiene."))
    chosen = frozenset({declarative, python})
    scoped = [
        (f.record_id, f) for _, found in engine.judge_each(index, keys, rules=chosen) for f in found
    ]
    assert scoped == [(rid, f) for rid, f in every if f.rule in chosen]
    assert len({f.rule for _, f in scoped}) == 2
    nothing = list(engine.judge_each(index, keys, rules=frozenset({"no.such-rule"})))
    assert nothing == []
    engine.close()
