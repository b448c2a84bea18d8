"""The packs' org-wide totals for a sync, kept in the state between runs.

A full run reads every record's share of each total (streamed: only the shares are kept) and
stores them. An incremental run starts from the stored shares, replaces those of the records it
reads (a share depends on its own record only, so only a changed record's share can change) and
drops those of deleted records: the totals are the org's, exact, whatever changed. The keys
whose total moved are returned too: the job re-judges the records that read them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

import attrs

from tsos_rules.connectors.base import ReadResult
from tsos_rules.engine.aggregates import COLLECTIONS, BoundAggregate, Partial, Totals, finalize

#: ``(aggregate, record type, record id)``: one record's share of one aggregate.
ShareRef = tuple[str, str, str]
#: ``(key, value)`` a record adds, or None when it adds nothing.
Share = tuple[str, float] | None


def digest(bound: Sequence[BoundAggregate]) -> str:
    """What the stored shares depend on: the aggregates and their packs' parameter values."""
    material = repr(
        sorted(
            (b.aggregate.name, b.aggregate.record_type, sorted(map(repr, b.parameters.items())))
            for b in bound
        )
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def shares_of(
    bound: Sequence[BoundAggregate],
    batches: Iterable[ReadResult],
    *,
    keep_none: bool = True,
    changed_only: bool = False,
) -> dict[ShareRef, Share]:
    """Each record's share as read (a record several batches carry counts once, as last read);
    deleted records' shares are None. Without ``keep_none`` (a full read) records that add
    nothing are left out, so memory holds only the shares. With ``changed_only``, only the
    records a batch reads as changed (or holds back): its context's shares are as stored."""
    shares: dict[ShareRef, Share] = {}
    isfinite = math.isfinite
    for batch in batches:
        mine = batch.changed | batch.incomplete if changed_only else None
        for item in bound:
            name, record_type = item.aggregate.name, item.aggregate.record_type
            contribution, parameters = item.aggregate.contribution, item.parameters
            records = getattr(batch.snapshot, COLLECTIONS[record_type])
            if mine is not None:
                records = [r for r in records if (record_type, r.id) in mine]
            for record in records:
                # BoundAggregate.contribution's filter, without its exact Fraction: the
                # stored share is the float either way.
                found = contribution(record, parameters)
                ref = (name, record_type, record.id)
                if found is not None and isfinite(found[1]):
                    shares[ref] = (found[0], float(found[1]))
                elif keep_none:
                    shares[ref] = None
                else:
                    shares.pop(ref, None)
            for deleted_type, record_id in batch.deleted:
                if deleted_type == record_type:
                    shares[(name, record_type, record_id)] = None
    return shares


#: Each aggregate's terms by key, summed once at the end.
_Terms = dict[str, dict[str, list[float]]]


def _add(terms: _Terms, name: str, key: str, value: float) -> None:
    terms.setdefault(name, {}).setdefault(key, []).append(value)


def _partial(terms: _Terms) -> Partial:
    """The exact sums' correctly rounded values: ``math.fsum`` rounds the exact sum once, as
    ``float(Fraction sum)`` does, at a fraction of the cost of summing fractions one by one."""
    partial: Partial = {}
    for name, by_key in terms.items():
        sums = partial.setdefault(name, {})
        for key, values in by_key.items():
            try:
                sums[key] = Fraction(math.fsum(values))
            except OverflowError:  # an intermediate sum beyond a float: sum exactly instead
                sums[key] = sum(map(Fraction, values), Fraction(0))
    return partial


@attrs.define
class TotalsUpdate:
    """Totals to judge with, the shares to store, and the keys whose total moved."""

    totals: Totals
    shares: dict[ShareRef, Share]
    replace: bool
    moved: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    #: The moved keys whose total, as the rules read it (a float), is now lower than the
    #: stored shares' total.
    fell: Mapping[str, frozenset[str]] = attrs.field(factory=dict)

    def refresh(self, bound: Sequence[BoundAggregate], batch: ReadResult) -> None:
        """Store the shares as the run's own read found them: a record changed between the
        totals read and this read is stored as read here, the read the watermark covers.
        Only the batch's changed records are looked at: a record unchanged since the last
        watermark (context, a re-judged reader) still has the share stored for it."""
        for ref, share in shares_of(bound, [batch], changed_only=True).items():
            if share is None and self.replace:  # a full read stores only what adds
                self.shares.pop(ref, None)
            else:
                self.shares[ref] = share


def from_full_read(bound: Sequence[BoundAggregate], batches: Iterable[ReadResult]) -> TotalsUpdate:
    """Totals over a full read: every share is read, and replaces the stored ones."""
    shares = shares_of(bound, batches, keep_none=False)
    terms: _Terms = {}
    for (name, _, _), share in shares.items():
        if share is not None:
            _add(terms, name, share[0], share[1])
    return TotalsUpdate(finalize(bound, _partial(terms)), shares, replace=True)


def from_stored(
    bound: Sequence[BoundAggregate],
    stored: Iterable[tuple[str, str, float]],
    before: Mapping[ShareRef, tuple[str, float]],
    read: Mapping[ShareRef, Share],
) -> TotalsUpdate:
    """Totals from the stored shares (``(aggregate, key, value)``), with the shares of the
    records read (``read``) replacing what was stored for them (``before``)."""
    terms: _Terms = {}
    for name, key, value in stored:
        _add(terms, name, key, value)
    changed = {ref: share for ref, share in read.items() if before.get(ref) != share}
    touched: dict[str, set[str]] = {}
    for ref, share in changed.items():
        old = before.get(ref)
        for found in (old, share):
            if found is not None:
                touched.setdefault(ref[0], set()).add(found[0])
    was = _partial(
        {
            name: {k: list(terms.get(name, {}).get(k, ())) for k in keys}
            for name, keys in touched.items()
        }
    )
    for ref, share in changed.items():
        old = before.get(ref)
        if old is not None:
            _add(terms, ref[0], old[0], -old[1])
        if share is not None:
            _add(terms, ref[0], share[0], share[1])
    partial = _partial(terms)
    totals = finalize(bound, partial)
    # A key whose shares changed but whose exact sum did not (one deal moved 500 to another
    # deal of the same partner) still moved for the rule: its readers are re-judged anyway,
    # since a reader may subtract its own share (a deal's "other" commit deals).
    moved = {name: frozenset(keys) for name, keys in touched.items() if keys}
    fell = {
        name: frozenset(k for k in keys if float(partial[name][k]) < float(was[name][k]))
        for name, keys in touched.items()
    }
    return TotalsUpdate(totals, changed, replace=False, moved=moved, fell=fell)
