"""Cut an indexed snapshot into partitions by company group, each judgeable on its own.

A company group is every lead and deal sharing an account or a company name (closed ones too,
so each group the ownership rules compare lies whole in one partition), with its accounts and
the activities on its deals. Each partition carries its own records plus the context their
facts read (source leads, accounts, close-date history) and the reference data every record
may read (users, partners): it gives every own record exactly the facts the whole snapshot
gives it. Records keep the snapshot's order, so indexes built on a partition match the whole.
"""

from __future__ import annotations

import zlib
from typing import Any

import attrs

from tsos_rules.facts import FactIndex
from tsos_rules.facts.index import CompanyGroups
from tsos_rules.model import Lead, Opportunity, Snapshot

#: The judged collections, in judging order, with their record type.
JUDGED = (
    ("accounts", "account"),
    ("activities", "activity"),
    ("leads", "lead"),
    ("opportunities", "opportunity"),
)


@attrs.frozen
class Partition:
    """One partition: a snapshot, and which of its records are its own (1) or context (0)."""

    number: int
    snapshot: Snapshot
    #: by collection name: one byte per record of ``snapshot``, 1 for an own (judged) record
    own: dict[str, bytes]

    def own_records(self, collection: str) -> list[Any]:
        records = getattr(self.snapshot, collection)
        return [record for record, mine in zip(records, self.own[collection], strict=True) if mine]

    @property
    def size(self) -> int:
        """Own records, for balancing and messages."""
        return sum(mask.count(1) for mask in self.own.values())


def _bucket(key: str, n: int) -> int:
    return zlib.crc32(key.encode()) % n


def partition_index(index: FactIndex, n: int) -> list[Partition]:
    """``n`` partitions of the index's snapshot (some may be empty when groups are few)."""
    snapshot = index.snapshot
    groups = CompanyGroups()
    keys_of: dict[int, list[str]] = {}
    records: list[Lead | Opportunity] = [*snapshot.leads, *snapshot.opportunities]
    for record in records:
        keys = index.company_keys_of(record)
        keys_of[id(record)] = keys
        if keys:
            groups.join(keys)
    # A group's bucket hashes its smallest key, so it does not depend on join order.
    smallest: dict[str, str] = {}
    for key in list(groups.parent):
        root = groups.find(key)
        if key < smallest.get(root, "\U0010ffff"):
            smallest[root] = key

    def bucket_of_keys(keys: list[str], fallback: str) -> int:
        if not keys:
            return _bucket(fallback, n)
        return _bucket(smallest[groups.find(keys[0])], n)

    def bucket_of(record: Lead | Opportunity, kind: str) -> int:
        return bucket_of_keys(keys_of[id(record)], f"{kind}:{record.id}")

    # own[collection][i] = partition of record i; context[collection][p] = indexes it also needs
    own: dict[str, list[int]] = {}
    context: dict[str, list[set[int]]] = {
        c: [set() for _ in range(n)] for c in ("accounts", "leads", "close_date_changes")
    }
    account_at = {a.id: i for i, a in enumerate(snapshot.accounts)}
    lead_at = {lead.id: i for i, lead in enumerate(snapshot.leads)}
    converted: dict[str, list[int]] = {}
    for i, lead in enumerate(snapshot.leads):
        if lead.converted_opportunity_id:
            converted.setdefault(lead.converted_opportunity_id, []).append(i)
    changes: dict[str, list[int]] = {}
    for i, change in enumerate(snapshot.close_date_changes):
        changes.setdefault(change.opportunity_id, []).append(i)

    def need_account(p: int, account_id: str | None) -> None:
        if account_id and account_id in account_at:
            context["accounts"][p].add(account_at[account_id])

    def bucket_of_account(account_id: str) -> int:
        key = f"account:{account_id}"
        return bucket_of_keys([key] if key in groups.parent else [], key)

    own["accounts"] = [bucket_of_account(a.id) for a in snapshot.accounts]
    own["leads"] = []
    for lead in snapshot.leads:
        p = bucket_of(lead, "lead")
        own["leads"].append(p)
        need_account(p, lead.account_id)
    deal_bucket: dict[str, int] = {}
    own["opportunities"] = []
    for deal in snapshot.opportunities:
        p = bucket_of(deal, "opportunity")
        own["opportunities"].append(p)
        deal_bucket[deal.id] = p
        need_account(p, deal.account_id)
        if deal.lead_id and deal.lead_id in lead_at:
            context["leads"][p].add(lead_at[deal.lead_id])
        context["leads"][p].update(converted.get(deal.id, ()))
        context["close_date_changes"][p].update(changes.get(deal.id, ()))
    own["activities"] = []
    for activity in snapshot.activities:
        if activity.what_id in deal_bucket:
            p = deal_bucket[activity.what_id]
        elif activity.account_id:
            p = bucket_of_account(activity.account_id)
        else:
            p = _bucket(f"activity:{activity.id}", n)
        own["activities"].append(p)
        need_account(p, activity.account_id)
        if activity.what_id in deal_bucket:
            deal = index.opportunities[activity.what_id]
            need_account(p, deal.account_id)

    partitions = []
    for p in range(n):
        fields: dict[str, tuple[Any, ...]] = {}
        masks: dict[str, bytes] = {}
        for collection in ("accounts", "leads", "opportunities", "activities"):
            records = getattr(snapshot, collection)
            extra = context.get(collection, [set()] * n)[p]
            picked = [
                (record, owner == p)
                for i, (record, owner) in enumerate(zip(records, own[collection], strict=True))
                if owner == p or i in extra
            ]
            fields[collection] = tuple(record for record, _ in picked)
            masks[collection] = bytes(mine for _, mine in picked)
        history = snapshot.close_date_changes
        fields["close_date_changes"] = tuple(
            history[i] for i in sorted(context["close_date_changes"][p])
        )
        part = attrs.evolve(
            snapshot,
            accounts=fields["accounts"],
            leads=fields["leads"],
            opportunities=fields["opportunities"],
            activities=fields["activities"],
            close_date_changes=fields["close_date_changes"],
        )
        partitions.append(Partition(p, part, masks))
    return partitions
