"""The local demo CRM (SQLite), registered as ``local``: the embedded CRM and its demo org."""

from tsos_rules.connectors.local.connector import (
    LocalConnector,
    LocalCRM,
    default_crm_path,
    iter_org_json,
    tsos_rules_register_connectors,
)

__all__ = [
    "LocalCRM",
    "LocalConnector",
    "default_crm_path",
    "iter_org_json",
    "tsos_rules_register_connectors",
]
