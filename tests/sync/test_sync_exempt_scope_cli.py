"""``tsos-rules exempt add --account/--partner``: a rule waived on every record of an account or
a partner, listed with its scope and source; bad combinations exit 2 naming the option."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., Any]
SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()


@pytest.fixture
def synced(org: Any, tmp_path: Path) -> tuple[Any, str]:
    org.sync()
    path = tmp_path / "tsos.toml"
    path.write_text(
        f"[connector]\ntype = 'local'\npath = '{org.crm_path}'\n"
        f"[state]\npath = '{org.state_path}'\n",
        encoding="utf-8",
    )
    return org, str(path)


def _busiest_account(org: Any) -> tuple[str, set[str]]:
    state = org.state()
    try:
        (account_id,) = state.db.execute(
            "SELECT account_id FROM findings WHERE status = 'open' AND account_id IS NOT NULL "
            "AND rule LIKE 'tsos.next-step-%' GROUP BY account_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        covered = {
            row[0]
            for row in state.db.execute(
                "SELECT fingerprint FROM findings WHERE status = 'open' AND account_id = ? "
                "AND rule LIKE 'tsos.next-step-%'",
                (account_id,),
            )
        }
    finally:
        state.close()
    return account_id, covered


def test_an_account_exemption_waives_the_rule_on_every_record_of_the_account(
    cli: Cli, synced: Any
) -> None:
    org, config = synced
    account_id, covered = _busiest_account(org)
    result = cli(
        "exempt", "add", "--rule", "tsos.next-step-*", "--account", account_id,
        "--reason", "merger", "--until", SOON, "--by", "CFO", "--config", config,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"every record of account {account_id}" in result.out
    rows = json.loads(
        cli("findings", "--config", config, "--format", "json", "--status", "exempt").out
    )
    assert {r["fingerprint"] for r in rows} == covered
    table = cli("exempt", "list", "--config", config).out
    assert f"every record of account {account_id}" in table and "state" in table
    (listed,) = json.loads(cli("exempt", "list", "--config", config, "--format", "json").out)
    assert (listed["account_id"], listed["source"], listed["record_id"]) == (
        account_id,
        "state",
        "",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rule", "tsos.*", "--account", "a1", "--record", "opportunity:o1"), "give one of"),
        (("--rule", "tsos.channel-lead-not-direct", "--partner", "p1"), "NEVER"),
        (("--rule", "tsos.*", "--partner", " "), "--partner: must not be empty"),
    ],
)
def test_bad_scopes_exit_2(cli: Cli, synced: Any, args: tuple[str, ...], message: str) -> None:
    _, config = synced
    result = cli(
        "exempt", "add", *args, "--reason", "r", "--until", SOON, "--by", "CFO", "--config", config
    )
    assert result.code == 2
    assert message in result.err
    assert json.loads(cli("exempt", "list", "--config", config, "--format", "json").out) == []
