"""``tsos-rules exempt add|list|revoke``: waive a finding on record, list, revoke; bad input."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.sync.state import StateStore

Cli = Callable[..., Any]
SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()


@pytest.fixture
def synced(org: Any, tmp_path: Path) -> tuple[Any, str]:
    """The demo org synced once in annotate mode, and a config file pointing at it."""
    org.sync()
    path = tmp_path / "tsos.toml"
    path.write_text(
        f"[connector]\ntype = 'local'\npath = '{org.crm_path}'\n"
        f"[state]\npath = '{org.state_path}'\n",
        encoding="utf-8",
    )
    return org, str(path)


def _worklist(cli: Cli, config: str, *args: str) -> list[dict[str, Any]]:
    result = cli("findings", "--config", config, "--format", "json", *args)
    return list(json.loads(result.out))


def test_an_exempt_finding_leaves_the_worklist_until_revoked(cli: Cli, synced: Any) -> None:
    _, config = synced
    row = _worklist(cli, config)[0]
    result = cli(
        "exempt", "add", row["fingerprint"], "--reason", "merger: legal hold", "--until", SOON,
        "--by", "CFO", "--config", config,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "waived until" in result.out
    assert row["fingerprint"] not in {r["fingerprint"] for r in _worklist(cli, config)}
    exempt = _worklist(cli, config, "--status", "exempt")
    assert [r["fingerprint"] for r in exempt] == [row["fingerprint"]]
    listed = json.loads(cli("exempt", "list", "--config", config, "--format", "json").out)
    assert [(e["status"], e["reason"], e["approver"]) for e in listed] == [
        ("active", "merger: legal hold", "CFO")
    ]
    assert (
        cli("exempt", "revoke", str(listed[0]["id"]), "--by", "CFO", "--config", config).code == 0
    )
    assert row["fingerprint"] in {r["fingerprint"] for r in _worklist(cli, config)}
    listed = json.loads(cli("exempt", "list", "--config", config, "--format", "json").out)
    assert listed[0]["status"] == "revoked" and listed[0]["revoked_by"] == "CFO"


def test_a_rule_on_a_record_is_waived_and_the_table_lists_it(cli: Cli, synced: Any) -> None:
    _, config = synced
    row = next(r for r in _worklist(cli, config) if r["record_type"] == "opportunity")
    record = f"opportunity:{row['record_id']}"
    result = cli(
        "exempt", "add", "--rule", row["rule"], "--record", record, "--reason", "buyer on leave",
        "--until", SOON, "--by", "Dana", "--config", config,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert row["fingerprint"] in {
        r["fingerprint"] for r in _worklist(cli, config, "--status", "exempt")
    }
    table = cli("exempt", "list", "--config", config).out
    assert "buyer on leave" in table and "active" in table and record.replace(":", " ") in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule", "tsos.no-such-rule", "--record", "opportunity:o1"], "matches no loaded rule"),
        (
            ["--rule", "tsos.next-step-required", "--record", "deal:o1"],
            "--record: expected TYPE:ID",
        ),
        (["--rule", "tsos.next-step-required"], "give a FINGERPRINT, or --rule and --record"),
        (["0" * 32], "no finding 0000"),
        (["not-a-fingerprint"], "expected 32 hex characters"),
    ],
)
def test_what_cannot_be_waived_is_refused_with_exit_2(
    cli: Cli, synced: Any, args: list[str], message: str
) -> None:
    _, config = synced
    result = cli(
        "exempt", "add", *args, "--reason", "r", "--until", SOON, "--by", "b", "--config", config
    )
    assert result.code == 2 and message in result.err, result.err
    assert json.loads(cli("exempt", "list", "--config", config, "--format", "json").out) == []


@pytest.mark.parametrize(
    ("until", "reason", "message"),
    [
        ("2001-01-01", "r", "is in the past"),
        ((dt.date.today() + dt.timedelta(days=181)).isoformat(), "r", "more than 180 days"),
        ("next week", "r", "expected a date YYYY-MM-DD"),
        (SOON, "  ", "--reason: must not be empty"),
    ],
)
def test_an_exemption_needs_a_near_date_and_a_reason(
    cli: Cli, synced: Any, until: str, reason: str, message: str
) -> None:
    _, config = synced
    result = cli(
        "exempt", "add", "--rule", "tsos.next-step-required", "--record", "opportunity:o1",
        "--reason", reason, "--until", until, "--by", "b", "--config", config,
    )  # fmt: skip
    assert result.code == 2 and message in result.err, result.err


def test_revoking_twice_or_an_unknown_id_is_exit_2(cli: Cli, synced: Any) -> None:
    org, config = synced
    assert "no such exemption" in cli("exempt", "revoke", "99", "--by", "x", "--config", config).err
    store = StateStore(Path(org.state_path))
    try:
        new = store.add_exemption(
            "local", rule="tsos.*", record_type="lead", record_id="l1", reason="r",
            approver="a", expires=dt.date.today(),
        )  # fmt: skip
    finally:
        store.close()
    assert cli("exempt", "revoke", str(new), "--by", "x", "--config", config).code == 0
    again = cli("exempt", "revoke", str(new), "--by", "x", "--config", config)
    assert again.code == 2 and "already revoked" in again.err


def test_a_channel_deal_without_its_partner_is_never_waived(cli: Cli, synced: Any) -> None:
    """DOCTRINE.md, tip #28: "When can you take a channel lead direct? NEVER." """
    _, config = synced
    rows = _worklist(cli, config, "--rule", "tsos.channel-lead-not-direct")
    lost = next(r for r in rows if r["reason"] in ("no_partner", "marked_direct"))
    by_fingerprint = cli(
        "exempt", "add", lost["fingerprint"], "--reason", "r", "--until", SOON, "--by", "b",
        "--config", config,
    )  # fmt: skip
    assert by_fingerprint.code == 2
    assert "NEVER" in by_fingerprint.err and "recorded consent" in by_fingerprint.err
    by_rule = cli(
        "exempt", "add", "--rule", "tsos.*", "--record", f"opportunity:{lost['record_id']}",
        "--reason", "r", "--until", SOON, "--by", "b", "--config", config,
    )  # fmt: skip
    assert by_rule.code == 2 and "NEVER" in by_rule.err
    assert json.loads(cli("exempt", "list", "--config", config, "--format", "json").out) == []
