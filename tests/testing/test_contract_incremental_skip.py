"""ConnectorContract skips its incremental-read checks for a connector declaring
``incremental=False`` (every read is a full read), and still runs the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

pytestmark = pytest.mark.slow

SUITE = f"""
import sys
sys.path.insert(0, {str(EXAMPLES)!r})

import attrs
from jsonl_connector import JsonlConnector
from test_jsonl_connector import TestJsonlConnector


class FullReadsOnly(JsonlConnector):
    def capabilities(self):
        return attrs.evolve(super().capabilities(), incremental=False)

    def read(self, since, *, until=None):
        return super().read(None, until=until)  # ignores the watermark: always a full read


class TestFullReadsOnly(TestJsonlConnector):
    def make_connector(self, tmp_path):
        (tmp_path / "crm").mkdir(exist_ok=True)
        return FullReadsOnly(tmp_path / "crm")
"""


def test_incremental_checks_are_skipped_for_a_full_read_connector(tmp_path: Path) -> None:
    (tmp_path / "test_full_reads.py").write_text(SUITE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-p",
            "tsos_rules.testing.pytest_plugin",
            "test_full_reads.py::TestFullReadsOnly",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [
        line for line in result.stdout.splitlines() if "does not declare incremental" in line
    ]
    assert len(skipped) == 1 and "[6]" in skipped[0], result.stdout
    assert " passed" in result.stdout
