"""Small things a newcomer trips on: ``-V``, and ``explain`` showing whole values."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from tsos_rules.cli import main
from tsos_rules.org import OrgProfile


def test_dash_v_prints_the_version_like_dash_dash_version(cli: Callable[..., Any]) -> None:
    short, long = cli("-V"), cli("--version")
    assert short.code == long.code == 0
    assert short.out == long.out
    assert short.out.startswith("tsos-rules, version ")


def test_explain_prints_the_whole_stage_ladder(cli: Callable[..., Any]) -> None:
    result = cli("explain", "tsos.stage-probability-consistent")
    assert result.code == 0
    flat = " ".join(result.out.split())
    for stage, _probability in OrgProfile().stage_ladder:
        assert repr(stage) in flat
    assert "..." not in result.out


def test_init_writes_a_config_that_serve_runs_with(tmp_path: Path) -> None:
    """The README tour: ``tsos-rules init``, then ``serve --config tsos-rules.toml``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TSOS_RULES_"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    tool = [sys.executable, "-m", "tsos_rules"]
    made = subprocess.run([*tool, "init"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "[serve]" in (tmp_path / "tsos-rules.toml").read_text(encoding="utf-8")

    unset = subprocess.run(
        [*tool, "serve", "--config", "tsos-rules.toml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unset.returncode == 2 and "TSOS_RULES_SERVE_TOKEN" in unset.stderr, unset.stderr

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env["TSOS_RULES_SERVE_TOKEN"] = "newcomer-token"
    server = subprocess.Popen(
        [*tool, "serve", "--config", "tsos-rules.toml", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.3)
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_plugins_has_a_json_format_and_an_aligned_headed_table(cli: Callable[..., Any]) -> None:
    listed = cli("plugins", "--format", "json")
    assert listed.code == 0
    rows = json.loads(listed.out)
    packs = next(row for row in rows if row["name"] == "tsos_rules.packs.tsos")
    assert packs == {
        "name": "tsos_rules.packs.tsos",
        "version": "built-in",
        "hooks": ["tsos_rules_register_packs"],
        "status": "loaded",
    }
    lines = cli("plugins").out.splitlines()
    assert lines[0].split() == ["plugin", "version", "hooks"]
    hooks_column = lines[0].index("hooks")
    for line, row in zip(lines[1:], rows, strict=False):
        assert line.startswith(row["name"])
        assert line[hooks_column:].startswith(row["hooks"][0])


def _commands(command: click.Command, path: list[str]) -> Iterator[list[str]]:
    yield path
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None
            yield from _commands(sub, [*path, name])


def test_no_help_text_shows_rest_markup(cli: Callable[..., Any]) -> None:
    """Every command's --help is plain text: no ``literal`` backquotes from docstrings."""
    seen = 0
    for path in _commands(main, []):
        shown = cli(*path, "--help")
        assert shown.code == 0, path
        assert "``" not in shown.out, (path, shown.out)
        seen += 1
    assert seen > 10


def test_validate_pack_is_an_alias_of_rules_validate(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_text("name: p\nversion: '1'\nrules: []\n", encoding="utf-8")
    assert "Alias of tsos-rules rules validate" in cli("validate-pack", "--help").out
    one, other = cli("rules", "validate", str(pack)), cli("validate-pack", str(pack))
    assert (one.code, one.out) == (other.code, other.out)


#: The installed ``tsos-rules`` script: shell completion keys on the program's name.
TSOS_RULES = str(Path(sys.executable).with_name("tsos-rules"))


def _complete(*words: str) -> list[str]:
    """What bash completion offers after ``tsos-rules WORDS...`` (click's own protocol)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        _TSOS_RULES_COMPLETE="bash_complete",
        COMP_WORDS=" ".join(["tsos-rules", *words]),
        COMP_CWORD=str(len(words)),
    )
    out = subprocess.run([TSOS_RULES], env=env, capture_output=True, text=True, timeout=60).stdout
    return [line.split(",", 1)[1] for line in out.splitlines()]


def test_shell_completion_completes_commands_and_rule_ids() -> None:
    assert "explain" in _complete("ex")
    assert _complete("explain", "tsos.close") == [
        "tsos.close-date-locked",
        "tsos.close-date-slipping",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["_TSOS_RULES_COMPLETE"] = "bash_source"
    script = subprocess.run(
        [TSOS_RULES], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "complete -o nosort -F" in script and "tsos-rules" in script
