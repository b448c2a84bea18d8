"""``tsos-rules findings``: the admin's worklist, read from the sync's state store."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from tsos_rules.cli._common import config_from, config_option
from tsos_rules.errors import ExitCode

if TYPE_CHECKING:
    from tsos_rules.sync.state import StateStore

_SORTS = ("severity", "age", "newest", "rule", "owner", "partner", "account", "record")


def connector_option(func: click.decorators.FC) -> click.decorators.FC:
    """``--connector``: whose findings (default: the configured ``[connector] type``)."""
    return click.option(
        "--connector",
        "connector_name",
        default=None,
        help="Whose findings (default: the configured [connector] type).",
    )(func)


@click.command()
@config_option
@connector_option
@click.option("--rule", help="Rule id or glob, e.g. 'tsos.close-*'.")
@click.option("--severity", type=click.Choice(["block", "warn", "info"]))
@click.option("--owner", help="Owner name (any case) or user id.")
@click.option("--partner", help="Partner name (any case) or partner id.")
@click.option("--account", help="Account name (any case) or account id.")
@click.option(
    "--status",
    type=click.Choice(["open", "resolved", "exempt", "shadow"]),
    default="open",
    show_default=True,
    help="open: to fix now; exempt: waived until a date; shadow: rules in shadow mode.",
)
@click.option(
    "--older-than",
    "older_than",
    type=click.IntRange(min=0),
    help="Only findings first seen more than DAYS days ago.",
    metavar="DAYS",
)
@click.option(
    "--sort",
    type=click.Choice(_SORTS),
    default="severity",
    show_default=True,
    help="severity: block first, oldest first within a severity; age: oldest first.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most N rows.", metavar="N")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
def findings(
    config_path: str | None,
    connector_name: str | None,
    rule: str | None,
    severity: str | None,
    owner: str | None,
    partner: str | None,
    account: str | None,
    status: str,
    older_than: int | None,
    sort: str,
    limit: int | None,
    fmt: str,
) -> None:
    """List the findings the last syncs stored: which records to fix, whose, and how.

    One row per finding: rule, severity, reason, the record (type, id and name), its owner,
    partner and account, when it was first seen and its age, the message, what to do, and a
    link to the record in the CRM (when the connector can make one). Reads the state store
    only: run `tsos-rules sync` first. Exit 1 when a listed open finding is a block.

    \b
    Examples:
      tsos-rules findings --severity block --sort age
      tsos-rules findings --owner "Ray Ortiz" --limit 20
      tsos-rules findings --rule 'tsos.close-*' --older-than 14 --format csv > stale.csv
      tsos-rules findings --partner "Acme VAR" --format json
      tsos-rules findings --status exempt
    """
    from tsos_rules.report.worklist import write_worklist
    from tsos_rules.sync.state.worklist import WorklistQuery

    query = WorklistQuery(
        status=status,
        rule=rule,
        severity=severity,
        owner=owner,
        partner=partner,
        account=account,
        older_than_days=older_than,
        sort=sort,
        limit=limit,
    )
    store, connector = open_state(config_path, connector_name)
    try:
        rows = store.worklist(connector, query)
    finally:
        store.close()
    write_worklist(rows, fmt, stream=sys.stdout, color=sys.stdout.isatty())
    blocked = status == "open" and any(row.severity == "block" for row in rows)
    sys.exit(ExitCode.BLOCK if blocked else ExitCode.OK)


def open_state(config_path: str | None, connector_name: str | None) -> tuple[StateStore, str]:
    """The configured state store and the connector whose rows to read."""
    from tsos_rules.sync.settings import SyncSettings
    from tsos_rules.sync.state import StateStore

    settings = SyncSettings.from_config(config_from(config_path))
    return StateStore(settings.state_path), connector_name or settings.connector_type
