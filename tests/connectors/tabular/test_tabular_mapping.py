"""The mapping as an admin meets it: ``check`` before any run, one bad row at run time, the
settings refused with the key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tabular_support import LADDER_NAMES, create_schema, seed, settings

from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.errors import ConfigError
from tsos_rules.testing.contract import CONTRACT_SNAPSHOT, ConnectorContract

LADDER = list(LADDER_NAMES.values())
AT = ConnectorContract.T0


def csv_crm(tmp_path: Path, **more: Any) -> TabularConnector:
    connector = TabularConnector.from_settings(
        settings({"folder": str(tmp_path / "export")}, csv=True, **more)
    )
    create_schema(connector)
    seed(connector, CONTRACT_SNAPSHOT, AT)
    return connector


def test_a_clean_mapping_checks_clean(tmp_path: Path) -> None:
    connector = csv_crm(tmp_path)
    problems = connector.check(LADDER)
    connector.close()
    assert [p for p in problems if p.level == "error"] == []


def test_check_names_table_column_and_value(tmp_path: Path) -> None:
    connector = csv_crm(tmp_path)
    source = connector.source
    source.update("crm_deals", ("deal_id", "o2"), {"close_date": "2026-31-12"}, None)
    source.update("crm_deals", ("deal_id", "o1"), {"stage_name": "Negotiation"}, None)
    connector.close()
    broken = settings({"folder": str(tmp_path / "export")}, csv=True)
    broken["tables"]["account"]["columns"]["name"] = "COMPANY_NAME"
    broken["tables"]["partner"]["table"] = "resellers"
    connector = TabularConnector.from_settings(broken)
    problems = [str(p) for p in connector.check(LADDER)]
    connector.close()
    assert "error: resellers: table not found (tables.partner.table)" in problems
    assert (
        "error: crm_accounts.COMPANY_NAME: column not found (tables.account.columns.name)"
        in problems
    )
    assert any(
        p.startswith("error: crm_deals.close_date: not a date in the format '%m/%d/%Y'")
        and "'2026-31-12' (1 row)" in p
        for p in problems
    ), problems
    assert any(
        p.startswith("error: crm_deals.stage_name: stage value maps onto no stage")
        and "'Negotiation'" in p
        for p in problems
    ), problems


def test_one_bad_row_is_skipped_and_named_the_rest_judged(tmp_path: Path) -> None:
    connector = csv_crm(tmp_path)
    connector.source.update("crm_deals", ("deal_id", "o2"), {"amount": "lots"}, None)
    result = connector.read(None, until=AT)
    connector.close()
    (error,) = result.errors
    assert error.record_id == "o2" and error.field == "amount"
    assert "crm_deals.amount = 'lots': not a number" in str(error)
    assert ("opportunity", "o1") in result.changed
    assert ("opportunity", "o2") not in result.changed


def test_an_unknown_enum_value_names_its_column(tmp_path: Path) -> None:
    connector = csv_crm(tmp_path)
    connector.source.update("crm_users", ("user_id", "u1"), {"user_type": "Sales Ops"}, None)
    result = connector.read(None, until=AT)
    connector.close()
    messages = [str(e) for e in result.errors]
    assert any("crm_users.user_type: " in m and "'Sales Ops'" in m for m in messages), messages


def test_mapping_a_column_only_of_a_time_zone(tmp_path: Path) -> None:
    """Timestamps without an offset are read in the configured time zone."""
    connector = csv_crm(tmp_path, time_zone="America/New_York")
    connector.source.update(
        "crm_leads", ("lead_id", "l2"), {"distributed_at": "2026-11-02 09:00:00"}, None
    )
    result = connector.read(None, until=AT)
    connector.close()
    (lead,) = [x for x in result.snapshot.leads if x.id == "l2"]
    assert lead.distributed_at is not None
    assert lead.distributed_at.isoformat() == "2026-11-02T09:00:00-05:00"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"folder": None}, "give exactly one source"),
        ({"time_zone": "Mars/Olympus"}, "connector.time_zone: unknown time zone"),
        ({"tables": {"deals": {"table": "x"}}}, "connector.tables.deals.record: expected one of"),
        ({"colour": "blue"}, "connector.colour: unknown setting"),
        (
            {"folder": None, "url": "postgresql://crm:s3cret@db/crm"},
            "connector.url: this URL holds a password",
        ),
        (
            {"tables": {"opportunity": {"table": "d", "where": "1=1"}}},
            "tables.opportunity.where: SQL conditions need an SQL",
        ),
    ],
)
def test_settings_errors_name_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    table: dict[str, Any] = {"type": "tabular", "folder": str(tmp_path), "tables": {}}
    table["tables"] = {"opportunity": {"table": "deals"}}
    table.update(change)
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        TabularConnector.from_settings(table)


def test_repair_on_a_csv_crm_is_conditional(tmp_path: Path) -> None:
    """A repair computed from an old read is stale and the newer value stays."""
    from tsos_rules.connectors.base import Action, ActionKind, ActionStatus

    connector = csv_crm(tmp_path)
    version = connector.read(None, until=AT).versions[("opportunity", "o1")]
    connector.source.update("crm_deals", ("deal_id", "o1"), {"row_version": "7"}, None)
    repair = Action(
        kind=ActionKind.UPDATE_FIELDS,
        fingerprint="9" * 32,
        record_type="opportunity",
        record_id="o1",
        changes={"close_date": "2030-01-01"},
        expected_version=version,
    )
    (result,) = connector.write([repair])
    row = connector.source.find("crm_deals", "deal_id", "o1")
    connector.close()
    assert result.status is ActionStatus.STALE
    assert row is not None and row["close_date"] != "01/01/2030"
