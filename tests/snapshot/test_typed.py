"""A snapshot file read with msgspec's typed decoding loads exactly as its parsed JSON does.

``load_snapshot`` decodes each collection straight into records where msgspec can
(``snapshot/_typed.py``) and leaves the rest to the fast path and cattrs; whatever the document,
the records, their extras, the errors and their messages are those of ``snapshot_from_dict``
over the parsed JSON.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.model import COLLECTIONS, Activity, CloseDateChange, Opportunity
from tsos_rules.snapshot._typed import MAX_EXTRAS, typed_records
from tsos_rules.snapshot.document import (
    _NESTED,
    SnapshotError,
    load_snapshot,
    snapshot_from_dict,
)


def _outcome(load: Any) -> Any:
    try:
        snapshot, errors = load()
    except SnapshotError as exc:
        return ("error", str(exc))
    records = {
        plural: [(record, record.extra) for record in getattr(snapshot, plural)]
        for plural, _, _ in COLLECTIONS
    }
    return (records, snapshot.as_of, snapshot.extra, [str(e) for e in errors])


def _both(tmp_path: Path, text: str, *, skip: bool = False) -> tuple[Any, Any]:
    path = tmp_path / "snapshot.json"
    path.write_text(text, encoding="utf-8")
    from_file = _outcome(lambda: load_snapshot(path, skip_bad_records=skip))
    parsed = _outcome(
        lambda: snapshot_from_dict(json.loads(text), source=str(path), skip_bad_records=skip)
    )
    return from_file, parsed


def test_a_realistic_org_reads_typed_and_loads_as_its_parsed_json(tmp_path: Path) -> None:
    org = generate_org(opportunities=800, seed=11, as_of=dt.date(2026, 11, 24))
    org["x-export"] = {"by": "nightly job"}  # a top-level key of the producer's own
    org["opportunities"][3]["custom_score"] = 2**70  # an extra beyond 64 bits, kept exactly
    text = json.dumps(org)
    for plural, _, cls in COLLECTIONS:  # the typed path is the one taken, not the fallback
        raw = msgspec.json.decode(text, type=dict[str, msgspec.Raw])[plural]
        assert typed_records(cls, raw, _NESTED) is not None, plural
    from_file, parsed = _both(tmp_path, text)
    assert from_file == parsed
    deal = next(
        r for r, _ in from_file[0]["opportunities"] if r.id == org["opportunities"][3]["id"]
    )
    assert deal.extra["custom_score"] == 2**70


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stage_changed_at", "2026-11-24t10:00:00z"),  # msgspec reads it, fromisoformat not
        ("stage_changed_at", "2026-11-24T10:00:00.1234567+00:00"),  # msgspec would round
        ("stage_changed_at", "2026-11-24T10:00:00"),  # no zone
        ("stage_changed_at", "0001-01-01T00:00:00+00:00"),
        ("close_date", "0001-01-01"),
        ("close_date", "9999-12-31"),
        ("close_date", "2026-W48-2"),
        ("close_date", "2026-02-30"),
        ("amount", 10**30),
        ("amount", True),
        ("probability", "40"),
        ("is_closed", None),
        ("team_user_ids", ["u1", 2]),
        ("forecast_category", "Commit"),
        ("partner_consent", {"by": "p1", "at": "2026-11-01T09:00:00+00:00", "reason": "x"}),
        ("partner_consent", {"by": "p1", "at": "2026-11-01T09:00:00+00:00", "ticket": "T-7"}),
    ],
)
def test_a_value_msgspec_reads_otherwise_loads_as_the_fast_path_reads_it(
    tmp_path: Path, field: str, value: Any
) -> None:
    deals = [{"id": "o1", "name": "A"}, {"id": "o2", field: value}, {"id": "o3"}]
    text = json.dumps({"opportunities": deals})
    for skip in (False, True):
        from_file, parsed = _both(tmp_path, text, skip=skip)
        assert from_file == parsed


def test_keys_outside_the_fields_are_kept_in_extra_however_they_are_named(
    tmp_path: Path,
) -> None:
    odd = ["extra", "extra_0", "x`y", "type", "- at `$[0]`", "ünïcode", ""]
    rows = [{"id": "t1", **{key: i for i, key in enumerate(odd)}}, {"id": "t2", "type": "call"}]
    from_file, parsed = _both(tmp_path, json.dumps({"activities": rows}))
    assert from_file == parsed
    first = from_file[0]["activities"][0][0]
    assert first.extra == {key: i for i, key in enumerate(odd)}


def test_more_extra_keys_than_are_learnt_still_load_every_one(tmp_path: Path) -> None:
    extras = {f"custom_{i:02}": i for i in range(MAX_EXTRAS + 3)}
    text = json.dumps({"close_date_changes": [{"opportunity_id": "o1", **extras}]})
    raw = msgspec.json.decode(text, type=dict[str, msgspec.Raw])["close_date_changes"]
    assert typed_records(CloseDateChange, raw, _NESTED) is None  # left to the fast path
    from_file, parsed = _both(tmp_path, text)
    assert from_file == parsed
    assert from_file[0]["close_date_changes"][0][0].extra == extras


def test_a_duplicate_key_in_a_record_keeps_the_last_value_either_way(tmp_path: Path) -> None:
    text = '{"activities": [{"id": "t1", "subject": "a", "subject": "b", "k": 1, "k": 2}]}'
    from_file, parsed = _both(tmp_path, text)
    assert from_file == parsed
    assert from_file[0]["activities"][0][0].subject == "b"


def test_stdin_reads_the_same_records(tmp_path: Path) -> None:
    org = generate_org(opportunities=50, seed=2, as_of=dt.date(2026, 11, 24))
    text = json.dumps(org)
    from_stdin = _outcome(lambda: load_snapshot(io.StringIO(text)))
    assert from_stdin == _outcome(lambda: snapshot_from_dict(json.loads(text), source="<stdin>"))


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "o1",
            "2026-11-24",
            "2026-W48-2",
            "0001-01-01",
            "2026-11-24T10:00:00+00:00",
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:00:00z",
            "2026-11-24 10:00:00+05:30",
            "2026-11-24T10:00:00.1234567+00:00",
            "2026-11-24T10:00:00",
            "open",
            "commit",
            "partner",
        ]
    ),
    st.lists(st.sampled_from(["u1", 1, None]), max_size=3),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from([Opportunity, Activity, CloseDateChange]),
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "opportunity_id",
                    "due_date",
                    "created_at",
                    "changed_at",
                    "old",
                    "close_date",
                    "stage_changed_at",
                    "amount",
                    "status",
                    "partner_notified",
                    "team_user_ids",
                    "custom",
                ]
            ),
            _values,
            max_size=6,
        ),
        max_size=4,
    ),
)
def test_any_collection_loads_from_the_file_as_from_its_parsed_json(
    tmp_path: Path, cls: type[Any], rows: list[dict[str, Any]]
) -> None:
    plural = next(p for p, _, c in COLLECTIONS if c is cls)
    for row in rows:
        row.setdefault("id", "r1")
        row.setdefault("opportunity_id", "o1")
    text = json.dumps({plural: rows})
    for skip in (False, True):
        from_file, parsed = _both(tmp_path, text, skip=skip)
        assert from_file == parsed


def test_a_collection_given_twice_is_read_from_its_last_value_either_way(tmp_path: Path) -> None:
    text = '{"opportunities": [{"id": 1}], "as_of": "2026-11-24", "opportunities": [{"id": "o2"}]}'
    from_file, parsed = _both(tmp_path, text)
    assert from_file == parsed
    assert [deal.id for deal, _ in from_file[0]["opportunities"]] == ["o2"]
