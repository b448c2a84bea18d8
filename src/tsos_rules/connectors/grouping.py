"""The key pass's company groups, shared by the connectors that read in pages of companies.

A paged read first reads only ids and grouping keys, then pages whole companies, so no record
is judged without the records its facts compare it with. The groups are the facts' own
(``CompanyGroups``, ``FactIndex.company_keys_of``): an account joins its normalised name; a
deal its account; a lead its account, its company name when its account is unknown or
unnamed, and the deal it was converted to; an activity goes with its account, else with its
deal, else with no company (an orphan, judged in a page of its own).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import attrs

from tsos_rules.facts.index import CompanyGroups
from tsos_rules.org import company_key

#: A page: the group nodes (``account:ID``, ``deal:ID``, ``lead:ID``) of some whole companies,
#: or None for the page of orphan activities.
Page = list[str] | None

_MEMBERS = ("account:", "deal:", "lead:")


@attrs.define
class KeyGroups:
    """Records grouped by company as a key pass reads them, and the nodes marked for reading.

    Feed accounts first, then deals, then leads, then activities: a lead on a named account is
    grouped by that account's name, and a lead or activity joins a deal the pass has seen.
    """

    groups: CompanyGroups = attrs.field(factory=CompanyGroups)
    named: set[str] = attrs.field(factory=set)
    """Accounts with a name: a lead on one groups by the account's name, not its company."""
    deals: set[str] = attrs.field(factory=set)
    touched: set[str] = attrs.field(factory=set)
    """Group nodes holding a record to judge (a full read judges every group)."""
    orphans_touched: bool = False

    def account(self, account_id: str, name: str | None) -> str:
        """Group an account with its normalised name; its node."""
        node = f"account:{account_id}"
        key = company_key(name) if name else ""
        self.groups.join([node, f"name:{key}"] if key else [node])
        if name:
            self.named.add(account_id)
        return node

    def deal(self, deal_id: str, account_id: str | None) -> str:
        """Group a deal with its account; its node."""
        node = f"deal:{deal_id}"
        self.deals.add(deal_id)
        self.groups.join([node, f"account:{account_id}"] if account_id else [node])
        return node

    def lead(
        self, lead_id: str, account_id: str | None, company: str | None, converted: str | None
    ) -> str:
        """Group a lead with its account, its company (unless the account is named) and the
        deal it was converted to; its node."""
        node = f"lead:{lead_id}"
        joined = [node]
        if account_id:
            joined.append(f"account:{account_id}")
        key = company_key(company) if company else ""
        if key and (not account_id or account_id not in self.named):
            joined.append(f"name:{key}")
        if converted and converted in self.deals:
            joined.append(f"deal:{converted}")
        self.groups.join(joined)
        return node

    def activity(self, account_id: str | None, what_id: str | None) -> str:
        """The node an activity goes with: its account, else its deal; "" for neither."""
        if account_id:
            node = f"account:{account_id}"
            self.groups.find(node)
            return node
        if what_id and what_id in self.deals:
            return f"deal:{what_id}"
        return ""

    def touch(self, node: str) -> None:
        """Mark ``node``'s company for reading ("" marks the orphans' page)."""
        if node:
            self.touched.add(node)
        else:
            self.orphans_touched = True

    def touch_known(self, nodes: Iterable[str]) -> None:
        """Mark the companies of those ``nodes`` the pass has seen (a deleted record's keys)."""
        self.touched |= {node for node in nodes if node in self.groups.parent}

    def pages(self, size: int, *, every: bool, orphans: bool) -> list[Page]:
        """Pages of ``size`` whole companies, each as its member nodes: every company
        (``every``: a full read) or those holding a touched node; then the orphans' page
        (None) when there are ``orphans`` and they are all read or one was touched."""
        members: defaultdict[str, list[str]] = defaultdict(list)
        for node in self.groups.parent:
            if node.startswith(_MEMBERS):
                members[self.groups.find(node)].append(node)
        if every:
            roots = sorted(members)
        else:
            roots = sorted({self.groups.find(node) for node in self.touched} & members.keys())
        pages: list[Page] = [
            [node for root in roots[i : i + size] for node in members[root]]
            for i in range(0, len(roots), size)
        ]
        if orphans and (every or self.orphans_touched):
            pages.append(None)
        return pages
