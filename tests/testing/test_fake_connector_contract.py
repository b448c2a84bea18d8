"""The kit's FakeConnector passes the ConnectorContract it ships with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tsos_rules.connectors.base import Connector
from tsos_rules.errors import FatalConnectorError, RetriableConnectorError
from tsos_rules.model import Snapshot
from tsos_rules.testing import ConnectorContract, FakeConnector, FakeCRM

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")


class TestFakeConnector(ConnectorContract):
    crms: ClassVar[dict[Path, FakeCRM]] = {}

    def make_connector(self, tmp_path: Path) -> Connector:
        return FakeConnector(self.crms.setdefault(tmp_path, FakeCRM()))

    def crm(self, connector: Connector) -> FakeCRM:
        assert isinstance(connector, FakeConnector)
        return connector.crm

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        self.crm(connector).load(snapshot, at=at)

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        self.crm(connector).update(record_type, record_id, changes, at=at)

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        self.crm(connector).delete(record_type, record_id, at=at)

    def induce_error(self, connector: Connector, kind: str) -> bool:
        crm = self.crm(connector)
        if kind == "fatal":
            crm.fail_next("read", FatalConnectorError("fake: invalid credentials"))
        elif kind == "retriable":
            crm.fail_next("read", RetriableConnectorError("fake: rate limited, retry in 10 s"))
        elif kind == "bad_record":
            crm.update("opportunity", "o2", {"close_date": "soon"}, at=self.T0)
        else:
            return False
        return True
