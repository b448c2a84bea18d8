"""How hooks are called: through pluggy's call loop, one plugin at a time, with roll-back.

* A hook wrapper runs (pluggy's own call loop is used, not the implementation functions).
* A plugin that fails inside a registration hook after registering part of its work is rolled
  back: nothing it registered stays, and it is reported in ``pm.failures``.
* ``get_plugin_manager(extra=...)`` registers plugin objects by name, as installed ones are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tsos_rules import PythonRule, RulePack, RuleSpec, Severity, hookimpl
from tsos_rules.plugins import (
    DISABLE_ENV,
    collect_connectors,
    collect_packs,
    collect_report_sections,
    get_plugin_manager,
)


def pack(name: str) -> RulePack:
    spec = RuleSpec(
        id=f"{name}.noop",
        severity=Severity.INFO,
        record_types=("opportunity",),
        title="Finds nothing",
        doctrine="Nothing.",
    )
    rule = PythonRule(spec=spec, checks={"opportunity": lambda facts, params: iter(())})
    return RulePack(
        name=name, version="1.0.0", description="A pack that finds nothing.", python_rules=(rule,)
    )


class HalfLoaded:
    """Registers one pack and one connector, then fails in both hooks."""

    @hookimpl
    def tsos_rules_register_packs(self, register: Callable[[RulePack], None]) -> None:
        register(pack("half-loaded"))
        raise RuntimeError("second pack is broken")

    @hookimpl
    def tsos_rules_register_connectors(self, register: Callable[[str, Any], None]) -> None:
        register("half", object)
        raise RuntimeError("second connector is broken")


class Whole:
    @hookimpl
    def tsos_rules_register_packs(self, register: Callable[[RulePack], None]) -> None:
        register(pack("whole"))

    @hookimpl
    def tsos_rules_register_connectors(self, register: Callable[[str, Any], None]) -> None:
        register("whole", object)


@pytest.fixture(autouse=True)
def _no_third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(DISABLE_ENV, "")
    yield


def test_a_plugin_failing_half_way_is_rolled_back_and_reported() -> None:
    pm = get_plugin_manager(entry_points=False, extra={"half": HalfLoaded(), "whole": Whole()})
    names = [p.name for p in collect_packs(pm)]
    assert "whole" in names
    assert "half-loaded" not in names  # registered before the failure, then rolled back
    factories = collect_connectors(pm)
    assert "whole" in factories
    assert "half" not in factories
    assert [(f.name, f.error) for f in pm.failures] == [
        ("half", "RuntimeError: second pack is broken"),
        ("half", "RuntimeError: second connector is broken"),
    ]


def test_a_hook_wrapper_runs_around_each_plugins_registration() -> None:
    seen: list[str] = []

    class Tracer:
        @hookimpl(wrapper=True)
        def tsos_rules_register_packs(self, register: Callable[[RulePack], None]) -> Any:
            seen.append("before")
            result = yield
            seen.append("after")
            return result

    pm = get_plugin_manager(entry_points=False, extra={"whole": Whole(), "tracer": Tracer()})
    names = [p.name for p in collect_packs(pm)]
    assert "whole" in names and "tsos" in names
    # One call per plugin with a plain implementation (the built-in pack and "whole").
    assert seen == ["before", "after"] * 2
    assert not pm.failures


def test_a_report_section_wrapper_runs_too() -> None:
    calls: list[str] = []

    class Tracer:
        @hookimpl(wrapper=True)
        def tsos_rules_report_sections(self, index: Any, findings: Any) -> Any:
            calls.append("wrapped")
            return (yield)

    class Sections:
        @hookimpl
        def tsos_rules_report_sections(self, index: Any, findings: Any) -> list[Any]:
            return []

    pm = get_plugin_manager(entry_points=False, extra={"tracer": Tracer(), "sections": Sections()})
    assert collect_report_sections(pm, index=None, findings=None) == []  # type: ignore[arg-type]
    assert calls == ["wrapped"]


def test_extra_plugins_are_named_disabled_and_reported_like_installed_ones() -> None:
    whole = Whole()
    pm = get_plugin_manager(extra={"hubspot": whole, "missing": "no_such_module_xyz:plugin"})
    assert pm.get_plugin("hubspot") is whole  # shadows the installed plugin of that name
    assert [f.name for f in pm.failures] == ["missing"]
    assert "ModuleNotFoundError" in pm.failures[0].error
    blocked = get_plugin_manager(entry_points=False, disabled=["whole"], extra={"whole": whole})
    assert not blocked.has_plugin("whole")


def test_a_broken_builtin_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import tsos_rules.packs.tsos as builtin

    def broken(register: Callable[[RulePack], None]) -> None:
        raise RuntimeError("built-in bug")

    pm = get_plugin_manager(entry_points=False)
    pm.unregister(builtin)
    monkeypatch.setattr(builtin, "tsos_rules_register_packs", hookimpl(broken))
    pm.register(builtin, name="tsos_rules.packs.tsos")
    with pytest.raises(RuntimeError, match="built-in bug"):
        collect_packs(pm)
