"""Report sections that plugins add to the sync report (``tsos_rules_report_sections``)."""

from __future__ import annotations

from collections.abc import Sequence
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

    @classmethod
    def of(
        cls,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        description: str = "",
    ) -> ReportSection:
        return cls(title, tuple(columns), tuple(tuple(row) for row in rows), description)

    def to_dict(self) -> dict[str, Any]:
        """The section in JSON reports: title, plugin, description, columns and rows."""
        return {
            "title": self.title,
            "plugin": self.plugin,
            "description": self.description,
            "columns": list(self.columns),
            "rows": [list(row) for row in self.rows],
        }
