"""The judged records' facts, built without attrs' ``__init__``, are the facts it would build."""

from __future__ import annotations

import datetime as dt

import attrs

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.facts import build_index
from tsos_rules.facts.records import AccountFacts, ActivityFacts, LeadFacts, OpportunityFacts
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = dt.date(2026, 11, 24)
CONSTRUCTORS = {
    "account": AccountFacts,
    "activity": ActivityFacts,
    "lead": LeadFacts,
    "opportunity": OpportunityFacts,
}


def test_every_judged_record_has_the_facts_the_attrs_constructor_gives() -> None:
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=300, seed=5, as_of=AS_OF))
    index = build_index(snapshot, as_of=AS_OF)
    seen = set()
    for record_type, records, build in index.judged_records():
        cls = CONSTRUCTORS[record_type]
        for record in records:
            fast, built = build(record), cls(record, index)
            seen.add(record_type)
            assert type(fast) is cls
            assert fast == built
            # Every attrs field is set, to what the constructor sets (index too: eq=False).
            for field in attrs.fields(cls):
                assert getattr(fast, field.name) is getattr(built, field.name), field.name
            # Whatever was filled in ahead is what the property computes on first use.
            for name, value in vars(fast).items():
                assert getattr(built, name) == value, (record_type, name)
            assert fast.flat() == built.flat()
    assert seen == set(CONSTRUCTORS)


def test_judged_moves_equal_those_judge_move_builds_with_attrs() -> None:
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=300, seed=5, as_of=AS_OF))
    index = build_index(snapshot, as_of=AS_OF)
    compared = 0
    for deal in snapshot.opportunities:
        changes = index.changes_by_opportunity.get(deal.id, [])
        fast = index.judge_moves(changes, deal)
        assert fast == [index.judge_move(change, deal) for change in changes]
        for move in fast:
            assert attrs.asdict(move, recurse=False) == attrs.asdict(
                index.judge_move(move.change, deal), recurse=False
            )
            compared += 1
    assert compared > 100


def test_the_fast_move_builder_sets_every_field_of_close_date_move() -> None:
    from tsos_rules.facts.records import CloseDateMove

    names = ("change", "locked", "approved", "pushed_later", "reverted", "restoration")
    assert tuple(field.name for field in attrs.fields(CloseDateMove)) == names
