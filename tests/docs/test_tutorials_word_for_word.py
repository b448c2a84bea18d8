"""Each tutorial followed word for word, as a newcomer would: in an empty directory, with a
fresh virtual environment, saving every file it shows and running every command it shows.

A code block whose first line is a comment naming a path (``# pyproject.toml``) is saved there
(``# path (continued)`` appends to it); a ``console`` block's ``$`` lines are run in order, in
that directory, with the directory's ``.venv/bin`` first on PATH (what ``. .venv/bin/activate``
does). Output lines a tutorial shows after a command must appear in what it printed; a command
shown without output must exit 0. The one substitution: ``pip install "tsos-rules[...]"``
installs this checkout (the package is not fetched from PyPI here).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.slow

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_FILE = re.compile(r"^(?:#|//) ([\w./-]+\.\w+)( \(continued\))?$")


def steps(tutorial: Path) -> list[tuple[str, str, str]]:
    """The tutorial's steps in order: ``("file", path, text)``, ``("append", path, text)`` or
    ``("run", command, shown output)``."""
    found: list[tuple[str, str, str]] = []
    for lang, body in _FENCE.findall(tutorial.read_text(encoding="utf-8")):
        first, _, rest = body.partition("\n")
        named = _FILE.match(first)
        if lang == "console":
            for chunk in ("\n" + body).split("\n$ ")[1:]:
                command, _, shown = chunk.partition("\n")
                found.append(("run", command, shown))
        elif named:
            found.append(("append" if named[2] else "file", named[1], rest))
    return found


def _environment(work: Path, venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TSOS_RULES_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        XDG_DATA_HOME=str(work / "data"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def _this_checkout(command: str) -> str:
    return re.sub(r'"tsos-rules(\[[\w,]+\])?"', lambda m: f'-e "{ROOT}{m[1] or ""}"', command)


def follow(tutorial: Path, work: Path, *, set_up: list[str] | None = None) -> list[str]:
    """Do every step of ``tutorial`` in ``work``; returns the commands run. With ``set_up``
    (the commands that made the venv of an earlier tutorial), the steps that repeat them use
    that venv instead of making another one."""
    venv = work / ".venv"
    if set_up is not None:
        venv = Path(set_up[-1])
        set_up = set_up[:-1]
    env = _environment(work, venv)
    ran = []
    for kind, what, text in steps(tutorial):
        if set_up and kind == "run" and what == set_up[0]:
            set_up.pop(0)
            ran.append(what)
            continue
        if kind != "run":
            path = work / what
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if kind == "append" else "w", encoding="utf-8") as out:
                out.write(text)
            continue
        command = _this_checkout(what)
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        printed = result.stdout + result.stderr
        shown = [line.strip() for line in text.splitlines() if line.strip()]
        where = f"{tutorial.name}: $ {what}\n--- exit {result.returncode}, printed:\n{printed}"
        if not shown:
            assert result.returncode == 0, where
        for line in shown:
            assert line in printed, f"{where}\n--- the tutorial shows: {line}"
        ran.append(what)
    return ran


def test_the_steps_are_found() -> None:
    """The parser sees what a reader sees: the files to save and the commands to run."""
    pack = steps(DOCS / "tutorial-rule-pack.md")
    assert ("run", 'pip install "tsos-rules[testing]"', "") in pack
    assert {what for kind, what, _ in pack if kind == "file"} >= {
        "pyproject.toml",
        "acme_tsos_rules/acme-hygiene.yaml",
        "acme_tsos_rules/plugin.py",
        "tests/test_acme.py",
    }
    connector = steps(DOCS / "tutorial-connector.md")
    assert any(kind == "file" and what == "pyproject.toml" for kind, what, _ in connector)
    assert any(kind == "run" and "pytest" in what for kind, what, _ in connector)


def test_the_tutorials_work_word_for_word(tmp_path: Path) -> None:
    """Both tutorials, each in its own empty directory. The connector tutorial's set-up steps
    are the rule-pack tutorial's, word for word; it reuses that venv rather than installing the
    same again, which halves this test's time."""
    pack, connector = tmp_path / "rule-pack", tmp_path / "connector"
    pack.mkdir()
    connector.mkdir()
    ran = follow(DOCS / "tutorial-rule-pack.md", pack)
    set_up = [c for c in ran if c.startswith(("python3 -m venv", ". .venv", 'pip install "'))]
    assert len(set_up) == 3
    ran_too = follow(
        DOCS / "tutorial-connector.md", connector, set_up=[*set_up, str(pack / ".venv")]
    )
    assert ran_too[:3] == set_up, "the connector tutorial sets up as the rule-pack one does"
    for commands in (ran, ran_too):
        assert commands[0] == "python3 -m venv .venv", "a tutorial starts from a fresh venv"
        assert any(command.startswith("python -m pytest") for command in commands)
    assert (connector / "jsonl_connector.py").is_file()
    assert (pack / "acme_tsos_rules" / "plugin.py").is_file()
