"""The layering of DESIGN.md holds: ``lint-imports`` keeps every contract in pyproject.toml."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``src``, with this repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_import_contract_is_kept(tmp_path: Path) -> None:
    result = _lint(SRC, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_the_crm_contract_covers_all_of_core_and_forbids_every_crm_package() -> None:
    contract = _contracts()["crm-neutral-core"]
    children = {m.name: m.ispkg for m in pkgutil.iter_modules([str(SRC / "tsos_rules")])}
    connectors = {
        m.name: m.ispkg for m in pkgutil.iter_modules([str(SRC / "tsos_rules" / "connectors")])
    }
    core = {f"tsos_rules.{name}" for name in children if name != "connectors"}
    core |= {f"tsos_rules.connectors.{name}" for name, pkg in connectors.items() if not pkg}
    crms = {f"tsos_rules.connectors.{name}" for name, pkg in connectors.items() if pkg}
    assert set(contract["source_modules"]) == core
    assert crms <= set(contract["forbidden_modules"])


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("facts/__init__.py", "import tsos_rules.engine", "The data path"),
        ("snapshot/__init__.py", "import tsos_rules.facts", "The data path"),
        ("engine/__init__.py", "import tsos_rules.sync", "The data path"),
        ("sync/__init__.py", "import tsos_rules.server", "The data path"),
        ("connectors/base.py", "import tsos_rules.engine", "Connectors never import"),
        ("engine/__init__.py", "import tsos_rules.connectors.salesforce", "Core never names"),
    ],
)
def test_a_new_import_against_the_layers_breaks_a_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    copy = tmp_path / "src"
    shutil.copytree(
        SRC / "tsos_rules", copy / "tsos_rules", ignore=shutil.ignore_patterns("__pycache__")
    )
    target = copy / "tsos_rules" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{bad_import}\n")
    result = _lint(copy, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    # The planted import may break more than one contract (everything that reaches the module
    # it was planted in now reaches the forbidden one too); the named one must be among them.
    assert any(line.startswith(contract) for line in broken), result.stdout
