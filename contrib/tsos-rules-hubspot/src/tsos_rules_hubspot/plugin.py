"""The ``tsos_rules`` entry point: registers the ``hubspot`` connector and its in-line adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsos_rules import hookimpl
from tsos_rules_hubspot.connector import HubSpotConnector


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """``[connector] type = "hubspot"`` builds a :class:`HubSpotConnector` from the table."""
    register("hubspot", HubSpotConnector.from_settings)


@hookimpl
def tsos_rules_register_inline_adapters(register: Callable[[Any], None]) -> None:
    """``POST /v1/hubspot/check``: a deal from a workflow webhook, v3 signature or bearer token."""
    from tsos_rules_hubspot.inline import ADAPTER

    register(ADAPTER)
