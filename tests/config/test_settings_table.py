"""The strict settings reader connectors share: typed values, secret references, no stray keys."""

from __future__ import annotations

import pytest

from tsos_rules.config import SettingsTable
from tsos_rules.errors import ConfigError


def test_values_defaults_and_nested_tables() -> None:
    table = SettingsTable({"path": "crm.jsonl", "retry": {"max": 3}, "type": "x"}, "connector")
    assert table.string("path", "other") == "crm.jsonl"
    assert table.integer("batch", 200, low=1, high=2000) == 200
    assert table.table("retry").integer("max", 5, low=0) == 3
    table.done("type")


def test_a_key_nobody_read_is_named() -> None:
    table = SettingsTable({"pth": "crm.jsonl"}, "connector")
    table.string("path", "crm.jsonl")
    with pytest.raises(ConfigError, match=r"^connector\.pth: unknown setting"):
        table.done()


def test_a_literal_secret_is_refused_without_echoing_it() -> None:
    table = SettingsTable({"token": "pat-na1-123-secret"}, "connector")
    with pytest.raises(ConfigError) as caught:
        table.secret("token")
    assert "pat-na1-123-secret" not in str(caught.value)
    assert table.secret("missing") is None
    assert SettingsTable({"token": {"env": "T"}}, "c").secret("token") == {"env": "T"}


def test_wrong_types_and_ranges_name_the_key() -> None:
    table = SettingsTable({"batch": 0, "flag": "yes"}, "connector")
    with pytest.raises(ConfigError, match=r"connector\.batch: expected a whole number >= 1"):
        table.integer("batch", 200, low=1)
    with pytest.raises(ConfigError, match=r"connector\.flag: expected true or false"):
        table.boolean("flag", False)
