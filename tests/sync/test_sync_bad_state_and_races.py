"""A damaged state file, a CRM path that is a directory and eight first runs started at once:
input errors (exit 2) that name the file and the way out, or a clean lock-out (exit 6), never an
internal error (issue 14, item 5)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tsos_rules.cli import main
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.errors import ExitCode


def _config(tmp_path: Path, crm: Path, state: Path) -> Path:
    config = tmp_path / "tsos.toml"
    config.write_text(
        f'[connector]\ntype = "local"\npath = "{crm}"\n[state]\npath = "{state}"\n'
        "[sync]\ndaily_full = false\n"
    )
    return config


def _sync(config: Path) -> Any:
    return CliRunner().invoke(main, ["sync", "-q", "--config", str(config)])


@pytest.fixture
def seeded_crm(tmp_path: Path) -> Path:
    path = tmp_path / "crm.sqlite3"
    crm = LocalCRM(path)
    crm.seed_demo(opportunities=60, seed=7, as_of=dt.date.today())
    crm.close()
    return path


@pytest.mark.parametrize("offset", [0, 4096])
def test_a_damaged_state_file_is_exit_2_naming_it_and_saying_how_to_recover(
    tmp_path: Path, seeded_crm: Path, offset: int
) -> None:
    state = tmp_path / "state.sqlite3"
    config = _config(tmp_path, seeded_crm, state)
    assert _sync(config).exit_code in (ExitCode.OK, ExitCode.BLOCK)
    with state.open("r+b") as handle:  # 8 KB of junk over the file's first pages
        handle.seek(offset)
        handle.write(os.urandom(8192))
    for _ in range(2):  # every run says the same, none crashes
        result = _sync(config)
        assert result.exit_code == ExitCode.INPUT, result.output
        assert f"{state}: not a usable state file" in result.output
        assert f"mv {state} {state}.damaged" in result.output
        assert "internal error" not in result.output and "Traceback" not in result.output
    # The way out works: moved aside, the next run rebuilds the state and writes nothing twice.
    state.rename(tmp_path / "state.sqlite3.damaged")
    for extra in ("-wal", "-shm"):
        Path(f"{state}{extra}").unlink(missing_ok=True)
    crm = LocalCRM(seeded_crm)
    tasks = len(crm.tasks())
    crm.close()
    result = CliRunner().invoke(main, ["sync", "-q", "--format", "json", "--config", str(config)])
    assert result.exit_code in (ExitCode.OK, ExitCode.BLOCK), result.output
    assert '"written": 0' in result.output
    crm = LocalCRM(seeded_crm)
    assert len(crm.tasks()) == tasks
    crm.close()


def test_a_crm_path_that_is_a_directory_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    result = _sync(_config(tmp_path, folder, tmp_path / "state.sqlite3"))
    assert result.exit_code == ExitCode.INPUT, result.output
    assert f"tsos.toml: connector.path: {folder} is a directory" in result.output


_AT_ONCE = """
import sys, time
from tsos_rules.cli import console
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
sys.argv = ["tsos-rules", "sync", "-q", "--config", sys.argv[2]]
console()
"""


def test_eight_first_runs_started_at_once_never_trip_over_the_state(
    tmp_path: Path, seeded_crm: Path
) -> None:
    state = tmp_path / "state.sqlite3"
    config = _config(tmp_path, seeded_crm, state)
    start = time.time() + 3.0  # every process has imported tsos-rules by then
    env = {**os.environ, "TSOS_RULES_DATA_DIR": str(tmp_path / "data")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _AT_ONCE, str(start), str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(8)
    ]
    outcomes = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            outcomes.append((proc.returncode, err))
    finally:
        for proc in procs:
            proc.kill()
    codes = [code for code, _ in outcomes]
    assert all(code in (ExitCode.OK, ExitCode.BLOCK, ExitCode.LOCKED) for code in codes), outcomes
    assert any(code in (ExitCode.OK, ExitCode.BLOCK) for code in codes)
    assert not any("already exists" in err for _, err in outcomes)
    crm = LocalCRM(seeded_crm)
    tasks = crm.tasks()
    crm.close()
    assert len({t["external_id"] for t in tasks}) == len(tasks) > 0


_OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from tsos_rules.errors import StateError
from tsos_rules.sync.state import StateStore
start, folder = float(sys.argv[1]), Path(sys.argv[2])
for round in range(8):
    time.sleep(max(0.0, start + round * 0.25 - time.time()))
    try:
        StateStore(folder / f"state{round}.sqlite3").close()
    except StateError as exc:
        print(exc)
"""


def test_eight_processes_creating_one_state_file_at_once_migrate_it_once(
    tmp_path: Path,
) -> None:
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, str(start), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0] * 8, outputs
    assert all(out == "" for out, _ in outputs), outputs
