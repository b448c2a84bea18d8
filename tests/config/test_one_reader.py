"""One settings reader for every table: the same error shape (file, table, key) everywhere,
and every command refuses the same mistakes when it loads the config."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.config import MAX_BATCH_SIZE, SYNC_MODES, SettingsTable, load_config
from tsos_rules.connectors.salesforce.settings import RetrySettings
from tsos_rules.errors import ConfigError
from tsos_rules.server import ServeSettings
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.planner import Mode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pipeline.json"
Cli = Callable[..., Any]


@pytest.fixture(autouse=True)
def data_dir(isolated_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("TSOS_RULES_DATA_DIR", str(path))
    return path


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tsos.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _caught(call: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    return caught.value


def _shape(error: ConfigError, file: Path | str | None, table: str, key: str) -> None:
    assert (error.file, error.table, error.key) == (
        None if file is None else str(file),
        table,
        key,
    )
    prefix = f"{file}: " if file is not None else ""
    assert str(error).startswith(f"{prefix}{table}.{key}: "), str(error)


# -- one test per dialect the reader replaced -------------------------------------------------


def test_core_tables_once_config_only(tmp_path: Path) -> None:
    path = _config(tmp_path, "[rules]\nselcet = ['tsos.*']\n")
    error = _caught(lambda: load_config(path))
    _shape(error, path, "rules", "selcet")
    assert "unknown setting (known: disabled, exemption_max_days, pack_dirs, rollout, select)" in (
        str(error)
    )


def test_sync_table_once_sync_only_names_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path, "[sync]\nmood = 'annotate'\n")
    _shape(_caught(lambda: run_sync(path)), path, "sync", "mood")


def test_local_connector_from_settings(tmp_path: Path, data_dir: Path) -> None:
    path = _config(tmp_path, "[connector]\ntype = 'local'\nseed = -3\n")
    error = _caught(lambda: run_sync(path))
    _shape(error, path, "connector", "seed")
    assert "expected a whole number >= 0, got -3" in str(error)
    assert not (data_dir / "demo-crm.sqlite3").exists()


def test_serve_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSOS_T", "a-token-of-sorts")
    token = {"token": {"env": "TSOS_T"}}
    path = tmp_path / "serve.toml"
    error = _caught(lambda: ServeSettings.from_mapping({**token, "prot": 1}, file=path))
    _shape(error, path, "serve", "prot")
    error = _caught(lambda: ServeSettings.from_mapping({**token, "port": 70000}, file=path))
    _shape(error, path, "serve", "port")
    nested = {**token, "salesforce": {"fields": {"opportunity": {"amout": "Amount"}}}}
    error = _caught(lambda: ServeSettings.from_mapping(nested, file=path))
    _shape(error, path, "serve.salesforce.fields.opportunity", "amout")
    settings = ServeSettings.from_mapping({**token, "port": 9000, "public_url": "https://x/"})
    assert (settings.port, settings.public_url) == (9000, "https://x")


def test_settings_table_as_connectors_use_it(tmp_path: Path) -> None:
    path = tmp_path / "sf.toml"
    retry = SettingsTable({"retry": {"max_retries": 11}}, "connector", file=path).table("retry")
    error = _caught(lambda: RetrySettings.parse(retry))
    _shape(error, path, "connector.retry", "max_retries")
    assert "expected a whole number >= 0 and <= 10, got 11" in str(error)


def test_a_connector_factory_error_gets_the_file_from_the_job(tmp_path: Path) -> None:
    path = _config(tmp_path, "[connector]\ntype = 'local'\npaht = 'x'\n")
    error = _caught(lambda: run_sync(path))
    _shape(error, path, "connector", "paht")
    assert "unknown setting for the local connector" in str(error)


# -- check and sync agree ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[sync]\nmood = 'annotate'\n", "sync.mood: unknown setting"),
        ("[sync]\nbatch_size = 0\n", "sync.batch_size: expected a whole number >= 1"),
        (f"[sync]\nbatch_size = {MAX_BATCH_SIZE + 1}\n", "sync.batch_size: expected a whole"),
        ("[sync]\nwrite_retries = -1\n", "sync.write_retries: expected a whole number >= 0"),
        ("[sync]\ndaily_full = 'yes'\n", "sync.daily_full: expected true or false"),
        ("[sync.rule_modes]\n'tsos.*' = 'loud'\n", "sync.rule_modes.tsos.*: expected report"),
        ("[state]\nfile = 'x'\n", "state.file: unknown setting"),
        ("[state]\npath = 3\n", "state.path: expected a file path"),
        ("[connector]\ntype = 7\n", "connector.type: expected a connector name"),
        ("[plugins]\ndisable = ['x']\n", "plugins.disable: unknown setting"),
        ("[org]\nfiscal_year_start_month = 13\n", "org.fiscal_year_start_month: expected 1 to 12"),
        ("[packs]\ntsos = 3\n", "packs.tsos: expected a table"),
    ],
)
def test_check_and_sync_refuse_the_same_mistakes(
    cli: Cli, tmp_path: Path, toml: str, named: str
) -> None:
    path = _config(tmp_path, toml)
    checked = cli("check", str(EXAMPLE), "--config", str(path))
    synced = cli("sync", "--config", str(path), "--dry-run")
    for result in (checked, synced):
        assert result.code == 2, result.err
        assert f"{path}: {named}" in result.err and "Traceback" not in result.err
    assert checked.err == synced.err


def test_check_and_sync_accept_the_same_good_config(cli: Cli, tmp_path: Path) -> None:
    crm = tmp_path / "crm.sqlite3"
    path = _config(
        tmp_path,
        "[sync]\nmode = 'report'\nbatch_size = 200\nwrite_retries = 0\ndaily_full = false\n"
        "task_min_severity = 'block'\n[sync.rule_modes]\n'tsos.*' = 'report'\n"
        f"[state]\npath = '{tmp_path / 'state.sqlite3'}'\n"
        f"[connector]\ntype = 'local'\npath = '{crm}'\nopportunities = 20\n",
    )
    plain = cli("check", str(EXAMPLE))
    checked = cli("check", str(EXAMPLE), "--config", str(path))
    assert (checked.code, checked.out) == (plain.code, plain.out)
    synced = cli("sync", "--config", str(path), "--dry-run")
    assert synced.code in (0, 1), synced.err
    assert crm.exists()


def test_sync_modes_are_the_planners() -> None:
    assert tuple(mode.value for mode in Mode) == SYNC_MODES


# -- the data directory ------------------------------------------------------------------------


def test_the_local_connector_does_not_import_the_sync() -> None:
    code = (
        "import sys, tsos_rules.connectors.local.connector as c; "
        "print(sorted(m for m in sys.modules if m.startswith('tsos_rules.sync')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_an_unknown_key_lists_every_known_key_of_its_table(tmp_path: Path) -> None:
    path = _config(tmp_path, "[sync]\nmood = 'annotate'\n")
    error = _caught(lambda: load_config(path))
    assert str(error) == (
        f"{path}: sync.mood: unknown setting (known: batch_size, daily_full, history_days, "
        "include_info, mode, rule_modes, task_min_severity, write_retries)"
    )
    serve = {"token": {"env": "PATH"}, "colour": 1}
    with pytest.raises(ConfigError, match=r"serve\.colour: unknown setting \(known: body_time"):
        ServeSettings.from_mapping(serve)
