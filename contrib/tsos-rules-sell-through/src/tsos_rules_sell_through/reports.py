"""Distributors' sell-through reports (CSV): who bought how many units, from which reseller.

Columns are mapped by the pack's ``columns`` parameter, so each distributor's own headers can
be used as they come. A row that cannot be used (a missing customer, units that are not a
whole number, a date in another format) is skipped and named (file, line, column, value);
the other rows are used.
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from tsos_rules import ConfigError
from tsos_rules.org import company_key

log = logging.getLogger("tsos_rules_sell_through")

#: The report fields the pack reads, and their default column names.
FIELDS = ("reseller", "end_customer", "product", "units", "date")


@attrs.frozen
class Purchase:
    """One row of a sell-through report: an end customer bought units through a reseller."""

    reseller: str
    end_customer: str
    product: str
    units: int
    date: dt.date
    source: str

    @property
    def company(self) -> str:
        """The end customer's company key (the same matching the doctrine rules use)."""
        return company_key(self.end_customer)


@attrs.frozen
class SkippedRow:
    """A row that could not be used, and why."""

    source: str
    line: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.column}: {self.problem}"


@attrs.frozen
class SellThrough:
    """Every usable purchase of every report, and the rows that were skipped."""

    purchases: tuple[Purchase, ...]
    skipped: tuple[SkippedRow, ...]

    def by_company(self) -> dict[str, list[Purchase]]:
        out: dict[str, list[Purchase]] = {}
        for purchase in self.purchases:
            if purchase.company:
                out.setdefault(purchase.company, []).append(purchase)
        return out


def report_files(patterns: Sequence[str]) -> list[Path]:
    """The files the ``reports`` parameter names (paths or globs), sorted, each once."""
    files: set[Path] = set()
    for pattern in patterns:
        expanded = os.path.expanduser(str(pattern))
        matches = glob.glob(expanded) if glob.has_magic(expanded) else [expanded]
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise ConfigError(f"packs.sell-through.reports: {match}: no such file")
            files.add(path)
    return sorted(files)


def read_reports(
    patterns: Sequence[str], columns: Mapping[str, str], date_format: str
) -> SellThrough:
    """Read every report; a bad row is skipped, logged and returned in ``skipped``."""
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"packs.sell-through.columns: unknown field {unknown[0]!r} "
            f"(the fields are {', '.join(FIELDS)})"
        )
    names = {field: str(columns.get(field, field)) for field in FIELDS}
    purchases: list[Purchase] = []
    skipped: list[SkippedRow] = []
    for path in report_files(patterns):
        rows, problems = _read_file(path, names, date_format)
        purchases.extend(rows)
        skipped.extend(problems)
    for row in skipped:
        log.warning("sell-through row skipped: %s", row)
    return SellThrough(tuple(purchases), tuple(skipped))


def _read_file(
    path: Path, names: Mapping[str, str], date_format: str
) -> tuple[list[Purchase], list[SkippedRow]]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"packs.sell-through.reports: {source}: cannot read: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    missing = [column for column in names.values() if column not in (reader.fieldnames or ())]
    if missing:
        raise ConfigError(
            f"packs.sell-through.reports: {source}: no column {missing[0]!r} "
            f"(set packs.sell-through.columns; the file has {', '.join(reader.fieldnames or [])})"
        )
    purchases: list[Purchase] = []
    skipped: list[SkippedRow] = []
    for line, row in enumerate(reader, start=2):
        problem = _purchase(row, names, date_format, source)
        if isinstance(problem, Purchase):
            purchases.append(problem)
        else:
            skipped.append(SkippedRow(source, line, *problem))
    return purchases, skipped


def _purchase(
    row: Mapping[str, str | None], names: Mapping[str, str], date_format: str, source: str
) -> Purchase | tuple[str, str]:
    """The row as a Purchase, or (column, problem) naming what is wrong with it."""

    def text(field: str) -> str:
        return (row.get(names[field]) or "").strip()

    customer = text("end_customer")
    if not customer:
        return names["end_customer"], "no end customer"
    raw_units = text("units")
    try:
        units = int(raw_units.replace(",", ""))
    except ValueError:
        return names["units"], f"expected a whole number of units, got {raw_units!r}"
    if units < 0:
        return names["units"], f"expected a whole number of units, got {raw_units!r}"
    raw_date = text("date")
    try:
        day = dt.datetime.strptime(raw_date, date_format).date()
    except ValueError:
        return names["date"], f"expected a date like {date_format!r}, got {raw_date!r}"
    return Purchase(text("reseller"), customer, text("product"), units, day, source)


def purchases_in(purchases: Iterable[Purchase], since: dt.date, until: dt.date) -> list[Purchase]:
    """The purchases dated from ``since`` to ``until``, both included."""
    return [p for p in purchases if since <= p.date <= until]
