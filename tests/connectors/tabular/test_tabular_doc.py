"""docs/tabular.md's worked CSV example runs as written: its files, its config, its check."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tsos_rules.cli import main
from tsos_rules.sync.job import run_sync

DOC = Path(__file__).parents[3] / "docs" / "tabular.md"
BLOCK = re.compile(r"```(\w+)\n# file: (\S+)\n(.*?)```", re.S)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert {name for _, name, _ in blocks} >= {"tsos-rules.toml", "export/deals.csv"}
    for _, name, body in blocks:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_documented_check_output(example: Path) -> None:
    result = CliRunner().invoke(
        main, ["connectors", "check", "tabular", "--config", "tsos-rules.toml"]
    )
    documented = re.search(
        r"\$ tsos-rules connectors check tabular .*?\n(.*?)\n\$", DOC.read_text(), re.S
    )
    assert documented is not None
    assert result.output.strip() == documented.group(1).strip(), result.output
    assert result.exit_code == 0


def test_the_documented_sync_writes_the_outbox(example: Path) -> None:
    text = (example / "tsos-rules.toml").read_text()
    (example / "tsos-rules.toml").write_text(text + f'\n[state]\npath = "{example}/state.db"\n')
    run_sync(example / "tsos-rules.toml", as_of=dt.date(2026, 11, 24))
    with (example / "outbox" / "tsos_tasks.csv").open() as handle:
        rows = {(r["record_id"], r["rule"]) for r in csv.DictReader(handle)}
    assert ("D-101", "tsos.next-step-required") in rows
    assert not any(record == "D-100" and rule == "tsos.next-step-required" for record, rule in rows)
