"""Findings as a text table for an 80-column terminal, grouped by record."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from itertools import groupby

from tsos_rules.findings import Finding, Findings, Severity, Waived
from tsos_rules.report.sections import ReportSection

WIDTH = 80
_LABEL = {Severity.BLOCK: "BLOCK", Severity.WARN: "warn ", Severity.INFO: "info "}


def render_table(findings: Findings, *, width: int = WIDTH, color: bool = False) -> str:
    """One block per record: its findings' severity, rule, reason, then the wrapped message."""
    lines: list[str] = []
    for (record_type, record_id), group in groupby(
        findings, key=lambda f: (f.record_type, f.record_id)
    ):
        lines.append(_style(f"{record_type} {record_id}", bold=True, color=color))
        lines.extend(_finding_lines(group, findings, width=width, color=color))
        lines.append("")
    counts = findings.by_severity
    lines.append(
        f"{len(findings)} finding(s) on {findings.records} record(s): "
        f"{counts['block']} block, {counts['warn']} warn, {counts['info']} info"
    )
    if findings.waived:
        statuses = [w.status for w in findings.waived.values()]
        exempt, shadow = statuses.count("exempt"), statuses.count("shadow")
        lines.append(
            f"not counted: {exempt} exempt (waived until a date), {shadow} shadow "
            "(rules in shadow mode: what they would have found)"
        )
    return "\n".join(lines) + "\n"


def _finding_lines(
    group: Iterable[Finding], findings: Findings, *, width: int, color: bool
) -> list[str]:
    out: list[str] = []
    for finding in group:
        label = _LABEL[finding.severity]
        head = f"  {label}  {finding.rule}  ({finding.reason})"
        waived = findings.waived.get(finding.fingerprint)
        if waived is not None:
            head += f"  [{_waived_label(waived)}]"
        if color:
            tint = {"BLOCK": "red", "warn ": "yellow", "info ": "cyan"}[label]
            head = head.replace(label, _style(label, fg=tint, color=True), 1)
        out.append(head)
        out.extend(
            textwrap.wrap(
                finding.message, width=width, initial_indent=" " * 9, subsequent_indent=" " * 9
            )
        )
    return out


def _waived_label(waived: Waived) -> str:
    """``exempt 3 until 2026-12-31 (approved by CFO)`` or ``shadow``."""
    e = waived.exemption
    if e is None:
        return waived.status
    return f"{waived.status} {e['id']} until {e['expires']} (approved by {e['approver']})"


def _style(text: str, *, color: bool, bold: bool = False, fg: str | None = None) -> str:
    if not color:
        return text
    import click

    return click.style(text, bold=bold, fg=fg)


def render_section(section: ReportSection, *, width: int = WIDTH) -> str:
    """A plugin's report section as an aligned text table (columns clipped to fit ``width``)."""
    rows = [[str(cell) for cell in row] for row in section.rows]
    columns = list(section.columns)
    widths = [
        max([len(c)] + [len(r[i]) for r in rows if i < len(r)]) for i, c in enumerate(columns)
    ]
    while sum(widths) + 2 * (len(widths) - 1) > width and max(widths) > 8:
        widths[widths.index(max(widths))] -= 1

    def line(cells: list[str]) -> str:
        clipped = [
            c if len(c) <= w else c[: w - 1] + "…" for c, w in zip(cells, widths, strict=False)
        ]
        return "  ".join(c.ljust(w) for c, w in zip(clipped, widths, strict=False)).rstrip()

    out = [section.title, "=" * min(len(section.title), width)]
    if section.description:
        out.extend(textwrap.wrap(section.description, width))
    out.append(line(columns))
    out.append(line(["-" * w for w in widths]))
    out.extend(line(row) for row in rows)
    return "\n".join(out) + "\n"
