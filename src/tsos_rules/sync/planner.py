"""From a findings diff to an action plan: which tasks to open or close and which repairs to make.

Pure functions over plain data, so the plan for a batch can be read and tested without a CRM.
The mode of each rule decides what is allowed: ``report`` writes nothing, ``shadow`` writes
nothing either and keeps the rule's findings apart ("would have": listed, never counted as
open nor failing the run), ``annotate`` keeps one
task per open finding (closed when it resolves), ``enforce`` also repairs what the doctrine says
to repair, each repair conditional on the record being unchanged since it was read.
``Planner.reconcile`` plans what settles the writes earlier runs left pending in the journal
(refused by the CRM, or never recorded because the run stopped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from tsos_rules.connectors.base import Action, ActionKind, Capabilities, RecordKey
from tsos_rules.findings import Finding, Severity
from tsos_rules.policy.rollout import Mode as Mode
from tsos_rules.policy.rollout import ModePolicy as ModePolicy
from tsos_rules.sync.state import FindingState, PendingWrite

_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.BLOCK: 2}


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
    #: A repair's fields as the record holds them now (a dry run shows before → after).
    before: Mapping[str, Any] | None = None


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
                        before={key: getattr(record, key, None) for key in outcome},
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
            task = self._task(state.finding(), _record_of(state))
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
        """Plan what settles the writes earlier runs left unfinished: refused by the CRM, or
        journalled by a run that stopped before recording them. ``states``: the stored
        findings by fingerprint, as this run left them after judging its records (a finding a
        stopped run found first is unknown here unless this run saw it again).

        For a finding that is open now, its task is (re)planned, which the upsert answers
        ``already_done`` when the CRM holds it open. For a finding that is not open (cured,
        resolved, never recorded) a task that may exist is closed (``already_done`` when it is
        closed or was never made); a create the CRM refused made nothing, so it is dropped.
        A repair the CRM refused is sent again, still conditional on the version it was planned
        against, while its finding is open and its rule in ``enforce`` mode; other journalled
        repairs need nothing: the read shows whether they were made.
        """
        entries: dict[str, list[PendingWrite]] = {}
        for entry in pending:
            entries.setdefault(entry.fingerprint, []).append(entry)
        actions: list[PlannedAction] = []
        for fingerprint, group in entries.items():
            state = states.get(fingerprint)
            is_open = state is not None and state.status == "open"
            for entry in group:
                repair = entry.action
                if (
                    entry.kind is ActionKind.UPDATE_FIELDS
                    and entry.refused
                    and repair is not None
                    and is_open
                    and self.capabilities.field_updates
                    and self.policy.mode_for(entry.rule) is Mode.ENFORCE
                ):
                    actions.append(PlannedAction(repair, changes=repair.changes))
            if self.capabilities.tasks:
                task = self._settle_task(fingerprint, group, state)
                if task is not None:
                    actions.append(PlannedAction(task))
        return Plan(tuple(actions))

    def _settle_task(
        self, fingerprint: str, group: Sequence[PendingWrite], state: FindingState | None
    ) -> Action | None:
        """The task write that settles a finding's unfinished task writes, if any is needed."""
        kinds = {entry.kind for entry in group}
        if not kinds & {ActionKind.CREATE_TASK, ActionKind.CLOSE_TASK}:
            return None
        first = group[0]
        if state is not None and state.status == "open":
            if ActionKind.CLOSE_TASK not in kinds and state.has_open_task:
                return None  # this run adopted the task already
            if self._wants_task(state.rule, state.severity):
                finding = state.finding()
                record = RecordInfo(
                    record_type=state.record_type,
                    record_id=state.record_id,
                    label=f"{state.record_type} {state.record_id}",
                    owner_id=state.owner_id,
                )
                return attrs.evolve(self._task(finding, record), fingerprint=fingerprint)
        made_nothing = all(entry.refused for entry in group if entry.kind is ActionKind.CREATE_TASK)
        if (
            ActionKind.CLOSE_TASK not in kinds
            and made_nothing
            and (state is None or not state.has_open_task)
        ):
            return None  # a refused create for a finding that resolved: nothing to undo
        why = (
            "the finding is not open after an interrupted run"
            if state is None or state.status != "open"
            else "the rule no longer keeps a task for this finding"
        )
        return Action(
            kind=ActionKind.CLOSE_TASK,
            fingerprint=fingerprint,
            record_type=first.record_type,
            record_id=first.record_id,
            owner_id=state.owner_id if state is not None else first.owner_id,
            description=f"Resolved: {why}.",
            rule=first.rule,
            crm_id=state.task_id if state is not None else None,
        )

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


def _record_of(state: FindingState) -> RecordInfo:
    return RecordInfo(
        record_type=state.record_type,
        record_id=state.record_id,
        label=f"{state.record_type} {state.record_id}",
        owner_id=state.owner_id,
    )
