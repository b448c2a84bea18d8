"""``tsos-rules connectors check [NAME]``: any connector implementing ``Checkable``, found only
through the registered connectors; the local demo CRM can be checked too."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest

from tsos_rules import hookimpl
from tsos_rules.connectors.base import Capabilities, Checkable, Problem, ReadResult
from tsos_rules.connectors.local import LocalConnector, LocalCRM
from tsos_rules.model import Snapshot
from tsos_rules.testing import channel_account, channel_deal, snapshot


@pytest.fixture
def crm_path(tmp_path: Path) -> Path:
    """A small seeded local CRM: two deals, both at stages on the default ladder."""
    path = tmp_path / "crm.sqlite3"
    crm = LocalCRM(path)
    crm.seed(
        snapshot(
            accounts=[channel_account()],
            opportunities=[channel_deal("o1", stage="closing"), channel_deal("o2", stage="sql")],
        )
    )
    crm.close()
    return path


def config(tmp_path: Path, connector: str) -> str:
    """A config file whose ``[connector]`` table is ``connector`` (TOML lines)."""
    path = tmp_path / "tsos-rules.toml"
    path.write_text(f"[connector]\n{connector}\n", encoding="utf-8")
    return str(path)


def local(crm_path: Path) -> str:
    return f'type = "local"\npath = "{crm_path}"\nseed_if_missing = false'


def test_a_healthy_local_crm_checks_ok(cli, tmp_path: Path, crm_path: Path) -> None:
    cfg = config(tmp_path, local(crm_path))
    result = cli("connectors", "check", "local", "--config", cfg)
    assert (result.code, result.out) == (0, "local: ok (0 error(s), 0 warning(s))\n")
    # NAME defaults to the configured [connector] type.
    assert cli("connectors", "check", "--config", cfg).out == result.out


def test_deals_at_a_stage_off_the_ladder_are_a_warning(cli, tmp_path: Path, crm_path: Path) -> None:
    crm = LocalCRM(crm_path)
    crm.update("opportunity", "o2", {"stage": "haggling"})
    crm.close()
    cfg = config(tmp_path, local(crm_path))
    result = cli("connectors", "check", "local", "--config", cfg, "--format", "json")
    assert result.code == 0
    assert result.json() == {
        "connector": "local",
        "ok": True,
        "problems": [
            {
                "level": "warning",
                "where": "opportunities.stage",
                "message": "1 deal(s) at stage 'haggling', which is not on org.stage_ladder",
            }
        ],
    }


def test_a_crm_file_from_another_schema_is_an_error(cli, tmp_path: Path, crm_path: Path) -> None:
    db = sqlite3.connect(crm_path)
    db.execute("ALTER TABLE field_history DROP COLUMN changed_by")
    db.close()
    cfg = config(tmp_path, local(crm_path))
    result = cli("connectors", "check", "local", "--config", cfg)
    assert result.code == 2
    assert (
        f"error: {crm_path}: field_history: missing column(s) changed_by: made by another "
        "version of tsos-rules; re-create it with `tsos-rules demo reset`"
    ) in result.out
    assert result.out.endswith("local: not usable (1 error(s), 0 warning(s))\n")


def test_an_unseeded_crm_is_an_error(tmp_path: Path) -> None:
    connector = LocalConnector(LocalCRM(tmp_path / "empty.sqlite3"))
    try:
        problems = list(connector.check(["sql", "closing"]))
    finally:
        connector.close()
    assert [(p.level, p.message) for p in problems] == [
        ("error", "never seeded; re-create it with `tsos-rules demo reset`")
    ]


@attrs.define
class NoCheck:
    """A connector that reads nothing and has no ``check``."""

    name: str = "nocheck"

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def read(self, since: str | None, *, until: Any = None) -> ReadResult:
        return ReadResult(snapshot=Snapshot(), changed=frozenset(), watermark=None)

    def write(self, actions: Any) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class NoCheckPlugin:
    @hookimpl
    def tsos_rules_register_connectors(self, register: Any) -> None:
        register("nocheck", lambda settings: NoCheck())


def test_a_connector_without_check_says_so(tsos_plugin, cli, tmp_path: Path) -> None:
    tsos_plugin(NoCheckPlugin(), name="nocheck")
    assert not isinstance(NoCheck(), Checkable)
    cfg = config(tmp_path, 'type = "nocheck"')
    result = cli("connectors", "check", "nocheck", "--config", cfg)
    assert result.code == 2
    assert result.err == (
        "tsos-rules: connectors check: the nocheck connector cannot check its configuration "
        "(it implements no check(ladder) method)\n"
    )


def test_a_connector_is_found_only_through_registration(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", "tsos_rules.connectors.salesforce")
    cfg = config(tmp_path, 'type = "salesforce"')
    result = cli("connectors", "check", "salesforce", "--config", cfg)
    assert result.code == 2
    assert result.err == "tsos-rules: connectors check: no connector 'salesforce' is installed\n"


def test_one_problem_type_for_every_connector() -> None:
    from tsos_rules.connectors import salesforce
    from tsos_rules.connectors.salesforce import connector as sf_connector

    assert salesforce.Problem is Problem and sf_connector.Problem is Problem
    problem = Problem("warning", "Opportunity.StageName", "stage 'X' is not mapped")
    assert str(problem) == "warning: Opportunity.StageName: stage 'X' is not mapped"
    with pytest.raises(ValueError, match="level"):
        Problem("fatal", "x", "y")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        problem.level = "error"  # type: ignore[misc]


def test_the_hubspot_check_returns_the_shared_problem() -> None:
    check = pytest.importorskip("tsos_rules_hubspot.check")
    assert check.Problem is Problem
