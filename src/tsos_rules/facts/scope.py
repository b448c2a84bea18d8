"""The account and partner a judged record belongs to: what exemptions scoped to an account or
a partner match on. Workers of a sharded check compute them for their findings, so the driver
marks exemptions without holding the records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tsos_rules.facts.index import FactIndex
from tsos_rules.findings import Finding

#: (account id, partner id), each None when unknown.
Scope = tuple[str | None, ...]
#: Scopes by (record type, record id).
Scopes = Mapping[tuple[str, str], Scope]

NO_SCOPE: Scope = (None, None)


def record_scope(index: FactIndex, record_type: str, record_id: str) -> Scope:
    """The (account id, partner id) a record belongs to, as the sync's worklist names them."""
    if record_type == "opportunity":
        deal = index.opportunities.get(record_id)
        if deal is None:
            return NO_SCOPE
        account = index.accounts.get(deal.account_id) if deal.account_id else None
        partner = deal.partner_id or (account.partner_of_record_id if account else None)
        return (deal.account_id, partner)
    if record_type == "lead":
        lead = index.leads.get(record_id)
        converted = getattr(lead, "account_id", None) if lead is not None else None
        return (
            converted if isinstance(converted, str) else None,
            lead.partner_id if lead is not None else None,
        )
    if record_type == "account":
        account = index.accounts.get(record_id)
        return (record_id, account.partner_of_record_id if account else None)
    for activity in index.snapshot.activities:
        if activity.id == record_id:
            account_id = getattr(activity, "account_id", None)
            account = index.accounts.get(account_id) if account_id else None
            return (account_id, account.partner_of_record_id if account else None)
    return NO_SCOPE


def scopes_of(index: FactIndex, findings: Iterable[Finding]) -> dict[tuple[str, str], Scope]:
    """The scope of each finding's record, by (record type, record id)."""
    out: dict[tuple[str, str], Scope] = {}
    for finding in findings:
        key = (finding.record_type, finding.record_id)
        if key not in out:
            out[key] = record_scope(index, *key)
    return out
