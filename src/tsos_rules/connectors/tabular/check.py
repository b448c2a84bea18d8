"""``connectors check tabular``: the mapping checked against the source before any run.

Names every table or column that does not exist, every stage value that maps onto no stage of
the ladder, every value an enumeration does not take, and every date that does not parse, with
the table, the column and the value; and warns where runs will be full reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tsos_rules import model
from tsos_rules.connectors.base import Problem
from tsos_rules.connectors.tabular.mapping import UNMAPPABLE, Codec, kind_of
from tsos_rules.connectors.tabular.settings import TASK_COLUMNS, TableMapping, TabularSettings
from tsos_rules.connectors.tabular.source import Source
from tsos_rules.errors import ConnectorError

#: Distinct bad values named per column (the rest are counted).
SHOWN = 5

ENUM_FIELDS: dict[tuple[str, str], type[Any]] = {
    ("user", "role"): model.UserRole,
    ("partner", "status"): model.PartnerStatus,
    ("opportunity", "channel"): model.Channel,
    ("opportunity", "forecast_category"): model.ForecastCategory,
    ("close_date_change", "forecast_category"): model.ForecastCategory,
    ("lead", "outcome"): model.LeadOutcome,
}


def check(
    settings: TabularSettings,
    crm: Source,
    store: Source | None,
    codecs: Mapping[str, Codec],
    ladder: Sequence[str],
) -> list[Problem]:
    """Every problem of the mapping against the source, errors first per table."""
    problems: list[Problem] = []
    try:
        for mapping in settings.tables.values():
            problems += _check_table(settings, crm, mapping, codecs[mapping.name], ladder)
        problems += _check_store(settings, store)
    except ConnectorError as exc:
        problems.append(Problem("error", crm.describe(), str(exc)))
    return problems


def _columns_problems(
    mapping: TableMapping, columns: Sequence[str], joined: Sequence[str] | None
) -> list[Problem]:
    problems = []
    wanted: list[tuple[str, str]] = [(mapping.id, "id")]
    wanted += [(column, f"columns.{field}") for field, column in mapping.columns.items()]
    for key in ("modified", "version", "deleted"):
        column = getattr(mapping, key)
        if column is not None:
            wanted.append((column, key))
    wanted += [(column, f"match.{column}") for column in mapping.match]
    if mapping.join_key is not None:
        wanted.append((mapping.join_key, "join.key"))
    for column, key in wanted:
        table, name, present = mapping.table, column, columns
        if mapping.join_table and column.startswith(f"{mapping.join_table}."):
            table, name, present = mapping.join_table, column.split(".", 1)[1], joined or []
        if name in present:
            continue
        hint = next((c for c in present if c.lower() == name.lower()), None)
        problems.append(
            Problem(
                "error",
                f"{table}.{name}",
                f"column not found (tables.{mapping.name}.{key})"
                + (f"; did you mean {hint}?" if hint else ""),
            )
        )
    for field in mapping.columns:
        if field in UNMAPPABLE:
            problems.append(
                Problem(
                    "error",
                    f"tables.{mapping.name}.columns.{field}",
                    "a nested object cannot come from one column",
                )
            )
    return problems


def _check_table(
    settings: TabularSettings,
    crm: Source,
    mapping: TableMapping,
    codec: Codec,
    ladder: Sequence[str],
) -> list[Problem]:
    columns = crm.columns(mapping.table)
    if columns is None:
        return [Problem("error", mapping.table, f"table not found (tables.{mapping.name}.table)")]
    joined = crm.columns(mapping.join_table) if mapping.join_table else None
    if mapping.join_table and joined is None:
        return [
            Problem("error", mapping.join_table, f"table not found (tables.{mapping.name}.join)")
        ]
    problems = _columns_problems(mapping, columns, joined)
    if mapping.record == "opportunity" and ladder:
        for raw, stage in sorted(mapping.values.get("stage", {}).items()):
            if stage not in ladder:
                problems.append(
                    Problem(
                        "error",
                        f"tables.{mapping.name}.values.stage.{raw!r}",
                        f"{stage!r} is not on org.stage_ladder",
                    )
                )
    if not mapping.incremental and mapping.record in ("account", "lead", "opportunity", "activity"):
        problems.append(
            Problem(
                "warning",
                mapping.table,
                "no modified column: every run reads and judges all records in full",
            )
        )
    if any(p.level == "error" for p in problems):
        return problems
    return problems + _check_values(settings, crm, mapping, codec, ladder)


def _check_values(
    settings: TabularSettings,
    crm: Source,
    mapping: TableMapping,
    codec: Codec,
    ladder: Sequence[str],
) -> list[Problem]:
    """Read every row once and name the values that will not map."""
    bad: dict[tuple[str, str], dict[str, int]] = {}
    reasons: dict[tuple[str, str], str] = {}

    def note(column: str, reason: str, raw: Any) -> None:
        key = (column, reason)
        values = bad.setdefault(key, {})
        shown = repr(raw if isinstance(raw, str) else str(raw))
        values[shown] = values.get(shown, 0) + 1
        reasons[key] = reason

    joined: dict[str, dict[str, Any]] = {}
    if mapping.join_table and mapping.join_key:
        for batch in crm.batches(
            mapping.join_table, where=None, match={}, size=settings.batch_size
        ):
            for row in batch:
                joined.setdefault(
                    str(row.get(mapping.join_key) or "").strip(),
                    {f"{mapping.join_table}.{c}": v for c, v in row.items()},
                )
    for batch in crm.batches(
        mapping.table, where=mapping.where, match=mapping.match, size=settings.batch_size
    ):
        for row in batch:
            if joined and mapping.join_key:
                row = {**row, **joined.get(str(row.get(mapping.join_key) or "").strip(), {})}
            try:
                codec.modified(row)
            except ValueError as exc:
                note(
                    mapping.modified or "",
                    str(exc).split(": ", 1)[-1],
                    row.get(mapping.modified or ""),
                )
            for field, column in mapping.columns.items():
                raw = row.get(column)
                try:
                    value = codec.read_value(field, raw)
                except ValueError as exc:
                    note(column, str(exc), raw)
                    continue
                if value is None:
                    continue
                stage = field == "stage" and mapping.record == "opportunity"
                if stage and ladder and value not in ladder:
                    note(
                        column,
                        "stage value maps onto no stage of org.stage_ladder "
                        f"(add it to tables.{mapping.name}.values.stage)",
                        raw,
                    )
                enum = ENUM_FIELDS.get((mapping.record, field))
                if enum is not None and value not in {m.value for m in enum}:
                    allowed = ", ".join(m.value for m in enum)
                    note(
                        column,
                        f"expected one of {allowed} (map it in "
                        f"tables.{mapping.name}.values.{field})",
                        raw,
                    )
                if kind_of(mapping.record, field) == "bool" and not isinstance(value, bool):
                    note(column, "expected true or false", raw)
    problems = []
    for (column, _), values in sorted(bad.items()):
        reason = reasons[(column, _)]
        shown = sorted(values.items(), key=lambda item: (-item[1], item[0]))
        listed = ", ".join(
            f"{value} ({count} row{'s' if count > 1 else ''})" for value, count in shown[:SHOWN]
        )
        more = f" and {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
        problems.append(Problem("error", f"{mapping.table}.{column}", f"{reason}: {listed}{more}"))
    return problems


def _check_store(settings: TabularSettings, store: Source | None) -> list[Problem]:
    write = settings.write
    if store is None or write.mode == "none":
        return []
    columns = store.columns(write.table)
    where = f"{store.describe()}: {write.table}"
    if columns is None:
        if write.create:
            return [Problem("warning", where, "does not exist yet; the first run creates it")]
        return [Problem("error", where, "task table not found ([connector.write] table)")]
    return [
        Problem(
            "error",
            f"{write.table}.{write.columns[role]}",
            f"column not found (write.columns.{role})",
        )
        for role in TASK_COLUMNS
        if write.columns[role] not in columns
    ]
