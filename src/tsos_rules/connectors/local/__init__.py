"""The local demo CRM (SQLite), registered as ``local``: the embedded CRM and its demo org."""

from tsos_rules.connectors.local.connector import (
    LocalConnector,
    default_crm_path,
    tsos_rules_register_connectors,
)
from tsos_rules.connectors.local.crm import LocalCRM, iter_org_json

__all__ = [
    "LocalCRM",
    "LocalConnector",
    "default_crm_path",
    "iter_org_json",
    "tsos_rules_register_connectors",
]
