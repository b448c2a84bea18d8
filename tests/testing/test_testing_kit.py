"""The public testing kit: builders, runners, the pytest fixtures and the fake CRM."""

from __future__ import annotations

import datetime as dt
import json
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tsos_rules.testing as kit
from tsos_rules import (
    ConfigError,
    Engine,
    Parameter,
    PythonRule,
    RetriableConnectorError,
    RulePack,
    RuleSpec,
    Severity,
    Violation,
    hookimpl,
)
from tsos_rules.connectors.base import Action, ActionKind, ActionStatus
from tsos_rules.facts import OpportunityFacts
from tsos_rules.testing import (
    FakeConnector,
    FakeCRM,
    account,
    activity,
    at,
    change,
    channel_account,
    channel_deal,
    closed_deal,
    consent,
    day,
    deal,
    evaluate,
    facts_for,
    fake_connector_plugin,
    found,
    installed_connectors,
    installed_packs,
    lead,
    only,
    reasons,
    run_markdown_example,
    snapshot,
    to_snapshot,
)
from tsos_rules.testing.pytest_plugin import PluginRegistrar

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")


def big_deal(facts: OpportunityFacts, params: dict[str, Any]) -> Iterator[Violation]:
    if (facts.opportunity.amount or 0) > params["limit"]:
        yield Violation("too_big", f"{facts.record_id} is big", details={"limit": params["limit"]})


PACK = RulePack(
    name="kit-demo",
    version="1.0",
    description="A pack for the kit's own tests.",
    parameters=(Parameter("limit", 100_000, "Largest deal."),),
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id="kit-demo.big-deal",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="Big deal",
                doctrine="Big deals need a second look.",
                parameters=("limit",),
            ),
            checks={"opportunity": big_deal},  # type: ignore[dict-item]
        ),
    ),
)


class DemoPlugin:
    @hookimpl
    def tsos_rules_register_packs(self, register: Callable[[RulePack], None]) -> None:
        register(PACK)


# -- builders -------------------------------------------------------------------------------


def test_builder_defaults_make_no_finding_with_the_doctrine() -> None:
    snap = snapshot(
        accounts=[channel_account("a1"), account("a2", name="Airbus")],
        leads=[lead("l1")],
        opportunities=[deal("o1"), channel_deal("o2"), closed_deal("o3")],
        close_date_changes=[change("o1", approved_by="u2")],
        activities=[activity("t1", partner_notified=True)],
    )
    assert list(evaluate(None, snap)) == []


def test_builders_are_plain_dicts_with_extras_kept_for_rules() -> None:
    doc = channel_deal("o9", amount=5, discount_percent=12, partner_consent=consent())
    assert doc["id"] == "o9" and doc["partner_id"] == "p1" and doc["discount_percent"] == 12
    record = to_snapshot(snapshot(opportunities=[doc])).opportunities[0]
    assert record.extra == {"discount_percent": 12}
    assert day(1) == "2026-11-25" and at(-1, hour=9) == "2026-11-23T09:00:00+00:00"


def test_facts_for_gives_what_a_rule_receives() -> None:
    snap = snapshot(accounts=[channel_account()], opportunities=[channel_deal(stage="closing")])
    facts = facts_for(snap, "o1")
    assert isinstance(facts, OpportunityFacts)
    assert facts.is_channel_deal and facts.stage_index == 8 and facts.partner is not None
    assert facts_for(snap, "a1", "account").record_id == "a1"
    with pytest.raises(KeyError, match="no opportunity 'o404'"):
        facts_for(snap, "o404")


# -- runners --------------------------------------------------------------------------------


def test_evaluate_runs_only_the_given_packs_with_parameters() -> None:
    snap = snapshot(opportunities=[deal("o1", amount=150_000), deal("o2", next_step="tbd")])
    findings = evaluate(PACK, snap)
    assert found(findings, "kit-demo.big-deal") == {("o1", "too_big", "warn")}
    assert {f.rule for f in findings} == {"kit-demo.big-deal"}  # no tsos findings
    assert reasons(findings, "kit-demo.big-deal") == {"too_big"}
    assert only(findings, "kit-demo.big-deal").details == {"limit": 100_000}
    relaxed = evaluate([PACK], snap, parameters={"kit-demo": {"limit": 200_000}})
    assert list(relaxed) == []
    with pytest.raises(ConfigError, match=r"kit-demo.*unknown parameter 'limt'"):
        evaluate(PACK, snap, parameters={"kit-demo": {"limt": 1}})


def test_evaluate_with_installed_packs_reads_the_config() -> None:
    snap = snapshot(opportunities=[deal(next_step="tbd")])
    assert "tsos.next-step-required" in {f.rule for f in evaluate(None, snap)}
    quiet = evaluate(None, snap, config={"rules": {"disabled": ["tsos.next-step-required"]}})
    assert "tsos.next-step-required" not in {f.rule for f in quiet}


def test_only_explains_what_it_found() -> None:
    findings = evaluate(PACK, snapshot(opportunities=[deal("o1"), deal("o2")]))
    with pytest.raises(AssertionError, match=r"\[\]"):
        only(findings, "kit-demo.big-deal")


def test_the_contract_is_imported_lazily() -> None:
    assert kit.ConnectorContract.__name__ == "ConnectorContract"
    with pytest.raises(AttributeError):
        kit.NoSuchThing  # noqa: B018


# -- fixtures -------------------------------------------------------------------------------


def test_tsos_plugin_registers_for_one_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        registrar = PluginRegistrar(patch)
        assert registrar(DemoPlugin(), name="kit-demo") == "kit-demo"
        assert "kit-demo" in [pack.name for pack in installed_packs()]
        assert registrar.names == ["kit-demo"]
        with pytest.raises(ValueError, match="already registered"):
            registrar(DemoPlugin(), name="kit-demo")
    assert "kit-demo" not in [pack.name for pack in installed_packs()]


def test_tsos_plugin_goes_through_discovery_and_disabling(
    tsos_plugin: PluginRegistrar, tsos_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", "kit-demo,other")
    tsos_plugin(DemoPlugin(), name="kit-demo")  # an explicit registration re-enables it
    assert "kit-demo.big-deal" in tsos_cli("rules").out
    assert "kit-demo  " in tsos_cli("plugins").out
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", "kit-demo")
    assert "kit-demo.big-deal" not in tsos_cli("rules").out


def test_tsos_plugin_takes_a_module_path(
    tsos_plugin: PluginRegistrar, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("kit_demo_plugin_module")
    module.tsos_rules_register_packs = DemoPlugin().tsos_rules_register_packs  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kit_demo_plugin_module", module)
    assert tsos_plugin("kit_demo_plugin_module") == "kit_demo_plugin_module"
    assert "kit-demo" in [pack.name for pack in installed_packs()]


def test_tsos_check_and_tsos_engine(
    tsos_plugin: PluginRegistrar, tsos_check: Any, tsos_engine: Any
) -> None:
    snap = snapshot(opportunities=[deal(amount=500_000)])
    assert found(tsos_check(snap, [PACK]), "kit-demo.big-deal") == {("o1", "too_big", "warn")}
    assert not found(tsos_check(snap), "kit-demo.big-deal")  # not installed
    tsos_plugin(DemoPlugin(), name="kit-demo")
    assert found(tsos_check(snap), "kit-demo.big-deal")
    engine = tsos_engine(parameters={"kit-demo": {"limit": 10**6}})
    assert isinstance(engine, Engine) and "kit-demo.big-deal" in engine.specs
    assert not engine.evaluate(to_snapshot(snap)).for_rule("kit-demo.big-deal")
    assert "kit-demo.big-deal" in tsos_engine([PACK]).specs


def test_builtins_can_be_disabled_by_module_name(tsos_plugin: PluginRegistrar) -> None:
    tsos_plugin(DemoPlugin(), name="kit-demo")
    names = [p.name for p in installed_packs(disabled=["tsos_rules.packs.tsos"])]
    assert names == ["kit-demo"]


# -- the fake CRM -----------------------------------------------------------------------------


def test_the_fake_crm_reads_changes_and_writes(tsos_fake_crm: FakeCRM) -> None:
    crm = tsos_fake_crm
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    crm.load(snapshot(opportunities=[deal("o1"), deal("o2")]), at=t0)
    connector = crm.connector()
    first = connector.read(None, until=t0)
    assert {("opportunity", "o1"), ("opportunity", "o2")} <= first.changed and first.full
    crm.update("opportunity", "o2", {"next_step": "Call"}, at=t0 + dt.timedelta(hours=1))
    second = connector.read(first.watermark, until=t0 + dt.timedelta(hours=2))
    assert second.changed == {("opportunity", "o2")}
    task = Action(ActionKind.CREATE_TASK, "a" * 32, "opportunity", "o2", owner_id="u1")
    assert [r.status for r in connector.write([task, task])] == [
        ActionStatus.WRITTEN,
        ActionStatus.ALREADY_DONE,
    ]
    assert list(crm.tasks) == ["a" * 32] and len(crm.actions) == 2
    crm.fail_next("read", RetriableConnectorError("rate limited"))
    with pytest.raises(RetriableConnectorError):
        connector.read(second.watermark)
    assert connector.read(second.watermark).changed == frozenset()


def test_the_fake_connector_plugin_and_settings(
    tsos_plugin: PluginRegistrar, tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot(opportunities=[deal("o7")])), encoding="utf-8")
    tsos_plugin(fake_connector_plugin(name="fake"), name="fake-crm")
    factory = installed_connectors()["fake"]
    connector = factory({"snapshot": str(path)})
    assert isinstance(connector, FakeConnector)
    assert ("opportunity", "o7") in connector.read(None).changed
    with pytest.raises(ConfigError, match=r"connector\.snapshot"):
        FakeConnector.from_settings({"snapshot": str(tmp_path / "missing.json")})


def test_markdown_examples_run_and_report_their_output(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(
        "Intro\n\n```python\nprint(1 + 1)\nprint('x')\n# 2\n# x\n```\n", encoding="utf-8"
    )
    example = run_markdown_example(page)
    assert example.printed == example.expected == ["2", "x"]
