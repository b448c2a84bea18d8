"""Who judges each record: company groups stay whole, and forked workers judge their share
straight from the driver's index (nothing cut) with the findings of one process."""

from __future__ import annotations

import datetime as dt
import gc
import sys

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine import Engine, ExecutorSpec
from tsos_rules.engine import partitions as partitions_module
from tsos_rules.engine.aggregates import combine, finalize
from tsos_rules.engine.executors import judge_task, partial_task
from tsos_rules.engine.partitions import JUDGED, assign_owners, cut, shared_partitions
from tsos_rules.facts import FactIndex
from tsos_rules.findings import Findings
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = dt.date(2026, 11, 24)
ENGINE = Engine.from_config(None)


@pytest.fixture(scope="module")
def index() -> FactIndex:
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=600, seed=11, as_of=AS_OF))
    return ENGINE.index(snapshot)


def test_a_company_group_and_its_activities_lie_in_one_partition(index: FactIndex) -> None:
    ownership = assign_owners(index, 4)
    owners = ownership.owners
    partition_of_key: dict[str, int] = {}
    snapshot = index.snapshot
    for collection in ("leads", "opportunities"):
        for record, owner in zip(getattr(snapshot, collection), owners[collection], strict=True):
            for key in index.company_keys_of(record):
                assert partition_of_key.setdefault(key, owner) == owner, key
    deal_owner = dict(
        zip((d.id for d in snapshot.opportunities), owners["opportunities"], strict=True)
    )
    for activity, owner in zip(snapshot.activities, owners["activities"], strict=True):
        if activity.what_id in deal_owner:
            assert owner == deal_owner[activity.what_id], activity.id
    for account, owner in zip(snapshot.accounts, owners["accounts"], strict=True):
        assert partition_of_key.get(f"account:{account.id}", owner) == owner, account.id
    assert len(set(owners["opportunities"])) == 4  # 600 deals fill all four


def test_masks_over_the_whole_index_judge_like_one_process(index: FactIndex) -> None:
    ENGINE.recipe.adopt(ENGINE)
    ownership = assign_owners(index, 3)
    shared = shared_partitions(index, ownership)
    assert [p.size for p in shared] == [p.size for p in cut(index, ownership)]
    judged = sum(len(getattr(index.snapshot, c)) for c, _ in JUDGED)
    assert sum(p.size for p in shared) == judged  # every record judged once
    totals = finalize(
        ENGINE.aggregates, combine(partial_task(p, ENGINE.aggregates) for p in shared)
    )
    assert totals == index.totals
    found = [f for p in shared for f in judge_task(p, ENGINE.recipe, totals, index.as_of)]
    split = Findings.collect(found, records=index.snapshot.record_count)
    assert split.to_dict() == ENGINE.evaluate_index(index).to_dict()


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork only on Linux")
def test_forked_workers_cut_nothing(index: FactIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's serial part is only assigning owners: no partition snapshot is built."""

    def no_cutting(*args: object) -> None:
        raise AssertionError("a forked pool must not cut partitions")

    monkeypatch.setattr("tsos_rules.engine.executors.cut", no_cutting)
    assert partitions_module.cut is not no_cutting
    spec = ExecutorSpec("processes", workers=2)
    split = ENGINE.evaluate_index(index, executor=spec).to_dict()
    assert split == ENGINE.evaluate_index(index).to_dict()


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork only on Linux")
def test_a_forked_pool_gives_the_collector_back_as_it_found_it(index: FactIndex) -> None:
    """Objects are frozen out of the collector's sight while workers fork (copy-on-write
    friendly), and handed back afterwards: a long-running sync must not keep them frozen."""
    gc.unfreeze()  # an earlier in-process ``check`` may have frozen its snapshot for good
    assert gc.isenabled() and gc.get_freeze_count() == 0
    spec = ExecutorSpec("processes", workers=2)
    split = ENGINE.evaluate_index(index, executor=spec).to_dict()
    assert split == ENGINE.evaluate_index(index).to_dict()
    assert gc.isenabled() and gc.get_freeze_count() == 0
