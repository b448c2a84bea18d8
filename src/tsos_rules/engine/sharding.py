"""Split a snapshot into a sharded directory by company group (``tsos-rules snapshot split``).

Each shard holds whole company groups (the partitions of :mod:`.partitions`), the close-date
history of its deals, and copies of the records of other shards its records read (a deal's
source lead, an activity's account), so a worker judges its shards from them alone.
"""

from __future__ import annotations

import os

from tsos_rules.engine.partitions import JUDGED, MAX_PARTITIONS, assign_owners, context_positions
from tsos_rules.facts import build_index
from tsos_rules.model import Snapshot
from tsos_rules.org import OrgProfile
from tsos_rules.snapshot.sharded import Manifest, ShardLayout, write_sharded


def shard_layouts(
    snapshot: Snapshot, shards: int, org: OrgProfile | None = None
) -> list[ShardLayout]:
    """Which records each of ``shards`` shard files holds: whole company groups each."""
    if not 1 <= shards <= MAX_PARTITIONS:
        raise ValueError(f"shards: {shards} is not between 1 and {MAX_PARTITIONS}")
    index = build_index(snapshot, org)
    ownership = assign_owners(index, shards)
    context = context_positions(index, ownership)
    own: list[dict[str, list[int]]] = [{} for _ in range(shards)]
    for collection, _ in JUDGED:
        lists: list[list[int]] = [[] for _ in range(shards)]
        for position, owner in enumerate(ownership.owners[collection]):
            lists[owner].append(position)
        for p in range(shards):
            own[p][collection] = lists[p]
    history = context["close_date_changes"]
    placed = set().union(*history) if history else set()
    orphans = [i for i in range(len(snapshot.close_date_changes)) if i not in placed]
    for p in range(shards):
        changes = sorted(history[p]) if p else sorted([*history[p], *orphans])
        own[p]["close_date_changes"] = changes
    layouts = []
    for p in range(shards):
        copies = {}
        for collection in ("accounts", "leads"):
            mine = ownership.owners[collection]
            copies[collection] = sorted(i for i in context[collection][p] if mine[i] != p)
        layouts.append(ShardLayout(own[p], copies))
    return layouts


def split_snapshot(
    snapshot: Snapshot,
    shards: int,
    directory: str | os.PathLike[str],
    org: OrgProfile | None = None,
) -> Manifest:
    """Write ``snapshot`` to ``directory`` as ``shards`` shard files (docs/contract.md)."""
    return write_sharded(directory, snapshot, shard_layouts(snapshot, shards, org))
