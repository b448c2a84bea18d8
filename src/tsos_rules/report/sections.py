"""Report sections that plugins add to the sync report (``tsos_rules_report_sections``), and
their merge when several batches or shards each contribute rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs


@attrs.frozen
class ReportSection:
    """A titled table a plugin contributes to reports, e.g. each deal's period in two calendars."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    description: str = ""
    plugin: str = ""
    #: One sort key per row (e.g. a deal's close date and id), or None. With keys, rows from
    #: several shards or batches are merged as one evaluation would list them: one row per
    #: key, ordered by key. Never shown.
    row_keys: tuple[tuple[Any, ...], ...] | None = None

    @classmethod
    def of(
        cls,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        description: str = "",
        row_keys: Sequence[Sequence[Any]] | None = None,
    ) -> ReportSection:
        keys = None if row_keys is None else tuple(tuple(key) for key in row_keys)
        if keys is not None and len(keys) != len(rows):
            raise ValueError(f"{title}: {len(keys)} row keys for {len(rows)} rows")
        return cls(
            title, tuple(columns), tuple(tuple(row) for row in rows), description, row_keys=keys
        )

    def to_dict(self) -> dict[str, Any]:
        """The section in JSON reports: title, plugin, description, columns and rows."""
        return {
            "title": self.title,
            "plugin": self.plugin,
            "description": self.description,
            "columns": list(self.columns),
            "rows": [list(row) for row in self.rows],
        }


class SectionMerge:
    """Sections of several batches or shards merged by plugin and title.

    Rows of sections with ``row_keys`` are merged by key (the first row of a key kept) and
    ordered by it; otherwise a row is kept once (a record read as context by several batches
    shows once), in the order first seen. Sections are ordered by ``plugins`` (registration
    order), then as first seen.
    """

    def __init__(self, plugins: Sequence[str] = ()) -> None:
        self._rank = {name: rank for rank, name in enumerate(plugins)}
        self._first: dict[tuple[str, str], ReportSection] = {}
        #: per section: its rows by key (``repr(row)`` for sections without keys)
        self._rows: dict[tuple[str, str], dict[Any, tuple[Any, ...]]] = {}
        self._keyed: dict[tuple[str, str], bool] = {}

    def add(self, sections: Iterable[ReportSection]) -> None:
        """One batch's or shard's sections. Only its rows are compared: merging every known
        row again each batch grew with batches x rows (minutes at a million deals)."""
        for section in sections:
            key = (section.plugin, section.title)
            keyed = section.row_keys is not None
            rows = self._rows.get(key)
            if rows is None:
                self._first[key] = section
                rows = self._rows[key] = {}
                self._keyed[key] = keyed
            elif self._keyed[key] and not keyed:
                # one part without keys: the section falls back to rows in first-seen order
                rows = self._rows[key] = {repr(row): row for row in rows.values()}
                self._keyed[key] = False
            if self._keyed[key] and section.row_keys is not None:
                for row_key, row in zip(section.row_keys, section.rows, strict=True):
                    rows.setdefault(row_key, row)
            else:
                for row in section.rows:
                    rows.setdefault(repr(row), row)

    def keyed(self) -> bool:
        """True when every section merged so far has row keys (its rows merge exactly)."""
        return all(self._keyed.values())

    def sections(self) -> list[ReportSection]:
        """The merged sections (without their row keys)."""
        order = sorted(
            enumerate(self._first),
            key=lambda item: (self._rank.get(item[1][0], len(self._rank)), item[0]),
        )
        out = []
        for _, key in order:
            rows = self._rows[key]
            merged = [rows[k] for k in sorted(rows)] if self._keyed[key] else list(rows.values())
            out.append(attrs.evolve(self._first[key], rows=tuple(merged), row_keys=None))
        return out
