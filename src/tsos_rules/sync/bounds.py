"""How far each key of a pack's total can rise before one of its readers gets a finding.

``Aggregate.flags_above`` gives, for one judged reader (a partner's open deal), the total of its
key above which the rules reading it would flag it. A run keeps, for each key, the lowest such
total over the readers it judged that hold no finding of those rules, and the state keeps it
between runs. When an incremental run finds a key's total risen but still at or below its
stored bound, no reader without a finding can have gained one: only the readers holding one are
judged again (their findings quote the total).

A bound is stored exact when every reader of its key was judged in the run (a full run, or a
rise past the bound that judged them all), and otherwise only lowered by the readers the run
judged, since the others keep what they were last judged with. Bounds are trusted only after a
run that finished: one that stopped may have judged readers with totals never stored.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from tsos_rules.connectors.base import RecordKey, field_of
from tsos_rules.engine.aggregates import BoundAggregate
from tsos_rules.facts import RecordFacts
from tsos_rules.findings import Finding
from tsos_rules.sync.state import StateStore

#: A total within a billionth of its bound counts as past it: float rounding in a rule's own
#: arithmetic never spares a reader it flags.
_MARGIN = 1e-9


class ReaderBounds:
    """The run's view of the readers' bounds: what it judged, and which rises spare readers."""

    def __init__(self, aggregates: Sequence[BoundAggregate], rules: Collection[str]) -> None:
        #: The aggregates with a ``flags_above``, each with its loaded reader rules.
        self._items = [
            (item, frozenset(item.aggregate.read_by_rules) & frozenset(rules))
            for item in aggregates
            if item.aggregate.flags_above is not None and item.aggregate.read_by
        ]
        self.record_types = frozenset(item.aggregate.record_type for item, _ in self._items)
        #: Per aggregate: the lowest ``flags_above`` by key over the unflagged readers judged.
        self._lowest: dict[str, dict[str, float]] = {i.aggregate.name: {} for i, _ in self._items}
        #: Per aggregate: the keys of every reader judged, flagged or not.
        self._keys: dict[str, set[str]] = {i.aggregate.name: set() for i, _ in self._items}
        #: Per aggregate: keys every reader of which this run judged.
        self._whole: dict[str, set[str]] = {}
        #: Ids of the records an incremental run read as changed or deleted: a key that is
        #: one of them (a partner whose credit limit changed) spares none of its readers, risen
        #: or fallen, has none of their findings reworded (``Aggregate.restate``), and loses its
        #: bound unless every reader of it was judged, whether or not the connector brought its
        #: readers along.
        self._changed: set[str] = set()
        self._watching = any(
            item.aggregate.findings_rise_with_total or item.aggregate.restate is not None
            for item in aggregates
        )
        #: Whether the stored bounds may spare readers (set by the job once it knows).
        self.trusted = False
        self._attribute: dict[tuple[type, str], bool] = {}

    def judged(self, facts: RecordFacts, found: Iterable[Finding]) -> None:
        """Note one judged record with the findings stored for it (called for every record
        of a full run: kept to a few attribute reads for a record that reads no total)."""
        for item, rules in self._items:
            aggregate = item.aggregate
            if facts.record_type != aggregate.record_type or aggregate.flags_above is None:
                continue
            record = facts.record
            key = self._key(record, aggregate.read_by or "")
            if not key or (
                aggregate.reads_when is not None
                and not aggregate.reads_when(record, item.parameters)
            ):
                continue
            key = str(key)
            self._keys[aggregate.name].add(key)
            if found and any(finding.rule in rules for finding in found):
                continue  # a holder: judged again whenever its key's total moves
            above = aggregate.flags_above(facts, item.parameters)
            if above is None:
                continue
            if math.isnan(above):
                above = -math.inf
            lowest = self._lowest[aggregate.name]
            if above < lowest.get(key, math.inf):
                lowest[key] = above

    def _key(self, record: Any, field: str) -> Any:
        """``field_of(record, field)``, with whether ``field`` is a model attribute looked up
        once per record class rather than per record."""
        attribute = self._attribute.get((type(record), field))
        if attribute is None:
            attribute = field in attrs.fields_dict(type(record))
            self._attribute[(type(record), field)] = attribute
        return getattr(record, field) if attribute else field_of(record, field)

    def changed(self, records: Iterable[RecordKey]) -> None:
        """Note the records an incremental run's batch read as changed or deleted."""
        if self._watching:
            self._changed.update(record_id for _, record_id in records)

    def unchanged(self, keys: Iterable[str]) -> frozenset[str]:
        """The keys of ``keys`` whose own record this run did not read as changed: only those
        may spare readers (a partner's lower limit can flag a deal whatever its total did)."""
        return frozenset(key for key in keys if key not in self._changed)

    def whole(self, aggregate: str, keys: Iterable[str]) -> None:
        """Every reader of ``keys`` has been (or is being) judged this run."""
        self._whole.setdefault(aggregate, set()).update(keys)

    def within(
        self,
        state: StateStore,
        connector: str,
        aggregate: str,
        keys: Collection[str],
        totals: Mapping[str, float],
    ) -> frozenset[str]:
        """The keys of ``keys`` whose total is at or below their stored bound (and that did
        not change themselves this run): their readers without a finding still have none."""
        keys = sorted(self.unchanged(keys))
        if not self.trusted or aggregate not in self._lowest or not keys:
            return frozenset()
        spared = set()
        for key, bound in state.aggregate_bounds(connector, aggregate, keys).items():
            total = float(totals.get(key, 0.0))
            if total + _MARGIN * max(1.0, abs(total)) <= bound:
                spared.add(key)
        return frozenset(spared)

    def save(self, state: StateStore, connector: str, *, full: bool) -> None:
        """Store what this run learnt: after a full run every key's bound, replacing all."""
        for name, lowest in self._lowest.items():
            whole = self._keys[name] if full else self._whole.get(name, set())
            state.save_aggregate_bounds(
                connector,
                name,
                exact={key: lowest.get(key, math.inf) for key in whole},
                lowered={key: value for key, value in lowest.items() if key not in whole},
                forgotten=set() if full else self._changed - whole,
                replace=full,
            )
