"""The SDK tests use the public pytest plugin's fixtures, as a plugin author's suite would."""

import pytest

from tsos_rules.testing.pytest_plugin import (  # noqa: F401  (fixtures, found by name)
    tsos_check,
    tsos_cli,
    tsos_engine,
    tsos_fake_crm,
    tsos_plugin,
)


@pytest.fixture(autouse=True)
def _sdk_isolated(isolated_env: None) -> None:
    """No config file and no installed third-party plugin unless a test asks for them."""
