"""check_change: the after-state judged exactly as a sync judges it, and the transition too."""

from __future__ import annotations

import builtins
import io
import os
import socket
from typing import Any

import pytest

import tsos_rules.inline as inline
from inline_support import pipeline, without
from tsos_rules.engine import Engine
from tsos_rules.findings import Finding
from tsos_rules.inline import ChangeChecker, ChangeError, check_change
from tsos_rules.model import COLLECTIONS, Opportunity
from tsos_rules.snapshot.document import snapshot_from_dict
from tsos_rules.testing import (
    AS_OF,
    account,
    activity,
    change,
    channel_account,
    channel_deal,
    closed_deal,
    consent,
    day,
    deal,
    lead,
    snapshot,
    user,
)

PLURAL = {singular: plural for plural, singular, _ in COLLECTIONS}
JUDGED = ("opportunity", "lead", "account", "activity")


def sync_findings(engine: Engine, snap: dict[str, Any], record_type: str, record_id: str):
    snapshot_obj, _ = snapshot_from_dict(snap)
    return [
        f
        for f in engine.evaluate(snapshot_obj)
        if (f.record_type, f.record_id) == (record_type, record_id)
    ]


def keys(findings: Any) -> set[tuple[str, str, str]]:
    return {(f.rule, f.reason, f.severity.value) for f in findings}


# -- sync and in-line agree on the same after-state --------------------------------------------

BUILT = [
    snapshot(
        users=[user("u1", "channel"), user("d1", "direct")],
        accounts=[channel_account("a1"), account("a2", name="Acme")],
        leads=[lead("l1", partner_id="p1", distributed_at="2026-11-02T09:00:00+00:00")],
        opportunities=[
            channel_deal("o1", owner_id="d1", team_user_ids=["d1"]),
            channel_deal("o2", partner_id=None, next_step="TBD"),
            deal("o3", account_id="a2", forecast_category="commit", close_date=day(200)),
            closed_deal("o4", account_id="a1", partner_id="p9"),
            deal("o5", account_id="a2", owner_id="d1", stage="nowhere", probability=5),
        ],
        close_date_changes=[
            change("o3", stage="closing", forecast_category="commit"),
            change("o5", old=day(1), new=day(9)),
            change("o5", old=day(9), new=day(19)),
            change("o5", old=day(19), new=day(29)),
        ],
        activities=[
            activity("t1", what_id="o2", account_id="a1", owner_id="d1", due_date=day(-1)),
            activity("t2", what_id="o1", due_date=day(4)),
        ],
    ),
    snapshot(
        accounts=[channel_account("a1", name="Boeing", partner_of_record_id="p-gone")],
        leads=[
            lead("l1", status="qualified"),
            lead("l2", company="Boeing", owner_id="u2", partner_id="p1"),
        ],
        opportunities=[
            channel_deal("o1", owner_id="d1", partner_consent=consent()),
            deal("o2", lead_id="l2", channel="direct", next_step_date=day(-3)),
        ],
    ),
]


def _cases() -> list[tuple[str, dict[str, Any], str, str]]:
    cases = []
    for name, snap in [("pipeline", pipeline())] + [(f"built{i}", s) for i, s in enumerate(BUILT)]:
        for record_type in JUDGED:
            for record in snap.get(PLURAL[record_type], []):
                cases.append((name, snap, record_type, record["id"]))
    return cases


@pytest.mark.parametrize(
    ("name", "snap", "record_type", "record_id"),
    _cases(),
    ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in _cases()],
)
def test_sync_and_inline_give_identical_findings(
    checker: ChangeChecker, name: str, snap: dict[str, Any], record_type: str, record_id: str
) -> None:
    plural = PLURAL[record_type]
    record = next(r for r in snap[plural] if r["id"] == record_id)
    expected = sync_findings(checker.engine, snap, record_type, record_id)
    context = without(snap, plural, record_id)
    created = checker.check(record_type, None, record, context, include_info=True)
    unchanged = checker.check(record_type, record, record, snap, include_info=True)
    assert list(created.findings) == expected
    assert list(unchanged.findings) == expected
    assert created.allowed == (not any(f.severity.value == "block" for f in expected))


def test_the_example_pipeline_blocks_what_a_sync_blocks(checker: ChangeChecker) -> None:
    snap = pipeline()
    verdicts = {
        o["id"]: checker.check("opportunity", o, o, snap).allowed for o in snap["opportunities"]
    }
    assert verdicts == {"o1": False, "o2": False, "o3": False, "o4": False}


# -- transitions ----------------------------------------------------------------------------


def locked_deal(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "stage": "closing",
        "probability": 80,
        "forecast_category": "commit",
        "close_date": day(20),
    }
    values.update(overrides)
    return deal("o1", **values)


def test_an_unapproved_close_date_move_on_a_locked_deal_is_refused(checker):
    before = locked_deal()
    after = dict(before, close_date=day(30))
    decision = checker.check("opportunity", before, after, snapshot(), as_of=AS_OF)
    assert not decision.allowed
    assert keys(decision.blocking) == {("tsos.close-date-locked", "moved_unapproved", "block")}
    assert day(20) in decision.blocking[0].message
    assert decision.blocking[0].details["restore_to"] == day(20)


def test_the_move_is_judged_exactly_as_a_sync_judges_the_same_recorded_change(checker):
    before = locked_deal()
    after = dict(before, close_date=day(30))
    decision = checker.check("opportunity", before, after, snapshot(), as_of=AS_OF)
    recorded = change(
        "o1",
        old=day(20),
        new=day(30),
        changed_at="2026-11-24T23:00:00+00:00",
        stage="closing",
        forecast_category="commit",
    )
    synced = sync_findings(
        checker.engine,
        snapshot(opportunities=[after], close_date_changes=[recorded]),
        "opportunity",
        "o1",
    )
    assert list(decision.findings) == synced


def test_an_approved_move_passes_and_an_approval_left_from_an_earlier_move_does_not(checker):
    before = locked_deal()
    approved = dict(before, close_date=day(30), close_date_approved_by="u2")
    assert checker.check("opportunity", before, approved, snapshot(), as_of=AS_OF).allowed
    stale_before = dict(before, close_date_approved_by="u2")
    stale = checker.check("opportunity", stale_before, approved, snapshot(), as_of=AS_OF)
    assert keys(stale.blocking) == {("tsos.close-date-locked", "moved_unapproved", "block")}


def test_a_move_is_judged_by_the_deal_as_it_was_before_the_change(checker):
    early = deal("o1", close_date=day(20))  # stage engagement, pipeline: not locked
    moved = dict(early, close_date=day(25))
    assert checker.check("opportunity", early, moved, snapshot(), as_of=AS_OF).allowed
    # Locking the deal and moving its date in one save: the move was made on an unlocked deal.
    locked_and_moved = dict(moved, stage="date_locked")
    assert checker.check("opportunity", early, locked_and_moved, snapshot(), as_of=AS_OF).allowed
    # Moving the date of a locked deal while taking it out of commit is still a locked move.
    before = locked_deal()
    unlocked = dict(before, close_date=day(25), stage="engagement", forecast_category="pipeline")
    unlocked["probability"] = 40
    decision = checker.check("opportunity", before, unlocked, snapshot(), as_of=AS_OF)
    assert ("tsos.close-date-locked", "moved_unapproved", "block") in keys(decision.blocking)


def test_removing_the_partner_from_a_channel_deal_is_refused(checker):
    context = snapshot(accounts=[channel_account("a1")])
    before = channel_deal("o1")
    after = dict(before, partner_id=None)
    decision = checker.check("opportunity", before, after, context)
    assert ("tsos.channel-lead-not-direct", "no_partner", "block") in keys(decision.blocking)


def test_a_direct_owner_needs_the_partners_recorded_consent(checker):
    context = snapshot(accounts=[channel_account("a1")])
    before = channel_deal("o1")
    handed = dict(before, owner_id="d1")
    refused = checker.check("opportunity", before, handed, context)
    assert keys(refused.blocking) == {("tsos.channel-lead-not-direct", "direct_owner", "block")}
    with_consent = dict(handed, partner_consent=consent())
    allowed = checker.check("opportunity", before, with_consent, context, include_info=True)
    assert allowed.allowed
    assert ("tsos.channel-lead-not-direct", "direct_owner_with_consent", "info") in keys(
        allowed.findings
    )
    assert checker.check("opportunity", before, with_consent, context).findings == ()


def test_flipping_a_channel_deal_to_direct_is_refused_even_when_no_marker_is_left(checker):
    before = channel_deal("o1", account_id=None)  # a channel deal only by its own markers
    flipped = dict(before, channel="direct", partner_id=None)
    decision = checker.check("opportunity", before, flipped, snapshot())
    assert keys(decision.blocking) >= {
        ("tsos.channel-lead-not-direct", "no_partner", "block"),
        ("tsos.channel-lead-not-direct", "marked_direct", "block"),
    }
    # Created that way it is a direct deal: nothing to refuse.
    assert checker.check("opportunity", None, flipped, snapshot()).allowed


def test_deleting_a_kept_lead_is_refused_and_other_deletes_pass(checker):
    for outcome in ("future", "no_opportunity"):
        decision = checker.check("lead", lead("l1", outcome=outcome), None, snapshot())
        assert not decision.allowed
        [finding] = decision.findings
        assert (finding.rule, finding.reason, finding.severity.value) == (
            "tsos.lead-outcome-recorded",
            "deleted_kept_lead",
            "block",
        )
        assert finding.record_id == "l1"
    assert checker.check("lead", lead("l1", outcome="current"), None, snapshot()).allowed
    assert checker.check("lead", lead("l1"), None, snapshot()).allowed
    assert checker.check("opportunity", channel_deal("o1"), None, snapshot()).allowed


def test_a_disabled_rule_refuses_nothing_in_line_either():
    config = {"rules": {"disabled": ["tsos.lead-outcome-recorded"]}}
    decision = check_change("lead", lead("l1", outcome="future"), None, config=config)
    assert decision.allowed
    assert decision.findings == ()


def test_pre_existing_history_problems_of_the_deal_count(checker):
    """CONTRACT: refused when the record *after* the change has a block finding."""
    history = change("o1", stage="closing", forecast_category="commit")  # unapproved, locked
    context = snapshot(close_date_changes=[history])
    before = locked_deal()
    fixed_next_step = dict(before, next_step="Sign the order form", next_step_date=day(2))
    decision = checker.check("opportunity", before, fixed_next_step, context)
    assert keys(decision.blocking) == {("tsos.close-date-locked", "moved_unapproved", "block")}


def test_the_change_replaces_the_record_in_its_context(checker):
    stale = deal("o1", next_step="TBD")
    good = deal("o1")
    assert checker.check("opportunity", stale, good, snapshot(opportunities=[stale])).allowed


def test_record_objects_and_a_snapshot_are_accepted_as_well_as_dicts(checker):
    snap, _ = snapshot_from_dict(pipeline())
    o2 = next(o for o in snap.opportunities if o.id == "o2")
    decision = checker.check("opportunity", o2, o2, snap)
    assert isinstance(o2, Opportunity)
    assert ("tsos.next-step-required", "placeholder", "block") in keys(decision.blocking)


def test_as_of_defaults_to_the_contexts_then_to_today(checker):
    past_due = deal("o1", next_step_date="2026-11-20")
    assert checker.check("opportunity", None, past_due, {"as_of": "2026-11-19"}).allowed
    assert not checker.check("opportunity", None, past_due, {"as_of": "2026-11-24"}).allowed
    pinned = checker.check(
        "opportunity", None, past_due, {"as_of": "2026-11-24"}, as_of="2026-11-19"
    )
    assert pinned.allowed and pinned.as_of.isoformat() == "2026-11-19"


def test_decision_to_dict_is_the_contract_shape(checker):
    decision = checker.check("lead", lead("l1", outcome="future"), None)
    out = decision.to_dict()
    assert set(out) == {"allowed", "findings"}
    assert out["allowed"] is False
    assert set(out["findings"][0]) >= {"rule", "severity", "record_type", "record_id", "reason"}


# -- bad input names the field -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("deal", None, {"id": "o1"}), "change.record_type"),
        (("opportunity", None, None), "change.after"),
        (("opportunity", None, {"name": "no id"}), "change.after.id"),
        (
            ("opportunity", None, {"id": "o1", "close_date": "2026-13-01"}),
            "change.after.close_date",
        ),
        (("opportunity", {"id": "o1"}, {"id": "o2"}), "change.after.id"),
        (("opportunity", [1], None), "change.before"),
        (
            ("opportunity", None, {"id": "o1", "stage_changed_at": "0001-01-01T00:00:00+05:00"}),
            "change.after.stage_changed_at",
        ),
        (
            ("opportunity", None, {"id": "o1", "close_date_approved_by": 7}),
            "change.after.close_date_approved_by",
        ),
        (("lead", None, {"id": "l1", "outcome": "maybe"}), "change.after.outcome"),
        (("account", None, {"id": "a1"}, {"accounts": {"a1": {}}}), "context.accounts"),
        (
            ("account", None, {"id": "a1"}, {"users": [{"id": "u1", "role": "boss"}]}),
            "context.users[0].role",
        ),
        (("account", None, {"id": "a1"}, {"as_of": "24/11/2026"}), "context.as_of"),
        (("account", None, {"id": "a1"}, [1, 2]), "context"),
    ],
)
def test_bad_input_raises_an_error_naming_the_field(checker, args, field):
    with pytest.raises(ChangeError) as caught:
        checker.check(*args)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_bad_as_of_names_it(checker):
    for bad in ("2026-W48-2", "tomorrow", "9999-12-31"):
        with pytest.raises(ChangeError) as caught:
            checker.check("account", None, {"id": "a1"}, None, as_of=bad)
        assert caught.value.field == "as_of"


# -- built once, no I/O per call ------------------------------------------------------------


def test_the_engine_is_built_once_and_reused(monkeypatch):
    built = []
    original = Engine.from_config.__func__  # type: ignore[attr-defined]

    def counting(cls, *args, **kwargs):
        built.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Engine, "from_config", classmethod(counting))
    monkeypatch.setattr(inline.Engine, "from_config", classmethod(counting))
    for _ in range(20):
        check_change("opportunity", None, deal("o1"), snapshot())
    assert len(built) == 1


def test_a_call_does_no_io(monkeypatch, checker):
    snap = pipeline()
    o1 = snap["opportunities"][0]
    checker.check("opportunity", o1, dict(o1, close_date=day(40)), snap)  # warm up

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"I/O during a check: {args!r}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr(socket, "socket", refuse)
    decision = checker.check("opportunity", o1, dict(o1, close_date=day(40)), snap)
    assert not decision.allowed


def test_findings_are_findings(checker):
    decision = checker.check("opportunity", None, deal("o1", next_step="tbd"), snapshot())
    assert all(isinstance(f, Finding) for f in decision.findings)
