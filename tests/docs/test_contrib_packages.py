"""The contrib packages, as installed into this environment: their rules appear in
``tsos-rules rules`` and their plugins in ``tsos-rules plugins``. Each package's own tests run
in CI with ``python -m pytest contrib/<name>``; here only the installation is checked."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
PACKAGES = sorted(p.name for p in CONTRIB.iterdir() if (p / "pyproject.toml").exists())

#: Rules each rule-pack package must add (connector packages add none).
RULES = {
    "tsos-rules-channel-economics": [
        "channel-economics.partner-credit-limit",
        "channel-economics.discount-needs-size-and-timeframe",
        "channel-economics.tier-margin",
    ],
    "tsos-rules-mutual-operating-period": ["mutual-operating-period.partner-quarter-mismatch"],
    "tsos-rules-pipeline-hygiene": [
        "pipeline-hygiene.stalled-deal",
        "pipeline-hygiene.late-registration",
    ],
}


def project(package: str) -> dict[str, Any]:
    with (CONTRIB / package / "pyproject.toml").open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)["project"]
    return data


@pytest.fixture
def installed_names() -> set[str]:
    return {ep.name for ep in entry_points(group="tsos_rules")}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_is_a_real_plugin_package(package: str) -> None:
    meta = project(package)
    assert meta["name"] == package
    assert any(dep.startswith("tsos-rules") for dep in meta["dependencies"])
    assert meta["entry-points"]["tsos_rules"], "an entry point in the tsos_rules group"
    assert (CONTRIB / package / "README.md").stat().st_size > 200
    tests = list((CONTRIB / package / "tests").glob("test_*.py"))
    assert tests, "its own tests"


def test_test_file_names_are_unique_across_packages() -> None:
    """--import-mode=importlib is safe either way; unique names also keep rootdir runs safe."""
    names = [p.name for p in CONTRIB.glob("*/tests/test_*.py")]
    assert len(names) == len(set(names)), sorted(names)


@pytest.mark.parametrize("package", sorted(RULES))
def test_installed_packages_add_their_rules(
    package: str, installed_names: set[str], tsos_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = next(iter(project(package)["entry-points"]["tsos_rules"]))
    if plugin not in installed_names:
        pytest.skip(f"{package} is not installed (pip install -e contrib/{package})")
    monkeypatch.delenv("TSOS_RULES_DISABLE_PLUGINS", raising=False)
    listed = tsos_cli("rules", "--format", "json")
    assert listed.code == 0, listed.err
    ids = {row["id"] for row in listed.json()}
    assert set(RULES[package]) <= ids
    assert plugin in tsos_cli("plugins").out
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", plugin)
    assert not set(RULES[package]) & {
        row["id"] for row in tsos_cli("rules", "--format", "json").json()
    }
