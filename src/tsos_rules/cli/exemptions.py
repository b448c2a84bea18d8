"""``tsos-rules exempt add|list|revoke``: waive a finding for a while, on record.

An exemption names what it waives (one finding by fingerprint, or a rule on one record), why,
who approved it and until when. The sync writes no task for an exempt finding (and closes an
open one with the reason); when the exemption expires or is revoked, the next sync opens the
task again. Exemptions are kept after they end: they are the audit trail.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from typing import TYPE_CHECKING

import click

from tsos_rules.cli._common import config_from, config_option, fail

if TYPE_CHECKING:
    from tsos_rules.sync.state import StateStore
    from tsos_rules.sync.state.exemptions import Exemption

from tsos_rules.policy.exemptions import MAX_DAYS as MAX_DAYS
from tsos_rules.policy.exemptions import NEVER as NEVER
from tsos_rules.policy.exemptions import NEVER_WAIVED as NEVER_WAIVED
from tsos_rules.policy.exemptions import NEVER_WAIVED_REASONS as NEVER_WAIVED_REASONS

_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
_RECORD_TYPES = ("opportunity", "lead", "account", "activity")


def _open(config_path: str | None, connector_name: str | None) -> tuple[StateStore, str]:
    from tsos_rules.cli.findings import open_state

    return open_state(config_path, connector_name)


def _until(value: str, today: dt.date, max_days: int = MAX_DAYS) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        fail(f"--until: expected a date YYYY-MM-DD, got {value!r}")
    if day < today:
        fail(f"--until: {day.isoformat()} is in the past")
    if day > today + dt.timedelta(days=max_days):
        fail(
            f"--until: {day.isoformat()} is more than {max_days} days away; exemptions are "
            "reviewed (rules.exemption_max_days): grant a new one when this one ends"
        )
    return day


def _record(value: str) -> tuple[str, str]:
    record_type, _, record_id = value.partition(":")
    if record_type not in _RECORD_TYPES or not record_id.strip():
        fail(
            f"--record: expected TYPE:ID with TYPE one of {', '.join(_RECORD_TYPES)}, got {value!r}"
        )
    return record_type, record_id.strip()


def _known_rule(pattern: str, config_path: str | None) -> None:
    from tsos_rules.engine import Engine

    engine = Engine.from_config(config_from(config_path))
    engine.close()
    if not any(fnmatch.fnmatchcase(rule_id, pattern) for rule_id in engine.specs):
        fail(f"--rule: {pattern!r} matches no loaded rule; see 'tsos-rules rules'")


def _text(value: str, option: str) -> str:
    if not value.strip():
        fail(f"{option}: must not be empty")
    return value.strip()


@click.group()
def exempt() -> None:
    """Exemptions: waive one finding, or a rule on one record, until a date, on record.

    \b
    Examples:
      tsos-rules exempt add 3f2c9a... --reason "merger: legal hold" --until 2026-12-31 --by CFO
      tsos-rules exempt list
      tsos-rules exempt revoke 4 --by "Dana (RVP)"
    """


@exempt.command("add")
@click.argument("fingerprint", required=False)
@click.option(
    "--rule",
    help="Rule id or glob to waive on --record, --account or --partner (not with FINGERPRINT).",
)
@click.option("--record", "record", metavar="TYPE:ID", help="The record, e.g. opportunity:006A1.")
@click.option("--account", "account_id", metavar="ID", help="Every record of this account.")
@click.option("--partner", "partner_id", metavar="ID", help="Every record of this partner.")
@click.option("--reason", required=True, help="Why (quoted in the closed task and the worklist).")
@click.option("--until", "until", required=True, metavar="DATE", help="Last day it holds.")
@click.option("--by", "approver", required=True, help="Who approved it.")
@click.option("--connector", "connector_name", help="Default: the configured [connector] type.")
@config_option
def add(
    fingerprint: str | None,
    rule: str | None,
    record: str | None,
    account_id: str | None,
    partner_id: str | None,
    reason: str,
    until: str,
    approver: str,
    connector_name: str | None,
    config_path: str | None,
) -> None:
    """Waive one finding (by FINGERPRINT), or a rule on one record (--record), or on every
    record of an account (--account) or a partner (--partner), until a date.

    The next sync writes no task for it and closes an open one with the reason; the worklist
    lists it under --status exempt. At most [rules] exemption_max_days (180 by default);
    revoke early with
    'tsos-rules exempt revoke ID'. A channel deal without its partner, or marked direct, is
    never waived (the doctrine's route is the partner's recorded consent).

    \b
    Examples:
      tsos-rules exempt add 3f2c9a... --reason "merger: legal hold" --until 2026-12-31 --by CFO
      tsos-rules exempt add --rule tsos.next-step-required --record opportunity:006A1 \\
          --reason "buyer on leave until January" --until 2027-01-15 --by "Dana (RVP)"
      tsos-rules exempt add --rule 'tsos.*' --account 001B7 \\
          --reason "merger: legal hold" --until 2027-03-31 --by CFO
    """
    today = dt.date.today()
    expires = _until(until, today, config_from(config_path).exemption_max_days)
    reason = _text(reason, "--reason")
    approver = _text(approver, "--by")
    store, connector = _open(config_path, connector_name)
    try:
        scopes = [s for s in (record, account_id, partner_id) if s is not None]
        if len(scopes) > 1:
            fail("give one of --record, --account or --partner")
        if fingerprint is not None:
            if rule or scopes:
                fail("give a FINGERPRINT or --rule with --record/--account/--partner, not both")
            if not _FINGERPRINT.fullmatch(fingerprint):
                fail(f"FINGERPRINT: expected 32 hex characters, got {fingerprint!r}")
            found = store.findings_by_fingerprint(connector, {fingerprint}).get(fingerprint)
            if found is None:
                fail(f"FINGERPRINT: no finding {fingerprint} in the state of {connector!r}")
            rule, record_type, record_id = found.rule, found.record_type, found.record_id
            if rule == NEVER_WAIVED and found.reason in NEVER_WAIVED_REASONS:
                fail(f"{rule} ({found.reason}): {NEVER}")
        else:
            if not rule or not scopes:
                fail("give a FINGERPRINT, or --rule and --record (or --account or --partner)")
            _known_rule(rule, config_path)
            if record is not None:
                if fnmatch.fnmatchcase(NEVER_WAIVED, rule):
                    fail(
                        f"--rule {rule!r} would waive {NEVER_WAIVED} on the whole record: "
                        f"{NEVER}. (A direct owner's finding can be waived alone, by its "
                        "FINGERPRINT.)"
                    )
                record_type, record_id = _record(record)
            else:
                if rule == NEVER_WAIVED:
                    fail(f"--rule {rule}: {NEVER}")
                option = "--account" if account_id is not None else "--partner"
                _text(account_id or partner_id or "", option)
                record_type, record_id = "", ""
        new = store.add_exemption(
            connector,
            rule=rule,
            record_type=record_type,
            record_id=record_id,
            reason=reason,
            approver=approver,
            expires=expires,
            fingerprint=fingerprint,
            account_id=account_id.strip() if account_id else None,
            partner_id=partner_id.strip() if partner_id else None,
        )
    finally:
        store.close()
    what = (
        f"finding {fingerprint}"
        if fingerprint
        else f"{rule} on {_scope(record_type, record_id, account_id, partner_id)}"
    )
    click.echo(
        f"exemption {new}: {what} waived until {expires.isoformat()} "
        f"(approved by {approver}): {reason}"
    )
    click.echo("the next sync closes its task; 'tsos-rules exempt list' lists every exemption")


@exempt.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--connector", "connector_name", help="Default: the configured [connector] type.")
@config_option
def list_(fmt: str, connector_name: str | None, config_path: str | None) -> None:
    """Every exemption: active, expired and revoked (the audit trail).

    \b
    Examples:
      tsos-rules exempt list
      tsos-rules exempt list --format json
    """
    store, connector = _open(config_path, connector_name)
    try:
        listed = store.exemptions(connector)
    finally:
        store.close()
    today = dt.date.today()
    if fmt == "json":
        click.echo(json.dumps([e.to_dict(today) for e in listed], indent=1))
        return
    for line in _table(listed, today):
        click.echo(line)


def _scope(record_type: str, record_id: str, account_id: str | None, partner_id: str | None) -> str:
    if account_id:
        return f"every record of account {account_id.strip()}"
    if partner_id:
        return f"every record of partner {partner_id.strip()}"
    return f"{record_type} {record_id}"


def _table(listed: list[Exemption], today: dt.date) -> list[str]:
    if not listed:
        return ["no exemptions"]
    rows = [
        (
            str(e.id),
            e.status(today),
            e.expires.isoformat(),
            e.fingerprint or e.rule,
            _scope(e.record_type, e.record_id, e.account_id, e.partner_id),
            e.source,
            e.approver,
            e.reason,
        )
        for e in listed
    ]
    header = ("id", "status", "until", "waives", "record", "source", "approved by", "reason")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


@exempt.command("revoke")
@click.argument("exemption_id", type=int)
@click.option("--by", "who", required=True, help="Who revokes it.")
@click.option("--connector", "connector_name", help="Default: the configured [connector] type.")
@config_option
def revoke(
    exemption_id: int, who: str, connector_name: str | None, config_path: str | None
) -> None:
    """End an exemption now: the next sync opens the finding's task again.

    \b
    Examples:
      tsos-rules exempt revoke 4 --by "Dana (RVP)"
    """
    who = _text(who, "--by")
    store, connector = _open(config_path, connector_name)
    try:
        store.revoke_exemption(connector, exemption_id, by=who)
    finally:
        store.close()
    click.echo(f"exemption {exemption_id} revoked by {who}; the next sync reopens its task")
