"""FlatView, what declarative backends test records through, reads exactly what flat() holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.facts import FlatView, RecordFacts, build_index
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = dt.date(2026, 11, 24)
#: Names a pack could test that flat() does not hold, or holds under another name.
ODD_NAMES = ("id", "record_id", "nope", "Custom__c", "extra", "")


def _all_facts(document: dict[str, Any]) -> list[RecordFacts]:
    snapshot, _ = snapshot_from_dict(document)
    index = build_index(snapshot, as_of=AS_OF)
    return list(index.iter_facts())


def _same(view: FlatView, flat: dict[str, Any], name: str) -> None:
    got, want = view.get(name), flat.get(name)
    # repr tells 1 from True and 1.0, and [] from None: the backends would tell them apart.
    assert repr(got) == repr(want), name
    # Messages render from ChainMap(view, parameters): presence decides which map answers.
    assert (name in view) is (name in flat), name
    assert repr(view.get(name, "default")) == repr(flat.get(name, "default")), name


def test_every_flat_value_of_a_generated_org_reads_the_same_through_a_view() -> None:
    facts = _all_facts(generate_org(opportunities=300, seed=11, as_of=AS_OF))
    assert {f.record_type for f in facts} == {"opportunity", "lead", "account", "activity"}
    for record in facts:
        flat = record.flat()
        view = FlatView(record)
        for name in [*flat, *ODD_NAMES]:
            _same(view, flat, name)
            _same(view, flat, name)  # a second read is the kept value, not a new one


def test_extras_named_like_fields_or_derived_values_resolve_as_flat_does() -> None:
    deal = {
        "id": "o1",
        "name": "Deal",
        "stage": "prospecting",
        "close_date": "2026-12-01",
        # CRM extras: a custom field, one shadowed by a derived value, one named record_id
        "Custom__c": 5,
        "is_open": "shadowed by the derived value",
        "record_id": "shadowed by the record's id",
        "registration_stage": None,
    }
    lead = {"id": "l1", "company": "Acme", "is_distributed": "x", "Score__c": [1, 2]}
    facts = _all_facts({"opportunities": [deal], "leads": [lead], "as_of": AS_OF.isoformat()})
    for record in facts:
        flat = record.flat()
        view = FlatView(record)
        for name in [*flat, *ODD_NAMES, "is_open", "Score__c", "registration_stage"]:
            _same(view, flat, name)
    deal_view = FlatView(next(f for f in facts if f.record_type == "opportunity"))
    assert deal_view.get("is_open") is True
    assert deal_view.get("record_id") == "o1"
    assert deal_view.get("Custom__c") == 5
    assert deal_view.get("close_date") == "2026-12-01"  # JSON, as flat() gives it
    with pytest.raises(KeyError):
        deal_view["id"]  # flat() calls it record_id
    assert dict(deal_view) == next(f for f in facts if f.record_type == "opportunity").flat()
