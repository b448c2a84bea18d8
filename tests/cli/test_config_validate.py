"""``tsos-rules config validate [FILE]``: every table, one line per problem, exit 0 or 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.cli.sync import EXAMPLE_CONFIG


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], str]:
    def save(text: str) -> str:
        path = tmp_path / "tsos-rules.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return save


def test_the_example_config_is_valid_once_its_token_is_set(
    cli: Callable[..., Any], write: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(EXAMPLE_CONFIG)
    missing = cli("config", "validate", path)
    assert missing.code == 2
    assert f"error: {path}: serve.token:" in missing.err and "TSOS_RULES_SERVE_TOKEN" in missing.err
    monkeypatch.setenv("TSOS_RULES_SERVE_TOKEN", "s3cret-value")
    valid = cli("config", "validate", path)
    assert (valid.code, valid.out) == (0, f"ok    {path}: every table is valid\n")
    assert "s3cret-value" not in valid.out + valid.err


def test_each_problem_names_file_table_and_key(
    cli: Callable[..., Any], write: Callable[[str], str]
) -> None:
    path = write(
        '[connector]\ntype = "nope"\n\n[packs.tsos]\nslip_count = "three"\n\n'
        '[serve]\ntoken = "a literal token"\n'
    )
    result = cli("config", "validate", path)
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, result.err
    assert any(f"{path}: packs.tsos.slip_count:" in line for line in errors)
    assert any(f"{path}: connector.type: no connector 'nope'" in line for line in errors)
    assert any(f"{path}: serve.token:" in line for line in errors)
    assert "a literal token" not in result.err
    assert "Traceback" not in result.err


def test_a_connectors_own_settings_are_checked_without_contacting_it(
    cli: Callable[..., Any], write: Callable[[str], str], tmp_path: Path
) -> None:
    crm = tmp_path / "demo.sqlite3"
    path = write(f'[connector]\ntype = "local"\npath = "{crm}"\nopportunities = -1\n')
    result = cli("config", "validate", path)
    assert result.code == 2 and f"{path}: connector.opportunities:" in result.err
    assert not crm.exists(), "validating never creates or seeds a CRM"
    assert cli("config", "validate", write(f'[connector]\npath = "{crm}"\n')).code == 0
    assert not crm.exists()


def test_an_unreadable_or_missing_file_is_exit_2(
    cli: Callable[..., Any], tmp_path: Path, write: Callable[[str], str]
) -> None:
    missing = cli("config", "validate", str(tmp_path / "nope.toml"))
    assert missing.code == 2 and "nope.toml: cannot read" in missing.err
    broken = cli("config", "validate", write("[sync\n"))
    assert broken.code == 2 and "not valid TOML" in broken.err
