"""``tsos-rules connectors check local``: is the demo CRM file one the connector can use?

Names a file that fails SQLite's integrity check or that the sync cannot write, a CRM that was
never seeded, tables or columns missing (a file made by another version of tsos-rules), and
deal stages that are not on the doctrine's stage ladder.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tsos_rules.connectors.base import Problem

if TYPE_CHECKING:
    from tsos_rules.connectors.local import LocalCRM

#: What a fix for a file the connector cannot use looks like.
_RESEED = "re-create it with `tsos-rules demo reset`"


def check_crm(crm: LocalCRM, ladder: Sequence[str]) -> list[Problem]:
    """Every problem with the open CRM ``crm``; reads only."""
    where = str(crm.path)
    problems: list[Problem] = []
    verdict = str(crm.db.execute("PRAGMA quick_check").fetchone()[0])
    if verdict != "ok":
        problems.append(Problem("error", where, f"damaged ({verdict}); {_RESEED}"))
    if crm.path.exists() and not os.access(crm.path, os.W_OK):
        problems.append(Problem("error", where, "not writable: the sync cannot write tasks"))
    problems += _schema_problems(crm)
    if not crm.is_seeded():
        problems.append(Problem("error", where, f"never seeded; {_RESEED}"))
    elif ladder:
        problems += _stage_problems(crm, ladder)
    return problems


def _schema_problems(crm: LocalCRM) -> list[Problem]:
    """Tables and columns this version expects but the file lacks."""
    from tsos_rules.connectors.local import LocalCRM

    # A fresh in-memory CRM carries this version's schema: the reference, never written twice.
    reference = LocalCRM(":memory:")
    try:
        expected = _columns(reference.db)
    finally:
        reference.close()
    found = _columns(crm.db)
    problems = []
    for table, columns in sorted(expected.items()):
        missing = sorted(columns - found.get(table, set()))
        if missing:
            problems.append(
                Problem(
                    "error",
                    f"{crm.path}: {table}",
                    f"missing column(s) {', '.join(missing)}: made by another version of "
                    f"tsos-rules; {_RESEED}",
                )
            )
    return problems


def _columns(db: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [
        str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    return {
        table: {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
        for table in tables
    }


def _stage_problems(crm: LocalCRM, ladder: Sequence[str]) -> list[Problem]:
    """Live deals at a stage the doctrine does not know: its stage rules cannot place them."""
    rows = crm.db.execute(
        "SELECT json_extract(data, '$.stage') AS stage, COUNT(*) FROM opportunities "
        "WHERE is_deleted = 0 GROUP BY stage ORDER BY stage"
    ).fetchall()
    return [
        Problem(
            "warning",
            "opportunities.stage",
            f"{count:,} deal(s) at stage {stage!r}, which is not on org.stage_ladder",
        )
        for stage, count in rows
        if stage not in ladder
    ]
