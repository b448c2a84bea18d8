"""The ``tabular`` connector, registered through the connectors hook: a CSV folder or any SQL
database (SQLAlchemy), mapped onto the snapshot by the config. See ``docs/tabular.md``.

Registering it imports nothing heavy: SQLAlchemy is loaded only when a connector is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tsos_rules.markers import hookimpl

if TYPE_CHECKING:
    from tsos_rules.connectors.base import Problem
    from tsos_rules.connectors.tabular.connector import TabularConnector
    from tsos_rules.connectors.tabular.settings import TabularSettings

__all__ = ["Problem", "TabularConnector", "TabularSettings", "tsos_rules_register_connectors"]

_LAZY = {
    "Problem": "check",
    "TabularConnector": "connector",
    "TabularSettings": "settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tabular_connector(settings: Mapping[str, Any], **kwargs: Any) -> TabularConnector:
    """A CRM in CSV files or an SQL database, through a field mapping."""
    from tsos_rules.connectors.tabular.connector import TabularConnector

    return TabularConnector.from_settings(settings, **kwargs)


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """Register the ``tabular`` connector factory."""
    register("tabular", tabular_connector)
