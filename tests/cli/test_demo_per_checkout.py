"""The README's first command in two clones: each clone has its own demo CRM and sync state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tsos_rules.config import DATA_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def clone(where: Path) -> Path:
    """A checkout as far as the data directory can tell: ``pyproject.toml`` and ``src/``."""
    where.mkdir()
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    shutil.copytree(ROOT / "src", where / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return where


def sync(checkout: Path, home: Path) -> tuple[dict[str, object], str]:
    """``tsos-rules sync`` run from ``checkout`` with no config and no data-dir override."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TSOS_RULES_"))}
    env.update(PYTHONPATH=str(checkout / "src"), HOME=str(home), XDG_DATA_HOME=str(home / "d"))
    env["TSOS_RULES_DISABLE_PLUGINS"] = os.environ.get("TSOS_RULES_DISABLE_PLUGINS", "")
    assert DATA_DIR_ENV not in env
    result = subprocess.run(
        [sys.executable, "-m", "tsos_rules", "sync", "--format", "json"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    return json.loads(result.stdout), result.stderr


def test_a_second_clone_seeds_and_tasks_its_own_demo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, second = clone(tmp_path / "first"), clone(tmp_path / "second")

    summary, err = sync(first, home)
    assert summary["full"] is True
    assert summary["actions"]["written"] > 1000  # type: ignore[index]
    data = first / ".tsos-rules"
    assert err.splitlines()[0] == (
        f"tsos-rules: demo CRM {data / 'demo-crm.sqlite3'}; state {data / 'state.sqlite3'}"
        " (this checkout's own data dir)"
    )

    summary, err = sync(second, home)
    assert summary["full"] is True, "the second clone must not reuse the first clone's state"
    assert summary["actions"]["written"] > 1000  # type: ignore[index]
    assert str(second / ".tsos-rules" / "demo-crm.sqlite3") in err.splitlines()[0]

    again, _ = sync(first, home)
    assert again["actions"]["written"] == 0  # type: ignore[index]
    assert not (home / "d").exists(), "nothing is written to the user data dir"


def test_the_progress_notes_name_no_source_file() -> None:
    """On a terminal, notes print above the bar as plain lines: no time, no ``sync.py:123``."""
    import io

    from rich.console import Console

    from tsos_rules.cli.sync import RichProgress

    progress = RichProgress()
    progress.console = Console(file=io.StringIO(), width=100, force_terminal=True)
    progress.note("3 records skipped as unreadable")
    shown = progress.console.file.getvalue()  # type: ignore[attr-defined]
    assert "3 records skipped as unreadable" in shown
    assert ".py:" not in shown and "sync.py" not in shown
