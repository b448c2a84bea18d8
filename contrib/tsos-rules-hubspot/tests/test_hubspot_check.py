"""``tsos-rules connectors check hubspot``: the configuration against the portal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
from tsos_rules_hubspot.testing import FakeHubSpot

from tsos_rules.cli import run

# The ``connectors check`` command arrived with tsos-rules' connector tooling.
pytest.importorskip("tsos_rules.cli.connectors")

CONFIG = """
[connector]
type = "hubspot"
token = { env = "HUBSPOT_TOKEN" }

[connector.stage_map]
appointmentscheduled = "mql"
qualifiedtobuy = "sql"
presentationscheduled = "draft_proposal"
decisionmakerboughtin = "trial_close"
contractsent = "closing"
"""


def _check(
    fake: FakeHubSpot, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str = ""
) -> tuple[int, dict[str, object]]:
    path = tmp_path / "tsos-rules.toml"
    path.write_text(CONFIG + extra, encoding="utf-8")
    with responses.RequestsMock() as rsps:
        fake.install(rsps)
        code = run(["connectors", "check", "hubspot", "--config", str(path), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_portal_set_up_as_the_readme_says_passes(
    fake: FakeHubSpot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN", fake.token)
    fake.define_property("tasks", "tsos_fingerprint", unique=True)
    fake.define_property(
        "tasks", "tsos_partner_notified", type="bool", field_type="booleancheckbox"
    )
    fake.define_property("deals", "tsos_channel", type="enumeration", field_type="select")
    fake.define_property("companies", "tsos_partner_of_record_id")
    a, b = fake.add("deals", {}), fake.add("companies", {})
    fake.associate("deals", a, "companies", b, label="Partner")
    code, report = _check(fake, tmp_path, capsys)
    assert code == 0, report
    assert report["ok"] is True
    wheres = {p["where"] for p in report["problems"]}  # type: ignore[attr-defined]
    assert "companies.tsos_partner_tier" in wheres  # a warning: read as empty
    assert not any(w.startswith("pipeline") for w in wheres)  # every stage is on the ladder


def test_missing_fingerprint_property_label_and_bad_stage_are_errors(
    fake: FakeHubSpot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN", fake.token)
    code, report = _check(fake, tmp_path, capsys, 'no_such_stage = "mql"\n')
    assert code == 2
    errors = {p["where"] for p in report["problems"] if p["level"] == "error"}  # type: ignore[attr-defined]
    assert errors == {
        "tasks.tsos_fingerprint",
        "connector.partner_association_label",
        "connector.stage_map.no_such_stage",
    }
