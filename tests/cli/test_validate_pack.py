"""``tsos-rules validate-pack PATH`` (and ``tsos-rules rules validate PATH`` once ``rules`` is a
command group): checks declarative pack files, naming the rule and the offending key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest

from tsos_rules.cli import main

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "acme-hygiene.yaml"

GOOD = {
    "name": "mine",
    "version": "1",
    "rules": [
        {
            "id": "mine.no-amount",
            "severity": "warn",
            "record_type": "opportunity",
            "title": "Deals have an amount",
            "reason": "no_amount",
            "message": "Deal {name} has no amount.",
            "when": {"is_open": True, "amount": {"exists": False}},
        }
    ],
}


def commands() -> list[tuple[str, ...]]:
    out = [("validate-pack",)]
    if isinstance(main.commands.get("rules"), click.Group):
        out.append(("rules", "validate"))
    return out


@pytest.fixture(params=commands(), ids=" ".join)
def validate(request: pytest.FixtureRequest, tsos_cli: Any) -> Any:
    def invoke(*args: str) -> Any:
        return tsos_cli(*request.param, *args)

    return invoke


def write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document) if name.endswith(".json") else document, encoding="utf-8")
    return path


def test_a_valid_pack_passes(validate: Any) -> None:
    result = validate(str(EXAMPLE))
    assert result.code == 0, result.out
    assert result.out.startswith(f"ok    {EXAMPLE}: pack acme-hygiene 1.0.0, 2 rule(s): ")


def test_an_invalid_pack_names_the_rule_and_the_key(validate: Any, tmp_path: Path) -> None:
    broken = json.loads(json.dumps(GOOD))
    broken["rules"][0]["when"]["amount"] = {"exist": False}
    path = write(tmp_path, "broken.json", broken)
    result = validate(str(path))
    assert result.code == 2
    assert result.out.startswith(f"FAIL  {path}: mine.no-amount: when.amount.exist: ")
    assert "unknown operator 'exist'" in result.out


def test_a_yaml_syntax_error_names_the_line(validate: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: x\nrules: [\n")
    result = validate(str(path))
    assert result.code == 2 and "line" in result.out


def test_a_directory_is_checked_file_by_file(validate: Any, tmp_path: Path) -> None:
    write(tmp_path, "good.json", GOOD)
    write(tmp_path, "bad.json", {**GOOD, "severity": "loud"})
    (tmp_path / "notes.txt").write_text("not a pack", encoding="utf-8")
    result = validate(str(tmp_path), "--format", "json")
    assert result.code == 2
    verdicts = {Path(row["path"]).name: row for row in result.json()}
    assert set(verdicts) == {"good.json", "bad.json"}
    assert verdicts["good.json"]["ok"] and verdicts["good.json"]["rules"] == ["mine.no-amount"]
    assert not verdicts["bad.json"]["ok"] and "severity" in verdicts["bad.json"]["error"]
    table = validate(str(tmp_path))
    assert table.out.rstrip().endswith("1 of 2 pack file(s) valid.")


def test_missing_paths_and_empty_directories(validate: Any, tmp_path: Path) -> None:
    missing = validate(str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "no such file" in missing.out
    empty = validate(str(tmp_path))
    assert empty.code == 2 and "no pack files" in empty.err


def test_help_has_examples(tsos_cli: Any) -> None:
    result = tsos_cli("validate-pack", "--help")
    assert result.code == 0 and "Examples:" in result.out
