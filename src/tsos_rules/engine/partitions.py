"""Cut an indexed snapshot into partitions by company group, each judgeable on its own.

A company group is every lead and deal sharing an account or a company name (closed ones too,
so each group the ownership rules compare lies whole in one partition), with its accounts and
the activities on its deals. Each record's partition (its owner) is found in one pass
(:func:`assign_owners`); from that, either

- :func:`partition_index` cuts each partition's own snapshot: its own records plus the context
  their facts read (source leads, accounts, close-date history) and the reference data every
  record may read (users, partners), so it gives every own record exactly the facts the whole
  snapshot gives it (for workers that receive their partition: Dask, pickled pools); or
- :func:`shared_partitions` leaves the whole index in place and marks each partition's own
  records (for forked workers, which inherit the index and judge their share straight from it).

Records keep the snapshot's order, so indexes built on a partition match the whole.
"""

from __future__ import annotations

import zlib
from itertools import compress
from typing import Any

import attrs

from tsos_rules.facts import FactIndex
from tsos_rules.facts.index import CompanyGroups
from tsos_rules.model import Snapshot

#: The judged collections, in judging order, with their record type.
JUDGED = (
    ("accounts", "account"),
    ("activities", "activity"),
    ("leads", "lead"),
    ("opportunities", "opportunity"),
)
#: Owners are bytes, so at most this many partitions (far more than useful workers).
MAX_PARTITIONS = 255


@attrs.frozen
class Partition:
    """One partition: a snapshot, and which of its records are its own (1) or context (0)."""

    number: int
    snapshot: Snapshot
    #: by collection name: one byte per record of ``snapshot``, 1 for an own (judged) record
    own: dict[str, bytes]
    #: the whole snapshot's index when ``snapshot`` is that whole snapshot (judge from it
    #: rather than index again); None for a cut partition. Never pickled: forked workers only.
    index: FactIndex | None = attrs.field(default=None, eq=False, repr=False)

    def own_records(self, collection: str) -> list[Any]:
        return list(compress(getattr(self.snapshot, collection), self.own[collection]))

    @property
    def size(self) -> int:
        """Own records, for balancing and messages."""
        return sum(mask.count(1) for mask in self.own.values())


@attrs.frozen
class Ownership:
    """Which of ``count`` partitions judges each record: by judged collection, one byte per
    record of the index's snapshot (the partition's number)."""

    count: int
    owners: dict[str, bytes]

    def masks(self, number: int) -> dict[str, bytes]:
        """Partition ``number``'s own records: 1 per own record, else 0 (at C speed)."""
        table = bytes(1 if byte == number else 0 for byte in range(256))
        return {collection: owners.translate(table) for collection, owners in self.owners.items()}


def _bucket(key: str, n: int) -> int:
    return zlib.crc32(key.encode()) % n


def assign_owners(index: FactIndex, n: int) -> Ownership:
    """Each judged record's partition out of ``n``: a company group's records all share the
    partition its smallest key hashes to (so it does not depend on join order)."""
    if not 1 <= n <= MAX_PARTITIONS:
        raise ValueError(f"partitions: {n} is not between 1 and {MAX_PARTITIONS}")
    snapshot = index.snapshot
    groups = CompanyGroups()
    named = {account.id for account in snapshot.accounts if account.name}
    # Records on one account share its keys (a lead's own company counts only when its
    # account is unknown or unnamed): join them once per account.
    by_account: dict[str, str] = {}

    def first_key(record: Any, is_lead: bool) -> str | None:
        account_id = record.account_id
        cacheable = account_id and (not is_lead or account_id in named)
        if cacheable:
            known = by_account.get(account_id)
            if known is not None:
                return known
        keys = index.company_keys_of(record)
        if not keys:
            return None
        groups.join(keys)
        if cacheable:
            by_account[account_id] = keys[0]
        return keys[0]

    lead_keys = [first_key(lead, True) for lead in snapshot.leads]
    deal_keys = [first_key(deal, False) for deal in snapshot.opportunities]
    smallest: dict[str, str] = {}
    for key in list(groups.parent):
        root = groups.find(key)
        if key < smallest.get(root, "\U0010ffff"):
            smallest[root] = key
    bucket_of_root = {root: _bucket(key, n) for root, key in smallest.items()}
    bucket_of_key: dict[str, int] = {}

    def bucket(key: str | None, fallback: str) -> int:
        if key is None:
            return _bucket(fallback, n)
        found = bucket_of_key.get(key)
        if found is None:
            found = bucket_of_key[key] = bucket_of_root[groups.find(key)]
        return found

    def account_bucket(account_id: str) -> int:
        key = f"account:{account_id}"
        return bucket(key if key in groups.parent else None, key)

    owners: dict[str, list[int]] = {
        "accounts": [account_bucket(account.id) for account in snapshot.accounts],
        "leads": [
            bucket(key, f"lead:{lead.id}")
            for lead, key in zip(snapshot.leads, lead_keys, strict=True)
        ],
        "opportunities": [
            bucket(key, f"opportunity:{deal.id}")
            for deal, key in zip(snapshot.opportunities, deal_keys, strict=True)
        ],
    }
    deal_bucket = dict(
        zip((deal.id for deal in snapshot.opportunities), owners["opportunities"], strict=True)
    )
    activities = []
    for activity in snapshot.activities:
        p = deal_bucket.get(activity.what_id) if activity.what_id else None
        if p is None:
            if activity.account_id:
                p = account_bucket(activity.account_id)
            else:
                p = _bucket(f"activity:{activity.id}", n)
        activities.append(p)
    owners["activities"] = activities
    return Ownership(n, {collection: bytes(owners[collection]) for collection, _ in JUDGED})


def shared_partitions(index: FactIndex, ownership: Ownership) -> list[Partition]:
    """The partitions as masks over the whole index (nothing is copied): for forked workers."""
    return [Partition(p, index.snapshot, ownership.masks(p), index) for p in range(ownership.count)]


def partition_index(index: FactIndex, n: int) -> list[Partition]:
    """``n`` partitions of the index's snapshot (some may be empty when groups are few)."""
    return cut(index, assign_owners(index, n))


def context_positions(index: FactIndex, ownership: Ownership) -> dict[str, list[set[int]]]:
    """By collection (accounts, leads, close-date changes) and partition: the positions of the
    records a partition's own records read without owning them (close-date changes: all of
    its deals' history, which no partition owns)."""
    snapshot = index.snapshot
    n = ownership.count
    owners = ownership.owners
    # context[collection][p]: positions partition p reads without owning them
    context: dict[str, list[set[int]]] = {
        c: [set() for _ in range(n)] for c in ("accounts", "leads", "close_date_changes")
    }
    account_at = {a.id: i for i, a in enumerate(snapshot.accounts)}
    lead_at = {lead.id: i for i, lead in enumerate(snapshot.leads)}
    accounts, leads = context["accounts"], context["leads"]
    for lead, p in zip(snapshot.leads, owners["leads"], strict=True):
        if lead.account_id in account_at:
            accounts[p].add(account_at[lead.account_id])
    deal_owner: dict[str, int] = {}
    for deal, p in zip(snapshot.opportunities, owners["opportunities"], strict=True):
        deal_owner[deal.id] = p
        if deal.account_id in account_at:
            accounts[p].add(account_at[deal.account_id])
        if deal.lead_id in lead_at:
            leads[p].add(lead_at[deal.lead_id])
    for i, lead in enumerate(snapshot.leads):
        converted_by = deal_owner.get(lead.converted_opportunity_id or "")
        if converted_by is not None:
            leads[converted_by].add(i)
    for i, change in enumerate(snapshot.close_date_changes):
        moved_by = deal_owner.get(change.opportunity_id)
        if moved_by is not None:
            context["close_date_changes"][moved_by].add(i)
    opportunities = index.opportunities
    for activity, p in zip(snapshot.activities, owners["activities"], strict=True):
        if activity.account_id in account_at:
            accounts[p].add(account_at[activity.account_id])
        on_deal = opportunities.get(activity.what_id) if activity.what_id else None
        if on_deal is not None and on_deal.account_id in account_at:
            accounts[p].add(account_at[on_deal.account_id])
    return context


def cut(index: FactIndex, ownership: Ownership) -> list[Partition]:
    """Each partition's own snapshot: its own records plus the context their facts read."""
    snapshot = index.snapshot
    n = ownership.count
    context = context_positions(index, ownership)
    partitions = []
    for p in range(n):
        masks = ownership.masks(p)
        fields: dict[str, tuple[Any, ...]] = {}
        own: dict[str, bytes] = {}
        for collection, _ in JUDGED:
            keep = bytearray(masks[collection])
            for i in context.get(collection, [()] * n)[p]:
                keep[i] = 1
            fields[collection] = tuple(compress(getattr(snapshot, collection), keep))
            own[collection] = bytes(compress(masks[collection], keep))
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
        partitions.append(Partition(p, part, own))
    return partitions
