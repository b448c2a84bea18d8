"""The tutorials end in runnable examples; the test suite runs them as a reader would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tsos_rules import RulePack, load_declarative_pack
from tsos_rules.testing.docs import python_blocks

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
#: Plugins the examples' own test runs do not need (hypothesis alone takes seconds to import).
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )


def console_block(tutorial: str, command: str) -> list[str]:
    """The output lines a tutorial's ``console`` block shows after ``$ command``."""
    lines = (ROOT / "docs" / tutorial).read_text(encoding="utf-8").splitlines()
    start = lines.index(f"$ {command}") + 1
    out = []
    for line in lines[start:]:
        if line.startswith(("$ ", "```")):
            break
        out.append(line)
    return out


def test_the_connector_example_prints_what_the_tutorial_shows() -> None:
    result = run("docs/examples/jsonl_connector.py")
    assert result.returncode == 0, result.stderr
    expected = console_block("tutorial-connector.md", "python docs/examples/jsonl_connector.py")
    assert result.stdout.splitlines() == expected


def test_the_rule_pack_example_prints_what_the_tutorial_shows() -> None:
    result = run("docs/examples/run_rule_packs.py")
    assert result.returncode == 0, result.stderr
    expected = console_block("tutorial-rule-pack.md", "python docs/examples/run_rule_packs.py")
    assert result.stdout.splitlines() == expected


def test_the_example_test_suites_pass() -> None:
    """Both tutorials' test files in one pytest run: the rule packs' tests written with the
    kit, and the JSON-lines connector against the ConnectorContract."""
    result = run(
        "-m",
        "pytest",
        "-q",
        *FAST,
        "-p",
        "tsos_rules.testing.pytest_plugin",
        str(EXAMPLES / "test_acme_packs.py"),
        str(EXAMPLES / "test_jsonl_connector.py"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stdout and "error" not in result.stdout
    assert " passed" in result.stdout, result.stdout


def test_the_tutorials_yaml_is_a_valid_pack_matching_the_example_file() -> None:
    text = (ROOT / "docs" / "tutorial-rule-pack.md").read_text(encoding="utf-8")
    snippet = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    pack = load_declarative_pack(yaml.safe_load(snippet))
    assert [spec.id for spec in pack.specs] == ["acme-hygiene.discount-approval"]
    full = load_declarative_pack(EXAMPLES / "acme-hygiene.yaml")
    assert pack.specs[0] == full.specs[0]


def test_the_tutorials_python_pack_is_valid() -> None:
    # The module sits beside the YAML file it loads (Part 1), as in the tutorial's package.
    namespace: dict[str, object] = {"__file__": str(EXAMPLES / "plugin.py")}
    exec(python_blocks(ROOT / "docs" / "tutorial-rule-pack.md")[0], namespace)
    pack = namespace["PACK"]
    assert isinstance(pack, RulePack)
    pack.validate()
    assert [spec.id for spec in pack.specs] == ["acme.big-deal-sponsor"]
