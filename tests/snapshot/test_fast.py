"""The generated bulk loader and cattrs accept exactly the same records, with the same values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.model import COLLECTIONS, Opportunity, PartnerConsent
from tsos_rules.snapshot._fast import (
    Refused,
    make_bulk_structure,
    make_bulk_structure_rows,
    make_bulk_unstructure,
)
from tsos_rules.snapshot.document import (
    BULK_STRUCTURE,
    CONVERTER,
    FieldProblem,
    SnapshotError,
    snapshot_from_dict,
)


def _both(row: Any, cls: type[Any]) -> tuple[Any, Any]:
    try:
        fast = BULK_STRUCTURE[cls](row)
    except Exception:
        fast = Refused
    try:
        slow = CONVERTER.structure(row, cls)
    except Exception:
        slow = FieldProblem
    return fast, slow


def test_every_record_of_a_realistic_org_loads_identically() -> None:
    org = generate_org(opportunities=600, seed=3, as_of=dt.date(2026, 11, 24))
    for plural, _, cls in COLLECTIONS:
        for row in org[plural]:
            fast, slow = _both(row, cls)
            assert fast == slow, (plural, row)
            assert fast.extra == slow.extra


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "o1",
            "2026-11-24",
            "2026-W48-2",
            "2026-13-01",
            "2026-11-24T10:00:00+00:00",
            "2026-11-24T10:00:00",
            "commit",
            "Commit",
            "partner",
            "direct",
            "credit_limit",
        ]
    ),
    st.lists(st.sampled_from(["u1", 1, None]), max_size=3),
    st.fixed_dictionaries({}, optional={"by": st.just("p1"), "reason": st.just("other")}),
)

_FIELDS = [a.name for a in attrs.fields(Opportunity) if a.name != "extra"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*_FIELDS, "custom"]), _values, max_size=8))
def test_the_fast_path_never_accepts_what_cattrs_refuses(row: dict[str, Any]) -> None:
    row.setdefault("id", "o1")
    fast, slow = _both(row, Opportunity)
    if fast is not Refused:
        assert fast == slow
        assert fast.extra == slow.extra
    elif slow is not FieldProblem:
        # Refused by the fast path but read by cattrs: the bulk loader falls back to cattrs,
        # so the document still loads; the values must still be cattrs' own.
        assert isinstance(slow, Opportunity)


def test_the_fast_unstructure_writes_what_cattrs_writes() -> None:
    org = generate_org(opportunities=300, seed=5, as_of=dt.date(2026, 11, 24))
    org["opportunities"][0]["partner_consent"] = {
        "by": "p1",
        "at": "2026-11-01T09:00:00+00:00",
        "reason": "credit_limit",
        "ticket": "T-7",
    }
    for plural, _, cls in COLLECTIONS:
        for row in org[plural]:
            record = CONVERTER.structure(row, cls)
            assert make_bulk_unstructure(cls)(record) == CONVERTER.unstructure(record)


def test_records_of_many_key_layouts_load_like_cattrs_reads_them() -> None:
    """Past the learnt layouts the generic function takes over, with the same result."""
    rows: list[dict[str, Any]] = [
        {"id": f"o{i}", "stage": "sql", f"custom_{i}": i, "amount": i} for i in range(100)
    ]
    for row in rows:
        fast, slow = _both(row, Opportunity)
        assert fast == slow
        assert fast.extra == slow.extra == {k: v for k, v in row.items() if k.startswith("c")}
    for bad in ({"stage": "sql", "custom_0": 1}, {"id": 7}, {"id": "o1", "close_date": "2026-1-1"}):
        assert _both(bad, Opportunity) == (Refused, FieldProblem)


def test_a_record_read_with_the_previous_records_layout_gets_its_own_values() -> None:
    """Each record is tried with the previous record's layout first; another layout of the same
    size, the same keys in another order, or a bad value still read as cattrs reads them."""
    rows: list[Any] = [
        {"id": "o1", "stage": "sql", "amount": 1},
        {"id": "o2", "stage": "sql", "Region__c": "EU"},  # same size, another key
        {"amount": 3, "id": "o3", "stage": "sql"},  # the first layout's keys, reordered
        {"id": "o4", "stage": "sql", "amount": "many"},  # the first layout, a bad value
        {"id": "o5", "stage": "nope", "amount": 5},  # a bad enumeration value
        {"id": "o6", "stage": "sql", "amount": 6, "Region__c": None},
        {"id": "o7", "stage": "sql"},
        {"id": "o8", "stage": "sql", "Region__c": "US"},
    ]
    for row in rows:
        fast, slow = _both(row, Opportunity)
        if slow is FieldProblem:
            assert fast is Refused, row
            continue
        assert fast == slow, row
        assert fast.extra == slow.extra, row
    assert _both(rows[2], Opportunity)[0].amount == 3.0
    assert _both(rows[7], Opportunity)[0].extra == {"Region__c": "US"}


def test_a_collection_loads_as_its_records_load_one_by_one() -> None:
    """``structure_rows`` (one call per collection) gives what the per-record function gives,
    across layout changes and past the learnt layouts, and refuses the collection at the first
    record the per-record function refuses."""
    rows: list[Any] = [
        {"id": "o1", "stage": "sql", "amount": 1},
        {"id": "o2", "stage": "sql", "Region__c": "EU"},
        {"amount": 3, "id": "o3", "stage": "sql"},
        {"id": "o4", "stage": "sql"},
        *({"id": f"p{i}", "stage": "sql", f"custom_{i}": i} for i in range(80)),
        {"id": "o5", "stage": "sql", "amount": 5},
    ]
    consent = {PartnerConsent: make_bulk_structure(PartnerConsent)}
    structure_rows = make_bulk_structure_rows(Opportunity, consent)
    loaded = structure_rows(rows)
    one_by_one = [BULK_STRUCTURE[Opportunity](row) for row in rows]
    assert loaded == one_by_one
    assert [r.extra for r in loaded] == [r.extra for r in one_by_one]
    for bad in ({"id": "o9", "amount": "many"}, {"stage": "sql"}, ["id", "o9"], None):
        with pytest.raises(Exception):  # noqa: B017 - whatever it raises, cattrs reads it
            structure_rows([*rows[:2], bad, *rows[2:]])


def test_a_bad_record_in_a_collection_is_named_as_before() -> None:
    """A collection the fast path refuses is read record by record: the error names the record."""
    rows = [{"id": "o1", "stage": "sql"}, {"id": "o2", "amount": "many"}, {"id": "o3"}]
    with pytest.raises(SnapshotError, match=r"opportunities\[1\].*amount"):
        snapshot_from_dict({"opportunities": rows})
    snapshot, errors = snapshot_from_dict({"opportunities": rows}, skip_bad_records=True)
    assert [o.id for o in snapshot.opportunities] == ["o1", "o3"]
    assert [(e.index, e.field) for e in errors] == [(1, "amount")]


def test_dates_read_before_never_let_another_text_through() -> None:
    """The loader keeps the dates it has read (most records share a few hundred days): a
    text it has not read is still checked in full, before and after the same day was read."""
    from tsos_rules.snapshot import _fast

    texts = ["2026-11-24", "2026-W48-2", "0001-01-01", "9999-12-31", "20261124", "2026-11-24 "]
    for text in [*texts, *texts]:  # the second time round, the good one is a known date
        fast, slow = _both({"id": "o1", "close_date": text}, Opportunity)
        if slow is FieldProblem:
            assert fast is Refused, text
        else:
            assert fast == slow, text
    assert set(_fast._DATES) >= {"2026-11-24"}
    assert not set(_fast._DATES) & {"0001-01-01", "9999-12-31", "20261124"}


def test_the_dates_kept_are_bounded() -> None:
    from tsos_rules.snapshot import _fast
    from tsos_rules.snapshot.document import _BULK_ROWS

    structure = _BULK_ROWS[Opportunity]
    day = dt.date(2000, 1, 1)
    rows = [
        {"id": f"o{i}", "close_date": (day + dt.timedelta(days=i)).isoformat()}
        for i in range(_fast.MAX_DATES + 10)
    ]
    loaded = structure(rows)
    assert [o.close_date for o in loaded] == [day + dt.timedelta(days=i) for i in range(len(rows))]
    assert len(_fast._DATES) <= _fast.MAX_DATES
