"""Exemptions (waivers with expiry) from every source, and which finding each one waives.

Three sources, one meaning: ``tsos-rules exempt add`` (the state store, read by ``sync`` and
``findings``), ``[[exemptions]]`` in the config file, and a CRM field the connector maps
(``exemptions`` in the snapshot). An exempt finding is still reported, with status ``exempt``
and the exemption's id; it never refuses a change in-line, never sets exit 1 and gets no task.
The doctrine sets the limit: a channel deal without its partner, or marked direct, is never
waived ("When can you take a channel lead direct? NEVER.", tip #28).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from tsos_rules.errors import ConfigError
from tsos_rules.findings import EXEMPT, Finding, Waived

#: The longest an exemption may run unless ``[rules] exemption_max_days`` says otherwise.
MAX_DAYS = 180

#: The doctrine's hard limit (DOCTRINE.md, tip #28): these findings are never waived.
NEVER_WAIVED = "tsos.channel-lead-not-direct"
NEVER_WAIVED_REASONS = frozenset({"no_partner", "marked_direct"})
NEVER = (
    '"When can you take a channel lead direct? NEVER." (tip #28): a channel deal without its '
    "partner, or marked direct, is not waived. The doctrine's route is the partner's recorded "
    "consent (partner_consent: who, when, why), with the partner kept on the deal"
)

#: Where an exemption comes from.
STATE, CONFIG, CRM = "state", "config", "crm"


def never_waived(rule: str, reason: str) -> bool:
    """True for the findings the doctrine forbids waiving."""
    return rule == NEVER_WAIVED and reason in NEVER_WAIVED_REASONS


@attrs.frozen
class Exemption:
    """One waiver: ``rule`` (id or glob) on one record, or on every record of an account or a
    partner, or one finding by fingerprint; ``expires`` is the last day it holds."""

    id: str
    source: str
    rule: str
    reason: str
    approver: str
    expires: dt.date
    created: str = ""
    record_type: str | None = None
    record_id: str | None = None
    account_id: str | None = None
    partner_id: str | None = None
    fingerprint: str | None = None

    def active(self, today: dt.date) -> bool:
        return self.expires >= today

    def covers(
        self, finding: Finding, *, account_id: str | None = None, partner_id: str | None = None
    ) -> bool:
        """True when this exemption waives ``finding`` (whose record belongs to ``account_id``
        and ``partner_id``); never for what the doctrine forbids waiving."""
        return self.covers_parts(
            finding.fingerprint,
            finding.rule,
            finding.reason,
            finding.record_type,
            finding.record_id,
            account_id=account_id,
            partner_id=partner_id,
        )

    def covers_parts(
        self,
        fingerprint: str,
        rule: str,
        reason: str,
        record_type: str,
        record_id: str,
        *,
        account_id: str | None = None,
        partner_id: str | None = None,
    ) -> bool:
        """:meth:`covers` for a finding given by its parts (a stored one)."""
        if never_waived(rule, reason):
            return False
        if self.fingerprint is not None:
            return self.fingerprint == fingerprint
        if not fnmatch.fnmatchcase(rule, self.rule):
            return False
        if self.record_id:
            return self.record_id == record_id and self.record_type in (None, "", record_type)
        if self.account_id:
            return self.account_id == account_id
        return bool(self.partner_id) and self.partner_id == partner_id

    def ref(self) -> dict[str, Any]:
        """What a finding's ``exemption`` key says: which waiver, from where, why, until when."""
        return {
            "id": self.id,
            "source": self.source,
            "reason": self.reason,
            "approver": self.approver,
            "expires": self.expires.isoformat(),
        }

    def waived(self) -> Waived:
        return Waived(EXEMPT, self.ref())

    def note(self) -> str:
        """What the closing note of a waived finding's task says."""
        return (
            f"Exempt until {self.expires.isoformat()} (exemption {self.id}, approved by "
            f"{self.approver}): {self.reason}"
        )


def from_config(entries: Iterable[Mapping[str, Any]]) -> list[Exemption]:
    """The ``[[exemptions]]`` entries ``config.read_exemptions`` validated; ids ``config:N``."""
    out = []
    for n, entry in enumerate(entries, start=1):
        out.append(
            Exemption(
                id=f"config:{n}",
                source=CONFIG,
                rule=entry["rule"],
                reason=entry["reason"],
                approver=entry["approver"],
                expires=entry["expires"],
                created=entry["created"].isoformat(),
                record_type=entry.get("record_type"),
                record_id=entry.get("record_id"),
                account_id=entry.get("account_id"),
                partner_id=entry.get("partner_id"),
            )
        )
    return out


def check_config_rules(entries: Iterable[Mapping[str, Any]], rule_ids: Iterable[str]) -> None:
    """Every ``[[exemptions]]`` rule must match a loaded rule, and none may name the rule the
    doctrine forbids waiving on its own (a glob such as ``tsos.*`` is fine: it never waives
    that rule's ``no_partner`` and ``marked_direct`` findings)."""
    ids = set(rule_ids)
    for entry in entries:
        where, pattern = entry.get("where", "exemptions"), entry["rule"]
        if pattern == NEVER_WAIVED:
            raise ConfigError(f"{where}.rule: {NEVER}", table=where, key="rule")
        if pattern not in ids and not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
            raise ConfigError(
                f"{where}.rule: {pattern!r} matches no loaded rule; see 'tsos-rules rules'",
                table=where,
                key="rule",
            )


@attrs.frozen
class CrmExemptions:
    """The CRM-field exemptions of a snapshot, and the problems with the ones not honoured."""

    exemptions: tuple[Exemption, ...] = ()
    problems: tuple[str, ...] = ()


def from_snapshot(
    rows: Sequence[Mapping[str, Any]], today: dt.date, max_days: int = MAX_DAYS
) -> CrmExemptions:
    """The snapshot's ``exemptions`` (a CRM field the connector maps) as exemptions: one per
    rule listed (every rule when none is). A date more than ``max_days`` ahead is not honoured:
    it is a problem naming the record and the field."""
    out: list[Exemption] = []
    problems: list[str] = []
    for row in rows:
        record_type, record_id = str(row["record_type"]), str(row["record_id"])
        until = row["until"]
        field = str(row.get("field") or "until")
        if not isinstance(until, dt.date):
            until = dt.date.fromisoformat(str(until))
        if until < today:
            continue  # the waiver has ended: nothing to honour, nothing to report
        if until > today + dt.timedelta(days=max_days):
            problems.append(
                f"{record_type} {record_id}: {field} {until.isoformat()} is more than "
                f"{max_days} days ahead: the exemption is not honoured (at most until "
                f"{(today + dt.timedelta(days=max_days)).isoformat()})"
            )
            continue
        rules = tuple(row.get("rules") or ()) or ("*",)
        for rule in rules:
            out.append(
                Exemption(
                    id=f"crm:{record_type}:{record_id}",
                    source=CRM,
                    rule=rule,
                    reason=str(row.get("reason") or f"{field} set in the CRM"),
                    approver=f"crm:{field}",
                    expires=until,
                    record_type=record_type,
                    record_id=record_id,
                )
            )
    return CrmExemptions(tuple(out), tuple(problems))


class Waivers:
    """The exemptions active on a date, indexed for matching findings one at a time."""

    def __init__(self, exemptions: Iterable[Exemption], today: dt.date) -> None:
        self.today = today
        self.exemptions = tuple(e for e in exemptions if e.active(today))
        self._by_record: dict[str, list[Exemption]] = {}
        self._by_fingerprint: dict[str, list[Exemption]] = {}
        self._by_group: list[Exemption] = []
        for e in self.exemptions:
            if e.fingerprint is not None:
                self._by_fingerprint.setdefault(e.fingerprint, []).append(e)
            elif e.record_id:
                self._by_record.setdefault(e.record_id, []).append(e)
            else:
                self._by_group.append(e)

    def __bool__(self) -> bool:
        return bool(self.exemptions)

    @property
    def needs_scope(self) -> bool:
        """True when some exemption names an account or a partner (matching needs them)."""
        return bool(self._by_group)

    def exemption_for(
        self, finding: Finding, *, account_id: str | None = None, partner_id: str | None = None
    ) -> Exemption | None:
        """The first exemption (fingerprint, then record, then account or partner) waiving it."""
        candidates: list[Exemption] = [
            *self._by_fingerprint.get(finding.fingerprint, []),
            *self._by_record.get(finding.record_id, []),
            *self._by_group,
        ]
        for e in candidates:
            if e.covers(finding, account_id=account_id, partner_id=partner_id):
                return e
        return None
