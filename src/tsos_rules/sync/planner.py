"""From a findings diff to an action plan: which tasks to open or close and which repairs to make.

Pure functions over plain data, so the plan for a batch can be read and tested without a CRM.
The mode of each rule decides what is allowed: ``report`` writes nothing, ``shadow`` writes
nothing either and keeps the rule's findings apart ("would have": listed, never counted as
open nor failing the run), ``annotate`` keeps one
task per open finding (closed when it resolves), ``enforce`` also repairs what the doctrine says
to repair, each repair conditional on the record being unchanged since it was read.
``Planner.reconcile`` plans what settles the writes a killed run left pending in the journal.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from tsos_rules.connectors.base import Action, ActionKind, Capabilities, RecordKey
from tsos_rules.errors import ConfigError
from tsos_rules.findings import Finding, Severity
from tsos_rules.sync.state import FindingState, PendingWrite


class Mode(enum.StrEnum):
    """What the sync may write for a rule's findings."""

    REPORT = "report"
    SHADOW = "shadow"
    ANNOTATE = "annotate"
    ENFORCE = "enforce"


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.BLOCK: 2}


@attrs.frozen
class ModePolicy:
    """The default mode and per-rule overrides (exact rule ids or globs such as ``tsos.close-*``;
    an exact id wins over a glob, and a longer glob over a shorter one)."""

    default: Mode = Mode.ANNOTATE
    overrides: Mapping[str, Mode] = attrs.field(factory=dict)

    def mode_for(self, rule: str) -> Mode:
        if rule in self.overrides:
            return self.overrides[rule]
        matches = [p for p in self.overrides if fnmatch.fnmatchcase(rule, p)]
        if matches:
            return self.overrides[max(matches, key=len)]
        return self.default

    def writes_anything(self) -> bool:
        quiet = (Mode.REPORT, Mode.SHADOW)
        return self.default not in quiet or any(
            mode not in quiet for mode in self.overrides.values()
        )

    def check_rules(self, rule_ids: Iterable[str]) -> None:
        """Every override must name a loaded rule (or match one): a typo is a config error."""
        ids = set(rule_ids)
        for pattern in self.overrides:
            if pattern not in ids and not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
                raise ConfigError(f"sync.rule_modes.{pattern}: matches no loaded rule")


@attrs.frozen
class RecordInfo:
    """What the planner needs to know about the record a finding is on."""

    record_type: str
    record_id: str
    label: str
    owner_id: str | None = None
    version: str | None = None
    close_date: str | None = None
    partner_id: str | None = None
    previous_partner_id: str | None = None
    account_partner_of_record_id: str | None = None
    active_partner_ids: frozenset[str] = frozenset()


@attrs.frozen
class RuleText:
    """The rule metadata a task shows: title, doctrine and what to do."""

    title: str
    doctrine: str = ""
    remediation: str = ""


@attrs.frozen
class PlannedAction:
    """An action and the values its result is recorded with (a repair's changes)."""

    action: Action
    changes: Mapping[str, Any] | None = None


@attrs.frozen
class SkippedRepair:
    """A repair the doctrine asks for that cannot be made (reported, never guessed)."""

    fingerprint: str
    record_type: str
    record_id: str
    rule: str
    reason: str


@attrs.frozen
class Plan:
    actions: tuple[PlannedAction, ...] = ()
    skipped: tuple[SkippedRepair, ...] = ()


RepairFn = Callable[[Finding, RecordInfo], "dict[str, Any] | str | None"]
"""Returns the field changes that repair a finding, None when the record already holds them,
or a string saying why it cannot be repaired (reported as a skipped repair)."""


def restore_close_date(finding: Finding, record: RecordInfo) -> dict[str, Any] | str | None:
    """An unapproved move of a locked deal's close date: put the previous date back."""
    target = finding.details.get("restore_to")
    if not isinstance(target, str) or not target:
        return "no previous close date is known"
    if record.close_date == target:
        return None
    return {"close_date": target}


def restore_partner(finding: Finding, record: RecordInfo) -> dict[str, Any] | str | None:
    """A partner removed from a channel deal: put back the partner the CRM's field history
    names, else the account's partner of record; only an active partner is restored."""
    if record.partner_id:
        return None
    for candidate in (record.previous_partner_id, record.account_partner_of_record_id):
        if candidate and candidate in record.active_partner_ids:
            return {"partner_id": candidate}
    return "no active previous partner or partner of record to restore"


#: The repairs the doctrine names, by (rule, reason).
REPAIRS: Mapping[tuple[str, str], RepairFn] = {
    ("tsos.close-date-locked", "moved_unapproved"): restore_close_date,
    ("tsos.channel-lead-not-direct", "no_partner"): restore_partner,
}


@attrs.frozen
class Planner:
    """Plans the writes for one batch's findings diff."""

    policy: ModePolicy
    capabilities: Capabilities
    rules: Mapping[str, RuleText]
    task_min_severity: Severity = Severity.WARN

    def plan(
        self,
        current: Sequence[tuple[Finding, FindingState | None]],
        resolved: Sequence[FindingState],
        records: Mapping[RecordKey, RecordInfo],
        *,
        resolution: Mapping[str, str] | None = None,
        exempt: Mapping[str, str] | None = None,
    ) -> Plan:
        """``current``: findings present now with their stored state (None when new);
        ``resolved``: open findings that are gone; ``resolution``: why, by fingerprint;
        ``exempt``: findings under an active exemption (no task; an open one is closed), with
        what the closing note says."""
        actions: list[PlannedAction] = []
        skipped: list[SkippedRepair] = []
        caps = self.capabilities
        waived = exempt or {}
        for finding, state in current:
            mode = self.policy.mode_for(finding.rule)
            if mode in (Mode.REPORT, Mode.SHADOW):
                continue
            if finding.fingerprint in waived:
                if state is not None and state.has_open_task and caps.tasks:
                    actions.append(self._close(state, waived[finding.fingerprint]))
                continue
            record = records.get((finding.record_type, finding.record_id))
            if (
                caps.tasks
                and _SEVERITY_RANK[finding.severity] >= _SEVERITY_RANK[self.task_min_severity]
                and (state is None or not state.has_open_task)
            ):
                actions.append(PlannedAction(self._task(finding, record)))
            if mode is Mode.ENFORCE:
                repair = REPAIRS.get((finding.rule, finding.reason))
                if repair is None or record is None:
                    continue
                outcome = repair(finding, record)
                if outcome is None:
                    continue
                if isinstance(outcome, str):
                    skipped.append(_skip(finding, outcome))
                    continue
                if not caps.field_updates:
                    skipped.append(_skip(finding, "the connector cannot update fields"))
                    continue
                if not caps.conditional_updates or record.version is None:
                    skipped.append(
                        _skip(finding, "the connector cannot make the write conditional")
                    )
                    continue
                actions.append(
                    PlannedAction(
                        Action(
                            kind=ActionKind.UPDATE_FIELDS,
                            fingerprint=finding.fingerprint,
                            record_type=finding.record_type,
                            record_id=finding.record_id,
                            owner_id=record.owner_id,
                            subject=f"Restore {', '.join(outcome)}",
                            description=finding.message,
                            rule=finding.rule,
                            changes=outcome,
                            expected_version=record.version,
                        ),
                        changes=outcome,
                    )
                )
        for state in resolved:
            if not state.has_open_task or not caps.tasks:
                continue
            if self.policy.mode_for(state.rule) in (
                Mode.REPORT,
                Mode.SHADOW,
            ) and self.policy.default in (Mode.REPORT, Mode.SHADOW):
                continue
            why = (resolution or {}).get(state.fingerprint, "the record no longer breaks the rule")
            actions.append(self._close(state, f"Resolved: {why}."))
        return Plan(tuple(actions), tuple(skipped))

    def exemptions(
        self, waived: Mapping[str, tuple[FindingState, str]], lapsed: Sequence[FindingState]
    ) -> Plan:
        """Tasks of findings exempted since their task was opened are closed (``waived``:
        state and closing note by fingerprint); findings whose exemption expired or was revoked
        get their task again, as any open finding of their rule and severity would."""
        if not self.capabilities.tasks:
            return Plan()
        actions = [
            self._close(state, note)
            for state, note in waived.values()
            if state.has_open_task and self.policy.mode_for(state.rule) is not Mode.SHADOW
        ]
        for state in lapsed:
            if state.has_open_task or not self._wants_task(state.rule, state.severity):
                continue
            task = self._task(_finding_of(state), _record_of(state))
            actions.append(PlannedAction(attrs.evolve(task, fingerprint=state.fingerprint)))
        return Plan(tuple(actions))

    def _close(self, state: FindingState, note: str) -> PlannedAction:
        return PlannedAction(
            Action(
                kind=ActionKind.CLOSE_TASK,
                fingerprint=state.fingerprint,
                record_type=state.record_type,
                record_id=state.record_id,
                owner_id=state.owner_id,
                description=note,
                rule=state.rule,
                crm_id=state.task_id,
            )
        )

    def reconcile(
        self, pending: Sequence[PendingWrite], states: Mapping[str, FindingState]
    ) -> Plan:
        """Settle the task writes a killed run journalled but never recorded, once this run
        has judged its records. ``states``: the stored findings by fingerprint, as this run
        left them (a finding the killed run found first is unknown here unless this run saw
        it again).

        A task the killed run may have opened or closed for a finding that is open now is
        (re)planned as the finding's task, which the upsert answers ``already_done`` when the
        CRM holds it open; for a finding that is not open (cured, resolved, never recorded)
        its task is closed, which is ``already_done`` when it is closed or was never made.
        Journalled repairs need nothing: the read shows whether they were made, and they are
        conditional and idempotent.
        """
        kinds: dict[str, set[ActionKind]] = {}
        first: dict[str, PendingWrite] = {}
        for entry in pending:
            kinds.setdefault(entry.fingerprint, set()).add(entry.kind)
            first.setdefault(entry.fingerprint, entry)
        if not self.capabilities.tasks:
            return Plan()
        actions: list[PlannedAction] = []
        for fingerprint, entry in first.items():
            planned = kinds[fingerprint]
            if not planned & {ActionKind.CREATE_TASK, ActionKind.CLOSE_TASK}:
                continue
            state = states.get(fingerprint)
            if state is not None and state.status == "open":
                if ActionKind.CLOSE_TASK not in planned and state.has_open_task:
                    continue  # this run adopted the task already
                if self._wants_task(state.rule, state.severity):
                    finding = Finding(
                        rule=state.rule,
                        severity=Severity(state.severity),
                        record_type=state.record_type,
                        record_id=state.record_id,
                        reason=state.reason,
                        message=state.message,
                        doctrine="",
                    )
                    record = RecordInfo(
                        record_type=state.record_type,
                        record_id=state.record_id,
                        label=f"{state.record_type} {state.record_id}",
                        owner_id=state.owner_id,
                    )
                    task = attrs.evolve(self._task(finding, record), fingerprint=fingerprint)
                    actions.append(PlannedAction(task))
                    continue
            why = (
                "the finding is not open after an interrupted run"
                if state is None or state.status != "open"
                else "the rule no longer keeps a task for this finding"
            )
            actions.append(
                PlannedAction(
                    Action(
                        kind=ActionKind.CLOSE_TASK,
                        fingerprint=fingerprint,
                        record_type=entry.record_type,
                        record_id=entry.record_id,
                        owner_id=state.owner_id if state is not None else entry.owner_id,
                        description=f"Resolved: {why}.",
                        rule=entry.rule,
                        crm_id=state.task_id if state is not None else None,
                    )
                )
            )
        return Plan(tuple(actions))

    def _wants_task(self, rule: str, severity: str) -> bool:
        try:
            rank = _SEVERITY_RANK[Severity(severity)]
        except ValueError:
            return False
        return (
            self.policy.mode_for(rule) not in (Mode.REPORT, Mode.SHADOW)
            and rank >= _SEVERITY_RANK[self.task_min_severity]
        )

    def _task(self, finding: Finding, record: RecordInfo | None) -> Action:
        text = self.rules.get(finding.rule, RuleText(finding.rule))
        label = record.label if record else f"{finding.record_type} {finding.record_id}"
        lines = [finding.message, ""]
        if text.doctrine:
            lines.append(f"Doctrine: “{text.doctrine}”")
        if text.remediation:
            lines.append(f"What to do: {text.remediation}")
        lines.append(
            f"Rule {finding.rule} ({finding.severity.value}), finding {finding.fingerprint}."
        )
        return Action(
            kind=ActionKind.CREATE_TASK,
            fingerprint=finding.fingerprint,
            record_type=finding.record_type,
            record_id=finding.record_id,
            owner_id=record.owner_id if record else None,
            subject=f"[tsos-rules] {text.title}: {label}"[:255],
            description="\n".join(lines),
            rule=finding.rule,
        )


def _skip(finding: Finding, reason: str) -> SkippedRepair:
    return SkippedRepair(
        finding.fingerprint, finding.record_type, finding.record_id, finding.rule, reason
    )


def _finding_of(state: FindingState) -> Finding:
    """A stored finding as the engine would produce it (for a task planned from the state)."""
    return Finding(
        rule=state.rule,
        severity=Severity(state.severity),
        record_type=state.record_type,
        record_id=state.record_id,
        reason=state.reason,
        message=state.message,
        doctrine="",
    )


def _record_of(state: FindingState) -> RecordInfo:
    return RecordInfo(
        record_type=state.record_type,
        record_id=state.record_id,
        label=f"{state.record_type} {state.record_id}",
        owner_id=state.owner_id,
    )
