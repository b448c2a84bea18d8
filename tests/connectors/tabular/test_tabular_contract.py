"""The ``tabular`` connector passes the ConnectorContract on SQLite, on real PostgreSQL and
MariaDB servers, and on a folder of CSV files; each CRM has its own table, column and value
names."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from tabular_support import change, create_schema, seed, settings

from tsos_rules.connectors.base import Connector
from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.model import Snapshot
from tsos_rules.testing import ConnectorContract


class _Harness(ConnectorContract):
    connector_name = "tabular"
    csv: ClassVar[bool] = False

    def source(self, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError

    def make_connector(self, tmp_path: Path) -> Connector:
        made = TabularConnector.from_settings(settings(self.source(tmp_path), csv=self.csv))
        if made.source.columns("crm_deals") is None:
            create_schema(made)
        return made

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        assert isinstance(connector, TabularConnector)
        seed(connector, snapshot, at)

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        assert isinstance(connector, TabularConnector)
        change(connector, record_type, record_id, changes, at)

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        assert isinstance(connector, TabularConnector)
        mapping = connector.settings.tables[record_type]
        if mapping.deleted is None:
            raise NotImplementedError
        text = connector.source.text
        connector.source.update(
            mapping.table,
            (mapping.id, record_id),
            {
                mapping.deleted: "true" if text else True,
                mapping.modified or "": connector.codecs[record_type].encode_modified(
                    at, text=text
                ),
            },
            None,
        )

    def _bad_close_date(self, connector: TabularConnector) -> None:
        connector.source.update("crm_deals", ("deal_id", "o2"), {"close_date": "soon"}, None)


class TestTabularSqlite(_Harness):
    locker: sqlite3.Connection | None = None

    @pytest.fixture(autouse=True)
    def _release_lock(self) -> Iterator[None]:
        yield
        if self.locker is not None:
            self.locker.close()

    def source(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": f"sqlite:///{tmp_path / 'crm.sqlite3'}", "timeout_seconds": 0.2}

    def induce_error(self, connector: Connector, kind: str) -> bool:
        assert isinstance(connector, TabularConnector)
        path = str(connector.source.engine.url.database)  # type: ignore[attr-defined]
        if kind == "fatal":  # the CRM lost its deals table
            with contextlib.closing(sqlite3.connect(path)) as db:  # 3.13 warns if left open
                db.execute("DROP TABLE crm_deals")
            return True
        if kind == "retriable":  # another program holds the database locked
            self.locker = sqlite3.connect(path, isolation_level=None)
            self.locker.execute("BEGIN EXCLUSIVE")
            return True
        if kind == "bad_record":
            self._bad_close_date(connector)
            return True
        return False


class TestTabularPostgres(_Harness):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def source(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": self.url}

    def induce_error(self, connector: Connector, kind: str) -> bool:
        assert isinstance(connector, TabularConnector)
        if kind == "fatal":
            engine = sa.create_engine(self.url)
            with engine.begin() as db:
                db.execute(sa.text("DROP TABLE crm_deals"))
            engine.dispose()
            return True
        if kind == "bad_record":  # a forecast category the mapping does not know
            connector.source.update("crm_deals", ("deal_id", "o2"), {"forecast": "Maybe"}, None)
            return True
        if kind == "retriable":  # the database is closed to connections during maintenance
            server, name = self.url.rsplit("/", 1)
            engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
            with engine.connect() as db:
                db.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                db.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name"
                    ),
                    {"name": name},
                )
            engine.dispose()
            return True
        return False


class TestTabularCsv(_Harness):
    csv = True

    def source(self, tmp_path: Path) -> dict[str, Any]:
        return {"folder": str(tmp_path / "export")}

    def induce_error(self, connector: Connector, kind: str) -> bool:
        assert isinstance(connector, TabularConnector)
        if kind == "fatal":  # the export folder is gone
            folder = connector.settings.folder
            assert folder is not None
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
            return True
        if kind == "bad_record":
            self._bad_close_date(connector)
            return True
        return False


class TestTabularMariaDB(_Harness):
    """MySQL's dialect through the ``mysql`` extra (PyMySQL), on a real MariaDB server."""

    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str) -> None:
        self.url = mariadb_url

    def source(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": self.url}

    def induce_error(self, connector: Connector, kind: str) -> bool:
        assert isinstance(connector, TabularConnector)
        if kind == "fatal":
            engine = sa.create_engine(self.url)
            with engine.begin() as db:
                db.execute(sa.text("DROP TABLE crm_deals"))
            engine.dispose()
            return True
        if kind == "bad_record":
            connector.source.update("crm_deals", ("deal_id", "o2"), {"forecast": "Maybe"}, None)
            return True
        return False
