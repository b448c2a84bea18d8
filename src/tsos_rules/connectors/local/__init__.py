"""The local demo CRM (SQLite), registered as ``local``: the embedded CRM and its demo org.

Registering it imports nothing heavy: the connector and its SQLite CRM are loaded only when a
local connector is built (or one of the names below is read), so ``check`` does not pay for
them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tsos_rules.markers import hookimpl

if TYPE_CHECKING:
    from tsos_rules.connectors.local.connector import LocalConnector, default_crm_path
    from tsos_rules.connectors.local.crm import LocalCRM, iter_org_json

__all__ = [
    "NAME",
    "LocalCRM",
    "LocalConnector",
    "default_crm_path",
    "iter_org_json",
    "tsos_rules_register_connectors",
]

#: The connector's name in ``[connector] type``.
NAME = "local"

#: The module each lazily loaded name comes from.
_LAZY = {
    "LocalConnector": "connector",
    "default_crm_path": "connector",
    "LocalCRM": "crm",
    "iter_org_json": "crm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def local_connector(settings: Mapping[str, Any]) -> LocalConnector:
    """The embedded demo CRM: one SQLite file, seeded with a generated org on first use."""
    from tsos_rules.connectors.local.connector import LocalConnector

    return LocalConnector.from_settings(settings)


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """Register the embedded demo CRM as connector ``local``."""
    register(NAME, local_connector)
