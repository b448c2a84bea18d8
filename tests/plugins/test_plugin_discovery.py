"""Discovery through real ``tsos_rules`` entry points, disabling, and broken plugins.

Each test installs a throwaway distribution (a module plus a ``.dist-info`` with METADATA and
``entry_points.txt``) into a temporary directory on ``sys.path``: importlib.metadata finds it
exactly as it finds a ``pip install``-ed package.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tsos_rules.plugins import PluginFailure, collect_packs, get_plugin_manager
from tsos_rules.testing import channel_account, channel_deal, installed_packs, snapshot

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

GOOD_PLUGIN = """
from tsos_rules import PythonRule, RulePack, RuleSpec, Severity, Violation, hookimpl

def big_deal(facts, params):
    if (facts.opportunity.amount or 0) > params["limit"]:
        yield Violation("too_big", f"Deal {facts.record_id} is bigger than {params['limit']}.")

PACK = RulePack(
    name="throwaway",
    version="1.2.3",
    description="A throwaway pack.",
    parameters=(__import__("tsos_rules").Parameter("limit", 100000, "Largest deal."),),
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id="throwaway.big-deal",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="Deals above the limit",
                doctrine="Big deals need a second look.",
                parameters=("limit",),
            ),
            checks={"opportunity": big_deal},
        ),
    ),
)

@hookimpl
def tsos_rules_register_packs(register):
    register(PACK)
"""

Install = Callable[..., None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(dist, entry_points={name: value}, modules={module: source})``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    imported: list[str] = []

    def install_(
        dist: str, *, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.2.3"
    ) -> None:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            imported.append(module)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = ["[tsos_rules]", *(f"{name} = {value}" for name, value in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    yield install_
    for module in imported:
        sys.modules.pop(module, None)


def write_snapshot(tmp_path: Path) -> str:
    path = tmp_path / "snapshot.json"
    doc = snapshot(accounts=[channel_account()], opportunities=[channel_deal(amount=500000)])
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_an_installed_plugin_is_discovered(install: Install, tsos_cli, tmp_path: Path) -> None:
    install(
        "throwaway-pack",
        entry_points={"throwaway": "throwaway_good"},
        modules={"throwaway_good": GOOD_PLUGIN},
    )
    assert "throwaway" in [pack.name for pack in installed_packs()]
    listed = tsos_cli("rules")
    assert listed.code == 0 and "throwaway.big-deal" in listed.out
    checked = tsos_cli("check", write_snapshot(tmp_path), "--format", "json")
    rules = {(f["rule"], f["reason"]) for f in checked.json()["findings"]}
    assert ("throwaway.big-deal", "too_big") in rules
    plugins = tsos_cli("plugins")
    assert plugins.code == 0
    line = next(x for x in plugins.out.splitlines() if x.startswith("throwaway "))
    assert "tsos_rules_register_packs" in line


def test_plugins_lists_the_distribution_version(install: Install, tsos_cli) -> None:
    install(
        "throwaway-pack",
        entry_points={"throwaway": "throwaway_ver"},
        modules={"throwaway_ver": GOOD_PLUGIN},
    )
    line = next(x for x in tsos_cli("plugins").out.splitlines() if x.startswith("throwaway "))
    assert "1.2.3" in line


def test_disabled_by_environment_variable(
    install: Install, tsos_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        "throwaway-pack",
        entry_points={"throwaway": "throwaway_env"},
        modules={"throwaway_env": GOOD_PLUGIN},
    )
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", "something-else, throwaway")
    assert "throwaway" not in [pack.name for pack in installed_packs()]
    assert "throwaway.big-deal" not in tsos_cli("rules").out
    assert not any(x.startswith("throwaway ") for x in tsos_cli("plugins").out.splitlines())


def test_disabled_by_config(
    install: Install, tsos_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        "throwaway-pack",
        entry_points={"throwaway": "throwaway_cfg"},
        modules={"throwaway_cfg": GOOD_PLUGIN},
    )
    config = tmp_path / "tsos-rules.toml"
    config.write_text('[plugins]\ndisabled = ["throwaway"]\n', encoding="utf-8")
    assert "throwaway.big-deal" in tsos_cli("rules").out
    assert "throwaway.big-deal" not in tsos_cli("rules", "--config", str(config)).out
    checked = tsos_cli("check", write_snapshot(tmp_path), "--config", str(config))
    assert "throwaway" not in checked.out
    monkeypatch.setenv("TSOS_RULES_CONFIG", str(config))
    assert not any(x.startswith("throwaway ") for x in tsos_cli("plugins").out.splitlines())


def test_a_plugin_raising_at_import_is_reported_and_skipped(
    install: Install, tsos_cli, caplog: pytest.LogCaptureFixture
) -> None:
    install(
        "broken-pack",
        entry_points={"broken-import": "throwaway_broken_import", "throwaway": "throwaway_ok"},
        modules={
            "throwaway_broken_import": "raise RuntimeError('boom at import')\n",
            "throwaway_ok": GOOD_PLUGIN,
        },
    )
    with caplog.at_level(logging.WARNING, logger="tsos_rules.plugins"):
        pm = get_plugin_manager()
    assert pm.failures == [PluginFailure("broken-import", "RuntimeError: boom at import")]
    assert "broken-import" in caplog.text
    assert "throwaway" in [pack.name for pack in collect_packs(pm)]  # the others still load
    # A failed plugin makes `rules` exit 2 (issue 14 item 6) unless failures are allowed.
    listed = tsos_cli("rules", "--allow-plugin-failures")
    assert listed.code == 0
    assert "tsos.next-step-required" in listed.out and "throwaway.big-deal" in listed.out
    plugins = tsos_cli("plugins")
    assert "broken-import  FAILED  RuntimeError: boom at import" in plugins.out
    # A real run (no pytest log capture): the warning names the plugin on stderr.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    real = subprocess.run(
        [sys.executable, "-m", "tsos_rules", "rules"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert real.returncode == 2, real.stderr  # a failed plugin shows in the exit status
    assert "plugin broken-import could not be loaded and was skipped" in real.stderr


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            """
            from tsos_rules import hookimpl
            @hookimpl
            def tsos_rules_register_packs(register):
                raise ValueError("cannot reach the pack server")
            """,
            "ValueError: cannot reach the pack server",
        ),
        (
            """
            from tsos_rules import RulePack, hookimpl
            from tsos_rules.rules.spec import RuleSpec
            @hookimpl
            def tsos_rules_register_packs(register):
                register(RulePack(name="Bad Name!", version="1", description="x"))
            """,
            "PackValidationError: pack 'Bad Name!': name",
        ),
        (
            """
            from tsos_rules import hookimpl
            @hookimpl
            def tsos_rules_register_packs(regster):  # misspelt argument: pluggy refuses it
                pass
            """,
            "PluginValidationError",
        ),
        (
            "",  # the entry point names an attribute the module lacks
            "AttributeError",
        ),
    ],
    ids=["raises", "invalid-pack", "bad-signature", "missing-attribute"],
)
def test_a_plugin_failing_at_registration_is_reported_and_skipped(
    install: Install,
    tsos_cli,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    source: str,
    error: str,
) -> None:
    value = "throwaway_broken_reg:plugin" if not source else "throwaway_broken_reg"
    install(
        "broken-pack",
        entry_points={"broken-reg": value, "throwaway": "throwaway_ok2"},
        modules={"throwaway_broken_reg": source, "throwaway_ok2": GOOD_PLUGIN},
    )
    pm = get_plugin_manager()
    packs = [pack.name for pack in collect_packs(pm)]
    assert "throwaway" in packs and "tsos" in packs
    assert [f.name for f in pm.failures] == ["broken-reg"]
    assert error in pm.failures[0].error
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tsos_rules.plugins"):
        checked = tsos_cli(
            "check", write_snapshot(tmp_path), "--format", "json", "--allow-plugin-failures"
        )
    assert checked.code in (0, 1), checked.err
    assert "plugin broken-reg" in caplog.text and "skipped" in caplog.text
    assert "throwaway.big-deal" in {f["rule"] for f in checked.json()["findings"]}


def test_a_misspelt_hook_name_is_reported_not_fatal(
    install: Install, tsos_cli, caplog: pytest.LogCaptureFixture
) -> None:
    install(
        "typo-pack",
        entry_points={"typo": "throwaway_typo"},
        modules={
            "throwaway_typo": """
            from tsos_rules import hookimpl
            @hookimpl
            def tsos_rules_register_pack(register):
                pass
            """
        },
    )
    with caplog.at_level(logging.WARNING, logger="tsos_rules.plugins"):
        listed = tsos_cli("rules", "--allow-plugin-failures")
    assert listed.code == 0, listed.err
    assert "tsos.next-step-required" in listed.out
    assert "plugin typo" in caplog.text and "tsos_rules_register_pack" in caplog.text
    assert "typo  FAILED" in tsos_cli("plugins").out


HALF_REGISTERING = """
from tsos_rules import hookimpl

@hookimpl
def tsos_rules_register_packs(register):
    register(__import__("throwaway_ok3").PACK)  # registers part of its work, then fails
    raise RuntimeError("second pack unreachable")
"""


@pytest.fixture
def half_loaded(install: Install) -> None:
    """A plugin that fails inside its hook after registering a pack (rolled back)."""
    install(
        "half-pack",
        entry_points={"half": "throwaway_half"},
        modules={"throwaway_half": HALF_REGISTERING, "throwaway_ok3": GOOD_PLUGIN},
    )


@pytest.mark.usefixtures("half_loaded")
def test_check_exits_2_when_a_plugin_failed_to_load(tsos_cli, tmp_path: Path) -> None:
    checked = tsos_cli("check", write_snapshot(tmp_path), "--format", "json")
    assert checked.code == 2
    # The output is still there for the rules that did load; the rolled-back pack is absent
    # (with it, this big deal would be a throwaway.big-deal finding).
    assert "throwaway.big-deal" not in {f["rule"] for f in checked.json()["findings"]}
    assert "error: plugin half failed to load" in checked.err
    assert "RuntimeError: second pack unreachable" in checked.err
    assert "--allow-plugin-failures" in checked.err


@pytest.mark.usefixtures("half_loaded")
def test_allowing_plugin_failures_gives_the_findings_exit_status(
    tsos_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tsos_cli("check", write_snapshot(tmp_path), "--allow-plugin-failures")
    assert allowed.code == 0  # what the loaded rules find: nothing here
    assert "warning: plugin half failed to load" in allowed.err
    monkeypatch.setenv("TSOS_RULES_ALLOW_PLUGIN_FAILURES", "1")
    assert tsos_cli("check", write_snapshot(tmp_path)).code == 0


@pytest.mark.usefixtures("half_loaded")
def test_rules_lists_what_loaded_and_exits_2(tsos_cli) -> None:
    listed = tsos_cli("rules", "--format", "json")
    assert listed.code == 2
    ids = {row["id"] for row in listed.json()}
    assert "tsos.next-step-required" in ids and "throwaway.big-deal" not in ids
    assert "plugin half failed to load" in listed.err
    assert tsos_cli("rules", "--allow-plugin-failures").code == 0


def test_check_exit_status_is_unchanged_when_every_plugin_loads(
    install: Install, tsos_cli, tmp_path: Path
) -> None:
    install("ok-pack", entry_points={"ok": "throwaway_ok4"}, modules={"throwaway_ok4": GOOD_PLUGIN})
    checked = tsos_cli("check", write_snapshot(tmp_path))
    assert checked.code == 0 and "failed to load" not in checked.err
    assert tsos_cli("rules").code == 0
