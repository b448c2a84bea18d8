"""bench/generate.py, the snapshot generator the scale benchmarks and docs use: a bad --out is
refused with a message and exit 2 before it generates anything, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GENERATE = Path(__file__).resolve().parents[1] / "bench" / "generate.py"


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATE), "--opportunities", "10", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sharded_snapshot_into_a_directory_holding_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "org"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _generate("--shards", "2", "--out", str(out))
    assert result.returncode == 2
    assert "exists and is not an empty directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_single_file_snapshot_onto_a_directory_is_refused(tmp_path: Path) -> None:
    result = _generate("--out", str(tmp_path))
    assert result.returncode == 2
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_place_is_an_error_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "org.json"
    result = _generate("--out", str(target))
    assert result.returncode == 2
    assert "generate.py: error:" in result.stderr and str(target.parent) in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_directory_takes_the_shards(tmp_path: Path) -> None:
    out = tmp_path / "org"
    out.mkdir()
    result = _generate("--shards", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {"manifest.json", "shard-0000.json"}
