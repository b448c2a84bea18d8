"""Packs' aggregates (totals over a partner, an owner) as an exact reduce over all records.

Each partition (or read batch) yields partial sums by aggregate and key; partials combine in
any order and grouping to the same totals, because they are summed exactly (as fractions) and
rounded to a float once at the end. So no total depends on batching or partitioning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import attrs

from tsos_rules.model import Snapshot
from tsos_rules.rules.spec import Aggregate

#: Partial sums: aggregate name -> key -> exact sum.
Partial = dict[str, dict[str, Fraction]]
#: Final totals: aggregate name -> key -> float.
Totals = dict[str, dict[str, float]]

COLLECTIONS = {
    "account": "accounts",
    "activity": "activities",
    "lead": "leads",
    "opportunity": "opportunities",
}


@attrs.frozen
class BoundAggregate:
    """An aggregate bound to its pack's resolved parameters."""

    aggregate: Aggregate
    parameters: Mapping[str, Any]

    def contribution(self, record: Any) -> tuple[str, Fraction] | None:
        """The record's ``(key, exact value)``; None when it adds nothing (or nothing finite)."""
        found = self.aggregate.contribution(record, self.parameters)
        if found is None:
            return None
        key, value = found
        if not math.isfinite(value):
            return None
        return key, Fraction(value)


def partial_totals(
    bound: Sequence[BoundAggregate], records: Mapping[str, Iterable[Any]]
) -> Partial:
    """Exact sums over ``records`` (by record type): one partition's share of the totals."""
    partial: Partial = {}
    for item in bound:
        sums = partial.setdefault(item.aggregate.name, {})
        for record in records.get(item.aggregate.record_type, ()):
            found = item.contribution(record)
            if found is not None:
                key, value = found
                sums[key] = sums.get(key, Fraction(0)) + value
    return partial


def combine(parts: Iterable[Partial]) -> Partial:
    """The partials of disjoint sets of records added together (order does not matter)."""
    out: Partial = {}
    for part in parts:
        for name, sums in part.items():
            into = out.setdefault(name, {})
            for key, value in sums.items():
                into[key] = into.get(key, Fraction(0)) + value
    return out


def finalize(bound: Sequence[BoundAggregate], partial: Partial) -> Totals:
    """Every declared aggregate's totals as floats, each rounded once from its exact sum."""
    return {
        item.aggregate.name: {
            key: float(value) for key, value in sorted(partial.get(item.aggregate.name, {}).items())
        }
        for item in bound
    }


def totals_of_snapshot(bound: Sequence[BoundAggregate], snapshot: Snapshot) -> Totals:
    """Totals over one snapshot holding the whole org (one partition)."""
    records = {t: getattr(snapshot, c) for t, c in COLLECTIONS.items()}
    return finalize(bound, partial_totals(bound, records))


def totals_over_batches(bound: Sequence[BoundAggregate], snapshots: Iterable[Snapshot]) -> Totals:
    """Totals over a read in batches, each record counted once even when several batches
    carry it (as a judged record or as context): the org-wide pre-pass of a sync."""
    seen: dict[tuple[str, str, str], tuple[str, Fraction]] = {}
    for snapshot in snapshots:
        for item in bound:
            name, record_type = item.aggregate.name, item.aggregate.record_type
            for record in getattr(snapshot, COLLECTIONS[record_type]):
                found = item.contribution(record)
                if found is None:
                    seen.pop((name, record_type, record.id), None)
                else:
                    seen[(name, record_type, record.id)] = found
    partial: Partial = {}
    for (name, _, _), (key, value) in seen.items():
        sums = partial.setdefault(name, {})
        sums[key] = sums.get(key, Fraction(0)) + value
    return finalize(bound, partial)
