"""Transient source failures during a read, provoked for real: a PostgreSQL backend terminated
mid-read, a SQLite file locked by another program, a CSV file replaced or truncated mid-read.
Each is retried with backoff and the read comes back whole; past the bounded attempts the read
stops with a RetriableConnectorError naming the table or file, never partial data."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from tabular_support import create_schema, seed, settings

from tsos_rules.connectors.base import ReadResult
from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.connectors.tabular.source import Row, Source
from tsos_rules.errors import RetriableConnectorError
from tsos_rules.model import Snapshot
from tsos_rules.testing.contract import CONTRACT_SNAPSHOT, ConnectorContract

AT = ConnectorContract.T0
FAST = {"read_attempts": 3, "retry_delay_seconds": 0.05, "batch_size": 1}


class MidRead:
    """The real source, with a fault set off in the middle of reading ``table``: after its
    first batch of rows, on the first ``times`` reads of it (the fault itself is real: a
    killed backend, a replaced file)."""

    def __init__(self, source: Source, table: str, fault: Callable[[], None], times: int):
        self.source = source
        self.table = table
        self.fault = fault
        self.left = times
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def batches(self, table: str, **options: Any) -> Iterator[list[Row]]:
        rows = self.source.batches(table, **options)
        if table != self.table or options.get("within") is not None:
            yield from rows
            return
        self.reads += 1
        for number, batch in enumerate(rows):
            yield batch
            if number == 0 and self.left > 0:
                self.left -= 1
                self.fault()


def _crm(source: Mapping[str, Any], *, csv: bool = False) -> TabularConnector:
    connector = TabularConnector.from_settings(settings(source, csv=csv, **FAST))
    create_schema(connector)
    seed(connector, CONTRACT_SNAPSHOT, AT)
    return connector


def _shape(result: ReadResult) -> tuple[Any, ...]:
    return (
        sorted(result.changed),
        sorted({o.id for o in result.snapshot.opportunities}),
        sorted({a.id for a in result.snapshot.accounts}),
        result.errors,
    )


def _sabotage(
    connector: TabularConnector, table: str, fault: Callable[[], None], times: int
) -> MidRead:
    wrapped = MidRead(connector.source, table, fault, times)
    connector.reader.source = wrapped  # type: ignore[assignment]
    return wrapped


# -- PostgreSQL: the backend serving the read is terminated ------------------------------


def _terminator(url: str) -> Callable[[], None]:
    """Terminate every other backend on the test database, from a second connection."""

    def terminate() -> None:
        engine = sa.create_engine(url)
        with engine.connect() as db:
            db.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        engine.dispose()

    return terminate


@pytest.mark.parametrize("paged", [False, True], ids=["read", "read_batches"])
def test_postgres_backend_killed_mid_read_is_retried_whole(postgres_url: str, paged: bool) -> None:
    connector = _crm({"url": postgres_url})
    try:
        clean = connector.read(None, until=AT)
        sabotage = _sabotage(connector, "crm_deals", _terminator(postgres_url), times=1)
        if paged:
            (result,) = _one_page(connector)
        else:
            result = connector.read(None, until=AT)
        assert sabotage.left == 0 and sabotage.reads >= 2  # it failed once, then read again
        assert _shape(result) == _shape(clean)
    finally:
        connector.close()


def _one_page(connector: TabularConnector) -> list[ReadResult]:
    """A paged read, as one result for comparing (only what ``_shape`` looks at)."""
    batches = list(connector.read_batches(None, until=AT, batch_size=1000))
    merged = batches[0]
    for batch in batches[1:]:
        merged = attrs.evolve(
            merged,
            changed=merged.changed | batch.changed,
            errors=(*merged.errors, *batch.errors),
            snapshot=Snapshot(
                opportunities=(*merged.snapshot.opportunities, *batch.snapshot.opportunities),
                accounts=(*merged.snapshot.accounts, *batch.snapshot.accounts),
            ),
        )
    return [merged]


def test_postgres_backend_killed_every_time_stops_naming_the_table(postgres_url: str) -> None:
    connector = _crm({"url": postgres_url})
    try:
        _sabotage(connector, "crm_deals", _terminator(postgres_url), times=99)
        with pytest.raises(RetriableConnectorError) as raised:
            connector.read(None, until=AT)
    finally:
        connector.close()
    message = str(raised.value)
    assert "read crm_deals" in message and "gave up after 3 attempts" in message, message
    assert "Traceback" not in message


# -- SQLite: another program holds the database locked -----------------------------------


def test_sqlite_locked_then_released_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    connector = _crm({"url": f"sqlite:///{path}", "timeout_seconds": 0.05})
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        clean = connector.read(None, until=AT)
        locker.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.15, lambda: locker.execute("COMMIT"))
        release.start()
        try:
            result = connector.read(None, until=AT)
        finally:
            release.join()
        assert _shape(result) == _shape(clean)
    finally:
        locker.close()
        connector.close()


def test_sqlite_locked_throughout_stops_naming_file_and_table(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    connector = _crm({"url": f"sqlite:///{path}", "timeout_seconds": 0.05})
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(RetriableConnectorError) as raised:
                list(connector.read_batches(None, until=AT))
        finally:
            locker.execute("COMMIT")
            connector.close()
    message = str(raised.value)
    assert str(path) in message and "database is locked" in message, message
    assert "gave up after 3 attempts" in message


# -- CSV: the export is rewritten while it is read ---------------------------------------


def _rewrite(path: Path, text: Callable[[str], str], *, in_place: bool) -> Callable[[], None]:
    def rewrite() -> None:
        new = text(path.read_text())
        if in_place:  # truncated and written again through the same file
            with path.open("r+") as handle:
                handle.truncate(0)
                handle.write(new)
        else:  # a new file renamed over the old one, as exports do
            spare = path.with_suffix(".tmp")
            spare.write_text(new)
            spare.replace(path)

    return rewrite


def test_csv_replaced_mid_read_is_read_again_whole(tmp_path: Path) -> None:
    connector = _crm({"folder": str(tmp_path / "export")}, csv=True)
    deals = tmp_path / "export" / "crm_deals.csv"
    try:
        clean = connector.read(None, until=AT)
        lines = deals.read_text().splitlines(keepends=True)
        extra = lines[-1].replace(lines[-1].split(",", 1)[0], "o99", 1)
        _sabotage(connector, "crm_deals", _rewrite(deals, lambda t: t + extra, in_place=False), 1)
        result = connector.read(None, until=AT)
    finally:
        connector.close()
    ids = {o.id for o in result.snapshot.opportunities}
    assert ids == {o.id for o in clean.snapshot.opportunities} | {"o99"}  # the new file, whole


def test_csv_rewritten_during_every_read_stops_naming_the_file(tmp_path: Path) -> None:
    """An export still being written: each read sees it truncated and written again."""
    connector = _crm({"folder": str(tmp_path / "export")}, csv=True)
    deals = tmp_path / "export" / "crm_deals.csv"
    whole = deals.read_text()
    versions = iter([whole[: len(whole) // 2], whole] * 10)
    rewrite = _rewrite(deals, lambda _: next(versions), in_place=True)
    try:
        _sabotage(connector, "crm_deals", rewrite, times=99)
        with pytest.raises(RetriableConnectorError) as raised:
            connector.read(None, until=AT)
    finally:
        connector.close()
    message = str(raised.value)
    assert str(deals) in message and "changed while it was read" in message, message
    assert "gave up after 3 attempts" in message
