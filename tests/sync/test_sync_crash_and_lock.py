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
from tsos_rules.errors import ExitCode
from tsos_rules.snapshot.document import snapshot_from_dict
from tsos_rules.sync.state import LockHeldError, StateStore
from tsos_rules.testing import builders as b

AS_OF = b.TODAY

#: Runs one sync in a child process and SIGKILLs it at the start of the Nth call of a method
#: (``module:Class.method``). The default, the Nth state commit, is after that batch's CRM writes
#: and before its state is committed; ``LocalConnector.write`` is after the write-ahead journal
#: was committed and before anything reached the CRM.
KILLER = textwrap.dedent(
    """
    import datetime, importlib, json, os, signal, sys
    from tsos_rules.sync.job import run_sync

    config, kill_at = json.loads(sys.argv[1]), int(sys.argv[2])
    as_of, hook = sys.argv[3], sys.argv[4]
    module_name, _, qualified = hook.partition(":")
    owner_name, _, method = qualified.partition(".")
    owner = getattr(importlib.import_module(module_name), owner_name)
    original = getattr(owner, method)
    calls = [0]

    def killing(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    setattr(owner, method, killing)
    run_sync(config, as_of=datetime.date.fromisoformat(as_of))
    sys.exit(99)  # not reached when killed
    """
)
COMMIT = "tsos_rules.sync.state:StateStore.commit_batch"
CRM_WRITE = "tsos_rules.connectors.local:LocalConnector.write"


def _killed_run(tmp_path: Path, config: dict[str, Any], kill_at: int, hook: str = COMMIT) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(config), str(kill_at), AS_OF.isoformat(), hook],
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
    from tsos_rules.sync.state import StateStore

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
    assert run(["sync", "--config", str(config), "-q"]) == ExitCode.LOCKED
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


def _task_for(org: Any, rule: str) -> dict[str, Any]:
    (task,) = [t for t in org.crm.tasks() if t["rule"] == rule]
    return task


def _locked_deal_moved_unapproved(make_org: Any) -> Any:
    return make_org(
        b.snapshot(
            opportunities=[b.deal("o1", stage="date_locked", close_date=b.day(30))],
            close_date_changes=[b.change("o1", old=b.day(20), new=b.day(30), stage="date_locked")],
        )
    )


def test_kill_after_an_enforce_repair_closes_the_task_it_left(
    make_org: Any, tmp_path: Path
) -> None:
    """The killed run opened a task and made the repair that cures its finding; the state
    never heard of either. The next run sees a cured deal: the orphan task must be closed."""
    org = _locked_deal_moved_unapproved(make_org)
    _killed_run(tmp_path, org.config(mode="enforce"), kill_at=1)
    orphan = _task_for(org, "tsos.close-date-locked")
    assert orphan["status"] == "open"
    assert org.open_findings() == {}

    summary = org.sync(mode="enforce")
    task = _task_for(org, "tsos.close-date-locked")
    assert task["id"] == orphan["id"] and task["status"] == "completed"
    assert orphan["external_id"] not in org.open_findings()
    assert summary.actions[("close_task", "written")] == 1
    assert "update_fields" not in summary.to_dict()["actions"]["by_kind"]
    assert summary.exit_code == 0
    state = org.state()
    assert state.pending_writes("local") == []
    state.close()
    # Settled: a further run writes nothing.
    assert org.sync(mode="enforce").to_dict()["actions"]["by_kind"] == {}


def test_kill_after_a_task_then_the_record_is_fixed_closes_the_task(
    make_org: Any, tmp_path: Path
) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    _killed_run(tmp_path, org.config(), kill_at=1)
    (orphan,) = org.crm.tasks(status="open")
    assert org.open_findings() == {}
    org.crm.update("opportunity", "o1", {"next_step": "Pricing call"}, by="u1")

    summary = org.sync()
    assert [t["status"] for t in org.crm.tasks()] == ["completed"]
    assert org.crm.tasks()[0]["id"] == orphan["id"]
    assert org.open_findings() == {}
    assert summary.to_dict()["actions"]["by_kind"] == {"close_task": {"written": 1}}


def test_kill_after_the_journal_before_the_crm_write_then_rerun(
    make_org: Any, tmp_path: Path
) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    _killed_run(tmp_path, org.config(), kill_at=1, hook=CRM_WRITE)
    assert org.crm.tasks() == []
    state = org.state()
    assert [p.kind.value for p in state.pending_writes("local")] == ["create_task"]
    state.close()

    summary = org.sync()
    assert summary.to_dict()["actions"]["by_kind"] == {"create_task": {"written": 1}}
    assert [t["status"] for t in org.crm.tasks()] == ["open"]
    state = org.state()
    assert state.pending_writes("local") == []
    state.close()


def test_kill_before_the_crm_write_then_the_record_is_fixed(make_org: Any, tmp_path: Path) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    _killed_run(tmp_path, org.config(), kill_at=1, hook=CRM_WRITE)
    org.crm.update("opportunity", "o1", {"next_step": "Pricing call"}, by="u1")

    summary = org.sync()
    assert summary.to_dict()["actions"]["by_kind"] == {"close_task": {"already_done": 1}}
    assert summary.exit_code == 0 and org.crm.tasks() == []
    state = org.state()
    assert state.pending_writes("local") == []
    state.close()


def test_kill_after_closing_a_task_then_the_finding_comes_back_reopens_it(
    make_org: Any, tmp_path: Path
) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    org.sync()
    org.crm.update("opportunity", "o1", {"next_step": "Pricing call"}, by="u1")
    _killed_run(tmp_path, org.config(), kill_at=1)
    (task,) = org.crm.tasks()
    assert task["status"] == "completed"
    org.crm.update("opportunity", "o1", {"next_step": "TBD"}, by="u1")  # the problem is back

    summary = org.sync()
    # The state still thought the task open, so only the journal knows it was closed.
    assert summary.to_dict()["actions"]["by_kind"] == {"create_task": {"written": 1}}
    assert [(t["id"], t["status"]) for t in org.crm.tasks()] == [(task["id"], "open")]
    (finding,) = org.open_findings().values()
    assert finding.task_id == task["id"] and finding.has_open_task
