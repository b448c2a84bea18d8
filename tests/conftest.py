"""Shared fixtures: an isolated environment and an in-process ``tsos-rules`` runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest

# The builders live beside this file; make them importable from every test directory.
sys.path.insert(0, str(Path(__file__).parent))

from tsos_rules.cli import run


@attrs.frozen
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


#: Rule packs and connectors installed as entry points (e.g. ``contrib/`` packages).
THIRD_PARTY_PLUGINS = ",".join(sorted({ep.name for ep in entry_points(group="tsos_rules")}))


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults only: no config file from the environment, no third-party plugins.

    The doctrine tests judge the built-in ``tsos`` pack; a pack installed into the same venv
    (e.g. a ``contrib/`` package) must not add findings or change exit codes under them.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("isolated_env")``.
    """
    monkeypatch.delenv("TSOS_RULES_CONFIG", raising=False)
    monkeypatch.delenv("TSOS_RULES_DEBUG", raising=False)
    if THIRD_PARTY_PLUGINS:
        monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", THIRD_PARTY_PLUGINS)
    else:
        monkeypatch.delenv("TSOS_RULES_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def cli(isolated_env: None, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``tsos-rules ARGS...`` in-process; returns exit code, stdout and stderr."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def write_json(
    isolated_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., str]:
    """Write a document into a fresh working directory; returns its relative file name."""
    monkeypatch.chdir(tmp_path)

    def write(document: Any, name: str = "snapshot.json") -> str:
        text = document if isinstance(document, str) else json.dumps(document)
        (tmp_path / name).write_text(text, encoding="utf-8")
        return name

    return write
