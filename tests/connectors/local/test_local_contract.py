"""The built-in ``local`` connector (the embedded demo CRM) passes the ConnectorContract.

The harness plays the CRM's users through ``LocalCRM``'s own edit methods, then sets the
edited rows' modstamps to the contract's clock so that the windows are deterministic.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.connectors.base import Connector
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import TABLES, LocalCRM
from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import snapshot_to_dict
from tsos_rules.testing import ConnectorContract

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

HISTORY_TABLES = ("close_date_history", "field_history")


def _micros(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class _LockedDatabase:
    """Stands in for the reader's SQLite connection while another process holds the lock."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


class TestLocalConnector(ConnectorContract):
    connector_name = "local"

    def make_connector(self, tmp_path: Path) -> Connector:
        return LocalConnector(LocalCRM(tmp_path / "crm.sqlite3"))

    def crm(self, connector: Connector) -> LocalCRM:
        assert isinstance(connector, LocalConnector)
        return connector.crm

    def _restamp(self, crm: LocalCRM, since: int, at: dt.datetime) -> None:
        """Rows written after ``since`` (by the edit just made) as if written at ``at``."""
        stamp = _micros(at)
        with crm.db:
            for table in [t.name for t in TABLES.values()] + list(HISTORY_TABLES):
                crm.db.execute(
                    f"UPDATE {table} SET modstamp = ? WHERE modstamp > ?", (stamp, since)
                )
            for table in (t.name for t in TABLES.values() if t.grouped):
                crm.db.execute(
                    f"UPDATE {table} SET grp_changed = ? WHERE grp_changed > ?", (stamp, since)
                )

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        crm = self.crm(connector)
        before = crm.clock()
        crm.seed(snapshot_to_dict(snapshot))
        self._restamp(crm, before, at)

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        crm = self.crm(connector)
        before = crm.clock()
        crm.update(record_type, record_id, changes, by="u2")
        self._restamp(crm, before, at)

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        crm = self.crm(connector)
        before = crm.clock()
        crm.delete(record_type, record_id)
        self._restamp(crm, before, at)

    def induce_error(self, connector: Connector, kind: str) -> bool:
        crm = self.crm(connector)
        if kind == "fatal":  # the CRM file lost its deals table: nothing sensible to read
            crm.db.execute("DROP TABLE opportunities")
        elif kind == "retriable":
            assert isinstance(connector, LocalConnector)
            connector._reader = _LockedDatabase()  # type: ignore[assignment]
        elif kind == "bad_record":
            crm.db.execute(
                "UPDATE opportunities SET data = json_set(data, '$.close_date', 'soon') "
                "WHERE id = 'o2'"
            )
        else:
            return False
        return True
