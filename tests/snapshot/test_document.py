"""The snapshot loader: strict about types, lenient about shape, errors that name the record."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

import tsos_rules
from tsos_rules.errors import InputError
from tsos_rules.snapshot.document import (
    SnapshotError,
    load_snapshot,
    snapshot_from_dict,
    snapshot_to_dict,
)
from tsos_rules.testing import (
    AS_OF,
    activity,
    change,
    channel_account,
    consent,
    deal,
    lead,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("isolated_env")


def error_of(document, source="snapshot.json"):
    with pytest.raises(SnapshotError) as caught:
        snapshot_from_dict(document, source=source)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- reading good documents ----------------------------------------------------------------


def test_a_full_document_loads_into_typed_records():
    snap, errors = snapshot_from_dict(
        snapshot(
            accounts=[channel_account()],
            leads=[lead(distributed_at="2026-11-20T09:00:00+01:00")],
            opportunities=[deal(partner_consent=consent(), team_user_ids=["u2"])],
            close_date_changes=[change()],
            activities=[activity()],
        )
    )
    assert errors == ()
    assert snap.as_of == dt.date(2026, 11, 24)
    (opportunity,) = snap.opportunities
    assert opportunity.close_date == dt.date(2026, 12, 24)
    assert opportunity.probability == 40.0
    assert opportunity.team_user_ids == ("u2",)
    assert opportunity.partner_consent.reason.value == "credit_limit"
    assert snap.leads[0].distributed_at.utcoffset() == dt.timedelta(hours=1)
    assert snap.users[2].role.value == "direct"


def test_only_an_id_is_required():
    snap, _ = snapshot_from_dict({"opportunities": [{"id": "o1"}], "users": [{"id": "u1"}]})
    assert snap.opportunities[0].is_closed is False
    assert snap.opportunities[0].team_user_ids == ()
    assert snap.users[0].role.value == "other"


def test_missing_and_null_collections_are_empty():
    snap, _ = snapshot_from_dict({"leads": None})
    assert snap.leads == () and snap.opportunities == () and snap.as_of is None


def test_unknown_keys_are_kept_in_extra_on_records_and_the_document():
    document = snapshot(
        opportunities=[deal(sfdc_type="Renewal", custom={"a": [1, 2]})],
        crm="salesforce",
    )
    snap, _ = snapshot_from_dict(document)
    assert snap.opportunities[0].extra == {"custom": {"a": [1, 2]}, "sfdc_type": "Renewal"}
    assert snap.extra == {"crm": "salesforce"}


def test_unknown_keys_survive_a_round_trip():
    document = snapshot(
        accounts=[channel_account(region="EMEA")],
        opportunities=[deal(sfdc_type="Renewal", partner_consent=consent())],
        close_date_changes=[change(history_id="h1")],
        crm="salesforce",
    )
    again = snapshot_to_dict(snapshot_from_dict(document)[0])
    assert again["crm"] == "salesforce"
    assert again["accounts"][0]["region"] == "EMEA"
    assert again["opportunities"][0]["sfdc_type"] == "Renewal"
    assert again["close_date_changes"][0]["history_id"] == "h1"
    assert snapshot_from_dict(again)[0] == snapshot_from_dict(document)[0]


def test_unknown_keys_inside_partner_consent_are_kept():
    document = snapshot(opportunities=[deal(partner_consent=consent(ticket="LEGAL-42"))])
    again = snapshot_to_dict(snapshot_from_dict(document)[0])
    assert again["opportunities"][0]["partner_consent"]["ticket"] == "LEGAL-42"


def test_a_whole_number_is_a_fine_probability_and_amount():
    snap, _ = snapshot_from_dict({"opportunities": [{"id": "o1", "probability": 65, "amount": 1}]})
    assert snap.opportunities[0].probability == 65.0


def test_timestamps_may_use_z():
    snap, _ = snapshot_from_dict(
        {"leads": [{"id": "l1", "distributed_at": "2026-11-20T09:00:00Z"}]}
    )
    assert snap.leads[0].distributed_at == dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)


# -- errors name the document, the record and the field, on one line -----------------------


def test_the_contract_example_message():
    document = {
        "opportunities": [deal("o1"), deal("o2"), deal("o3"), deal("o77", close_date=12345)]
    }
    assert error_of(document) == (
        "snapshot.json: opportunities[3] (id o77): close_date: "
        "expected a date YYYY-MM-DD, got 12345"
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"users": [{"id": "u1", "role": "boss"}]},
            "snapshot.json: users[0] (id u1): role: "
            "expected one of direct, channel, partner, other, got 'boss'",
        ),
        (
            {"opportunities": [{"id": "o1", "forecast_category": "Commit"}]},
            "snapshot.json: opportunities[0] (id o1): forecast_category: "
            "expected one of pipeline, best_case, commit, closed, omitted, got 'Commit'",
        ),
        (
            {"opportunities": [{"id": "o1", "channel": "Partner"}]},
            "snapshot.json: opportunities[0] (id o1): channel: "
            "expected one of partner, direct, got 'Partner'",
        ),
        (
            {"partners": [{"id": "p1", "status": "inactive"}]},
            "snapshot.json: partners[0] (id p1): status: "
            "expected one of active, terminated, got 'inactive'",
        ),
        (
            {"leads": [{"id": "l1", "outcome": "maybe"}]},
            "snapshot.json: leads[0] (id l1): outcome: "
            "expected one of current, future, no_opportunity, got 'maybe'",
        ),
        (
            {"opportunities": [{"name": "no id"}]},
            "snapshot.json: opportunities[0]: id: required field is missing",
        ),
        (
            {"opportunities": [{"id": 77}]},
            "snapshot.json: opportunities[0]: id: expected a string, got 77",
        ),
        (
            {"close_date_changes": [{"old": "2026-11-30"}]},
            "snapshot.json: close_date_changes[0]: opportunity_id: required field is missing",
        ),
        (
            {"opportunities": [{"id": "o1", "probability": "80"}]},
            "snapshot.json: opportunities[0] (id o1): probability: expected a number, got '80'",
        ),
        (
            {"opportunities": [{"id": "o1", "probability": True}]},
            "snapshot.json: opportunities[0] (id o1): probability: expected a number, got true",
        ),
        (
            {"opportunities": [{"id": "o1", "is_closed": "false"}]},
            "snapshot.json: opportunities[0] (id o1): is_closed: "
            "expected true or false, got 'false'",
        ),
        (
            {"activities": [{"id": "t1", "partner_notified": 1}]},
            "snapshot.json: activities[0] (id t1): partner_notified: expected true or false, got 1",
        ),
        (
            {"opportunities": [{"id": "o1", "team_user_ids": "u1"}]},
            "snapshot.json: opportunities[0] (id o1): team_user_ids: "
            "expected a list of strings, got 'u1'",
        ),
        (
            {"opportunities": [{"id": "o1", "close_date": "2026-11-31"}]},
            "snapshot.json: opportunities[0] (id o1): close_date: "
            "expected a date YYYY-MM-DD, got '2026-11-31'",
        ),
        (
            {"opportunities": [{"id": "o1", "close_date": "24/11/2026"}]},
            "snapshot.json: opportunities[0] (id o1): close_date: "
            "expected a date YYYY-MM-DD, got '24/11/2026'",
        ),
        (
            {"opportunities": [{"id": "o1", "stage_changed_at": "2026-11-10T12:00:00"}]},
            "snapshot.json: opportunities[0] (id o1): stage_changed_at: "
            "expected an ISO 8601 timestamp with an offset, got '2026-11-10T12:00:00'",
        ),
        (
            {"opportunities": [{"id": "o1", "partner_consent": {"reason": "friendship"}}]},
            "snapshot.json: opportunities[0] (id o1): partner_consent.reason: "
            "expected one of credit_limit, product_management, other, got 'friendship'",
        ),
        (
            {"partners": [{"id": "p1", "fiscal_year_start_month": 1.5}]},
            "snapshot.json: partners[0] (id p1): fiscal_year_start_month: "
            "expected a whole number, got 1.5",
        ),
        (
            {"opportunities": [5]},
            "snapshot.json: opportunities[0]: expected an object, got 5",
        ),
        (
            {"opportunities": {"id": "o1"}},
            'snapshot.json: opportunities: expected a list, got {"id": "o1"}',
        ),
        ({"leads": "l1"}, "snapshot.json: leads: expected a list, got 'l1'"),
        ([], "snapshot.json: expected a JSON object at the top level, got []"),
        (
            {"as_of": "2026-02-30"},
            "snapshot.json: as_of: expected a date YYYY-MM-DD, got '2026-02-30'",
        ),
    ],
    ids=[
        "bad-role",
        "bad-forecast",
        "bad-channel",
        "bad-partner-status",
        "bad-outcome",
        "missing-id",
        "numeric-id",
        "change-without-deal",
        "probability-string",
        "probability-bool",
        "bool-string",
        "bool-number",
        "ids-not-a-list",
        "impossible-date",
        "foreign-date-format",
        "timestamp-without-offset",
        "bad-nested-enum",
        "fractional-month",
        "record-not-an-object",
        "collection-an-object",
        "collection-a-string",
        "top-level-array",
        "bad-as-of",
    ],
)
def test_bad_input_errors_name_document_record_and_field(document, expected):
    assert error_of(document) == expected


def test_the_first_bad_record_is_reported_by_its_position():
    document = {"users": [{"id": "u1"}, {"id": "u2", "role": "Boss"}, {"id": "u3", "role": "x"}]}
    assert error_of(document).startswith("snapshot.json: users[1] (id u2): role:")


def test_a_long_bad_value_is_shortened():
    message = error_of({"opportunities": [{"id": "o1", "close_date": "x" * 500}]})
    assert len(message) < 200 and message.endswith("...")


def test_errors_are_input_errors():
    with pytest.raises(InputError):
        snapshot_from_dict({"users": [{"id": "u1", "role": "boss"}]})
    with pytest.raises(InputError):
        tsos_rules.check({"opportunities": [{"id": "o1", "close_date": 12345}]})


def test_bad_records_can_be_skipped_and_reported():
    document = {
        "opportunities": [
            {"id": "o1"},
            {"id": "o2", "forecast_category": "Commit"},
            {"id": "o3"},
            {"name": "anonymous"},
        ]
    }
    snap, errors = snapshot_from_dict(document, source="crm", skip_bad_records=True)
    assert [o.id for o in snap.opportunities] == ["o1", "o3"]
    assert [(e.collection, e.index, e.record_id, e.field) for e in errors] == [
        ("opportunities", 1, "o2", "forecast_category"),
        ("opportunities", 3, None, "id"),
    ]
    assert errors[0].record_type == "opportunity"


def test_a_week_date_is_not_a_yyyy_mm_dd_date():
    message = error_of({"opportunities": [{"id": "o1", "close_date": "2026-W48-2"}]})
    assert message.endswith("close_date: expected a date YYYY-MM-DD, got '2026-W48-2'")


@pytest.mark.parametrize("value", ["no", "", []])
def test_a_consent_that_is_not_an_object_is_an_input_error(value):
    message = error_of({"opportunities": [{"id": "o1", "partner_consent": value}]})
    assert message.startswith("snapshot.json: opportunities[0] (id o1): partner_consent: ")


def test_a_consent_of_no_does_not_downgrade_the_block():
    snap = snapshot(
        opportunities=[deal(account_id="a1", partner_id="p1", owner_id="d1", partner_consent="no")],
        accounts=[channel_account()],
    )
    try:
        result = tsos_rules.check(snap)
    except InputError:
        return  # refusing the document is a fine answer too
    assert [(f.reason, f.severity.value) for f in result] == [("direct_owner", "block")]


# -- reading files and streams -------------------------------------------------------------


def test_load_from_a_path(tmp_path):
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snapshot(opportunities=[deal()])), encoding="utf-8")
    snap, errors = load_snapshot(path)
    assert errors == () and snap.opportunities[0].id == "o1" and str(snap.as_of) == AS_OF


def test_load_from_a_stream_names_the_stream():
    stream = io.StringIO('{"users": [{"id": "u1", "role": "boss"}]}')
    stream.name = "<stdin>"
    with pytest.raises(SnapshotError, match=r"^<stdin>: users\[0\] \(id u1\): role: "):
        load_snapshot(stream)


def test_malformed_json_names_the_file_and_the_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"users": [\n  {"id": "u1"},\n]}', encoding="utf-8")
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path)
    assert str(caught.value).startswith(f"{path}: not valid JSON: ")
    assert "line 2 column 15" in str(caught.value)  # the trailing comma


def test_a_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(SnapshotError, match=r"nope\.json: cannot read: No such file or directory"):
        load_snapshot(path)


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"accounts": [{"id": "a1", "name": "Société"}]}'.encode("latin-1"))
    with pytest.raises(SnapshotError, match=r"latin1\.json: not UTF-8 text"):
        load_snapshot(path)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_tokens_are_refused(tmp_path, token):
    path = tmp_path / "snap.json"
    path.write_text(f'{{"opportunities": [{{"id": "o1", "probability": {token}}}]}}')
    with pytest.raises(SnapshotError, match=r"snap\.json"):
        load_snapshot(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stage_changed_at", "0001-01-01T00:00:00+05:00"),
        ("stage_changed_at", "9999-12-31T23:00:00-05:00"),
        ("close_date", "9999-12-31"),
        ("close_date", "0001-01-01"),
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_input_errors(field: str, value: str) -> None:
    with pytest.raises(SnapshotError, match=f"opportunities\\[0\\] \\(id o1\\): {field}: expected"):
        snapshot_from_dict({"opportunities": [{"id": "o1", field: value}]}, source="s.json")


def test_an_as_of_at_the_end_of_the_calendar_is_an_input_error() -> None:
    with pytest.raises(SnapshotError, match="as_of: expected a year"):
        snapshot_from_dict({"as_of": "9999-12-31"}, source="s.json")


# -- hostile files (issue 14, item 5) ------------------------------------------------------


def test_a_value_nested_a_thousand_levels_deep_is_an_input_error_naming_the_field(tmp_path):
    deep = "[" * 1000 + "]" * 1000
    path = tmp_path / "deep.json"
    path.write_text(f'{{"opportunities": [{{"id": "o1", "name": {deep}}}]}}')
    with pytest.raises(SnapshotError, match=r"opportunities\[0\] \(id o1\): name: expected a"):
        load_snapshot(path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"opportunities": [{"id": "o1"}]}')
    loaded, _ = load_snapshot(path)
    assert [o.id for o in loaded.opportunities] == ["o1"]
    stream = io.StringIO('\ufeff{"opportunities": [{"id": "o2"}]}')
    assert [o.id for o in load_snapshot(stream)[0].opportunities] == ["o2"]


def test_a_device_is_refused_at_once_instead_of_read_forever():
    with pytest.raises(SnapshotError, match="/dev/zero: not a regular file"):
        load_snapshot("/dev/zero")


def test_a_document_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    path.write_text('{"opportunities": [{"id": "o1"}]}')
    with pytest.raises(SnapshotError, match="larger than the 10-byte limit"):
        load_snapshot(path, max_bytes=10)
    monkeypatch.setenv("TSOS_RULES_MAX_SNAPSHOT_BYTES", "12")
    with pytest.raises(SnapshotError, match="TSOS_RULES_MAX_SNAPSHOT_BYTES"):
        load_snapshot(path)
    monkeypatch.setenv("TSOS_RULES_MAX_SNAPSHOT_BYTES", "lots")
    with pytest.raises(InputError, match="expected a positive number of bytes"):
        load_snapshot(path)


def test_a_duplicate_id_names_the_id_and_both_positions():
    document = {"users": [{"id": "u1", "role": "direct"}, {"id": "u2"}, {"id": "u1"}]}
    with pytest.raises(
        SnapshotError, match=r"users\[2\] \(id u1\): id: duplicate id: also at users\[0\]"
    ):
        snapshot_from_dict(document)


def test_a_duplicate_user_can_no_longer_hide_a_block_finding():
    """Before, the second user silently replaced the first ("last one wins")."""
    document = {
        "as_of": "2026-11-24",
        "users": [{"id": "u1", "role": "direct"}, {"id": "u1", "role": "channel"}],
    }
    with pytest.raises(InputError, match="duplicate id"):
        tsos_rules.check(document)


def test_skipping_bad_records_keeps_the_first_of_a_duplicate_and_reports_the_rest():
    document = {
        "opportunities": [{"id": "o1"}, {"id": 5}, {"id": "o1", "name": "again"}, {"id": "o2"}]
    }
    loaded, errors = snapshot_from_dict(document, skip_bad_records=True)
    assert [o.id for o in loaded.opportunities] == ["o1", "o2"]
    assert [(e.index, e.field) for e in errors] == [(1, "id"), (2, "id")]
    assert "also at opportunities[0]" in errors[1].problem


def test_load_snapshot_hands_the_parsed_document_to_keep(tmp_path: Path) -> None:
    """``check`` keeps the parsed document until it exits instead of paying to free it."""
    path = tmp_path / "snap.json"
    path.write_text('{"as_of": "2026-11-24", "opportunities": [{"id": "o1"}]}', encoding="utf-8")
    kept: list[Any] = []
    snapshot, _ = load_snapshot(path, keep=kept)
    assert [o.id for o in snapshot.opportunities] == ["o1"]
    # what was decoded: the deals (read typed, as structs) and the other top-level values
    assert [getattr(row, "id", None) for row in kept[0]] == ["o1"]
    assert kept[1] == {"as_of": "2026-11-24"}


# -- how a file is read (mapped when regular, read whole when a pipe) ----------------------


def test_an_empty_file_is_refused_as_an_empty_document(tmp_path):
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(SnapshotError, match=r"empty\.json: not valid JSON: .*empty document"):
        load_snapshot(path)


def test_a_byte_order_mark_then_bad_json_reports_the_position_after_the_mark(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"users": [1,]}')
    with pytest.raises(SnapshotError, match=r"bom\.json: not valid JSON: .* line 1 column 13$"):
        load_snapshot(path)


def test_a_named_pipe_is_read_like_a_file(tmp_path):
    import os
    import threading

    path = tmp_path / "pipe.json"
    os.mkfifo(path)

    def write() -> None:
        with open(path, "wb") as pipe:
            pipe.write(b'{"opportunities": [{"id": "o1"}]}')

    writer = threading.Thread(target=write)
    writer.start()
    loaded, _ = load_snapshot(path)
    writer.join()
    assert [o.id for o in loaded.opportunities] == ["o1"]


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"opportunities": []}')
    with pytest.raises(SnapshotError, match="larger than the 20-byte limit"):
        load_snapshot(path, max_bytes=20)
    assert load_snapshot(path, max_bytes=21)[0].opportunities == ()


# -- integers beyond 64 bits (read exactly since msgspec parses snapshot files) ------------

BIG = 123456789012345678901234567890


def test_an_integer_beyond_64_bits_is_read_exactly_and_kept_in_extra(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(f'{{"opportunities": [{{"id": "o1", "amount": {BIG}, "erp_ref": {BIG}}}]}}')
    loaded, _ = load_snapshot(path)
    deal_read = loaded.opportunities[0]
    assert deal_read.amount == 1.2345678901234568e29  # a number field: the nearest float
    assert deal_read.extra == {"erp_ref": BIG}  # an unknown field: the integer as written
    assert type(deal_read.extra["erp_ref"]) is int


def test_an_integer_too_large_for_a_number_field_names_the_field(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text('{"opportunities": [{"id": "o1", "amount": 1' + "0" * 400 + "}]}")
    with pytest.raises(
        SnapshotError, match=r"opportunities\[0\] \(id o1\): amount: expected a number, got 1000"
    ):
        load_snapshot(path)


def test_a_snapshot_with_a_big_integer_splits_and_reads_back_the_same(tmp_path):
    from tsos_rules.engine.sharding import split_snapshot
    from tsos_rules.snapshot.sharded import load_sharded

    path = tmp_path / "big.json"
    deals = f'[{{"id": "o1", "erp_ref": {BIG}}}, {{"id": "o2"}}]'
    path.write_text(f'{{"as_of": "{AS_OF}", "opportunities": {deals}}}')
    whole, _ = load_snapshot(path)
    split_snapshot(whole, 2, tmp_path / "shards")
    assert load_sharded(tmp_path / "shards") == whole


def test_a_text_stream_with_a_lone_surrogate_is_not_utf8_text():
    stream = io.StringIO('{"accounts": [{"id": "a1", "name": "x\ud800"}]}')
    stream.name = "<stream>"
    with pytest.raises(SnapshotError, match=r"^<stream>: not UTF-8 text$"):
        load_snapshot(stream)


def test_a_file_that_cannot_be_mapped_is_read_instead(tmp_path, monkeypatch):
    import mmap

    class Unmappable(mmap.mmap):
        def __new__(cls, *_args: Any, **_kwargs: Any) -> Unmappable:
            raise OSError(19, "No such device")

    monkeypatch.setattr(mmap, "mmap", Unmappable)
    path = tmp_path / "snap.json"
    path.write_text('{"opportunities": [{"id": "o1"}]}')
    assert [o.id for o in load_snapshot(path)[0].opportunities] == ["o1"]
