"""A repair writes the row's new modified time; into a PostgreSQL ``timestamp without time
zone`` column it must land as the wall time in the mapping's zone, whatever zone the server's
sessions use, so the next read sees the moment it was written (not hours before or after)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import sqlalchemy as sa
from tabular_support import create_schema, seed, settings

from tsos_rules.connectors.base import Action, ActionKind, ActionStatus
from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.testing.contract import CONTRACT_SNAPSHOT, ConnectorContract

AT = ConnectorContract.T0
REPAIRED = AT + dt.timedelta(hours=3)
MAPPING_ZONE = "Europe/Berlin"
SESSION_ZONE = "America/Los_Angeles"


def _wall(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)


def _naive_modified_columns(url: str) -> None:
    """The CRM keeps local wall times, and its server's sessions run in another zone."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as db:
        database = db.execute(sa.text("SELECT current_database()")).scalar_one()
        db.execute(sa.text(f"ALTER DATABASE \"{database}\" SET timezone = '{SESSION_ZONE}'"))
        db.execute(
            sa.text(
                "ALTER TABLE crm_deals ALTER COLUMN updated_at "
                "TYPE timestamp without time zone USING updated_at AT TIME ZONE 'UTC'"
            )
        )
    engine.dispose()


def _stored(url: str, deal: str) -> tuple[dt.datetime, str]:
    engine = sa.create_engine(url)
    with engine.connect() as db:
        value = db.execute(
            sa.text("SELECT updated_at FROM crm_deals WHERE deal_id = :id"), {"id": deal}
        ).scalar_one()
        zone = db.execute(sa.text("SHOW timezone")).scalar_one()
    engine.dispose()
    return value, zone


def test_a_repair_writes_wall_time_in_the_mapping_zone(postgres_url: str) -> None:
    config = settings({"url": postgres_url}, csv=False, time_zone=MAPPING_ZONE)
    builder = TabularConnector.from_settings(config)
    create_schema(builder)
    builder.close()
    _naive_modified_columns(postgres_url)
    connector = TabularConnector.from_settings(config, now=lambda: REPAIRED)
    try:
        seed(connector, CONTRACT_SNAPSHOT, AT)
        seeded, _ = _stored(postgres_url, "o1")
        assert seeded == _wall(AT, MAPPING_ZONE)
        first = connector.read(None, until=AT + dt.timedelta(hours=1))
        repair = Action(
            kind=ActionKind.UPDATE_FIELDS,
            fingerprint="r" * 32,
            record_type="opportunity",
            record_id="o1",
            changes={"next_step": "Security review with the buyer's CISO"},
            expected_version=first.versions[("opportunity", "o1")],
        )
        (result,) = connector.write([repair])
        assert result.status is ActionStatus.WRITTEN, result
        value, session_zone = _stored(postgres_url, "o1")
        assert session_zone == SESSION_ZONE
        assert value == _wall(REPAIRED, MAPPING_ZONE), (value, _wall(REPAIRED, SESSION_ZONE))
        # the next incremental read sees the repair at the moment it was made
        after = connector.read(first.watermark, until=REPAIRED + dt.timedelta(minutes=1))
        assert ("opportunity", "o1") in after.changed
        before = connector.read(first.watermark, until=REPAIRED - dt.timedelta(minutes=1))
        assert ("opportunity", "o1") not in before.changed
    finally:
        connector.close()
