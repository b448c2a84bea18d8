"""The shipped config JSON Schema agrees with the one settings reader, key for key."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import tsos_rules
import tsos_rules.config as config_module
from tsos_rules.config import load_config
from tsos_rules.errors import ConfigError
from tsos_rules.server.settings import ServeSettings
from tsos_rules.sync.notify import NotifySettings
from tsos_rules.sync.settings import SyncSettings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(
    (Path(tsos_rules.__file__).parent / "schemas" / "config.schema.json").read_text("utf-8")
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def _schema_keys(node: dict[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """(table, key) for every key the schema names, tables as dotted paths."""
    for key, sub in node.get("properties", {}).items():
        yield where, key
        if isinstance(sub, dict) and "properties" in sub:
            yield from _schema_keys(sub, f"{where}.{key}" if where else key)


def _read_everything(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Every key each reader asks for, by table, when the whole file is read."""
    asked: dict[str, set[str]] = {}
    done = config_module.SettingsTable.done

    def recording(self: config_module.SettingsTable, *ignored: str) -> None:
        asked.setdefault(self.where, set()).update(self._seen | set(ignored))
        done(self, *ignored)

    monkeypatch.setattr(config_module.SettingsTable, "done", recording)
    monkeypatch.setenv("TSOS_TEST_SERVE_TOKEN", "t" * 32)
    config = load_config(path)
    SyncSettings.from_config(config)
    NotifySettings.from_config(config)
    ServeSettings.from_mapping(config.serve, file=path)
    return asked


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_example_config_init_writes_is_valid() -> None:
    document = tomllib.loads((ROOT / "docs" / "example-config.toml").read_text("utf-8"))
    VALIDATOR.validate(_jsonable(document))


def test_every_key_a_reader_knows_is_in_the_schema_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tsos.toml"
    path.write_text(
        "[org]\n[rules]\n[plugins]\n[engine]\n[sync]\n[state]\n[notify]\n"
        '[serve]\ntoken = {env = "TSOS_TEST_SERVE_TOKEN"}\n',
        encoding="utf-8",
    )
    asked = _read_everything(path, monkeypatch)
    org_keys = {"stage_ladder", "lock_stage", "placeholders", "partner_sources",
                "qualified_lead_statuses", "closed_lead_statuses", "fiscal_year_start_month",
                "timezone", "holidays"}  # fmt: skip
    asked["org"] = org_keys  # OrgProfile.from_mapping reads [org] itself
    schema = {}
    for table, key in _schema_keys(SCHEMA, ""):
        if table:
            schema.setdefault(table, set()).add(key)
    top = {key for table, key in _schema_keys(SCHEMA, "") if not table}
    for table in ("org", "rules", "plugins", "engine", "sync", "state", "serve", "notify"):
        assert table in top
        assert asked.get(table, set()) == schema.get(table, set()), table
    for table in ("serve.hubspot", "serve.salesforce"):
        assert asked.get(table, set()) == schema.get(table, set()), table


@pytest.mark.parametrize(
    "text",
    [
        "[org]\nfiscal_year_start_month = 13\n",
        "[sync]\nbatch_size = 0\n",
        '[sync]\nmode = "loud"\n',
        "[serve]\nport = 70000\n",
        "[sync]\nmood = 1\n",
        '[engine]\nexecutor = "gpu"\n',
        '[notify]\non = "sometimes"\n',
        "[notify]\nurls = 'json://example.org/hook'\n",
        "[sync]\nhistory_days = -1\n",
        "[colour]\nred = 1\n",
    ],
)
def test_what_the_schema_refuses_the_reader_refuses(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert list(VALIDATOR.iter_errors(_jsonable(tomllib.loads(text)))), text
    token = '[serve]\ntoken = {env = "TSOS_TEST_SERVE_TOKEN"}\n'
    body = text.replace("[serve]\n", token) if text.startswith("[serve]") else token + text
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError):
        _read_everything(path, monkeypatch)
