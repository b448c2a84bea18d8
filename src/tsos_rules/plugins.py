"""The plugin manager: built-ins first, then installed entry points, all through the same hooks."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from tsos_rules import hookspecs
from tsos_rules.errors import ConfigError
from tsos_rules.markers import PROJECT
from tsos_rules.rules.spec import RulePack

if TYPE_CHECKING:
    from tsos_rules.facts import FactIndex
    from tsos_rules.findings import Findings
    from tsos_rules.report.sections import ReportSection

log = logging.getLogger(__name__)

#: Built-in plugins, registered exactly like third-party entry points.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "tsos_rules.packs.tsos",
    "tsos_rules.connectors.local",
    "tsos_rules.connectors.salesforce",
    "tsos_rules.connectors.tabular",
)

#: Comma-separated plugin names to leave out, e.g. ``TSOS_RULES_DISABLE_PLUGINS=hubspot``.
DISABLE_ENV = "TSOS_RULES_DISABLE_PLUGINS"


@attrs.frozen
class PluginFailure:
    """A plugin that raised at import or registration: reported by name and skipped."""

    name: str
    error: str


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which plugins failed to load."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.failures: list[PluginFailure] = []
        #: Distribution version of each plugin loaded from an entry point, by plugin name.
        self.versions: dict[str, str] = {}


def get_plugin_manager(*, disabled: Iterable[str] = (), entry_points: bool = True) -> PluginManager:
    """A fresh plugin manager with the built-ins and (unless told not to) installed plugins."""
    blocked = set(disabled) | {
        name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()
    }
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        if module_name in blocked:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue  # a built-in that this installation does not carry yet
        pm.register(module, name=module_name)
    if entry_points:
        for name in blocked:
            pm.set_blocked(name)
        _load_entry_points(pm)
    _drop_unknown_hooks(pm)
    pm.check_pending()
    return pm


def _drop_unknown_hooks(pm: PluginManager) -> None:
    """A third-party plugin implementing a hook that does not exist (a typo) is reported by
    name and skipped; a built-in one still fails loudly in ``check_pending``."""
    for name, plugin in list(pm.list_name_plugin()):
        if plugin is None or name in DEFAULT_PLUGINS:
            continue
        unknown = sorted(
            caller.name
            for caller in pm.get_hookcallers(plugin) or []
            if not caller.has_spec()
            and any(
                not impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin
            )
        )
        if unknown:
            pm.unregister(plugin)
            message = f"unknown hook(s) {', '.join(unknown)}; see docs/hooks.md"
            log.warning("plugin %s was skipped: %s", name, message)
            pm.failures.append(PluginFailure(name, f"PluginValidationError: {message}"))


def _load_entry_points(pm: PluginManager) -> None:
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=PROJECT):
        if pm.is_blocked(entry_point.name) or pm.has_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
        except Exception as exc:  # a broken plugin must not take the run down
            log.warning("plugin %s could not be loaded and was skipped: %s", entry_point.name, exc)
            pm.failures.append(PluginFailure(entry_point.name, f"{type(exc).__name__}: {exc}"))
            continue
        if entry_point.dist is not None:
            pm.versions[entry_point.name] = entry_point.dist.version


def collect_packs(pm: PluginManager) -> list[RulePack]:
    """Every pack registered through ``tsos_rules_register_packs``, validated, by name."""
    packs: dict[str, RulePack] = {}

    def register(pack: RulePack) -> None:
        if not isinstance(pack, RulePack):
            raise ConfigError(f"register() takes a RulePack, got {type(pack).__name__}")
        pack.validate()
        if pack.name in packs:
            raise ConfigError(f"pack {pack.name!r} is registered twice")
        packs[pack.name] = pack

    _call_each(pm, "tsos_rules_register_packs", register)
    return [packs[name] for name in sorted(packs)]


def collect_connectors(pm: PluginManager) -> dict[str, Any]:
    """Connector factories registered through ``tsos_rules_register_connectors``, by name."""
    factories: dict[str, Any] = {}

    def register(name: str, factory: Any) -> None:
        if name in factories:
            raise ConfigError(f"connector {name!r} is registered twice")
        factories[name] = factory

    _call_each(pm, "tsos_rules_register_connectors", register)
    return factories


def _call_each(pm: PluginManager, hook_name: str, register: Callable[..., None]) -> None:
    """Call one registration hook plugin by plugin, so one broken plugin is skipped alone."""
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            impl.function(register=register)
        except Exception as exc:
            if name in DEFAULT_PLUGINS:
                raise
            log.warning("plugin %s failed in %s and was skipped: %s", name, hook_name, exc)
            pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))


def collect_report_sections(
    pm: PluginManager, index: FactIndex, findings: Findings
) -> list[ReportSection]:
    """Every plugin's ``tsos_rules_report_sections`` for one evaluation, tagged with the
    plugin's name, in registration order; a plugin that raises is reported and skipped."""
    arguments: dict[str, Any] = {"index": index, "findings": findings}
    out: list[ReportSection] = []
    for impl in pm.hook.tsos_rules_report_sections.get_hookimpls():
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            result: Any = impl.function(**{arg: arguments[arg] for arg in impl.argnames})
        except Exception as exc:
            log.warning("plugin %s failed in tsos_rules_report_sections: %s", name, exc)
            pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
            continue
        for section in result or ():
            out.append(attrs.evolve(section, plugin=section.plugin or name))
    return out
