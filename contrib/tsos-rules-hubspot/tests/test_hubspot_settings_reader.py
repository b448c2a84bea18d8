"""The HubSpot table is read by core's one reader: errors name the file, the table and the key."""

from __future__ import annotations

import pytest
from tsos_rules_hubspot.settings import HubSpotSettings

from tsos_rules.config import naming_file
from tsos_rules.errors import ConfigError


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"page_size": 500}, "page_size"),
        ({"pagesize": 10}, "pagesize"),
        ({"partner_source": "guess"}, "partner_source"),
        ({"owner_roles": {"u1": "boss"}}, "owner_roles.u1"),
        ({"lead_fields": {"colour": "x"}}, "lead_fields.colour"),
    ],
)
def test_errors_have_the_shape_of_every_other_table(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught, naming_file("/etc/tsos.toml"):
        HubSpotSettings.from_mapping(table)
    error = caught.value
    assert (error.file, error.table, error.key) == ("/etc/tsos.toml", "connector", key)
    assert str(error).startswith(f"/etc/tsos.toml: connector.{key}: ")
