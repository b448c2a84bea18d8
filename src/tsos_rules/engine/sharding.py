"""Split a snapshot into a sharded directory by company group (``tsos-rules snapshot split``).

Each shard holds whole company groups (the partitions of :mod:`.partitions`), the close-date
history of its deals, and copies of the records of other shards its records read (a deal's
source lead, an activity's account), so a worker judges its shards from them alone. A file is
split streaming (:func:`split_file`): its records are placed from their outlines (ids, account
and company names), never all held at once; the shards are the bytes of :func:`split_snapshot`.
"""

from __future__ import annotations

import os
import types
from typing import IO, Any, cast

from tsos_rules.engine.partitions import JUDGED, MAX_PARTITIONS, assign_owners, context_positions
from tsos_rules.facts import FactIndex, build_index
from tsos_rules.model import Snapshot
from tsos_rules.org import OrgProfile, company_key, company_keys_for
from tsos_rules.snapshot.sharded import Manifest, ShardLayout, write_sharded, write_sharded_json
from tsos_rules.snapshot.stream import LeadOutline, Outline, outline_of


def shard_layouts(
    snapshot: Snapshot, shards: int, org: OrgProfile | None = None
) -> list[ShardLayout]:
    """Which records each of ``shards`` shard files holds: whole company groups each."""
    if not 1 <= shards <= MAX_PARTITIONS:
        raise ValueError(f"shards: {shards} is not between 1 and {MAX_PARTITIONS}")
    return _layouts(build_index(snapshot, org), shards, len(snapshot.close_date_changes))


def _layouts(index: FactIndex, shards: int, changes: int) -> list[ShardLayout]:
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
    orphans = [i for i in range(changes) if i not in placed]
    for p in range(shards):
        own[p]["close_date_changes"] = sorted(history[p]) if p else sorted([*history[p], *orphans])
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


class _OutlineIndex:
    """What :func:`assign_owners` and :func:`context_positions` read of a fact index, built
    from records' outlines: the records, accounts and deals by id, and company keys."""

    def __init__(self, outline: Outline) -> None:
        records = outline.records
        self.snapshot = types.SimpleNamespace(**records)
        self.accounts = {a.id: a for a in records["accounts"]}
        self.opportunities = {d.id: d for d in records["opportunities"]}
        self._memo: dict[str, str] = {}

    def company_keys_of(self, record: Any) -> list[str]:
        """As :meth:`FactIndex.company_keys_of` (the split test holds them to the same bytes)."""
        account = self.accounts.get(record.account_id) if record.account_id else None
        return company_keys_for(
            record.account_id,
            account.name if account is not None else None,
            record.company if isinstance(record, LeadOutline) else None,
            self._company_key,
        )

    def _company_key(self, name: str) -> str:
        key = self._memo.get(name)
        if key is None:
            key = self._memo[name] = company_key(name)
        return key


def split_file(
    source: str,
    shards: int,
    directory: str | os.PathLike[str],
    *,
    stream: IO[bytes] | None = None,
) -> tuple[Manifest, int]:
    """Split snapshot file ``source`` (or ``stream``: stdin) into ``directory`` as ``shards``
    shard files, streaming; the manifest and the snapshot's record count."""
    if not 1 <= shards <= MAX_PARTITIONS:
        raise ValueError(f"shards: {shards} is not between 1 and {MAX_PARTITIONS}")
    parent = os.path.dirname(os.path.abspath(directory))
    scratch = parent if os.path.isdir(parent) else None
    with outline_of(source, stream=stream, scratch_dir=scratch) as outline:
        index = cast("FactIndex", _OutlineIndex(outline))  # the parts of an index it reads
        layouts = _layouts(index, shards, len(outline.records["close_date_changes"]))
        manifest = write_sharded_json(directory, outline.reference, layouts, outline.record_json)
        return manifest, outline.record_count
