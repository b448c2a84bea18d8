"""The run summary's charts count the open findings by rule, owner and partner exactly as the
state's own counts do (they are summed from the counts by severity, one scan fewer each)."""

from __future__ import annotations

from typing import Any

from tsos_rules.sync.job import chart_data
from tsos_rules.sync.state.store import StateStore
from tsos_rules.sync.trend import trend_point


def _renamed_owner(state_path: Any) -> str:
    """Give one owner's warn findings another spelling of the name (a rename between runs)."""
    state = StateStore(state_path)
    try:
        row = state.db.execute(
            "SELECT owner_id FROM findings WHERE status = 'open' AND shadow = 0 "
            "GROUP BY owner_id HAVING count(DISTINCT severity) > 1 LIMIT 1"
        ).fetchone()
        owner = str(row[0])
        state.db.execute(
            "UPDATE findings SET owner_name = 'zz ' || owner_name "
            "WHERE owner_id = ? AND severity = 'warn'",
            (owner,),
        )
        state.db.commit()
        state.recount("local")  # a hand edit: the state's counts are taken again
        return owner
    finally:
        state.close()


def test_chart_counts_match_the_states_counts(org: Any) -> None:
    summary = org.sync()
    assert summary.charts["by_owner"]
    owner = _renamed_owner(org.state_path)
    state = org.state()
    try:
        point = trend_point(summary.run_id, summary.as_of, summary.started_at, {})
        charts = chart_data(state, "local", point)
        assert charts["by_rule"] == [[k, n] for k, _, n in state.open_counts("local", "rule")]
        assert charts["by_owner"] == [list(row) for row in state.open_counts("local", "owner")]
        assert charts["by_partner"] == [list(r) for r in state.open_counts("local", "partner")]
    finally:
        state.close()
    assert len(charts["by_owner"]) > 5 and len(charts["by_partner"]) > 5
    assert any(row[0] == owner for row in charts["by_owner"])
