"""The ``[connector]`` table of the ``tabular`` connector, validated strictly.

A *table mapping* says where one kind of snapshot record lives (a CSV file or an SQL table),
which column holds each snapshot field, how raw values map onto the snapshot's values, and how
dates are written. A shipped *preset* (``preset = "goldmine"``) supplies the mappings; the
config's own tables are laid over it key by key.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.config import SecretRef, SettingsTable
from tsos_rules.errors import ConfigError

NAME = "tabular"
RECORD_TYPES = (
    "user",
    "partner",
    "account",
    "lead",
    "opportunity",
    "close_date_change",
    "activity",
)
PRESETS = ("goldmine",)
WRITE_MODES = ("none", "table", "outbox")
_PASSWORD = re.compile(r"://[^/@:]*:[^/@]+@")

#: The task/outbox table's columns, by role; each may be renamed in ``[connector.write.columns]``.
TASK_COLUMNS = (
    "fingerprint",
    "record_type",
    "record_id",
    "owner_id",
    "subject",
    "description",
    "rule",
    "status",
    "due_date",
    "created_at",
    "closed_at",
)


@attrs.frozen
class TableMapping:
    """Where one kind of record lives and how its columns become snapshot fields."""

    name: str
    """The key of ``[connector.tables.<name>]`` (named in every message)."""
    record: str
    table: str
    id: str
    columns: Mapping[str, str] = attrs.field(factory=dict)
    """Snapshot field -> column. A column of a joined table is written ``TABLE.COLUMN``."""
    values: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Snapshot field -> {raw value -> snapshot value}; ``""`` is blank, ``"*"`` any other."""
    constants: Mapping[str, Any] = attrs.field(factory=dict)
    formats: Mapping[str, str] = attrs.field(factory=dict)
    """Snapshot field -> ``strptime`` format of its text values."""
    modified: str | None = None
    version: str | None = None
    deleted: str | None = None
    where: str | None = None
    match: Mapping[str, str] = attrs.field(factory=dict)
    join_table: str | None = None
    join_key: str | None = None

    @property
    def incremental(self) -> bool:
        return self.modified is not None

    @property
    def conditional(self) -> bool:
        """A repair can be made conditional on what was read."""
        return self.version is not None or self.modified is not None


@attrs.frozen
class WriteSettings:
    """Where findings go: a task table in the CRM, an outbox for read-only CRMs, or nowhere."""

    mode: str = "none"
    table: str = "tsos_tasks"
    folder: Path | None = None
    """Outbox only: a folder of CSV files outside the CRM (instead of a table in it)."""
    create: bool = True
    columns: Mapping[str, str] = attrs.field(factory=lambda: {c: c for c in TASK_COLUMNS})
    due_days: int = 3
    open_status: str = "open"
    closed_status: str = "closed"
    repairs: bool = True


@attrs.frozen
class TabularSettings:
    """Everything the ``[connector]`` table says, validated."""

    tables: Mapping[str, TableMapping]
    folder: Path | None = None
    url: SecretRef | None = None
    time_zone: str = "UTC"
    date_format: str | None = None
    datetime_format: str | None = None
    batch_size: int = 1000
    watermark_lag_seconds: int = 0
    timeout_seconds: float = 30.0
    read_attempts: int = 3
    """Tries of one read unit (a table scan, a page of groups) before a transient error stops
    the run."""
    retry_delay_seconds: float = 0.5
    """The wait after the first failed try; doubled after each further one."""
    read_only: bool = False
    write: WriteSettings = attrs.field(factory=WriteSettings)
    preset: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","

    @property
    def is_sql(self) -> bool:
        return self.url is not None

    def mappings(self, record: str) -> list[TableMapping]:
        return [m for m in self.tables.values() if m.record == record]

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str = "connector") -> TabularSettings:
        top = SettingsTable(data, where)
        preset = top.string("preset")
        tables_data: dict[str, Any] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(
                    f"{top.path('preset')}: expected one of {', '.join(PRESETS)}, got {preset!r}"
                )
            tables_data = load_preset(preset)
        own = top.table("tables")
        for name in own.data:
            tables_data[name] = _overlay(tables_data.get(name, {}), own.data[name])
        own.done(*own.data)
        folder = top.string("folder")
        url = top.secret("url", plain_ok=True)
        if (folder is None) == (url is None):
            raise ConfigError(
                f'{where}: give exactly one source: folder = "..." (CSV files) '
                'or url = {env = "..."} (an SQLAlchemy database URL)'
            )
        if url is not None and _PASSWORD.search(url.get("value", "")):
            raise ConfigError(
                f"{top.path('url')}: this URL holds a password; give it as "
                '{env = "VARIABLE"} or {file = "/path"}, never in the config'
            )
        time_zone = top.string("time_zone", "UTC") or "UTC"
        try:
            zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{top.path('time_zone')}: unknown time zone {time_zone!r}") from None
        read_only = top.boolean("read_only", preset == "goldmine")
        tables = {
            name: _table_mapping(name, SettingsTable(body, f"{where}.tables.{name}"))
            for name, body in tables_data.items()
        }
        if not tables:
            raise ConfigError(f"{where}.tables: map at least one record type")
        if not any(m.record == "opportunity" for m in tables.values()):
            raise ConfigError(f"{where}.tables: no table maps the opportunity records")
        write = _write_settings(top.table("write"), read_only)
        settings = cls(
            tables=tables,
            folder=Path(folder) if folder is not None else None,
            url=url,
            time_zone=time_zone,
            date_format=top.string("date_format"),
            datetime_format=top.string("datetime_format"),
            batch_size=top.integer("batch_size", 1000, low=1, high=1_000_000),
            watermark_lag_seconds=top.integer("watermark_lag_seconds", 0, low=0, high=86_400),
            timeout_seconds=top.number("timeout_seconds", 30.0, low=0.0, high=3600.0),
            read_attempts=top.integer("read_attempts", 3, low=1, high=20),
            retry_delay_seconds=top.number("retry_delay_seconds", 0.5, low=0.0, high=60.0),
            read_only=read_only,
            write=write,
            preset=preset,
            encoding=top.string("encoding", "utf-8") or "utf-8",
            delimiter=top.string("delimiter", ",") or ",",
        )
        top.done("type")
        for mapping in tables.values():
            if mapping.where is not None and not settings.is_sql:
                raise ConfigError(
                    f"{where}.tables.{mapping.name}.where: SQL conditions need an SQL source; "
                    'use match = {COLUMN = "value"} for CSV files'
                )
        return settings


def _overlay(base: Any, top: Any) -> Any:
    """``top`` laid over ``base``, table by table (a preset with the config's changes)."""
    if isinstance(base, Mapping) and isinstance(top, Mapping):
        merged = dict(base)
        for key, value in top.items():
            merged[key] = _overlay(base.get(key), value)
        return merged
    return top


def load_preset(name: str) -> dict[str, Any]:
    """The ``[tables]`` of a shipped preset (``presets/<name>.toml``)."""
    text = resources.files(__package__).joinpath("presets", f"{name}.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return dict(data.get("tables", {}))


def _strings_table(table: SettingsTable) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in table.data:
        value = table.string(key)
        if value is None or not value:
            raise ConfigError(f"{table.path(key)}: expected a column name")
        out[key] = value
    table.done()
    return out


def _table_mapping(name: str, table: SettingsTable) -> TableMapping:
    record = table.string("record", name) or name
    if record not in RECORD_TYPES:
        raise ConfigError(
            f"{table.path('record')}: expected one of {', '.join(RECORD_TYPES)}, got {record!r}"
            + ("" if table.has("record") else ' (set record = "..." for this table)')
        )
    source = table.string("table")
    if not source:
        raise ConfigError(f"{table.path('table')}: required (the CSV file or SQL table name)")
    ident = table.string("id", "id") or "id"
    columns = _strings_table(table.table("columns"))
    values_table = table.table("values")
    values: dict[str, dict[str, Any]] = {}
    for field in values_table.data:
        body = values_table.data[field]
        if not isinstance(body, Mapping):
            raise ConfigError(f"{values_table.path(field)}: expected a table of raw = value")
        values[field] = {str(raw): value for raw, value in body.items()}
    values_table.done(*values_table.data)
    constants_table = table.table("constants")
    constants = dict(constants_table.data)
    constants_table.done(*constants)
    formats = _strings_table(table.table("formats"))
    match = table.table("match")
    matches: dict[str, str] = {}
    for column in match.data:
        value = match.data[column]
        if not isinstance(value, str | int):
            raise ConfigError(f"{match.path(column)}: expected a string")
        matches[column] = str(value)
    match.done(*matches)
    join = table.table("join")
    join_table, join_key = join.string("table"), join.string("key")
    join.done()
    if (join_table is None) != (join_key is None):
        raise ConfigError(f"{join.where}: give both table and key")
    mapping = TableMapping(
        name=name,
        record=record,
        table=source,
        id=ident,
        columns=columns,
        values=values,
        constants=constants,
        formats=formats,
        modified=table.string("modified"),
        version=table.string("version"),
        deleted=table.string("deleted"),
        where=table.string("where"),
        match=matches,
        join_table=join_table,
        join_key=join_key,
    )
    table.done()
    for field in (*values, *formats):
        if field not in columns:
            raise ConfigError(f"{table.where}: {field!r} has a value map or format but no column")
    return mapping


def _write_settings(table: SettingsTable, read_only: bool) -> WriteSettings:
    default_mode = "outbox" if read_only else "none"
    mode = table.string("mode", default_mode) or default_mode
    if mode not in WRITE_MODES:
        raise ConfigError(
            f"{table.path('mode')}: expected one of {', '.join(WRITE_MODES)}, got {mode!r}"
        )
    if mode == "table" and read_only:
        raise ConfigError(
            f"{table.path('mode')}: the CRM is read_only; write findings to an outbox "
            '(mode = "outbox") for the CRM to import'
        )
    folder = table.string("folder")
    if folder is not None and mode != "outbox":
        raise ConfigError(f'{table.path("folder")}: only for mode = "outbox"')
    names = table.table("columns")
    columns = {role: names.string(role, role) or role for role in TASK_COLUMNS}
    names.done()
    settings = WriteSettings(
        mode=mode,
        table=table.string("table", "tsos_tasks") or "tsos_tasks",
        folder=Path(folder) if folder is not None else None,
        create=table.boolean("create", True),
        columns=columns,
        due_days=table.integer("due_days", 3, low=0, high=365),
        open_status=table.string("open_status", "open") or "open",
        closed_status=table.string("closed_status", "closed") or "closed",
        repairs=table.boolean("repairs", not read_only),
    )
    table.done()
    if settings.repairs and read_only:
        raise ConfigError(f"{table.path('repairs')}: a read_only CRM takes no repairs")
    return settings


def zone(settings: TabularSettings) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.time_zone)
