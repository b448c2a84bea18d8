"""The driver's check that no company group lies in two shards, as the workers report them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsos_rules.engine.sharded import ShardShare, _split_groups
from tsos_rules.errors import SnapshotError
from tsos_rules.snapshot.sharded import Manifest


def _manifest(tmp_path: Path, shards: int) -> Manifest:
    names = tuple(tmp_path / f"shard-{n:04d}.json" for n in range(shards))
    return Manifest(tmp_path, None, tmp_path / "reference.json", names)


def _share(keys: dict[int, list[str]]) -> ShardShare:
    return ShardShare({}, {n: "\n".join(sorted(k)) for n, k in keys.items()}, (), 0)


def test_groups_each_in_one_shard_pass(tmp_path: Path) -> None:
    shares = [_share({0: ["account:a1", "name:acme"], 2: []}), _share({1: ["account:b2"]})]
    _split_groups(_manifest(tmp_path, 3), shares)


def test_a_group_in_two_shards_names_both_files_in_shard_order(tmp_path: Path) -> None:
    """The worker holding the later shard answers first: the message still names the key and
    the two shards holding it, never one shard twice."""
    shares = [
        _share({2: ["account:z9", "name:globex"]}),
        _share({0: ["name:globex"], 1: ["account:b2"]}),
    ]
    with pytest.raises(SnapshotError) as caught:
        _split_groups(_manifest(tmp_path, 3), shares)
    message = str(caught.value)
    assert "company group 'name:globex' is in both shard-0000.json and shard-0002.json" in message
