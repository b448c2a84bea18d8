"""A CRM laid out in tables for the tabular connector's tests: its mapping, its schema, and
the edits its users make (seeding, changing and deleting rows at a given time)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.connectors.tabular.mapping import kind_of
from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import snapshot_to_dict

LADDER_NAMES = {
    "Marketing Qualified": "mql",
    "Business Driver": "business_driver",
    "Sales Qualified": "sql",
    "Engagement": "engagement",
    "Single Sales Opportunity": "single_sales_opportunity",
    "Date Locked": "date_locked",
    "Draft Proposal": "draft_proposal",
    "Trial Close": "trial_close",
    "Closing": "closing",
    "Commitment": "commitment",
    "Closed Won": "closed_won",
    "Closed Lost": "closed_lost",
}

COLLECTION = {
    "user": "users",
    "partner": "partners",
    "account": "accounts",
    "lead": "leads",
    "opportunity": "opportunities",
    "close_date_change": "close_date_changes",
    "activity": "activities",
}


def tables(*, csv: bool) -> dict[str, Any]:
    """The ``[connector.tables]`` of the test CRM: its own table and column names, its own
    stage names, role names and forecast names, US dates in the CSV export."""
    common = {"modified": "updated_at", "version": "row_version"}
    deal_formats = {"close_date": "%m/%d/%Y", "next_step_date": "%m/%d/%Y"} if csv else {}
    return {
        "user": {
            "table": "crm_users",
            "id": "user_id",
            "columns": {"name": "full_name", "role": "user_type"},
            "values": {"role": {"Direct Sales": "direct", "Channel Sales": "channel"}},
            **common,
        },
        "partner": {
            "table": "crm_partners",
            "id": "partner_id",
            "columns": {"name": "name", "status": "state", "tier": "tier"},
            "values": {"status": {"Active": "active", "Terminated": "terminated"}},
            **common,
        },
        "account": {
            "table": "crm_accounts",
            "id": "account_id",
            "columns": {"name": "company", "partner_of_record_id": "por"},
            **common,
        },
        "lead": {
            "table": "crm_leads",
            "id": "lead_id",
            "columns": {
                f: f
                for f in (
                    "company",
                    "account_id",
                    "owner_id",
                    "partner_id",
                    "source",
                    "status",
                    "outcome",
                    "distributed_at",
                    "accepted_at",
                    "followed_up_at",
                    "converted_opportunity_id",
                )
            },
            "values": {
                "outcome": {
                    "Current Prospect": "current",
                    "Future Prospect": "future",
                    "No Opportunity": "no_opportunity",
                }
            },
            **common,
        },
        "opportunity": {
            "table": "crm_deals",
            "id": "deal_id",
            "columns": {
                "name": "deal_name",
                "account_id": "account_id",
                "owner_id": "owner_id",
                "partner_id": "partner_id",
                "lead_id": "lead_id",
                "channel": "channel",
                "stage": "stage_name",
                "probability": "probability",
                "amount": "amount",
                "close_date": "close_date",
                "forecast_category": "forecast",
                "is_closed": "is_closed",
                "is_won": "is_won",
                "next_step": "next_step",
                "next_step_date": "next_step_date",
                "team_user_ids": "team",
                "stage_changed_at": "stage_changed_at",
            },
            "values": {
                "stage": dict(LADDER_NAMES),
                "forecast_category": {
                    "Pipeline": "pipeline",
                    "Best Case": "best_case",
                    "Commit": "commit",
                    "Closed": "closed",
                    "Omitted": "omitted",
                },
            },
            "formats": deal_formats,
            "deleted": "is_deleted",
            **common,
        },
        "close_date_change": {
            "table": "crm_close_history",
            "id": "history_id",
            "columns": {
                f: f
                for f in (
                    "opportunity_id",
                    "old",
                    "new",
                    "changed_at",
                    "changed_by",
                    "approved_by",
                    "stage",
                    "forecast_category",
                )
            },
            "modified": "updated_at",
        },
        "activity": {
            "table": "crm_tasks",
            "id": "task_id",
            "columns": {
                f: f
                for f in (
                    "what_id",
                    "account_id",
                    "owner_id",
                    "subject",
                    "due_date",
                    "status",
                    "partner_notified",
                    "created_at",
                )
            },
            **common,
        },
    }


def settings(source: Mapping[str, Any], *, csv: bool, **more: Any) -> dict[str, Any]:
    return {
        "type": "tabular",
        **source,
        "tables": tables(csv=csv),
        "write": {"mode": "table", "table": "tsos_tasks"},
        **more,
    }


_SQL_TYPES: dict[str, Any] = {
    "date": sa.Date,
    "datetime": lambda: sa.DateTime(timezone=True),
    "number": sa.Float,
    "int": sa.Integer,
    "bool": sa.Boolean,
}


def create_schema(connector: TabularConnector) -> None:
    """Empty tables (SQL, typed columns) or CSV files with their header row."""
    for mapping in connector.settings.tables.values():
        columns: dict[str, Any] = {mapping.id: sa.String(64)}
        for field, column in mapping.columns.items():
            maker = _SQL_TYPES.get(kind_of(mapping.record, field), sa.Text)
            if field in mapping.values or field in mapping.formats:
                maker = sa.Text
            columns.setdefault(column, maker() if callable(maker) else maker)
        if mapping.modified:
            columns[mapping.modified] = sa.DateTime(timezone=True)
        if mapping.version:
            columns[mapping.version] = sa.Integer()
        if mapping.deleted:
            columns[mapping.deleted] = sa.Boolean()
        if connector.source.text:
            folder = connector.settings.folder
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{mapping.table}.csv").write_text(",".join(columns) + "\n")
            continue
        metadata = sa.MetaData()
        sa.Table(
            mapping.table,
            metadata,
            *(
                sa.Column(name, kind, primary_key=(name == mapping.id))
                for name, kind in columns.items()
            ),
        )
        metadata.create_all(connector.source.engine)  # type: ignore[attr-defined]


def _row(
    connector: TabularConnector, name: str, record: Mapping[str, Any], at: dt.datetime
) -> dict[str, Any]:
    mapping = connector.settings.tables[name]
    codec = connector.codecs[name]
    text = connector.source.text
    row: dict[str, Any] = {}
    for field, column in mapping.columns.items():
        if field in record:
            row[column] = codec.encode(field, record[field], text=text)
    if mapping.modified:
        row[mapping.modified] = codec.encode_modified(at, text=text)
    if mapping.version:
        row[mapping.version] = "1" if text else 1
    if mapping.deleted:
        row[mapping.deleted] = "false" if text else False
    return row


def seed(connector: TabularConnector, snapshot: Snapshot, at: dt.datetime) -> None:
    document = snapshot_to_dict(snapshot)
    for name, mapping in connector.settings.tables.items():
        for index, record in enumerate(document[COLLECTION[mapping.record]]):
            row = _row(connector, name, record, at)
            row[mapping.id] = record.get("id") or f"h{index}"
            connector.source.insert(mapping.table, row)


def change(
    connector: TabularConnector,
    record_type: str,
    record_id: str,
    changes: Mapping[str, Any],
    at: dt.datetime,
) -> None:
    (name,) = [n for n, m in connector.settings.tables.items() if m.record == record_type]
    mapping = connector.settings.tables[name]
    codec = connector.codecs[name]
    text = connector.source.text
    row = connector.source.find(mapping.table, mapping.id, record_id)
    assert row is not None, (record_type, record_id)
    values = {mapping.columns[f]: codec.encode(f, v, text=text) for f, v in changes.items()}
    if mapping.modified:
        values[mapping.modified] = codec.encode_modified(at, text=text)
    if mapping.version:
        version = int(row[mapping.version]) + 1
        values[mapping.version] = str(version) if text else version
    connector.source.update(mapping.table, (mapping.id, record_id), values, None)


# -- a PostgreSQL server of the tests' own ---------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: run it as the ``postgres`` OS user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def run_postgres(bin_dir: Path) -> Iterator[str]:
    """A throw-away cluster in a temp directory on a free loopback port; yields its URL."""
    home = Path(tempfile.mkdtemp(prefix="tsos-pg-"))
    data, sockets = home / "data", home / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        _as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                error = server.stderr.read().decode() if server.stderr else ""
                raise RuntimeError(f"postgres did not start: {error[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr:
            server.stderr.close()
        shutil.rmtree(home, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new empty database on the test server, for one test."""
    name = f"t{time.monotonic_ns()}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# -- a MariaDB server of the tests' own ------------------------------------------------------


def mariadb_bin() -> Path | None:
    """The directory of Debian's ``mariadbd`` (package ``mariadb-server``), if installed."""
    for candidate in ("/usr/sbin/mariadbd", shutil.which("mariadbd") or ""):
        if candidate and Path(candidate).is_file():
            return Path(candidate).parent
    return None


def run_mariadb(sbin: Path) -> Iterator[str]:
    """A throw-away MariaDB server in a temp directory on a free loopback port; yields its
    URL (root, no password: the grant tables are skipped, nothing listens beyond 127.0.0.1)."""
    import pymysql

    home = Path(tempfile.mkdtemp(prefix="tsos-mariadb-"))
    data = home / "data"
    user = ["--user=mysql"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(home, "mysql")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if install is None:
        raise RuntimeError("mariadb-install-db not found beside mariadbd")
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", "--skip-test-db", *user],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = home / "server.log"
    server = subprocess.Popen(
        [
            str(sbin / "mariadbd"),
            "--no-defaults",
            f"--datadir={data}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={home / 'mysqld.sock'}",
            f"--pid-file={home / 'mysqld.pid'}",
            f"--log-error={log}",
            "--skip-grant-tables",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
                break
            except pymysql.err.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"mariadbd did not start: {text[-2000:]}") from None
                time.sleep(0.2)
        yield f"mysql+pymysql://root@127.0.0.1:{port}/mysql"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(home, ignore_errors=True)


def fresh_mariadb_database(server_url: str) -> str:
    """A new empty database on the test MariaDB server, for one test."""
    name = f"t{time.monotonic_ns()}"
    engine = sa.create_engine(server_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# -- a generated org in SQLite, one table per record type ------------------------------------


def generated_org(path: Path, opportunities: int, *, seed: int = 7) -> dict[str, Any]:
    """The demo generator's org in a SQLite file (the snapshot's field names as columns, one
    ``updated_at`` per row); returns the ``[connector.tables]`` that maps it."""
    import json
    import sqlite3

    from tsos_rules.connectors.local.demo import write_org_json

    as_of = dt.date(2026, 11, 24)
    org = path.with_suffix(".json")
    write_org_json(org, opportunities=opportunities, seed=seed, as_of=as_of)
    document = json.loads(org.read_text())
    org.unlink()
    stamp = "2026-11-01T00:00:00+00:00"
    db = sqlite3.connect(path)
    tables: dict[str, Any] = {}
    for record, collection in COLLECTION.items():
        rows = document.get(collection, [])
        nested = {k for row in rows for k, v in row.items() if isinstance(v, dict)}
        columns = [
            k
            for k in dict.fromkeys(k for row in rows for k in row)
            if k != "id" and k not in nested
        ]
        names = ["id", *columns, "updated_at"]
        quoted = ", ".join(f'"{c}"' for c in names)
        db.execute(f"CREATE TABLE {collection} ({quoted})")
        db.executemany(
            f"INSERT INTO {collection} VALUES ({', '.join('?' * len(names))})",
            (
                [
                    row.get("id") or f"h{i}",
                    *(
                        ";".join(map(str, v)) if isinstance(v := row.get(c), list) else v
                        for c in columns
                    ),
                    stamp,
                ]
                for i, row in enumerate(rows)
            ),
        )
        tables[record] = {
            "table": collection,
            "modified": "updated_at",
            "columns": {c: c for c in columns},
        }
    db.commit()
    db.close()
    return tables
