"""Every executor gives the findings of one process; a partition failing twice fails the run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine import Engine, ExecutorSpec
from tsos_rules.errors import ConfigError, ExecutorError
from tsos_rules.findings import Severity
from tsos_rules.rules.spec import PythonRule, RulePack, RuleSpec, Violation
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    org = generate_org(opportunities=2000, seed=7, as_of=AS_OF)
    path = tmp_path_factory.mktemp("executors") / "org.json"
    path.write_text(json.dumps(org, default=str))
    return path


def check(path: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "tsos_rules", "check", str(path), "--format", "json"]
    return subprocess.run([*command, *extra], capture_output=True, timeout=600, check=False)


def test_processes_and_a_dask_cluster_of_worker_processes_print_the_same_bytes(
    snapshot_file: Path,
) -> None:
    alone = check(snapshot_file, "--executor", "local")
    assert alone.returncode == 1, alone.stderr
    findings = json.loads(alone.stdout)["findings"]
    assert any(f["rule"] == "channel-economics.partner-credit-limit" for f in findings)
    for executor in ("processes", "dask"):  # dask: a real LocalCluster, 2 worker processes
        other = check(snapshot_file, "--executor", executor, "--jobs", "2")
        assert other.returncode == 1, other.stderr
        assert other.stdout == alone.stdout, executor


def test_a_dask_cluster_of_threads_gives_the_same_findings(snapshot_file: Path) -> None:
    """processes=False (worker threads in this process) is the same scheduler, faster to start."""
    snapshot, _ = snapshot_from_dict(json.loads(snapshot_file.read_text()))
    engine = Engine.from_config(None)
    index = engine.index(snapshot)
    alone = engine.evaluate_index(index).to_dict()
    spec = ExecutorSpec("dask", workers=2, cluster_processes=False)
    assert engine.evaluate_index(index, executor=spec).to_dict() == alone
    engine.close()


def test_a_bad_executor_is_a_config_error_naming_the_option(snapshot_file: Path) -> None:
    result = check(snapshot_file, "--executor", "threads")
    assert result.returncode == 2
    assert b"--executor: unknown executor 'threads'" in result.stderr
    assert b"Traceback" not in result.stderr
    with pytest.raises(ConfigError, match="only dask takes an address"):
        ExecutorSpec.parse("processes=tcp://x:1", where="--executor")


def _explode(facts: Any, params: Mapping[str, Any]) -> Iterator[Violation]:
    if facts.opportunity.id == "o000042":
        raise RuntimeError("this partition cannot be judged")
    return iter(())


BROKEN = RulePack(
    name="broken",
    version="1",
    description="A rule that fails on one deal.",
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id="broken.explodes",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="fails",
                doctrine="-",
            ),
            checks={"opportunity": _explode},
        ),
    ),
)


@pytest.mark.parametrize(
    "spec",
    [
        ExecutorSpec("processes", workers=2),
        ExecutorSpec("dask", workers=2, cluster_processes=False),
    ],
    ids=["processes", "dask"],
)
def test_a_partition_that_fails_twice_fails_the_run_naming_it(spec: ExecutorSpec) -> None:
    org = generate_org(opportunities=200, seed=7, as_of=AS_OF)
    snapshot, _ = snapshot_from_dict(org)
    engine = Engine([BROKEN])
    with pytest.raises(ExecutorError, match=r"partition \d of \d .* failed twice"):
        engine.evaluate_index(engine.index(snapshot), executor=spec)
