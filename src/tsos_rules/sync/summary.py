"""What a sync run reports: :class:`SyncSummary` at the end (the summary table, ``--format
json`` and the HTML report), and :class:`Progress` while it runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tsos_rules.errors import ExitCode
from tsos_rules.report.sections import ReportSection

if TYPE_CHECKING:
    from tsos_rules.rules.spec import RuleSpec
    from tsos_rules.sync.state.worklist import WorklistRow


class Progress(Protocol):
    """What the job reports while it runs (a rich bar on a terminal, log lines elsewhere)."""

    def start(self, *, full: bool, since: str | None) -> None: ...

    def batch(self, *, done: int, total: int | None, records: int, findings: int) -> None: ...

    def note(self, message: str) -> None: ...

    def stop(self) -> None: ...


@attrs.define
class RuleCounts:
    severity: str = ""
    new: int = 0
    resolved: int = 0
    open: int = 0
    exempt: int = 0


@attrs.frozen
class WorklistPage:
    """Every open, exempt and shadow finding after a run, with the loaded rules (titles,
    doctrine, remedies, reasons in words): the HTML report's worklist."""

    rows: tuple[WorklistRow, ...]
    rules: Mapping[str, RuleSpec]


@attrs.define
class OwnerCounts:
    """One owner's findings this run: new, resolved, and open at the end (blocks apart)."""

    name: str | None = None
    new: int = 0
    resolved: int = 0
    open: int = 0
    open_block: int = 0


@attrs.define
class SyncSummary:
    """What one run did: the run summary table, ``--format json`` and the HTML report."""

    run_id: int = 0
    connector: str = ""
    mode: str = ""
    full: bool = False
    dry_run: bool = False
    as_of: str = ""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    watermark_from: str | None = None
    watermark_to: str | None = None
    records_read: int = 0
    #: Plugins' report sections (``tsos_rules_report_sections``) for the records judged.
    sections: dict[tuple[str, str], ReportSection] = attrs.field(factory=dict)
    records_by_type: Counter[str] = attrs.field(factory=Counter)
    records_changed: int = 0
    records_judged: int = 0
    records_deleted: int = 0
    records_held: int = 0
    findings_new: int = 0
    findings_resolved: int = 0
    findings_open: int = 0
    open_block: int = 0
    #: Open findings under an active exemption, and findings of rules in ``shadow`` mode:
    #: neither counts as open (nor fails the run).
    findings_exempt: int = 0
    findings_shadow: int = 0
    rules: dict[str, RuleCounts] = attrs.field(factory=dict)
    #: Per owner id (``""``: no owner), kept in the run log for ``history --by owner``.
    owners: dict[str, OwnerCounts] = attrs.field(factory=dict)
    #: What the end-of-run retention pass removed (``[sync] history_days``), when it ran.
    pruned: dict[str, Any] | None = None
    #: Each notification sent after the run: service, status (sent or failed), reason.
    notifications: list[dict[str, str]] = attrs.field(factory=list)
    actions: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    #: CRM writes still pending after the run (refused, or left by a stopped run): the next
    #: run sends them again.
    writes_pending: int = 0
    #: Writes given up this run after their last attempt (listed in the log).
    writes_abandoned: int = 0
    skipped_records: list[dict[str, Any]] = attrs.field(factory=list)
    skipped_actions: list[dict[str, Any]] = attrs.field(factory=list)
    #: A dry run's writes, one by one (at most ``LISTED_PLANNED``; ``actions`` counts them all).
    planned_actions: list[dict[str, Any]] = attrs.field(factory=list)
    #: ``--what-if-enforce``: the rule globs this dry run judged as if in ``enforce`` mode.
    what_if_enforce: list[str] = attrs.field(factory=list)
    #: CRM-field exemptions not honoured (a date beyond the maximum), naming record and field.
    exemption_problems: list[str] = attrs.field(factory=list)
    charts: dict[str, Any] = attrs.field(factory=dict)
    #: The HTML report's worklist (``run_sync(worklist=True)``); never in ``to_dict()``.
    worklist: WorklistPage | None = None
    outcome: str = "running"
    exit_code: int = ExitCode.OK
    batches: int = 0

    def rule(self, rule: str) -> RuleCounts:
        if rule not in self.rules:
            self.rules[rule] = RuleCounts()
        return self.rules[rule]

    def owner(self, owner_id: str | None, name: str | None) -> OwnerCounts:
        key = owner_id or ""
        if key not in self.owners:
            self.owners[key] = OwnerCounts(name)
        counts = self.owners[key]
        if counts.name is None and name:
            counts.name = name
        return counts

    @property
    def actions_written(self) -> int:
        return sum(n for (_, status), n in self.actions.items() if status == "written")

    @property
    def actions_skipped(self) -> int:
        return sum(
            n for (_, status), n in self.actions.items() if status in ("stale", "not_possible")
        )

    def to_dict(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, status), n in sorted(self.actions.items()):
            by_kind.setdefault(kind, {})[status] = n
        totals = Counter[str]()
        for (_, status), n in self.actions.items():
            totals[status] += n
        return {
            "run_id": self.run_id,
            "connector": self.connector,
            "mode": self.mode,
            "full": self.full,
            "dry_run": self.dry_run,
            "as_of": self.as_of,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "watermark": {"from": self.watermark_from, "to": self.watermark_to},
            "records": {
                "read": self.records_read,
                "by_type": dict(sorted(self.records_by_type.items())),
                "changed": self.records_changed,
                "judged": self.records_judged,
                "deleted": self.records_deleted,
                "skipped": len(self.skipped_records),
                "held_back": self.records_held,
            },
            "findings": {
                "new": self.findings_new,
                "resolved": self.findings_resolved,
                "open": self.findings_open,
                "open_block": self.open_block,
                "exempt": self.findings_exempt,
                "shadow": self.findings_shadow,
                "by_rule": {
                    rule: attrs.asdict(counts) for rule, counts in sorted(self.rules.items())
                },
            },
            "actions": {
                "written": totals["written"],
                "already_done": totals["already_done"],
                "skipped": totals["stale"] + totals["not_possible"],
                "failed": totals["failed"],
                "planned": totals["planned"],
                "pending": self.writes_pending,
                "abandoned": self.writes_abandoned,
                "by_kind": by_kind,
            },
            "skipped_records": self.skipped_records,
            "skipped_actions": self.skipped_actions,
            "planned_actions": self.planned_actions,
            **({"what_if_enforce": self.what_if_enforce} if self.what_if_enforce else {}),
            **({"exemption_problems": self.exemption_problems} if self.exemption_problems else {}),
            "charts": self.charts,
            "sections": [section.to_dict() for section in self.sections.values()],
            "pruned": self.pruned,
            "notifications": self.notifications,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
        }
