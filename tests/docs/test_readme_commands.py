"""The README's two set-up commands are what a fresh machine runs, and what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The command lines of the README's "Set-up: two commands" block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set-up: two commands", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_the_readme_has_two_commands_that_make_and_use_their_own_venv() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    for command in commands:
        assert command.startswith("python3 -m venv .venv && ")
        # PEP 668: never the system interpreter's pip, only the venv's.
        assert re.findall(r"(\S+) -m pip", command) == [".venv/bin/python"] * command.count(" pip ")
    assert commands[0].endswith(".venv/bin/tsos-rules sync --html tsos-report.html")
    assert commands[1].endswith(".venv/bin/python -m pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci
    assert "python3 -m venv .venv" not in [line.strip() for line in ci]
