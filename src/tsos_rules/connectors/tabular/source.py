"""Where the rows come from: a folder of CSV files, or an SQL database through SQLAlchemy.

Both sources read a table in batches of rows (dicts keyed by column name), look one row up,
insert, and update one row only while a column still holds the value that was read. Their
failures are mapped here, in one place, onto the errors the sync job acts on.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tsos_rules.errors import FatalConnectorError, RetriableConnectorError

Row = dict[str, Any]
Within = tuple[str, Sequence[Any]]
"""``(column, values)``: only the rows whose column holds one of the values."""
#: Values per ``IN (...)`` list: under every driver's bound-parameter limit (SQLite 999 before
#: 3.32, SQL Server 2100, PostgreSQL and MySQL 65535).
IN_CHUNK = 500


class Source(Protocol):
    """The storage a table mapping points into."""

    text: bool
    """Values are text (CSV) rather than typed (SQL)."""

    def describe(self) -> str: ...

    def columns(self, table: str) -> list[str] | None:
        """The table's columns, or None when it does not exist."""
        ...

    def batches(
        self,
        table: str,
        *,
        where: str | None,
        match: Mapping[str, str],
        size: int,
        within: Within | None = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[list[Row]]:
        """The table's rows (only ``columns`` when given) in lists of at most ``size``; with
        ``within``, only the rows whose column holds one of the (non-blank) values, read in
        chunks of ``IN_CHUNK`` values."""
        ...

    def find(self, table: str, column: str, value: Any) -> Row | None: ...

    def insert(self, table: str, row: Mapping[str, Any]) -> None: ...

    def update(
        self,
        table: str,
        key: tuple[str, Any],
        changes: Mapping[str, Any],
        expect: tuple[str, Any] | None,
    ) -> int:
        """Set ``changes`` on the row whose ``key`` column holds the value, only while the
        ``expect`` column still holds its value; the number of rows changed (0: stale)."""
        ...

    def ensure_table(self, table: str, columns: Sequence[str], unique: str) -> None: ...

    def close(self) -> None: ...


# -- CSV ----------------------------------------------------------------------------------


class CsvSource:
    """A folder of CSV files, one per table (``deals`` or ``deals.csv``), header row first."""

    text = True

    def __init__(self, folder: Path, *, encoding: str = "utf-8", delimiter: str = ",") -> None:
        self.folder = folder
        self.encoding = encoding
        self.delimiter = delimiter

    def describe(self) -> str:
        return str(self.folder)

    def path(self, table: str) -> Path:
        name = table if table.lower().endswith(".csv") else f"{table}.csv"
        return self.folder / name

    def _open(self, table: str) -> Any:
        if not self.folder.is_dir():
            raise FatalConnectorError(f"tabular: {self.folder} is not a folder of CSV files")
        path = self.path(table)
        try:
            return path.open(encoding=self.encoding, newline="")
        except FileNotFoundError:
            raise FatalConnectorError(f"tabular: {path}: no such file") from None
        except (BlockingIOError, TimeoutError, InterruptedError) as exc:
            raise RetriableConnectorError(f"tabular: {path}: {exc}") from None
        except OSError as exc:
            raise FatalConnectorError(f"tabular: {path}: {exc.strerror or exc}") from None

    def columns(self, table: str) -> list[str] | None:
        if not self.path(table).is_file():
            return None
        with self._open(table) as handle:
            header = next(csv.reader(handle, delimiter=self.delimiter), [])
        return [name.strip() for name in header]

    def _rows(self, table: str) -> Iterator[Row]:
        """The file's rows; raises a retriable error when the file was replaced, truncated or
        written while it was read (an export in progress): the rows read are then not the
        whole of any one version of it."""
        with self._open(table) as handle:
            before = _identity(os.fstat(handle.fileno()))
            reader = csv.DictReader(handle, delimiter=self.delimiter)
            try:
                for row in reader:
                    yield {(k or "").strip(): v for k, v in row.items()}
            except (csv.Error, UnicodeDecodeError) as exc:
                self._unchanged(table, before)
                raise FatalConnectorError(
                    f"tabular: {self.path(table)}: line {reader.line_num}: {exc}"
                ) from None
            self._unchanged(table, before)

    def _unchanged(self, table: str, before: tuple[int, int, int]) -> None:
        path = self.path(table)
        try:
            after = _identity(path.stat())
        except OSError:
            after = (-1, -1, -1)
        if after != before:
            raise RetriableConnectorError(
                f"tabular: {path}: the file changed while it was read (replaced or rewritten)"
            )

    def batches(
        self,
        table: str,
        *,
        where: str | None,
        match: Mapping[str, str],
        size: int,
        within: Within | None = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[list[Row]]:
        wanted = None if within is None else {_text(v) for v in within[1]}
        batch: list[Row] = []
        for row in self._rows(table):
            if not all((row.get(c) or "").strip() == v for c, v in match.items()):
                continue
            if (
                within is not None
                and wanted is not None
                and _text(row.get(within[0])) not in wanted
            ):
                continue
            batch.append(row if columns is None else {c: row.get(c) for c in columns})
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def find(self, table: str, column: str, value: Any) -> Row | None:
        if not self.path(table).is_file():
            return None
        wanted = str(value)
        return next((row for row in self._rows(table) if row.get(column) == wanted), None)

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        header = self.columns(table)
        if header is None:
            raise FatalConnectorError(f"tabular: {self.path(table)}: no such file")
        with self.path(table).open("a", encoding=self.encoding, newline="") as handle:
            csv.writer(handle, delimiter=self.delimiter).writerow(
                ["" if row.get(c) is None else str(row.get(c)) for c in header]
            )

    def update(
        self,
        table: str,
        key: tuple[str, Any],
        changes: Mapping[str, Any],
        expect: tuple[str, Any] | None,
    ) -> int:
        header = self.columns(table) or []
        rows = list(self._rows(table))
        count = 0
        for row in rows:
            if row.get(key[0]) != str(key[1]):
                continue
            if expect is not None and row.get(expect[0]) != str(expect[1]):
                continue
            row.update({c: "" if v is None else str(v) for c, v in changes.items()})
            count += 1
        if count:
            self._replace(table, header, rows)
        return count

    def _replace(self, table: str, header: Sequence[str], rows: Sequence[Row]) -> None:
        """Rewrite a file whole, through a temporary file, so a reader never sees half."""
        path = self.path(table)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding=self.encoding, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(header), delimiter=self.delimiter)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)

    def ensure_table(self, table: str, columns: Sequence[str], unique: str) -> None:
        if self.columns(table) is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path(table).open("w", encoding=self.encoding, newline="") as handle:
            csv.writer(handle, delimiter=self.delimiter).writerow(columns)

    def close(self) -> None:
        """Nothing to release: files are opened per call."""


def _close_quietly(result: Any) -> None:
    """Close a streamed result (its server-side cursor) even when the connection broke: the
    error that broke it is the one worth raising."""
    with contextlib.suppress(Exception):
        result.close()


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    """Which version of a file this is: its inode, size and modification time."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


# -- SQL ----------------------------------------------------------------------------------

_FATAL_HINTS = (
    "authentication",
    "password",
    "no such table",
    "no such column",
    "does not exist",
    "permission denied",
    "access denied",
    "unknown database",
    "login failed",
    "not a database",
)


class SqlSource:
    """Any database SQLAlchemy 2.x reaches (SQLite, PostgreSQL, SQL Server, MySQL)."""

    text = False

    def __init__(
        self, url: str, *, timeout_seconds: float = 30.0, zone: dt.tzinfo = dt.UTC
    ) -> None:
        import sqlalchemy as sa

        self.sa = sa
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise FatalConnectorError(
                "tabular: the database URL is not an SQLAlchemy URL"
            ) from None
        self.label = parsed.render_as_string(hide_password=True)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            connect_args["timeout"] = timeout_seconds
        elif parsed.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = max(1, int(timeout_seconds))
        try:
            # pre-ping: a connection dropped since its last use (a restarted server, a killed
            # backend) is replaced at checkout instead of failing the next read
            self.engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
        except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise FatalConnectorError(
                f"tabular: {self.label}: cannot use this database: {exc} "
                "(install the driver extra, e.g. tsos-rules[postgres])"
            ) from None
        self._tables: dict[str, Any] = {}
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self.zone = zone
        self._naive: dict[str, frozenset[str]] = {}

    def _bind(self, value: Any, table: str | None = None, column: str | None = None) -> Any:
        """A value as sent to the database: for SQLite, dates and datetimes as the ISO text its
        default adapters wrote (deprecated since Python 3.12: they warn, and may go); a moment
        bound for a timestamp column without a time zone (PostgreSQL ``timestamp``, MySQL
        ``DATETIME``, SQL Server ``datetime2``) as the naive wall time in the connector's zone,
        so the server's session zone never shifts it."""
        if (
            isinstance(value, dt.datetime)
            and value.tzinfo is not None
            and table is not None
            and column in self._naive.get(table, ())
        ):
            value = value.astimezone(self.zone).replace(tzinfo=None)
        if self._sqlite and isinstance(value, dt.date):
            return value.isoformat(" ") if isinstance(value, dt.datetime) else value.isoformat()
        return value

    def describe(self) -> str:
        return self.label

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        sa = self.sa
        try:
            yield
        except sa.exc.DBAPIError as exc:
            message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            text = f"tabular: {self.label}: {what}: {message}"
            lowered = message.lower()
            if exc.connection_invalidated or (
                isinstance(exc, sa.exc.OperationalError)
                and not any(hint in lowered for hint in _FATAL_HINTS)
            ):
                raise RetriableConnectorError(text) from None
            raise FatalConnectorError(text) from None
        except sa.exc.SQLAlchemyError as exc:
            raise FatalConnectorError(f"tabular: {self.label}: {what}: {exc}") from None

    def _table(self, name: str) -> Any:
        """The table with untyped columns: values come back as the driver gives them (a junk
        value in a SQLite DATE column is then one bad row, not a failed read)."""
        if name not in self._tables:
            columns = self.columns(name)
            if columns is None:
                raise FatalConnectorError(f"tabular: {self.label}: table {name} does not exist")
            self._tables[name] = self.sa.table(name, *(self.sa.column(c) for c in columns))
        return self._tables[name]

    def columns(self, table: str) -> list[str] | None:
        with self._errors("inspect"):
            inspector = self.sa.inspect(self.engine)
            if not inspector.has_table(table):
                return None
            found = inspector.get_columns(table)
        if not self._sqlite:  # SQLite keeps text: an offset written stays in it
            self._naive[table] = frozenset(
                str(c["name"])
                for c in found
                if isinstance(c["type"], self.sa.DateTime) and not c["type"].timezone
            )
        return [str(c["name"]) for c in found]

    def batches(
        self,
        table: str,
        *,
        where: str | None,
        match: Mapping[str, str],
        size: int,
        within: Within | None = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[list[Row]]:
        sa = self.sa
        t = self._table(table)
        statement = sa.select(*(t.c[c] for c in columns)) if columns else sa.select(t)
        for column, value in match.items():
            statement = statement.where(sa.func.trim(t.c[column]) == value)
        if where:
            statement = statement.where(sa.text(where))
        if within is None:
            yield from self._stream(table, statement, size)
            return
        column = t.c[within[0]]
        values = sorted({self._bind(v, table, within[0]) for v in within[1]}, key=str)
        for start in range(0, len(values), IN_CHUNK):
            chunk = values[start : start + IN_CHUNK]
            yield from self._stream(table, statement.where(column.in_(chunk)), size)

    def _stream(self, table: str, statement: Any, size: int) -> Iterator[list[Row]]:
        with self._errors(f"read {table}"), self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=size).execute(
                statement
            )
            try:
                for part in result.mappings().partitions(size):
                    yield [dict(row) for row in part]
            finally:
                _close_quietly(result)

    def find(self, table: str, column: str, value: Any) -> Row | None:
        sa = self.sa
        t = self._table(table)
        with self._errors(f"read {table}"), self.engine.connect() as connection:
            row = (
                connection.execute(
                    sa.select(t).where(t.c[column] == self._bind(value, table, column)).limit(1)
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        t = self._table(table)
        with self._errors(f"insert into {table}"), self.engine.begin() as connection:
            connection.execute(
                t.insert().values({k: self._bind(v, table, k) for k, v in row.items()})
            )

    def update(
        self,
        table: str,
        key: tuple[str, Any],
        changes: Mapping[str, Any],
        expect: tuple[str, Any] | None,
    ) -> int:
        t = self._table(table)
        statement = t.update().where(t.c[key[0]] == self._bind(key[1], table, key[0]))
        if expect is not None:
            column = t.c[expect[0]]
            statement = statement.where(
                column.is_(None)
                if expect[1] is None
                else column == self._bind(expect[1], table, expect[0])
            )
        values = {k: self._bind(v, table, k) for k, v in changes.items()}
        with self._errors(f"update {table}"), self.engine.begin() as connection:
            return int(connection.execute(statement.values(values)).rowcount)

    def ensure_table(self, table: str, columns: Sequence[str], unique: str) -> None:
        sa = self.sa
        if self.columns(table) is not None:
            return
        metadata = sa.MetaData()
        sa.Table(
            table,
            metadata,
            *(
                sa.Column(c, sa.String(64) if c == unique else sa.Text(), unique=(c == unique))
                for c in columns
            ),
        )
        with self._errors(f"create {table}"):
            metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()
