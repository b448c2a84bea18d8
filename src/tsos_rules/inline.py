"""In-line validation: judge one CRM change (before → after) in the middle of a save.

A change is judged by exactly the rules a sync uses, on exactly the facts a sync would build:

* **The after-state.** The record after the change is put into its context (the related
  records the caller sent: account, lead, partner, owner, history, activities), a
  :class:`~tsos_rules.facts.FactIndex` is built over them as a sync would build it over a whole
  snapshot, and every loaded rule judges the record's facts. Every finding a sync would report
  for that record is reported here, pre-existing ones included (an unapproved close-date move
  already in the deal's history, a next step that was already past due): docs/contract.md refuses a
  change when "the record after the change has a ``block`` finding".
* **The transition.** What a sync cannot see, because it only has the after-state:

  - a close-date move on an opportunity (``before.close_date != after.close_date``) becomes a
    :class:`~tsos_rules.model.CloseDateChange` in the deal's history (old and new dates, the
    deal's stage and forecast category *before* the change, ``changed_at`` now), so
    ``tsos.close-date-locked`` judges it like any recorded move (reason ``moved_unapproved``).
    The approval is read from the after record's ``close_date_approved_by`` field (an unknown
    key, kept in ``extra``); it counts only when it is set by this change (its value differs from
    the before record's), so an approval left on the record by an earlier move never approves a
    later one.
  - an opportunity that was a channel deal before the change stays one after it: a change that
    strips every channel marker (partner, ``channel = partner``) is judged as if the deal were
    still a channel deal, so "flipping it to direct" is refused like removing the partner.
  - deleting a lead whose outcome is ``future`` or ``no_opportunity`` is a ``block`` finding of
    ``tsos.lead-outcome-recorded`` with reason ``deleted_kept_lead``.

The team's policy is honoured as ``check`` and ``sync`` honour it (:mod:`tsos_rules.policy`):
a finding under an exemption (``[[exemptions]]``, the CRM field the context carries under
``exemptions``, or those ``extra_exemptions`` provides: ``tsos-rules serve`` passes the ones
``tsos-rules exempt add`` stored) or of a rule in ``shadow`` mode (``[rules.rollout]``) is
listed with its ``status`` (and the exemption) but never refuses the change.

``allowed`` is false exactly when one of the open findings is a ``block``. A call does no I/O:
the engine is built once (:class:`ChangeChecker`, or the cache behind :func:`check_change`) and
reused; a call only builds the per-change index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from tsos_rules.config import Config, coerce_config
from tsos_rules.engine import Engine
from tsos_rules.errors import ChangeError as ChangeError
from tsos_rules.facts import FactIndex, RecordFacts
from tsos_rules.findings import Decision as Decision
from tsos_rules.findings import Finding, Findings, Severity, Waived
from tsos_rules.model import (
    Account,
    Activity,
    CloseDateChange,
    Lead,
    LeadOutcome,
    Opportunity,
    Snapshot,
)
from tsos_rules.policy.apply import Policy
from tsos_rules.policy.exemptions import Exemption, Waivers, from_config, from_snapshot
from tsos_rules.rules.spec import Violation
from tsos_rules.snapshot.change import APPROVAL_FIELD as APPROVAL_FIELD
from tsos_rules.snapshot.change import RECORD_TYPES as RECORD_TYPES
from tsos_rules.snapshot.change import ParsedChange as ParsedChange
from tsos_rules.snapshot.change import Record
from tsos_rules.snapshot.change import parse_change as parse_change

#: The rule and reason of a kept lead's deletion (DOCTRINE: tsos.lead-outcome-recorded).
LEAD_OUTCOME_RULE: Final = "tsos.lead-outcome-recorded"
DELETED_KEPT_LEAD: Final = "deleted_kept_lead"
#: Exemptions from elsewhere (the state store's), asked for on each judged change that has
#: findings: it must answer from memory (``tsos-rules serve`` passes a refreshed cache).
ExemptionSource = Callable[[], Sequence[Exemption]]
_KEPT_OUTCOMES: Final = {
    LeadOutcome.FUTURE: "a future prospect",
    LeadOutcome.NO_OPPORTUNITY: "a no-opportunity lead",
}


class ChangeChecker:
    """Judges changes with one engine, built once. Thread-safe: a call shares no state.

    >>> checker = ChangeChecker.from_config(None)
    >>> decision = checker.check(
    ...     "opportunity", None, {"id": "o1", "next_step": "TBD"}, None, as_of="2026-11-24"
    ... )
    >>> decision.allowed, sorted({f.reason for f in decision.blocking})
    (False, ['missing', 'placeholder'])
    """

    def __init__(
        self,
        engine: Engine,
        config: Config | None = None,
        *,
        extra_exemptions: ExemptionSource | None = None,
    ) -> None:
        self.engine = engine
        self.config = config if config is not None else Config()
        self._extra_exemptions = extra_exemptions
        #: ``[rules.rollout]`` and ``[[exemptions]]``, checked against the loaded rules here.
        self.policy = Policy.from_config(self.config, engine.specs, dt.date.min)
        self._config_exemptions = tuple(from_config(self.config.exemptions))
        spec = engine.specs.get(LEAD_OUTCOME_RULE)
        self._lead_outcome_spec = spec
        self.rule_versions: dict[str, str] = {
            pack.name: pack.version
            for pack in engine.packs
            if any(s.pack == pack.name for s in engine.specs.values())
        }
        self.rules_digest = _rules_digest(engine)

    @classmethod
    def from_config(
        cls, config: Config | Mapping[str, Any] | str | Path | None = None
    ) -> ChangeChecker:
        """A checker with every installed pack, configured as a sync would be."""
        cfg = coerce_config(config)
        return cls(Engine.from_config(cfg), cfg)

    def close(self) -> None:
        self.engine.close()

    def check(
        self,
        record_type: str,
        before: Record | Mapping[str, Any] | None,
        after: Record | Mapping[str, Any] | None,
        context: Snapshot | Mapping[str, Any] | None = None,
        *,
        as_of: dt.date | str | None = None,
        include_info: bool = False,
    ) -> Decision:
        """Judge one change; raises :class:`ChangeError` (an ``InputError``) for bad input."""
        parsed = parse_change(record_type, before, after, context, as_of=as_of)
        return self.judge(parsed, include_info=include_info)

    def judge(self, change: ParsedChange, *, include_info: bool = False) -> Decision:
        """Judge a change already validated by :func:`parse_change`."""
        engine = self.engine
        record_type = change.record_type
        before, after = change.before, change.after
        found: list[Finding] = []
        index: FactIndex | None = None
        if after is None:
            assert before is not None
            as_of = change.as_of or change.context.as_of or engine.org.today()
            if isinstance(before, Lead):
                found.extend(self._deleted_lead(before))
        else:
            snapshot = self._after_snapshot(change, after)
            index = engine.index(snapshot, change.as_of)
            as_of = index.as_of
            facts = self._facts(index, record_type, before, after)
            if record_type in engine.record_types:
                found.extend(engine.evaluate_facts(facts))
        findings = Findings.collect(found, records=1).items
        if not include_info:
            findings = tuple(f for f in findings if f.severity is not Severity.INFO)
        waived = self._waived(findings, change, index, as_of)
        return Decision(
            allowed=not any(
                f.severity is Severity.BLOCK and f.fingerprint not in waived for f in findings
            ),
            findings=findings,
            record_type=record_type,
            record_id=change.record_id,
            as_of=as_of,
            waived=waived,
        )

    def _waived(
        self,
        findings: tuple[Finding, ...],
        change: ParsedChange,
        index: FactIndex | None,
        as_of: dt.date,
    ) -> dict[str, Waived]:
        """Exempt and shadow findings: the config's exemptions, the CRM-field ones the context
        carries and the extra ones, active on the change's date; modes from ``[rules.rollout]``."""
        if not findings:
            return {}
        crm_rows = [e.to_row() for e in change.context.exemptions]
        exemptions: list[Exemption] = list(self._config_exemptions)
        if self._extra_exemptions is not None:
            exemptions.extend(self._extra_exemptions())
        if crm_rows:
            exemptions.extend(
                from_snapshot(crm_rows, as_of, self.config.exemption_max_days).exemptions
            )
        policy = Policy(self.policy.modes, Waivers(exemptions, as_of))
        return policy.waived(findings, index)

    # -- the after-state, as a sync would see it ----------------------------------------------

    def _after_snapshot(self, change: ParsedChange, after: Record) -> Snapshot:
        context = change.context
        _, collection = RECORD_TYPES[change.record_type]
        rows: tuple[Any, ...] = getattr(context, collection)
        replaced = (*(r for r in rows if r.id != after.id), after)
        values: dict[str, Any] = {collection: replaced}
        move = self._close_date_move(change.before, after)
        if move is not None:
            values["close_date_changes"] = (*context.close_date_changes, move)
        return attrs.evolve(context, **values)

    @staticmethod
    def _close_date_move(before: Record | None, after: Record) -> CloseDateChange | None:
        if not isinstance(before, Opportunity) or not isinstance(after, Opportunity):
            return None
        if before.close_date == after.close_date:
            return None
        approver = after.extra.get(APPROVAL_FIELD) or None
        if approver is not None and approver == (before.extra.get(APPROVAL_FIELD) or None):
            approver = None  # left over from an earlier move: it does not approve this one
        return CloseDateChange(
            opportunity_id=after.id,
            old=before.close_date,
            new=after.close_date,
            changed_at=dt.datetime.now(dt.UTC),
            approved_by=approver,
            stage=before.stage,
            forecast_category=before.forecast_category,
        )

    @staticmethod
    def _facts(
        index: FactIndex, record_type: str, before: Record | None, after: Record
    ) -> RecordFacts:
        if isinstance(after, Opportunity):
            facts = index.opportunity(after)
            if (
                isinstance(before, Opportunity)
                and not facts.is_channel_deal
                and not after.is_closed
            ):
                was = index.channel_reasons(before)
                if was:  # a channel deal stays one: stripping its markers is a transition
                    facts = index.opportunity(after, channel_reasons=was)
            return facts
        if isinstance(after, Lead):
            return index.lead(after)
        if isinstance(after, Account):
            return index.account(after)
        assert isinstance(after, Activity), record_type
        return index.activity(after)

    # -- deletions -----------------------------------------------------------------------------

    def _deleted_lead(self, lead: Lead) -> list[Finding]:
        spec = self._lead_outcome_spec
        if spec is None or lead.outcome not in _KEPT_OUTCOMES:
            return []
        what = _KEPT_OUTCOMES[lead.outcome]
        violation = Violation(
            DELETED_KEPT_LEAD,
            f"Lead {lead.company or lead.id} is {what}; such leads are kept, not thrown back: "
            "keep the lead with its outcome instead of deleting it.",
            severity=Severity.BLOCK,
            details={"outcome": lead.outcome.value},
        )
        return [spec.finding("lead", lead.id, violation)]


def _rules_digest(engine: Engine) -> str:
    """A short hash of what decides a verdict: rules, severities, parameters and org profile."""
    payload = {
        "rules": sorted((s.id, s.severity.value) for s in engine.specs.values()),
        "packs": sorted((p.name, p.version) for p in engine.packs),
        "parameters": engine.parameters,
        "org": attrs.asdict(engine.org, filter=lambda a, _: a.init),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the module-level function and its engine cache ----------------------------------------------

_CACHE_SIZE: Final = 8
_cache: dict[tuple[str, str], tuple[Any, ChangeChecker]] = {}
_cache_lock = threading.Lock()


def _cache_key(config: Config | Mapping[str, Any] | str | Path | None) -> tuple[str, str]:
    if config is None:
        return ("default", "")
    if isinstance(config, Config):
        return ("config", str(id(config)))
    if isinstance(config, str | Path):
        return ("path", str(Path(config).resolve()))
    return ("mapping", repr(config))


def checker_for(config: Config | Mapping[str, Any] | str | Path | None = None) -> ChangeChecker:
    """The cached checker for ``config`` (a config given as a path is read once)."""
    key = _cache_key(config)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit[1]
        cfg = coerce_config(config)
        checker = ChangeChecker(Engine.from_config(cfg), cfg)
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))[1].close()
        _cache[key] = (config, checker)  # holding ``config`` keeps its id() unique
        return checker


def clear_checkers() -> None:
    """Close and forget the cached checkers (after installing plugins, or between tests)."""
    with _cache_lock:
        while _cache:
            _cache.popitem()[1][1].close()


def check_change(
    record_type: str,
    before: Record | Mapping[str, Any] | None,
    after: Record | Mapping[str, Any] | None,
    context: Snapshot | Mapping[str, Any] | None = None,
    *,
    as_of: dt.date | str | None = None,
    config: Config | Mapping[str, Any] | str | Path | None = None,
    include_info: bool = False,
) -> Decision:
    """Judge one CRM change before it is saved, by the rules a sync uses.

    ``before`` is None for a create, ``after`` None for a delete. ``context`` holds the related
    records (a :class:`Snapshot` or a dict in the snapshot JSON shape). The engine for ``config``
    is built on the first call and reused; a call does no I/O.

    >>> d = check_change("lead", {"id": "l1", "outcome": "future"}, None)
    >>> d.allowed, [(f.rule, f.reason) for f in d.findings]
    (False, [('tsos.lead-outcome-recorded', 'deleted_kept_lead')])
    """
    return checker_for(config).check(
        record_type, before, after, context, as_of=as_of, include_info=include_info
    )
