"""docs/operate.md's commands are real: every ``tsos-rules`` line in its shell blocks names a
command and options the CLI accepts (parsed, not run)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest

from tsos_rules.cli import main
from tsos_rules.config import Config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operate.md"


def _command_lines() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in re.split(r"&&|;", line):
                part = part.strip()
                if part.startswith("tsos-rules ") or "/bin/tsos-rules " in part:
                    lines.append(re.split(r"\s[|>]\s", part)[0])
    return lines


def test_the_playbook_shows_the_new_commands() -> None:
    lines = _command_lines()
    wanted_lines = (
        "history --by owner",
        "history --prune",
        "exempt add",
        "findings --status",
        "--what-if-enforce",
    )
    for wanted in wanted_lines:
        assert any(wanted in line for line in lines), wanted


@pytest.mark.parametrize("line", _command_lines())
def test_each_command_parses(line: str) -> None:
    args = shlex.split(line)[1:]
    command: click.Command = main
    ctx = click.Context(main, info_name="tsos-rules")
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"{line}: no command {args[0]!r}"
        command, args = sub, args[1:]
    # make_context parses the options and arguments exactly as a run would, without running it.
    command.make_context(command.name, list(args), parent=ctx)


def _toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("block", _toml_blocks())
def test_each_config_example_is_accepted_by_the_settings_reader(block: str) -> None:
    """A playbook example an admin pastes into their config must load (the one reader)."""
    data = tomllib.loads(block)
    data.setdefault("sync", {}).setdefault("mode", "shadow")  # a table-only example needs no mode
    Config.from_mapping(data)
