"""Company groups: the unit the local CRM reads and re-judges together.

A company group is an account with every lead, deal and activity of the same company (the unit
the single-owner and partner-of-record rules compare). A lead that names a company but whose
account is unnamed or missing *bridges* two groups; bridged groups are read together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tsos_rules.org import company_key


def text_or_none(value: Any) -> str | None:
    """A relation value as the CRM column holds it (None for blanks)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def group_of_account(account_id: str, data: Mapping[str, Any]) -> str:
    """A named account groups by its normalised name, an unnamed one by its id (facts.py)."""
    name = data.get("name")
    if isinstance(name, str) and name:
        return "name:" + company_key(name)
    return f"account:{account_id}"


class CompanyGrouper:
    """A record's company group, mirroring facts.company_keys_of: records sharing an account
    id or a company name are one company. A lead whose account is unnamed or missing but that
    names a company carries both keys: it *bridges* the two groups (see ``lead_bridge``)."""

    def __init__(self, account_group: Callable[[str], tuple[bool, str] | None]) -> None:
        #: account id -> (has a name, group), or None when the account does not exist
        self.account_group = account_group

    def opportunity(self, record_id: str, data: Mapping[str, Any]) -> str:
        account_id = text_or_none(data.get("account_id"))
        if account_id is None:
            return f"opportunity:{record_id}"
        found = self.account_group(account_id)
        return found[1] if found else f"account:{account_id}"

    def _lead_keys(self, record_id: str, data: Mapping[str, Any]) -> tuple[str, str | None]:
        account_id = text_or_none(data.get("account_id"))
        found = self.account_group(account_id) if account_id else None
        if found and found[0]:
            return found[1], None
        company = data.get("company")
        name = "name:" + company_key(company) if isinstance(company, str) and company else None
        account = f"account:{account_id}" if account_id else None
        if name and account:
            return name, account
        return name or account or f"lead:{record_id}", None

    def lead(self, record_id: str, data: Mapping[str, Any]) -> str:
        return self._lead_keys(record_id, data)[0]

    def lead_bridge(self, record_id: str, data: Mapping[str, Any]) -> tuple[str, str] | None:
        """The two groups this lead joins, when it joins two."""
        group, other = self._lead_keys(record_id, data)
        return (min(group, other), max(group, other)) if other else None

    def activity(
        self, record_id: str, data: Mapping[str, Any], opportunity_group: str | None
    ) -> str:
        account_id = text_or_none(data.get("account_id"))
        found = self.account_group(account_id) if account_id else None
        if found:
            return found[1]
        if opportunity_group:
            return opportunity_group
        return f"account:{account_id}" if account_id else f"activity:{record_id}"


BRIDGE_INSERT = "INSERT OR IGNORE INTO group_bridges VALUES (?, ?)"
#: Bump when the grouping changes: files grouped otherwise are regrouped when opened.
GROUPING = "2"
