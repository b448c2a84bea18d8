"""Writes Salesforce refused after every retry (Collections 500 on every attempt, a row that
stays UNABLE_TO_LOCK_ROW) are sent again by the next normal run, not left for a full run
(issue 14, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sf_support import Org
from test_sf_sync import expected, finding_tasks, fp, seed, sync

from tsos_rules.errors import ExitCode

pytestmark = pytest.mark.usefixtures("isolated_env")


def test_tasks_refused_by_a_collections_outage_are_written_by_the_next_run(
    org: Org, tmp_path: Path
) -> None:
    ids = seed(org.fake)
    want = expected(ids)
    # every attempt of the first run (the call and its 3 retries) gets a 500
    org.fake.fail("collections", status=500, code="UNKNOWN_EXCEPTION", times=4)
    first = sync(org, tmp_path)
    assert first.exit_code == ExitCode.CONNECTOR
    assert first.to_dict()["actions"]["pending"] == len(want)
    assert finding_tasks(org) == {}

    org.fake.advance(60)
    second = sync(org, tmp_path)  # incremental (daily_full off), nothing changed
    assert not second.full and second.records_judged == 0
    assert second.to_dict()["actions"]["by_kind"] == {"create_task": {"written": len(want)}}
    assert second.to_dict()["actions"]["pending"] == 0
    assert set(finding_tasks(org)) == set(want)

    org.fake.advance(60)
    third = sync(org, tmp_path)
    assert sum(third.actions.values()) == 0 and set(finding_tasks(org)) == set(want)


def test_a_locked_row_and_a_finding_fixed_meanwhile(org: Org, tmp_path: Path) -> None:
    ids = seed(org.fake)
    want = expected(ids)
    org.fake.lock_items(10_000)  # every item stays locked through the writer's retries
    first = sync(org, tmp_path)
    assert first.exit_code == ExitCode.CONNECTOR
    assert finding_tasks(org) == {}
    org.fake.locked_items = 0

    org.fake.advance(60)
    org.fake.update("Opportunity", ids.embraer_jets, NextStep="Pricing call", by=ids.cara)
    org.fake.advance(60)
    second = sync(org, tmp_path)
    assert second.findings_resolved == 1
    fixed = fp("tsos.next-step-required", "opportunity", ids.embraer_jets, "placeholder")
    assert set(finding_tasks(org)) == set(want) - {fixed}
    assert second.to_dict()["actions"]["pending"] == 0
    assert second.exit_code == ExitCode.BLOCK
