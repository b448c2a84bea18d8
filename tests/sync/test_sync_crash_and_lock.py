"""A run killed with SIGKILL between its CRM writes and its state commit is repaired by the
next run without a duplicate write or a lost finding; overlapping runs are refused; a lock
left by a killed run never blocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.cli import run
from tsos_rules.engine import Engine, filter_severity
from tsos_rules.snapshot_io import snapshot_from_dict
from tsos_rules.state import LockHeldError, StateStore
from tsos_rules.sync import EXIT_LOCKED
from tsos_rules.testing import builders as b

AS_OF = b.TODAY

#: Runs one sync in a child process and SIGKILLs it at the start of its Nth state commit,
#: that is after that batch's CRM writes and before its state is committed.
KILLER = textwrap.dedent(
    """
    import datetime, json, os, signal, sys
    from tsos_rules import state
    from tsos_rules.sync import run_sync

    config, kill_at, as_of = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    original = state.StateStore.commit_batch
    calls = [0]

    def commit_batch(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    state.StateStore.commit_batch = commit_batch
    run_sync(config, as_of=datetime.date.fromisoformat(as_of))
    sys.exit(99)  # not reached when killed
    """
)


def _killed_run(tmp_path: Path, config: dict[str, Any], kill_at: int) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(config), str(kill_at), AS_OF.isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_kill_after_write_before_commit_then_rerun(
    org: Any, demo_org: dict[str, Any], tmp_path: Path
) -> None:
    config = org.config(batch_size=10)
    _killed_run(tmp_path, config, kill_at=3)
    written_before = {t["external_id"] for t in org.crm.tasks()}
    recorded_before = set(org.open_findings())
    # The third batch's tasks are in the CRM but not in the state.
    assert recorded_before < written_before

    summary = org.sync(batch_size=10)
    actions = summary.to_dict()["actions"]["by_kind"]["create_task"]
    assert actions["already_done"] == len(written_before - recorded_before)
    tasks = org.crm.tasks()
    ids = Counter(t["external_id"] for t in tasks)
    assert max(ids.values()) == 1  # no duplicate task
    engine = Engine.from_config(None)
    snapshot, _ = snapshot_from_dict(demo_org)
    expected = {
        f.fingerprint for f in filter_severity(engine.evaluate(snapshot, AS_OF), include_info=False)
    }
    engine.close()
    assert set(org.open_findings()) == expected == set(ids)  # no finding lost
    state = org.state()
    outcomes = [r["outcome"] for r in state.runs("local")]
    state.close()
    assert outcomes == ["ok", "interrupted"]


def test_kill_between_closing_tasks_and_recording_the_resolution(
    make_org: Any, tmp_path: Path
) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal(f"o{i}", next_step="TBD") for i in range(6)]))
    org.sync()
    org.crm.update_many(
        [("opportunity", f"o{i}", {"next_step": "Pricing call"}) for i in range(6)], by="u1"
    )
    _killed_run(tmp_path, org.config(), kill_at=1)
    assert {t["status"] for t in org.crm.tasks()} == {"completed"}
    assert len(org.open_findings()) == 6  # the state never heard

    summary = org.sync()
    assert summary.findings_resolved == 6
    assert summary.to_dict()["actions"]["by_kind"] == {"close_task": {"already_done": 6}}
    assert org.open_findings() == {} and len(org.crm.tasks()) == 6


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tsos_rules.state import StateStore

    store = StateStore(Path(sys.argv[1]))
    store.lock().acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def lock_holder(org: Any, tmp_path: Path) -> Any:
    """Another sync run (a child process) holding the state lock."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    child = subprocess.Popen(
        [sys.executable, str(script), str(org.state_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()
    child.stdout.close()


def test_an_overlapping_run_is_refused_and_a_killed_holder_never_blocks(
    org: Any, lock_holder: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(LockHeldError, match=f"pid {lock_holder.pid}"):
        org.sync()
    config = tmp_path / "sync.toml"
    config.write_text(f'[connector]\npath = "{org.crm_path}"\n[state]\npath = "{org.state_path}"\n')
    assert run(["sync", "--config", str(config), "-q"]) == EXIT_LOCKED
    assert "another sync run holds" in capsys.readouterr().err
    assert org.crm.tasks() == []

    os.kill(lock_holder.pid, signal.SIGKILL)  # the holder dies without releasing anything
    lock_holder.wait()
    assert org.sync().findings_new > 0
    state = StateStore(org.state_path)
    assert [r["outcome"] for r in state.runs("local")] == ["ok"]
    state.close()


def test_kill_after_an_enforce_repair_never_repairs_twice(make_org: Any, tmp_path: Path) -> None:
    org = make_org(
        b.snapshot(
            opportunities=[b.deal("o1", stage="date_locked", close_date=b.day(30))],
            close_date_changes=[b.change("o1", old=b.day(20), new=b.day(30), stage="date_locked")],
        )
    )
    _killed_run(tmp_path, org.config(mode="enforce"), kill_at=1)
    assert org.crm.get("opportunity", "o1")["close_date"] == b.day(20)
    assert org.open_findings() == {}  # the state never heard of the run

    summary = org.sync(mode="enforce")
    by_kind = summary.to_dict()["actions"]["by_kind"]
    # The deal already holds the restored date, so the move is cured: nothing is repaired twice.
    assert "update_fields" not in by_kind
    assert "tsos.close-date-locked" not in {f.rule for f in org.open_findings().values()}
    restores = [c for c in org.crm.close_date_history("o1") if c["changed_by"] == "tsos-rules"]
    assert len(restores) == 1
