"""The ``tsos_rules`` entry point: registers the ``hubspot`` connector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsos_rules import hookimpl
from tsos_rules_hubspot.connector import HubSpotConnector


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """``[connector] type = "hubspot"`` builds a :class:`HubSpotConnector` from the table."""
    register("hubspot", HubSpotConnector.from_settings)
