"""The tsos-rules pytest plugin: fixtures for plugin authors. Opt in with one line.

In your package's ``pyproject.toml``::

    [tool.pytest.ini_options]
    addopts = "-p tsos_rules.testing.pytest_plugin"

(or ``pytest_plugins = ["tsos_rules.testing.pytest_plugin"]`` in your top-level
``conftest.py``, or ``pytest -p tsos_rules.testing.pytest_plugin`` on the command line).

Fixtures:

``tsos_plugin``
    ``tsos_plugin(plugin, name=None)`` registers a plugin (an object or module with
    ``@hookimpl`` functions, or a dotted ``"module:attribute"`` path) for this test only, through
    ``get_plugin_manager``'s added plugins: it is treated exactly as an installed ``tsos_rules``
    entry point, so disabling by name, failure reporting and ``tsos-rules plugins`` all see it;
    it is gone after the test.
``tsos_check``
    ``tsos_check(snapshot, packs=None, parameters=None, config=None, as_of=None)`` evaluates a
    snapshot (a builder dict or a :class:`tsos_rules.Snapshot`) with the given packs, or with
    every installed and registered pack when ``packs`` is None, and returns the Findings.
``tsos_engine``
    ``tsos_engine(packs=None, **engine_options)`` builds an :class:`tsos_rules.Engine` (closed
    after the test) from the given packs or from every installed and registered pack.
``tsos_cli``
    ``tsos_cli("rules", "--format", "json")`` runs ``tsos-rules`` in-process and returns
    ``code``, ``out``, ``err`` (and ``.json()``).
``tsos_fake_crm``
    A fresh :class:`tsos_rules.testing.FakeCRM`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import pytest

from tsos_rules.config import coerce_config
from tsos_rules.engine import Engine
from tsos_rules.findings import Findings
from tsos_rules.model import Snapshot
from tsos_rules.plugins import DISABLE_ENV, added_plugins
from tsos_rules.rules.spec import RulePack
from tsos_rules.testing.fake_connector import FakeCRM
from tsos_rules.testing.run import evaluate

__all__ = [
    "CliResult",
    "PluginRegistrar",
    "tsos_check",
    "tsos_cli",
    "tsos_engine",
    "tsos_fake_crm",
    "tsos_plugin",
]


class PluginRegistrar:
    """What the ``tsos_plugin`` fixture returns: call it to register a plugin for one test.

    Registration goes through :data:`tsos_rules.plugins.added_plugins`, which every
    :func:`~tsos_rules.plugins.get_plugin_manager` registers after the built-ins and before
    the installed entry points; the monkeypatch it is built with takes it out again.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._names: list[str] = []

    @property
    def names(self) -> list[str]:
        """The names registered so far in this test."""
        return list(self._names)

    def __call__(self, plugin: object | str, name: str | None = None) -> str:
        """Register ``plugin`` under ``name`` (default: derived from it); returns the name.

        ``plugin`` is an object or a module carrying ``@hookimpl`` functions, or a string
        ``"package.module"`` / ``"package.module:attribute"`` naming one, as an entry point's
        value would. It shadows an installed plugin of the same name. The name is removed from
        ``TSOS_RULES_DISABLE_PLUGINS`` for this test; set the variable after registering to
        test disabling.
        """
        if isinstance(plugin, str):
            default_name = plugin.split(":")[0].rsplit(".", 1)[-1]
        else:
            default_name = getattr(plugin, "__name__", None) or type(plugin).__name__
            default_name = default_name.rsplit(".", 1)[-1]
        chosen = name or default_name
        if chosen in self._names:
            raise ValueError(f"a plugin named {chosen!r} is already registered in this test")
        self._monkeypatch.setitem(added_plugins, chosen, plugin)
        self._names.append(chosen)
        blocked = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        if chosen in [n.strip() for n in blocked]:
            kept = ",".join(n for n in blocked if n.strip() != chosen)
            self._monkeypatch.setenv(DISABLE_ENV, kept)
        return chosen


@pytest.fixture
def tsos_plugin(monkeypatch: pytest.MonkeyPatch) -> PluginRegistrar:
    """Register a tsos-rules plugin for the duration of one test (see :class:`PluginRegistrar`).

    Example::

        def test_my_rules_are_listed(tsos_plugin, tsos_cli):
            tsos_plugin("my_package.plugin", name="my-pack")
            assert "my-pack.big-discount" in tsos_cli("rules").out
    """
    return PluginRegistrar(monkeypatch)


CheckFn = Callable[..., Findings]


@pytest.fixture
def tsos_check() -> CheckFn:
    """Evaluate a snapshot and return its Findings (info included).

    Example::

        def test_big_discount(tsos_check):
            findings = tsos_check(snapshot(opportunities=[deal(discount_percent=40)]), packs=[PACK])
            assert found(findings, "my-pack.big-discount") == {("o1", "too_big", "warn")}
    """

    def check(
        document: Mapping[str, Any] | Snapshot,
        packs: RulePack | Sequence[RulePack] | None = None,
        *,
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        config: Any = None,
        as_of: Any = None,
        include_info: bool = True,
    ) -> Findings:
        return evaluate(
            packs,
            document,
            parameters=parameters,
            config=config,
            as_of=as_of,
            include_info=include_info,
        )

    return check


@pytest.fixture
def tsos_engine() -> Iterator[Callable[..., Engine]]:
    """A factory of Engines, each closed after the test.

    ``tsos_engine()`` loads every installed and registered pack (as ``tsos-rules check``
    does), configured by ``config`` (a :class:`tsos_rules.Config`, a dict shaped like the TOML
    file, or a path); ``tsos_engine([PACK])`` only the given packs. ``parameters`` overrides
    pack parameters by pack name; other keywords go to :class:`tsos_rules.Engine`.
    """
    made: list[Engine] = []

    def build(
        packs: Sequence[RulePack] | None = None,
        *,
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        config: Any = None,
        **options: Any,
    ) -> Engine:
        cfg = coerce_config(config)
        if packs is None:
            from tsos_rules.plugins import collect_packs, get_plugin_manager

            packs = collect_packs(get_plugin_manager(disabled=cfg.plugins_disabled))
            options.setdefault("rules", cfg.rules_selected or None)
            options.setdefault("disabled_rules", cfg.rules_disabled)
        names = {pack.name for pack in packs}
        values = {name: table for name, table in cfg.packs.items() if name in names}
        values.update(parameters or {})
        options.setdefault("org", cfg.org)
        engine = Engine(list(packs), parameters=values, **options)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.close()


@attrs.frozen
class CliResult:
    """The outcome of one in-process ``tsos-rules`` run."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def tsos_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``tsos-rules ARGS...`` in-process; returns exit code, stdout and stderr."""
    from tsos_rules.cli import run

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def tsos_fake_crm() -> FakeCRM:
    """An empty in-memory CRM; ``tsos_fake_crm.connector()`` is a connector over it."""
    return FakeCRM()
