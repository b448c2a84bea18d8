"""End to end: ``tsos-rules sync`` with ``[connector] type = "hubspot"`` on the fake portal."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
import responses
from tsos_rules_hubspot.testing import FakeHubSpot

from tsos_rules.cli import run

STAGE_MAP = {"decisionmakerboughtin": "trial_close", "appointmentscheduled": "mql"}


def _config(tmp_path: Path) -> Path:
    stages = "\n".join(f'{k} = "{v}"' for k, v in STAGE_MAP.items())
    path = tmp_path / "tsos-rules.toml"
    path.write_text(
        f"""
[connector]
type = "hubspot"
token = {{ env = "HUBSPOT_TOKEN" }}
team_roles = {{ "Channel Team" = "channel" }}
searches_per_second = 100

[connector.stage_map]
{stages}

[sync]
mode = "annotate"

[state]
path = "{tmp_path / "state.sqlite3"}"
""",
        encoding="utf-8",
    )
    return path


def test_sync_writes_one_task_per_finding_and_no_more_on_rerun(
    fake: FakeHubSpot,
    portal: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = portal
    # The deal's next step was due before the evaluation date: tsos.next-step-required.
    fake.update("deals", ids["deal"], {"notes_next_activity_date": "2026-11-20T10:00:00Z"})
    monkeypatch.setenv("HUBSPOT_TOKEN", fake.token)
    config = _config(tmp_path)
    args = ["sync", "--config", str(config), "--as-of", "2026-11-24", "--format", "json", "-q"]
    with responses.RequestsMock() as rsps:
        fake.install(rsps)
        first = run(args)
        out = capsys.readouterr().out
        tasks = [
            t for t in fake.objects["tasks"].values() if t["properties"].get("tsos_fingerprint")
        ]
        assert tasks, out
        assert first in (0, 1), out
        linked = {
            deal for task in tasks for deal in fake.links[("tasks", "deals")].get(task["id"], {})
        }
        assert ids["deal"] in linked
        # The worklist links the deal's finding to the deal in the portal's web app.
        with contextlib.closing(sqlite3.connect(tmp_path / "state.sqlite3")) as state:
            urls = {
                url
                for (url,) in state.execute(
                    "SELECT record_url FROM findings WHERE record_id = ?", (ids["deal"],)
                )
            }
        assert urls == {f"https://app.hubspot.com/contacts/2519445/record/0-3/{ids['deal']}"}
        assert fake.count("GET", "/account-info/v3/details") == 1
        before = len(tasks)
        again = run([*args, "--full"])
        capsys.readouterr()
        after = [
            t for t in fake.objects["tasks"].values() if t["properties"].get("tsos_fingerprint")
        ]
        assert again == first
        assert len(after) == before
    assert json.loads(out)  # the summary is JSON
