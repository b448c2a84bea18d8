"""Executors under faults, with real parts: a worker process killed while it judges, a
partition that kills its worker or raises every time, a Dask scheduler nobody listens at.

Each case runs ``tsos-rules check`` as its own process (real stdout, stderr and exit code),
with the test-only ``fault`` pack (:mod:`fault_pack`) added to the built-in ones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.errors import ExitCode
from tsos_rules.plugins import DISABLE_ENV

AS_OF = dt.date(2026, 11, 24)
HERE = Path(__file__).resolve().parent
#: The deal the fault pack misbehaves on (one of the generated org's).
FAULT_DEAL = "o000042"
#: ``tsos-rules check`` with the fault pack registered as if installed.
CLI = (
    "import sys\n"
    f"sys.path.insert(0, {str(HERE)!r})\n"
    "from tsos_rules.plugins import added_plugins\n"
    "added_plugins['fault'] = 'fault_pack'\n"
    "from tsos_rules.cli import console\n"
    "sys.argv = ['tsos-rules', *sys.argv[1:]]\n"
    "console()\n"
)
FAILED_TWICE = re.compile(r"partition (\d+) of \d+ \(([\d,]+) records\) failed twice")


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    org = generate_org(opportunities=2000, seed=7, as_of=AS_OF)
    path = tmp_path_factory.mktemp("faults") / "org.json"
    path.write_text(json.dumps(org, default=str))
    return path


@pytest.fixture(scope="module")
def alone(snapshot_file: Path) -> bytes:
    """What one process prints for the snapshot (the fault pack idle)."""
    result = check(snapshot_file, "--executor", "local")
    assert result.returncode == ExitCode.BLOCK, result.stderr
    return result.stdout


def check(
    path: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-c", CLI, "check", str(path), "--format", "json", *extra]
    environment = {k: v for k, v in os.environ.items() if k != DISABLE_ENV}
    environment.pop("TSOS_RULES_CONFIG", None)
    return subprocess.run(
        command,
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**environment, **(env or {})},
    )


def fault(mode: str, marker: Path | None = None) -> dict[str, str]:
    env = {"TSOS_FAULT_DEAL": FAULT_DEAL, "TSOS_FAULT_MODE": mode}
    if marker is not None:
        env["TSOS_FAULT_MARKER"] = str(marker)
    return env


@pytest.fixture
def killer(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    """Kills (SIGKILL) the process whose pid the fault pack writes to the marker file, once;
    yields the marker and the pids killed."""
    marker = tmp_path / "stalled-worker.pid"
    killed: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            text = marker.read_text() if marker.exists() else ""
            if text:
                pid = int(text)
                assert pid != os.getpid()
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield marker, killed
    stop.set()
    thread.join(timeout=10)


@pytest.mark.parametrize("executor", ["dask", "processes"])
def test_a_worker_killed_while_judging_has_its_partition_retried_and_the_output_unchanged(
    executor: str, snapshot_file: Path, alone: bytes, killer: tuple[Path, list[int]]
) -> None:
    """dask: a real LocalCluster of 2 worker processes; processes: a real process pool."""
    marker, killed = killer
    result = check(snapshot_file, "--executor", executor, "--jobs", "2", env=fault("stall", marker))
    assert killed, "the fault pack never stalled a worker"
    assert killed[0] != os.getpid()
    assert result.returncode == ExitCode.BLOCK, result.stderr
    assert result.stdout == alone
    assert b"failed (its worker died" in result.stderr
    assert b"retrying it" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.fixture(scope="module")
def fault_partition(snapshot_file: Path) -> tuple[int, int]:
    """(number, own records) of the partition holding the fault deal, as 2 workers cut it."""
    from tsos_rules.engine import Engine
    from tsos_rules.engine.partitions import partition_index
    from tsos_rules.snapshot.document import load_snapshot

    engine = Engine([])
    index = engine.index(load_snapshot(snapshot_file)[0])
    for partition in partition_index(index, 4):  # two per worker
        mine = partition.own_records("opportunities")
        if any(deal.id == FAULT_DEAL for deal in mine):
            return partition.number + 1, partition.size
    raise AssertionError(f"{FAULT_DEAL} is in no partition")


@pytest.mark.parametrize(
    ("executor", "mode"),
    [("dask", "die"), ("processes", "die"), ("dask", "raise"), ("processes", "raise")],
)
def test_a_partition_failing_twice_is_exit_3_naming_it_with_nothing_on_stdout(
    executor: str, mode: str, snapshot_file: Path, fault_partition: tuple[int, int]
) -> None:
    """The partition named is the one judging the fault deal, not one that shared a worker
    with it or lost its copy with that worker."""
    result = check(snapshot_file, "--executor", executor, "--jobs", "2", env=fault(mode))
    assert result.returncode == ExitCode.CONNECTOR, result.stderr
    assert result.stdout == b""  # never a partial answer presented as whole
    named = FAILED_TWICE.search(result.stderr.decode())
    assert named, result.stderr.decode()
    assert (int(named[1]), int(named[2].replace(",", ""))) == fault_partition
    assert b"no findings are reported from a partial run" in result.stderr
    why = b"its worker died" if mode == "die" else b"RuntimeError: this partition cannot be"
    assert why in result.stderr
    assert b"Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_dask_scheduler_is_exit_3_within_the_connect_timeout(
    snapshot_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tsos.toml"
    config.write_text("[engine]\nconnect_timeout = 2\n")
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = check(
        snapshot_file, "--executor", f"dask={address}", "--config", str(config), timeout=120
    )
    elapsed = time.monotonic() - started
    assert result.returncode == ExitCode.CONNECTOR, result.stderr
    assert result.stdout == b""
    message = result.stderr.decode()
    assert f"executor dask={address}: cannot reach the Dask scheduler within 2 s" in message
    assert "Traceback" not in message
    assert elapsed < 60  # 2 s of trying, plus start-up


def test_a_dask_address_with_an_unknown_scheme_is_a_config_error(snapshot_file: Path) -> None:
    result = check(snapshot_file, "--executor", "dask=bogus://127.0.0.1:1", timeout=120)
    assert result.returncode == ExitCode.INPUT, result.stderr
    assert b"executor dask=bogus://127.0.0.1:1: not a Dask scheduler address" in result.stderr
    assert b"Traceback" not in result.stderr


def test_connect_timeout_is_checked_where_it_is_read(tmp_path: Path) -> None:
    from tsos_rules.config import load_config
    from tsos_rules.errors import ConfigError

    config = tmp_path / "tsos.toml"
    config.write_text("[engine]\nconnect_timeout = 0\n")
    with pytest.raises(ConfigError, match="connect_timeout"):
        load_config(config)
    config.write_text("[engine]\nconnect_timeout = 2.5\n")
    assert load_config(config).engine_connect_timeout == 2.5


# -- a Dask cluster started the way an operator starts one: dask scheduler, dask worker --------


@contextmanager
def dask_cluster(workers: int, env: dict[str, str], logs: Path) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1; yields the address."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{_closed_port()}"
    environment = {**os.environ, **env, "PYTHONPATH": str(HERE)}  # workers import fault_pack
    started: list[subprocess.Popen[bytes]] = []
    try:
        with (logs / "scheduler.log").open("wb") as log:
            command = [dask, "scheduler", "--host", "127.0.0.1", "--port", address.split(":")[-1]]
            started.append(subprocess.Popen([*command, "--no-dashboard"], stderr=log))
        if workers:
            with (logs / "workers.log").open("wb") as log:
                command = [dask, "worker", address, "--nworkers", str(workers), "--nthreads", "1"]
                command += ["--host", "127.0.0.1", "--no-dashboard"]
                started.append(subprocess.Popen(command, env=environment, stderr=log))
            with Client(address, timeout=60) as client:
                client.wait_for_workers(workers, timeout=120)
        else:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", int(address.split(":")[-1]))) == 0:
                        break
                time.sleep(0.1)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_a_worker_of_an_existing_cluster_killed_while_judging_changes_nothing(
    snapshot_file: Path, alone: bytes, killer: tuple[Path, list[int]], tmp_path: Path
) -> None:
    """dask=ADDRESS: the cluster's own scheduler and nannies (which restart the dead worker)."""
    marker, killed = killer
    with dask_cluster(2, fault("stall", marker), tmp_path) as address:
        result = check(snapshot_file, "--executor", f"dask={address}")
    assert killed, "the fault pack never stalled a worker"
    assert result.returncode == ExitCode.BLOCK, result.stderr
    assert result.stdout == alone
    assert b"failed (its worker died" in result.stderr
    assert b"Traceback" not in result.stderr


def test_a_cluster_without_workers_is_exit_3_within_the_connect_timeout(
    snapshot_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tsos.toml"
    config.write_text("[engine]\nconnect_timeout = 2\n")
    with dask_cluster(0, {}, tmp_path) as address:
        started = time.monotonic()
        result = check(
            snapshot_file, "--executor", f"dask={address}", "--config", str(config), timeout=120
        )
        elapsed = time.monotonic() - started
    assert result.returncode == ExitCode.CONNECTOR, result.stderr
    assert result.stdout == b""
    assert b"no worker joined the Dask cluster within 2 s" in result.stderr
    assert b"Traceback" not in result.stderr
    assert elapsed < 60


# -- a sharded snapshot: each worker reads, indexes and judges its own shards ---------------

#: Plugins whose report sections read the whole snapshot: with them on, ``check DIR`` loads
#: it whole in the driver; off, the workers read their own shards.
SECTIONS_OFF = {DISABLE_ENV: "mutual-operating-period,sell-through"}
SHARDS_FAILED_TWICE = re.compile(r"shards ([\w\-., ]+\.json) failed twice")


@pytest.fixture(scope="module")
def shard_dir(snapshot_file: Path) -> Path:
    from tsos_rules.engine.sharding import split_snapshot
    from tsos_rules.snapshot.document import load_snapshot

    out = snapshot_file.parent / "org-shards"
    split_snapshot(load_snapshot(snapshot_file)[0], 4, out)
    return out


@pytest.fixture(scope="module")
def alone_without_sections(snapshot_file: Path) -> bytes:
    result = check(snapshot_file, "--executor", "local", env=SECTIONS_OFF)
    assert result.returncode == ExitCode.BLOCK, result.stderr
    return result.stdout


def _fault_shard(shard_dir: Path) -> str:
    for shard in sorted(shard_dir.glob("shard-*.json")):
        deals = json.loads(shard.read_text())["opportunities"]
        if any(deal["id"] == FAULT_DEAL for deal in deals):
            return shard.name
    raise AssertionError(f"{FAULT_DEAL} is in no shard")


@pytest.mark.parametrize("executor", ["dask", "processes"])
def test_a_shard_worker_killed_while_judging_is_redone_and_the_output_unchanged(
    executor: str, shard_dir: Path, alone_without_sections: bytes, killer: tuple[Path, list[int]]
) -> None:
    """The fresh worker reads and indexes its shards again (both phases), then judges them
    (dask: a real LocalCluster of 2 worker processes)."""
    marker, killed = killer
    env = {**SECTIONS_OFF, **fault("stall", marker)}
    result = check(shard_dir, "--executor", executor, "--jobs", "2", env=env)
    assert killed, "the fault pack never stalled a worker"
    assert result.returncode == ExitCode.BLOCK, result.stderr
    assert result.stdout == alone_without_sections
    assert b"failed (its worker died" in result.stderr
    assert b"retrying them" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("executor", "mode"), [("dask", "die"), ("processes", "die"), ("processes", "raise")]
)
def test_shards_failing_twice_are_exit_3_naming_their_files(
    executor: str, mode: str, shard_dir: Path
) -> None:
    env = {**SECTIONS_OFF, **fault(mode)}
    result = check(shard_dir, "--executor", executor, "--jobs", "2", env=env)
    assert result.returncode == ExitCode.CONNECTOR, result.stderr
    assert result.stdout == b""
    named = SHARDS_FAILED_TWICE.search(result.stderr.decode())
    assert named, result.stderr.decode()
    assert _fault_shard(shard_dir) in named[1].split(", ")
    assert b"no findings are reported from a partial run" in result.stderr
    why = b"its worker died" if mode == "die" else b"RuntimeError: this partition cannot be"
    assert why in result.stderr
    assert b"Traceback" not in result.stderr
