"""The commands (sync, demo reset, init, connectors), config validation and state migrations."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.cli.sync import EXAMPLE_CONFIG
from tsos_rules.config import Config
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.sync.settings import SyncSettings
from tsos_rules.sync.state import MIGRATIONS, SCHEMA_VERSION, StateError, StateStore

ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., Any]


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[sync]\nmood = 'annotate'\n", "sync.mood: unknown setting"),
        ("[sync]\nmode = 'fix-everything'\n", "sync.mode: expected report, annotate or enforce"),
        ("[sync]\nbatch_size = 0\n", "sync.batch_size: expected a whole number >= 1"),
        ("[sync.rule_modes]\n'tsos.next-step-required' = 'loud'\n", "sync.rule_modes.tsos"),
        ("[sync.rule_modes]\n'tsos.nope' = 'report'\n", "sync.rule_modes.tsos.nope: matches no"),
        ("[state]\nfile = 'x'\n", "state.file: unknown setting"),
        ("[connector]\npaht = 'x'\n", "connector.paht: unknown setting for the local connector"),
        ("[connector]\ntype = 'hubspot-ish'\n", "connector.type: no connector 'hubspot-ish'"),
        ("[connector]\nopportunities = -1\n", "connector.opportunities: expected a whole number"),
    ],
)
def test_config_errors_name_the_key(
    cli: Cli, tmp_path: Path, toml: str, named: str, data_dir: Path
) -> None:
    result = cli("sync", "--config", _write(tmp_path / "bad.toml", toml))
    assert result.code == 2
    assert named in result.err and "Traceback" not in result.err
    assert not (data_dir / "demo-crm.sqlite3").exists()  # nothing was seeded or synced


def test_the_example_config_is_valid_and_documented(cli: Cli, tmp_path: Path) -> None:
    assert (ROOT / "docs" / "example-config.toml").read_text(encoding="utf-8") == EXAMPLE_CONFIG
    settings = SyncSettings.from_config(Config.from_mapping(tomllib.loads(EXAMPLE_CONFIG)))
    assert settings.mode.value == "annotate" and settings.connector_type == "local"
    target = tmp_path / "tsos-rules.toml"
    assert cli("init", str(target)).code == 0
    assert target.read_text(encoding="utf-8") == EXAMPLE_CONFIG
    refused = cli("init", str(target))
    assert refused.code == 2 and "--force" in refused.err
    assert cli("init", str(target), "--force").code == 0


def test_sync_with_no_config_runs_on_the_demo_crm(cli: Cli, tmp_path: Path, data_dir: Path) -> None:
    reset = cli("demo", "reset", "--opportunities", "200", "--as-of", "2026-11-24")
    assert reset.code == 0 and "200 opportunities" in reset.out
    report = tmp_path / "report.html"
    result = cli("sync", "--format", "json", "--html", str(report), "--as-of", "2026-11-24")
    assert result.code == 1, result.err
    summary = result.json()
    assert summary["mode"] == "annotate" and summary["full"] and summary["connector"] == "local"
    assert summary["records"]["by_type"]["opportunities"] == 200
    assert summary["actions"]["written"] == summary["findings"]["open"] > 0
    assert "<svg" in report.read_text(encoding="utf-8")
    assert "sync started: full read" in result.err  # plain log lines when not on a terminal
    crm = LocalCRM(data_dir / "demo-crm.sqlite3")
    assert len(crm.tasks()) == summary["actions"]["written"]
    crm.close()
    # The table for people, and a second run that has nothing to do.
    again = cli("sync", "--as-of", "2026-11-24", "-q")
    assert again.code == 1 and "incremental run" in again.out and "exit 1:" in again.out
    assert again.err == ""
    # demo reset forgets the old state, so the next sync starts over with a full read.
    assert cli("demo", "reset", "--opportunities", "100", "--as-of", "2026-11-24").code == 0
    fresh = cli("sync", "--format", "json", "--as-of", "2026-11-24", "-q").json()
    assert fresh["full"] and fresh["findings"]["resolved"] == 0


def test_the_demo_crm_is_seeded_on_first_use(cli: Cli, tmp_path: Path, data_dir: Path) -> None:
    config = _write(tmp_path / "c.toml", "[connector]\nopportunities = 60\nseed = 3\n")
    result = cli("sync", "--config", config, "--format", "json", "--dry-run")
    assert result.code in (0, 1), result.err
    assert "seeding the demo CRM" in result.err
    assert result.json()["records"]["by_type"]["opportunities"] == 60
    assert (data_dir / "demo-crm.sqlite3").exists()


def test_connectors_lists_the_local_crm(cli: Cli) -> None:
    result = cli("connectors", "--format", "json")
    assert result.code == 0
    assert "local" in {row["name"] for row in json.loads(result.out)}


def test_an_old_state_file_is_migrated_and_a_newer_one_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    version, _, sql = MIGRATIONS[0]
    db.executescript(sql)
    db.execute("INSERT INTO cursors (connector, watermark) VALUES ('local', 'w1')")
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    store = StateStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.cursor("local").watermark == "w1"
    store.close()

    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer than this tsos-rules"):
        StateStore(path)
    config = _write(tmp_path / "c.toml", f'[state]\npath = "{path}"\n')
    result = cli("sync", "--config", config)
    assert result.code == 2 and "upgrade tsos-rules" in result.err
