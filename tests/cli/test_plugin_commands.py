"""Plugins add CLI commands through ``tsos_rules_register_commands``: real plugin objects,
registered through the plugin manager's discovery, invoked through ``tsos-rules``."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import click
import pytest

from tsos_rules import hookimpl
from tsos_rules.errors import ConfigError
from tsos_rules.testing.docs import python_blocks


class Greeter:
    """Adds ``hello NAME`` and a ``deals`` group with ``deals stalled``."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def tsos_rules_register_commands(self, cli: click.Group) -> None:
        self.calls += 1

        @cli.command(help="Greet someone.")
        @click.argument("name")
        def hello(name: str) -> None:
            click.echo(f"hello {name}")

        @cli.group(help="Deal helpers.")
        def deals() -> None:
            pass

        @deals.command(help="Refuse with a config error.")
        def stalled() -> None:
            raise ConfigError("deals.toml: [deals] stall_days: expected an integer")


class Broken:
    @hookimpl
    def tsos_rules_register_commands(self, cli: click.Group) -> None:
        cli.add_command(click.Command("half-added"))
        raise RuntimeError("cannot reach the licence server")


class Usurper:
    @hookimpl
    def tsos_rules_register_commands(self, cli: click.Group) -> None:
        @cli.command(help="Not the real check.")
        def check() -> None:
            click.echo("hijacked")


def test_a_plugin_command_runs_through_the_cli(tsos_plugin, cli) -> None:
    tsos_plugin(Greeter(), name="greeter")
    result = cli("hello", "Ada")
    assert (result.code, result.out) == (0, "hello Ada\n")
    listed = cli("--help")
    assert listed.code == 0
    assert "hello" in listed.out and "Greet someone." in listed.out
    assert "deals" in listed.out and "check" in listed.out


def test_a_plugin_group_gets_the_cli_error_handling(tsos_plugin, cli) -> None:
    tsos_plugin(Greeter(), name="greeter")
    result = cli("deals", "stalled")
    assert result.code == 2
    assert result.err == "tsos-rules: deals.toml: [deals] stall_days: expected an integer\n"


def test_plugins_lists_the_hook(tsos_plugin, cli) -> None:
    tsos_plugin(Greeter(), name="greeter")
    line = next(x for x in cli("plugins").out.splitlines() if x.startswith("greeter "))
    assert "tsos_rules_register_commands" in line


def test_built_in_commands_never_load_plugin_commands(tsos_plugin, cli, tmp_path: Path) -> None:
    greeter = Greeter()
    tsos_plugin(greeter, name="greeter")
    assert cli("init", str(tmp_path / "tsos-rules.toml")).code == 0
    assert greeter.calls == 0
    assert cli("--help").code == 0
    assert greeter.calls == 1  # once per invocation, however many names the help looks up
    assert cli("hello", "Ada").code == 0
    assert greeter.calls == 2


def test_a_broken_plugin_is_reported_and_skipped(
    tsos_plugin, cli, caplog: pytest.LogCaptureFixture
) -> None:
    tsos_plugin(Broken(), name="broken")
    tsos_plugin(Greeter(), name="greeter")
    with caplog.at_level(logging.WARNING, logger="tsos_rules.plugins"):
        listed = cli("--help")
    assert listed.code == 0 and "hello" in listed.out
    assert "half-added" not in listed.out  # nothing of a failed plugin is kept
    assert "plugin broken failed in tsos_rules_register_commands and was skipped" in caplog.text
    assert "cannot reach the licence server" in caplog.text
    assert cli("hello", "Ada").out == "hello Ada\n"
    assert cli("half-added").code == 2
    plugins = cli("plugins").out
    assert "broken  FAILED  RuntimeError: cannot reach the licence server" in plugins


def test_a_plugin_cannot_replace_a_built_in_command(
    tsos_plugin, cli, caplog: pytest.LogCaptureFixture
) -> None:
    tsos_plugin(Usurper(), name="usurper")
    with caplog.at_level(logging.WARNING, logger="tsos_rules.plugins"):
        assert cli("--help").code == 0
    assert "plugin usurper failed" in caplog.text and "check exist already" in caplog.text
    result = cli("check", "does-not-exist.json")
    assert result.code == 2 and "hijacked" not in result.out


def test_a_disabled_plugin_adds_no_command(
    tsos_plugin, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    tsos_plugin(Greeter(), name="greeter")
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", "greeter")
    result = cli("hello", "Ada")
    assert result.code == 2 and "No such command 'hello'" in result.err


def test_the_documented_example_does_what_docs_plugins_md_shows(tsos_plugin, cli) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
    source = next(b for b in python_blocks(docs) if "tsos_rules_register_commands" in b)
    plugin = types.ModuleType("partners_plugin")
    exec(compile(source, str(docs), "exec"), vars(plugin))
    tsos_plugin(plugin, name="partners")
    assert cli("partners", "tier", "P-17").out == "P-17: premier\n"
    refused = cli("partners", "tier", "42")
    assert (refused.code, refused.err) == (2, "tsos-rules: 42: not a partner id\n")
