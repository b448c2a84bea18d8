"""No finding depends on partitioning: 1, 2 and 4 partitions, and 1, 2, 4 and 7 shards of a
sharded snapshot, judge like the whole snapshot."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine import Engine, ExecutorSpec
from tsos_rules.snapshot.document import snapshot_from_dict

ENGINE = Engine.from_config(None)  # every installed pack, contrib packs included


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), deals=st.integers(20, 160))
def test_partitions_give_the_findings_of_the_whole(seed: int, deals: int) -> None:
    org = generate_org(opportunities=deals, seed=seed, as_of=dt.date(2026, 11, 24))
    snapshot, _ = snapshot_from_dict(org)
    index = ENGINE.index(snapshot)
    whole = ENGINE.evaluate_index(index).to_dict()
    for partitions in (1, 2, 4):
        spec = ExecutorSpec("local", partitions=partitions)
        assert ENGINE.evaluate_index(index, executor=spec).to_dict() == whole, partitions


def test_partner_totals_span_partitions() -> None:
    """The regression: a partner's commit deals in other partitions still count against it."""
    org = generate_org(opportunities=400, seed=7, as_of=dt.date(2026, 11, 24))
    snapshot, _ = snapshot_from_dict(org)
    index = ENGINE.index(snapshot)
    rule = "channel-economics.partner-credit-limit"
    whole = ENGINE.evaluate_index(index).for_rule(rule)
    assert whole
    split = ENGINE.evaluate_index(index, executor=ExecutorSpec("local", partitions=4))
    assert split.for_rule(rule) == whole


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), deals=st.integers(20, 160))
def test_a_sharded_snapshot_gives_the_findings_of_the_whole(seed: int, deals: int) -> None:
    """Read whole, or by 2 worker processes each reading only its shards: 1, 2, 4, 7 shards;
    the workers' report section rows (contrib plugins) merge into the whole's sections."""
    from tsos_rules.engine.sharded import ShardAsk, judge_sharded
    from tsos_rules.engine.sharding import split_snapshot
    from tsos_rules.findings import Findings
    from tsos_rules.plugins import collect_report_sections
    from tsos_rules.snapshot.sharded import load_sharded

    org = generate_org(opportunities=deals, seed=seed, as_of=dt.date(2026, 11, 24))
    snapshot, _ = snapshot_from_dict(org)
    index = ENGINE.index(snapshot)
    judged = ENGINE.evaluate_index(index)
    whole = judged.to_dict()
    sections = collect_report_sections(ENGINE.plugin_manager, index, judged)
    ask = ShardAsk(sections=True, include_info=True)
    for shards in (1, 2, 4, 7):
        with tempfile.TemporaryDirectory() as scratch:
            manifest = split_snapshot(snapshot, shards, Path(scratch) / "org")
            assert load_sharded(manifest.directory) == snapshot, shards
            spec = ExecutorSpec("processes", workers=2)
            result = judge_sharded(ENGINE, manifest, spec, index.as_of, ask)
            found = Findings.collect(result.findings, records=result.records)
            assert found.to_dict() == whole, shards
            assert result.sections is not None, shards  # merged, not read whole
            assert [s.to_dict() for s in result.sections] == [s.to_dict() for s in sections]
