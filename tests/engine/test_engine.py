"""The engine and ``tsos_rules.check``: selection, parameters, org settings, findings' shape."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

import tsos_rules
from tsos_rules import ConfigError, Engine, OrgProfile
from tsos_rules.packs.tsos import TSOS_PACK
from tsos_rules.plugins import collect_packs, get_plugin_manager
from tsos_rules.snapshot.document import snapshot_from_dict
from tsos_rules.testing import (
    AS_OF,
    account,
    activity,
    at,
    change,
    channel_account,
    channel_deal,
    closed_deal,
    day,
    deal,
    lead,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("isolated_env")

TSOS_RULES = {
    "tsos.channel-lead-not-direct",
    "tsos.direct-rep-on-channel-deal",
    "tsos.partner-of-record-required",
    "tsos.partner-of-record-drift",
    "tsos.next-step-required",
    "tsos.close-date-locked",
    "tsos.close-date-slipping",
    "tsos.commit-integrity",
    "tsos.stage-probability-consistent",
    "tsos.lead-outcome-recorded",
    "tsos.partner-lead-followup",
    "tsos.lead-single-owner",
    "tsos.partner-told-of-direct-contact",
}


def model(document):
    return snapshot_from_dict(document)[0]


def findings(snap, **kwargs):
    """The public API, exactly as a user calls it."""
    return list(tsos_rules.check(snap, **kwargs))


def keys(result):
    return [(f.record_type, f.record_id, f.rule, f.reason) for f in result]


# -- the builders' defaults are clean ------------------------------------------------------


def test_a_snapshot_of_default_records_of_every_kind_has_no_finding():
    snap = snapshot(
        accounts=[account("a1"), channel_account("a2", name="Initech")],
        leads=[lead("l1"), lead("l2")],
        opportunities=[
            deal("o1"),
            deal("o2"),
            closed_deal("o3"),
            closed_deal("o4", won=False),
            channel_deal("o5", account_id="a2"),
        ],
        close_date_changes=[change("o1", stage="engagement")],
        activities=[activity("t1", what_id="o1")],
    )
    assert findings(snap, include_info=True) == []


def test_the_built_in_pack_carries_every_doctrine_rule_with_its_severity():
    severities = {spec.id: spec.severity.value for spec in TSOS_PACK.specs}
    assert set(severities) == TSOS_RULES
    blocks = {rule for rule, severity in severities.items() if severity == "block"}
    assert blocks == {
        "tsos.channel-lead-not-direct",
        "tsos.partner-of-record-required",
        "tsos.next-step-required",
        "tsos.close-date-locked",
        "tsos.commit-integrity",
    }


def test_the_tsos_pack_is_loaded_through_the_plugin_manager():
    packs = collect_packs(get_plugin_manager())
    assert "tsos" in [pack.name for pack in packs]


# -- findings: shape, order, one per (rule, record, reason) --------------------------------


def messy():
    return snapshot(
        accounts=[account("a1", partner_of_record_id="p404")],
        leads=[lead("l2", status="qualified"), lead("l1", status="closed")],
        opportunities=[
            deal("o2", next_step="TBD", probability=90),
            deal("o10", close_date=None),
            deal("o1", account_id="a1", partner_id=None, stage="mystery"),
        ],
        activities=[activity("t1", account_id="a1", owner_id="d1")],
    )


def test_findings_are_ordered_by_record_type_record_id_and_rule():
    result = keys(tsos_rules.check(messy()))
    assert result == sorted(result)
    assert [t for t, *_ in result] == sorted(t for t, *_ in result)
    assert {t for t, *_ in result} == {"account", "activity", "lead", "opportunity"}
    # Record ids are compared as strings: o1 < o10 < o2.
    opportunity_ids = [i for t, i, *_ in result if t == "opportunity"]
    assert opportunity_ids == sorted(opportunity_ids)
    assert opportunity_ids.index("o10") < opportunity_ids.index("o2")


def test_findings_json_has_the_contract_shape():
    result = tsos_rules.check(messy()).to_dict()
    assert set(result) == {"findings", "summary"}
    for item in result["findings"]:
        assert {
            "rule",
            "severity",
            "record_type",
            "record_id",
            "reason",
            "message",
            "doctrine",
        } <= set(item)
        assert item["severity"] in {"block", "warn", "info"}
        assert item["message"] and item["doctrine"]
    summary = result["summary"]
    assert summary["findings"] == len(result["findings"])
    assert summary["by_severity"] == {
        severity: sum(1 for f in result["findings"] if f["severity"] == severity)
        for severity in ("block", "warn", "info")
    }
    users, partners, accounts, leads, deals, activities = 3, 1, 1, 2, 3, 1
    assert summary["records"] == users + partners + accounts + leads + deals + activities


def test_the_contract_example_finding():
    snap = snapshot(opportunities=[deal(next_step="Legal review", next_step_date="2026-11-20")])
    (item,) = tsos_rules.check(snap).to_dict()["findings"]
    assert item == {
        "rule": "tsos.next-step-required",
        "severity": "block",
        "record_type": "opportunity",
        "record_id": "o1",
        "reason": "past_due",
        "message": "Next step date 2026-11-20 is past; agree a new next step with the buyer.",
        "doctrine": "Most important: propose and seek commitment to a next step.",
    }


def test_one_finding_per_rule_record_and_reason_even_for_a_duplicated_record():
    """A document with a repeated id is refused at load; a Snapshot built in Python can still
    hold one record twice, and the engine still reports each finding once."""
    first, _ = snapshot_from_dict(snapshot(opportunities=[deal("o1", next_step="TBD")]))
    second, _ = snapshot_from_dict(snapshot(opportunities=[deal("o1", next_step="?")]))
    snap = attrs.evolve(first, opportunities=first.opportunities + second.opportunities)
    result = [k for k in keys(tsos_rules.check(snap)) if k[2] == "tsos.next-step-required"]
    assert result == [("opportunity", "o1", "tsos.next-step-required", "placeholder")]


def test_several_reasons_of_one_rule_on_one_record_are_separate_findings():
    snap = snapshot(
        opportunities=[deal(close_date=day(-1), stage="engagement")],
        close_date_changes=[change(forecast_category="commit"), change(forecast_category="commit")],
    )
    result = [k for k in keys(tsos_rules.check(snap)) if k[2] == "tsos.close-date-locked"]
    assert [k[3] for k in result] == ["in_past", "moved_unapproved"]


@pytest.mark.parametrize(
    "config", [None, {"packs": {"tsos": {"slip_count": 1}}, "org": {"lock_stage": "closing"}}]
)
@pytest.mark.parametrize("include_info", [False, True])
def test_the_suites_cached_engine_answers_exactly_as_check_does(config, include_info, evaluate):
    snap = messy()
    snap["close_date_changes"] = [change("o2", stage="trial_close")]
    public = tsos_rules.check(snap, config=config, include_info=include_info, as_of=day(1))
    cached = evaluate(snap, config=config, include_info=include_info, as_of=day(1))
    assert public.to_dict() == cached.to_dict()
    assert len(public) > 5


def test_blocking_is_true_exactly_when_a_block_finding_exists():
    assert tsos_rules.check(snapshot(opportunities=[deal(next_step=None)])).blocking
    warn_only = tsos_rules.check(snapshot(leads=[lead(status="qualified")]))
    assert len(warn_only) == 1 and not warn_only.blocking


# -- the evaluation date -------------------------------------------------------------------


def test_as_of_comes_from_the_argument_then_the_snapshot():
    snap = snapshot(as_of="2026-11-24", opportunities=[deal(next_step_date="2026-11-25")])
    assert findings(snap) == []
    assert [f.reason for f in findings(snap, as_of="2026-11-26")] == ["past_due"]
    assert [f.reason for f in findings(snap, as_of=dt.date(2026, 11, 26))] == ["past_due"]


def test_without_any_as_of_today_is_used():
    today = dt.date.today()
    soon = (today + dt.timedelta(days=3)).isoformat()
    gone = (today - dt.timedelta(days=3)).isoformat()
    snap = snapshot(
        as_of=None,
        opportunities=[
            deal("o1", next_step_date=soon, close_date=soon),
            deal("o2", next_step_date=gone, close_date=soon),
        ],
    )
    assert [(f.record_id, f.reason) for f in findings(snap)] == [("o2", "past_due")]


# -- configuration through check(config=...) -----------------------------------------------


def test_pack_parameters_and_org_settings_through_a_config_dict():
    snap = snapshot(
        opportunities=[deal(stage="trial_close", probability=65)],
        close_date_changes=[
            change(old=day(10), new=day(20), stage="trial_close", changed_at=at(-9)),
            change(old=day(20), new=day(30), stage="trial_close", changed_at=at(-2)),
        ],
    )
    default = {(f.rule, f.reason) for f in findings(snap)}
    assert default == {("tsos.close-date-locked", "moved_unapproved")}
    config = {"packs": {"tsos": {"slip_count": 2}}, "org": {"lock_stage": "closing"}}
    tuned = {(f.rule, f.reason) for f in findings(snap, config=config)}
    assert tuned == {("tsos.close-date-slipping", "pushed_repeatedly")}


def test_config_from_a_toml_file(tmp_path):
    path = tmp_path / "tsos.toml"
    path.write_text('[packs.tsos]\nslip_count = 1\n\n[org]\nlock_stage = "commitment"\n')
    snap = snapshot(
        opportunities=[deal(stage="closing", probability=80)],
        close_date_changes=[change(stage="closing")],
    )
    assert {(f.rule, f.reason) for f in findings(snap, config=path)} == {
        ("tsos.close-date-slipping", "pushed_repeatedly")
    }


def test_rules_can_be_selected_and_disabled_in_config():
    snap = snapshot(opportunities=[deal(next_step=None, close_date=None)])
    selected = findings(snap, config={"rules": {"select": ["tsos.close-*"]}})
    assert {f.rule for f in selected} == {"tsos.close-date-locked"}
    disabled = findings(snap, config={"rules": {"disabled": ["tsos.next-step-required"]}})
    assert {f.rule for f in disabled} == {"tsos.close-date-locked"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"packs": {"tsos": {"slip_cnt": 2}}}, "packs.tsos: unknown parameter 'slip_cnt'"),
        ({"packs": {"tsos": {"slip_count": "2"}}}, "packs.tsos.slip_count: expected int, got '2'"),
        ({"packs": {"tsos": {"slip_count": True}}}, "packs.tsos.slip_count: expected int"),
        ({"packs": {"nope": {}}}, "packs.nope: no such pack is loaded"),
        ({"org": {"lock_stage": "signed"}}, "org.lock_stage: 'signed' is not in org.stage_ladder"),
        ({"orgs": {}}, "orgs: unknown section"),
        (
            {"rules": {"disabled": ["tsos.no-such-rule"]}},
            "'tsos.no-such-rule' is not a loaded rule",
        ),
        ({"rules": {"select": ["nothing.*"]}}, "matches no loaded rule"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_setting(config, message):
    with pytest.raises(ConfigError) as caught:
        tsos_rules.check(snapshot(opportunities=[deal()]), config=config)
    assert message in str(caught.value)


def test_an_unknown_parameter_error_lists_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        tsos_rules.check(snapshot(), config={"packs": {"tsos": {"tolerance": 5}}})
    assert "probability_tolerance" in str(caught.value) and "slip_count" in str(caught.value)


# -- the Engine class ----------------------------------------------------------------------


def test_engine_with_parameters_and_org():
    snap = model(
        snapshot(
            opportunities=[deal(stage="closing", probability=65, forecast_category="commit")],
        )
    )
    strict = Engine([TSOS_PACK])
    loose = Engine(
        [TSOS_PACK],
        parameters={"tsos": {"probability_tolerance": 20, "commit_min_probability": 60}},
        org=OrgProfile(fiscal_year_start_month=2),
    )
    try:
        assert {(f.rule, f.reason) for f in strict.evaluate(snap)} == {
            ("tsos.stage-probability-consistent", "probability_mismatch")
        }
        assert list(loose.evaluate(snap)) == []
        assert loose.parameters["tsos"]["slip_count"] == 3
        assert loose.parameters["tsos"]["probability_tolerance"] == 20
    finally:
        strict.close()
        loose.close()


def test_two_engines_in_one_process_keep_their_own_settings():
    snap = model(snapshot(opportunities=[deal()], close_date_changes=[change(), change()]))
    slip_two = Engine([TSOS_PACK], parameters={"tsos": {"slip_count": 2}})
    default = Engine([TSOS_PACK])
    assert [f.rule for f in slip_two.evaluate(snap)] == ["tsos.close-date-slipping"]
    assert list(default.evaluate(snap)) == []
    assert [f.rule for f in slip_two.evaluate(snap)] == ["tsos.close-date-slipping"]


def test_engine_unknown_parameter_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unknown parameter 'slip'"):
        Engine([TSOS_PACK], parameters={"tsos": {"slip": 1}})


def test_engine_rule_globs():
    engine = Engine([TSOS_PACK], rules=["tsos.close-*", "tsos.commit-integrity"])
    assert set(engine.specs) == {
        "tsos.close-date-locked",
        "tsos.close-date-slipping",
        "tsos.commit-integrity",
    }
    snap = model(snapshot(opportunities=[deal(next_step=None, close_date=None)]))
    assert [(f.rule, f.reason) for f in engine.evaluate(snap)] == [
        ("tsos.close-date-locked", "missing")
    ]


def test_engine_rule_globs_that_match_nothing():
    with pytest.raises(ConfigError, match="matches no loaded rule"):
        Engine([TSOS_PACK], rules=["tsos.next_step*"])


def test_engine_disabled_rules():
    engine = Engine([TSOS_PACK], disabled_rules=["tsos.next-step-required"])
    snap = model(snapshot(opportunities=[deal(next_step=None)]))
    assert list(engine.evaluate(snap)) == []


def test_engine_evaluates_the_snapshot_as_of_its_date_or_the_given_one():
    engine = Engine([TSOS_PACK])
    snap = model(snapshot(opportunities=[deal(next_step_date=AS_OF)]))
    assert list(engine.evaluate(snap)) == []
    later = engine.evaluate(snap, dt.date(2026, 11, 25))
    assert [f.reason for f in later] == ["past_due"]


def test_engine_evaluate_facts_judges_one_record():
    engine = Engine([TSOS_PACK])
    snap = model(snapshot(opportunities=[deal("o1"), deal("o2", next_step="TBD")]))
    index = engine.index(snap)
    o2 = index.opportunity(snap.opportunities[1])
    assert [(f.record_id, f.reason) for f in engine.evaluate_facts(o2)] == [("o2", "placeholder")]
