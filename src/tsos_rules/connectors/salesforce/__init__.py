"""The Salesforce connector, registered as ``salesforce`` through the connectors hook, and its
in-line adapter (``POST /v1/salesforce/check``) through the in-line adapters hook.

``[connector] type = "salesforce"``; see ``docs/salesforce.md`` for the Connected App set-up,
the field mapping and what the connector writes.

Registering it imports nothing heavy: simple-salesforce and requests are loaded only when a
Salesforce connector is built, so ``check`` and the in-line API do not pay for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tsos_rules.connectors.base import Problem
from tsos_rules.markers import hookimpl

if TYPE_CHECKING:
    import click

    from tsos_rules.connectors.salesforce.connector import (
        SalesforceConnector,
        SalesforceSettings,
    )

__all__ = [
    "Problem",
    "SalesforceConnector",
    "SalesforceSettings",
    "tsos_rules_register_connectors",
    "tsos_rules_register_inline_adapters",
]


def __getattr__(name: str) -> Any:
    if name in ("SalesforceConnector", "SalesforceSettings"):
        return getattr(importlib.import_module(f"{__name__}.connector"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def salesforce_connector(settings: Mapping[str, Any], **kwargs: Any) -> SalesforceConnector:
    """Reads an org incrementally and writes findings back, within the API budget."""
    from tsos_rules.connectors.salesforce.connector import SalesforceConnector

    return SalesforceConnector.from_settings(settings, **kwargs)


@hookimpl
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """Register the ``salesforce`` connector factory."""
    register("salesforce", salesforce_connector)


@hookimpl
def tsos_rules_register_inline_adapters(register: Callable[[Any], None]) -> None:
    """Register ``POST /v1/salesforce/check`` (same field map as the connector)."""
    from tsos_rules.connectors.salesforce.inline import ADAPTER

    register(ADAPTER)


@hookimpl
def tsos_rules_explain_notes(rule_id: str, config: Any) -> list[str] | None:
    """For a Salesforce config: the validation rules generated for the rule, exact or
    approximate, and where each is stricter or looser than the engine."""
    from tsos_rules.connectors.salesforce.validation.explain import explain_notes

    return explain_notes(rule_id, config)


@hookimpl
def tsos_rules_register_commands(cli: click.Group) -> None:
    """Add ``tsos-rules salesforce validation-rules`` (the doctrine as validation rules:
    written as SFDX source, diffed against the org, deployed through the Metadata API)."""
    from tsos_rules.connectors.salesforce.validation.command import validation_rules

    @cli.group("salesforce")
    def salesforce() -> None:
        """Salesforce-side tools: the doctrine compiled to native validation rules.

        \b
        Examples:
          tsos-rules salesforce validation-rules --out force-app/main/default
          tsos-rules salesforce validation-rules --out sfdx --inactive --config tsos-rules.toml
          tsos-rules salesforce validation-rules --diff
          tsos-rules salesforce validation-rules --deploy --check-only
        """

    salesforce.add_command(validation_rules)
