"""The plugin manager: built-ins first, then installed entry points, all through the same hooks."""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from tsos_rules import hookspecs
from tsos_rules.errors import ConfigError
from tsos_rules.markers import PROJECT
from tsos_rules.rules.spec import RulePack

if TYPE_CHECKING:
    import click

    from tsos_rules.connectors.inline import InlineAdapter
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


#: Plugins added in-process by name (the testing kit's ``tsos_plugin``): every manager
#: registers them after the built-ins and before entry points, as if they were installed.
#: A value is a plugin object or an entry-point style ``"module:attribute"`` string.
added_plugins: dict[str, object] = {}


def get_plugin_manager(
    *,
    disabled: Iterable[str] = (),
    entry_points: bool = True,
    extra: Mapping[str, object] | None = None,
) -> PluginManager:
    """A fresh plugin manager with the built-ins, then ``extra`` (and :data:`added_plugins`),
    then (unless told not to) installed entry points.

    ``extra`` maps a plugin name to a plugin object (or a ``"module:attribute"`` string); an
    extra plugin is treated like an installed one: disabling by name applies to it, a failure
    is reported in ``pm.failures`` and skipped, and it shadows an entry point of the same name.
    """
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
        _register(pm, module, module_name)
    for name, plugin in {**added_plugins, **(extra or {})}.items():
        if name not in blocked:
            _register_third_party(pm, name, functools.partial(_resolve, plugin))
    if entry_points:
        for name in blocked:
            pm.set_blocked(name)
        _load_entry_points(pm)
    _drop_unknown_hooks(pm)
    pm.check_pending()
    return pm


def _resolve(plugin: object) -> object:
    """A plugin object, or the one an entry-point style ``"module:attribute"`` string names."""
    if not isinstance(plugin, str):
        return plugin
    module_name, _, attribute = plugin.partition(":")
    found: object = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        found = getattr(found, part)
    return found


def _register(pm: PluginManager, plugin: object, name: str) -> None:
    pm.register(plugin, name=name)


def _register_third_party(pm: PluginManager, name: str, load: Callable[[], object]) -> bool:
    """Load and register a non-built-in plugin; a failure is reported by name and skipped."""
    try:
        _register(pm, load(), name)
    except Exception as exc:  # a broken plugin must not take the run down
        log.warning("plugin %s could not be loaded and was skipped: %s", name, exc)
        pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
        return False
    return True


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
        loaded = _register_third_party(pm, entry_point.name, entry_point.load)
        if loaded and entry_point.dist is not None:
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

    _call_each(pm, "tsos_rules_register_packs", register, registry=packs)
    return [packs[name] for name in sorted(packs)]


def collect_connectors(pm: PluginManager) -> dict[str, Any]:
    """Connector factories registered through ``tsos_rules_register_connectors``, by name."""
    factories: dict[str, Any] = {}

    def register(name: str, factory: Any) -> None:
        if name in factories:
            raise ConfigError(f"connector {name!r} is registered twice")
        factories[name] = factory

    _call_each(pm, "tsos_rules_register_connectors", register, registry=factories)
    return factories


def collect_inline_adapters(pm: PluginManager) -> dict[str, InlineAdapter]:
    """In-line adapters registered through ``tsos_rules_register_inline_adapters``, by name."""
    from tsos_rules.connectors.inline import ROUTE_NAME, InlineAdapter

    adapters: dict[str, InlineAdapter] = {}

    def register(adapter: InlineAdapter) -> None:
        if not isinstance(adapter, InlineAdapter):
            raise ConfigError(f"register() takes an InlineAdapter, got {type(adapter).__name__}")
        if not ROUTE_NAME.fullmatch(adapter.name):
            raise ConfigError(
                f"in-line adapter name {adapter.name!r}: expected lower-case letters, digits "
                "and dashes (it becomes POST /v1/<name>/check)"
            )
        if adapter.name in adapters:
            raise ConfigError(f"in-line adapter {adapter.name!r} is registered twice")
        adapters[adapter.name] = adapter

    _call_each(pm, "tsos_rules_register_inline_adapters", register, registry=adapters)
    return adapters


def _call_each(
    pm: PluginManager,
    hook_name: str,
    register: Callable[..., None],
    *,
    registry: MutableMapping[str, Any] | None = None,
) -> None:
    """Call one registration hook plugin by plugin, each through pluggy's own call loop, so
    one broken plugin is skipped alone.

    A plugin that raises after registering part of its work is rolled back: the entries it
    added to ``registry`` are removed, so no plugin stays half-loaded. A built-in still raises.
    """
    for plugin, call in _one_by_one(pm, hook_name):
        name = pm.get_name(plugin) or repr(plugin)
        before = dict(registry) if registry is not None else None
        try:
            call(register=register)
        except Exception as exc:
            if registry is not None and before is not None:
                registry.clear()
                registry.update(before)
            if name in DEFAULT_PLUGINS:
                raise
            log.warning("plugin %s failed in %s and was skipped: %s", name, hook_name, exc)
            pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))


def _one_by_one(pm: PluginManager, hook_name: str) -> Iterator[tuple[object, Callable[..., Any]]]:
    """Each plugin implementing ``hook_name`` with a caller that runs only its implementation
    (and every hook wrapper, which wraps each plugin's call), in registration order."""
    hook = getattr(pm.hook, hook_name)
    impls = hook.get_hookimpls()
    wrappers = {id(i.plugin) for i in impls if i.hookwrapper or i.wrapper}
    plain = [i.plugin for i in impls if id(i.plugin) not in wrappers]
    for plugin in plain:
        others = [p for p in plain if p is not plugin]
        yield plugin, pm.subset_hook_caller(hook_name, remove_plugins=others)


def collect_report_sections(
    pm: PluginManager, index: FactIndex, findings: Findings
) -> list[ReportSection]:
    """Every plugin's ``tsos_rules_report_sections`` for one evaluation, tagged with the
    plugin's name, in registration order; a plugin that raises is reported and skipped."""
    out: list[ReportSection] = []
    for plugin, call in _one_by_one(pm, "tsos_rules_report_sections"):
        name = pm.get_name(plugin) or repr(plugin)
        try:
            results: list[Any] = call(index=index, findings=findings)
        except Exception as exc:
            log.warning("plugin %s failed in tsos_rules_report_sections: %s", name, exc)
            pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
            continue
        for result in results:
            for section in result or ():
                out.append(attrs.evolve(section, plugin=section.plugin or name))
    return out


def report_section_plugins(pm: PluginManager | None) -> list[str]:
    """The names of the plugins adding report sections, in registration order (the order
    their sections are listed in)."""
    if pm is None:
        return []
    return [
        pm.get_name(plugin) or repr(plugin)
        for plugin, _ in _one_by_one(pm, "tsos_rules_report_sections")
    ]


def collect_explain_notes(pm: PluginManager, rule_id: str, config: Any) -> list[tuple[str, str]]:
    """Every plugin's ``tsos_rules_explain_notes`` for one rule, as (plugin name, note), in
    registration order; a plugin that raises is reported and skipped."""
    out: list[tuple[str, str]] = []
    for plugin, call in _one_by_one(pm, "tsos_rules_explain_notes"):
        name = pm.get_name(plugin) or repr(plugin)
        try:
            results: list[Any] = call(rule_id=rule_id, config=config)
        except Exception as exc:
            log.warning("plugin %s failed in tsos_rules_explain_notes: %s", name, exc)
            pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
            continue
        for result in results:
            out.extend((name, str(note)) for note in result or ())
    return out


def collect_commands(pm: PluginManager, *, taken: Collection[str] = ()) -> dict[str, click.Command]:
    """CLI commands added through ``tsos_rules_register_commands``, by name.

    Each plugin fills a group of its own, so one that raises or names a command that exists
    (in ``taken`` or from another plugin) is reported and skipped alone, with all its commands.
    """
    import click

    hook_name = "tsos_rules_register_commands"
    commands: dict[str, click.Command] = {}
    for plugin, call in _one_by_one(pm, hook_name):
        name = pm.get_name(plugin) or repr(plugin)
        own = click.Group(name="tsos-rules")
        try:
            call(cli=own)
            clash = sorted(set(own.commands) & {*taken, *commands})
            if clash:
                raise ConfigError(f"command(s) {', '.join(clash)} exist already")
        except Exception as exc:
            if name in DEFAULT_PLUGINS:
                raise
            log.warning("plugin %s failed in %s and was skipped: %s", name, hook_name, exc)
            pm.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
            continue
        commands.update(own.commands)
    return commands
