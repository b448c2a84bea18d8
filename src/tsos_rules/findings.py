"""Findings: what a rule says about one record, in docs/contract.md's JSON shape."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs


class Severity(enum.StrEnum):
    """``block`` refuses a change in-line; ``warn`` is reported; ``info`` only when asked."""

    BLOCK = "block"
    WARN = "warn"
    INFO = "info"


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

    @property
    def fingerprint(self) -> str:
        """A stable id for this finding across runs, used as an idempotency key in writes."""
        raw = "\x1f".join(self.key).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.value,
            "record_type": self.record_type,
            "record_id": self.record_id,
            "reason": self.reason,
            "message": self.message,
            "doctrine": self.doctrine,
        }
        if self.details:
            out["details"] = dict(self.details)
        return out


@attrs.frozen
class Findings:
    """The findings of one evaluation, ordered by record type, record id, rule id and reason."""

    items: tuple[Finding, ...]
    records: int

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
        counts = Counter(finding.severity.value for finding in self.items)
        return {severity.value: counts.get(severity.value, 0) for severity in Severity}

    @property
    def blocking(self) -> bool:
        """True when at least one finding is a ``block``: ``check`` then exits 1."""
        return any(finding.severity is Severity.BLOCK for finding in self.items)

    def for_rule(self, rule_id: str) -> list[Finding]:
        return [finding for finding in self.items if finding.rule == rule_id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [finding.to_dict() for finding in self.items],
            "summary": {
                "records": self.records,
                "findings": len(self.items),
                "by_severity": self.by_severity,
            },
        }


@attrs.frozen
class Decision:
    """The verdict on one change: ``allowed`` is false exactly when a finding is a ``block``."""

    allowed: bool
    findings: tuple[Finding, ...]
    record_type: str
    record_id: str
    as_of: dt.date

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """The findings that refuse the change."""
        return tuple(f for f in self.findings if f.severity is Severity.BLOCK)

    def to_dict(self) -> dict[str, Any]:
        """docs/contract.md's answer: ``{"allowed": bool, "findings": [...]}``."""
        return {"allowed": self.allowed, "findings": [f.to_dict() for f in self.findings]}
