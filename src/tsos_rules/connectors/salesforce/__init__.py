"""The Salesforce connector, registered as ``salesforce`` through the connectors hook.

``[connector] type = "salesforce"``; see ``docs/salesforce.md`` for the Connected App set-up,
the field mapping and what the connector writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsos_rules.connectors.salesforce.connector import (
    Problem,
    SalesforceConnector,
    SalesforceSettings,
)
from tsos_rules.markers import hookimpl

__all__ = ["Problem", "SalesforceConnector", "SalesforceSettings", "tsos_rules_register_connectors"]


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """Register the ``salesforce`` connector factory."""
    register("salesforce", SalesforceConnector.from_settings)
