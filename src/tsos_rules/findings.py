"""Findings: what a rule says about one record, in docs/contract.md's JSON shape."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from operator import attrgetter
from typing import Any

import attrs


class Severity(enum.StrEnum):
    """``block`` refuses a change in-line; ``warn`` is reported; ``info`` only when asked."""

    BLOCK = "block"
    WARN = "warn"
    INFO = "info"


#: Each severity's text: a dict look-up, where an enum's ``value`` is a descriptor call (a
#: findings document of 270k findings reads it once a finding).
_SEVERITY_TEXT = {severity: severity.value for severity in Severity}


@attrs.frozen
class Finding:
    """One rule's verdict on one record for one reason."""

    rule: str
    severity: Severity
    record_type: str
    record_id: str
    reason: str
    message: str
    doctrine: str
    #: Values an action needs (e.g. the close date to restore); not part of the identity.
    details: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The identity of a finding: one per (rule, record, reason)."""
        return (self.record_type, self.record_id, self.rule, self.reason)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A stable id for this finding across runs, used as an idempotency key in writes.
        Computed once per finding (a sync reads it about ten times); never pickled."""
        raw = "\x1f".join(self.key).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": _SEVERITY_TEXT[self.severity],
            "record_type": self.record_type,
            "record_id": self.record_id,
            "reason": self.reason,
            "message": self.message,
            "doctrine": self.doctrine,
        }
        if self.details:
            out["details"] = dict(self.details)
        return out


#: A finding's fields in ``__init__`` order.
_FIELDS = tuple(field.name for field in attrs.fields(Finding))


class FindingList(list[Finding]):
    """Findings a worker sends back to its driver: pickled as one list a field, about twice as
    fast both ways as one finding's state at a time (docs/scale-measured.md)."""

    def __reduce__(self) -> tuple[Any, ...]:
        if any(type(finding) is not Finding for finding in self):  # a subclass keeps its own
            return (FindingList, (list(self),))
        return (_from_columns, tuple(list(map(attrgetter(name), self)) for name in _FIELDS))


def _from_columns(*columns: list[Any]) -> FindingList:
    return FindingList(map(Finding, *columns))


#: A finding's status besides ``open``: under an exemption, or of a rule in shadow mode.
EXEMPT, SHADOW = "exempt", "shadow"


@attrs.frozen
class Waived:
    """Why a finding does not count: ``status`` is ``exempt`` (``exemption`` says which: its
    id, source, reason, approver and expiry) or ``shadow`` (the rule's rollout mode)."""

    status: str
    exemption: Mapping[str, Any] | None = None

    def annotate(self, data: dict[str, Any]) -> dict[str, Any]:
        """A finding's JSON with the additive ``status`` (and ``exemption``) keys."""
        data["status"] = self.status
        if self.exemption is not None:
            data["exemption"] = dict(self.exemption)
        return data


def _finding_dicts(items: Iterable[Finding], waived: Mapping[str, Waived]) -> list[dict[str, Any]]:
    if not waived:  # no fingerprint to compute (a hash each) when nothing is waived
        return [finding.to_dict() for finding in items]
    out = []
    for finding in items:
        data = finding.to_dict()
        why = waived.get(finding.fingerprint)
        out.append(why.annotate(data) if why is not None else data)
    return out


@attrs.frozen
class Findings:
    """The findings of one evaluation, ordered by record type, record id, rule id and reason.
    ``waived``: findings that are reported but do not count (exempt or shadow), by fingerprint."""

    items: tuple[Finding, ...]
    records: int
    waived: Mapping[str, Waived] = attrs.field(factory=dict, eq=False, repr=False)

    def status(self, finding: Finding) -> str:
        """``open``, ``exempt`` or ``shadow``."""
        why = self.waived.get(finding.fingerprint)
        return why.status if why is not None else "open"

    @classmethod
    def collect(cls, findings: Iterable[Finding], *, records: int) -> Findings:
        unique: dict[tuple[str, str, str, str], Finding] = {}
        for finding in findings:
            unique.setdefault(finding.key, finding)
        return cls(tuple(unique[key] for key in sorted(unique)), records)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def by_severity(self) -> dict[str, int]:
        counts = Counter(finding.severity for finding in self.items)
        return {severity.value: counts.get(severity, 0) for severity in Severity}

    @property
    def blocking(self) -> bool:
        """True when at least one open finding is a ``block``: ``check`` then exits 1 (an exempt
        or shadow block does not)."""
        waived = self.waived
        return any(
            finding.severity is Severity.BLOCK and (not waived or finding.fingerprint not in waived)
            for finding in self.items
        )

    def for_rule(self, rule_id: str) -> list[Finding]:
        return [finding for finding in self.items if finding.rule == rule_id]

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "records": self.records,
            "findings": len(self.items),
            "by_severity": self.by_severity,
        }
        if self.waived:
            for status in (EXEMPT, SHADOW):
                summary[status] = sum(1 for w in self.waived.values() if w.status == status)
        return {"findings": _finding_dicts(self.items, self.waived), "summary": summary}


@attrs.frozen
class Decision:
    """The verdict on one change: ``allowed`` is false exactly when an open finding is a
    ``block`` (an exempt block, or one of a rule in shadow mode, is listed but never refuses)."""

    allowed: bool
    findings: tuple[Finding, ...]
    record_type: str
    record_id: str
    as_of: dt.date
    #: Findings listed but not counted (exempt or shadow), by fingerprint.
    waived: Mapping[str, Waived] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """The findings that refuse the change."""
        return tuple(
            f
            for f in self.findings
            if f.severity is Severity.BLOCK and f.fingerprint not in self.waived
        )

    def to_dict(self) -> dict[str, Any]:
        """docs/contract.md's answer: ``{"allowed": bool, "findings": [...]}``; an exempt or
        shadow finding carries ``status`` (and ``exemption``), and is also listed (rule, reason,
        severity, exemption) under ``exempt`` or ``shadow`` (keys present only when not empty)."""
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "findings": _finding_dicts(self.findings, self.waived),
        }
        for status in (EXEMPT, SHADOW):
            listed = [
                w.annotate({"rule": f.rule, "reason": f.reason, "severity": f.severity.value})
                for f in self.findings
                if (w := self.waived.get(f.fingerprint)) is not None and w.status == status
            ]
            if listed:
                out[status] = listed
        return out
