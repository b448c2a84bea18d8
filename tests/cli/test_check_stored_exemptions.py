"""``check`` honours the exemptions ``tsos-rules exempt add`` stored in the configured state
file, as ``sync`` does: the block is listed as exempt with the exemption's id and the exit code
is 0; after ``exempt revoke`` it is 1 again. Without a state file nothing is read or created."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.testing import deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

Cli = Callable[..., Any]
TODAY = dt.date.today().isoformat()
SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def _config(tmp_path: Path) -> tuple[str, Path]:
    state = tmp_path / "state" / "state.sqlite3"
    path = tmp_path / "tsos.toml"
    path.write_text(f"[connector]\ntype = 'local'\n[state]\npath = '{state}'\n", encoding="utf-8")
    return str(path), state


def _check(cli: Cli, name: str, config: str, *args: str) -> Any:
    return cli("check", name, "--as-of", TODAY, "--config", config, *args)


def test_an_exemption_added_on_record_makes_check_exit_0_until_revoked(
    cli: Cli, write_json: Callable[..., str], tmp_path: Path
) -> None:
    name = write_json(snapshot(opportunities=[deal("o1", next_step="TBD")]))
    config, _ = _config(tmp_path)
    assert _check(cli, name, config).code == 1
    added = cli(
        "exempt", "add", "--rule", "tsos.next-step-required", "--record", "opportunity:o1",
        "--reason", "buyer on leave until January", "--until", SOON, "--by", "Dana (RVP)",
        "--config", config,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert added.out.startswith("exemption 1:")

    shown = _check(cli, name, config, "--format", "json")
    assert shown.code == 0, shown.out + shown.err
    (finding,) = [f for f in shown.json()["findings"] if f["rule"] == "tsos.next-step-required"]
    assert finding["status"] == "exempt"
    assert finding["exemption"] == {
        "id": "1",
        "source": "state",
        "reason": "buyer on leave until January",
        "approver": "Dana (RVP)",
        "expires": SOON,
    }
    text = _check(cli, name, config)
    assert text.code == 0
    assert f"[exempt 1 until {SOON} (approved by Dana (RVP))]" in text.out

    assert cli("exempt", "revoke", "1", "--by", "Dana (RVP)", "--config", config).code == 0
    again = _check(cli, name, config, "--format", "json")
    assert again.code == 1
    statuses = {f["rule"]: f.get("status") for f in again.json()["findings"]}
    assert statuses["tsos.next-step-required"] != "exempt"


def test_without_a_state_file_check_creates_none(
    cli: Cli, write_json: Callable[..., str], tmp_path: Path
) -> None:
    name = write_json(snapshot(opportunities=[deal("o1", next_step="TBD")]))
    config, state = _config(tmp_path)
    result = _check(cli, name, config)
    assert result.code == 1 and "warning" not in result.err
    assert not state.parent.exists()


def test_a_damaged_state_file_is_named_and_check_still_judges(
    cli: Cli, write_json: Callable[..., str], tmp_path: Path
) -> None:
    name = write_json(snapshot(opportunities=[deal("o1", next_step="TBD")]))
    config, state = _config(tmp_path)
    state.parent.mkdir()
    state.write_bytes(b"garbage" * 1000)
    result = _check(cli, name, config)
    assert result.code == 1, result.err
    assert f"warning: {state}: the state file's exemptions cannot be read" in result.err
    assert "Traceback" not in result.err
    assert state.read_bytes() == b"garbage" * 1000
