"""The team's policy applied to findings: which are exempt, which are shadow, and which count.

``check`` and in-line build a :class:`Policy` from the config (and the snapshot's CRM-field
exemptions) and mark their findings with it; the sync uses the same matching with the state
store's exemptions added. Nothing is dropped: a waived finding is listed with its status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from tsos_rules.config import Config, naming_file
from tsos_rules.facts import FactIndex
from tsos_rules.findings import SHADOW, Finding, Waived
from tsos_rules.policy.exemptions import (
    Exemption,
    Waivers,
    check_config_rules,
    from_config,
    from_snapshot,
)
from tsos_rules.policy.rollout import Mode, ModePolicy

_SHADOW = Waived(SHADOW)


def rollout_policy(config: Config, default: Mode = Mode.ANNOTATE) -> ModePolicy:
    """``[rules.rollout]`` (over the deprecated ``[sync.rule_modes]``) as a policy."""
    legacy = config.sync.get("rule_modes") or {}
    overrides = {str(rule): Mode(mode) for rule, mode in legacy.items()}
    overrides.update((rule, Mode(mode)) for rule, mode in config.rollout.items())
    sources = {rule: "sync.rule_modes" for rule in legacy if rule not in config.rollout}
    return ModePolicy(default, overrides, sources=sources)


def record_scope(index: FactIndex, record_type: str, record_id: str) -> tuple[str | None, ...]:
    """The (account id, partner id) a record belongs to, as the sync's worklist names them."""
    if record_type == "opportunity":
        deal = index.opportunities.get(record_id)
        if deal is None:
            return (None, None)
        account = index.accounts.get(deal.account_id) if deal.account_id else None
        partner = deal.partner_id or (account.partner_of_record_id if account else None)
        return (deal.account_id, partner)
    if record_type == "lead":
        lead = index.leads.get(record_id)
        converted = getattr(lead, "account_id", None) if lead is not None else None
        return (
            converted if isinstance(converted, str) else None,
            lead.partner_id if lead is not None else None,
        )
    if record_type == "account":
        account = index.accounts.get(record_id)
        return (record_id, account.partner_of_record_id if account else None)
    for activity in index.snapshot.activities:
        if activity.id == record_id:
            account_id = getattr(activity, "account_id", None)
            account = index.accounts.get(account_id) if account_id else None
            return (account_id, account.partner_of_record_id if account else None)
    return (None, None)


@attrs.frozen
class Policy:
    """Rollout modes and active exemptions, ready to mark findings."""

    modes: ModePolicy
    waivers: Waivers
    #: CRM-field exemptions that are not honoured (a date beyond the maximum), named.
    problems: tuple[str, ...] = ()

    @classmethod
    def from_config(
        cls,
        config: Config,
        rule_ids: Iterable[str],
        today: dt.date,
        *,
        crm_rows: Sequence[Mapping[str, Any]] = (),
        extra: Iterable[Exemption] = (),
        check: bool = True,
    ) -> Policy:
        """The config's ``[rules.rollout]`` and ``[[exemptions]]`` (checked against the loaded
        ``rule_ids``: a typo is a config error), the snapshot's CRM-field exemptions and any
        ``extra`` (the state store's). ``check=False`` when only some rules are loaded."""
        ids = list(rule_ids)
        modes = rollout_policy(config)
        if check:
            with naming_file(config.path):
                modes.check_rules(ids)
                check_config_rules(config.exemptions, ids)
        crm = from_snapshot(crm_rows, today, config.exemption_max_days)
        exemptions = [*from_config(config.exemptions), *crm.exemptions, *extra]
        return cls(modes, Waivers(exemptions, today), crm.problems)

    def waived(
        self, findings: Iterable[Finding], index: FactIndex | None = None
    ) -> dict[str, Waived]:
        """The findings that do not count, by fingerprint: exempt first, then shadow."""
        out: dict[str, Waived] = {}
        waivers = self.waivers
        if not waivers and not self.modes.has_shadow():
            return out  # nothing to mark: no pass over a large check's findings
        for finding in findings:
            if waivers:
                scope: tuple[str | None, ...] = (None, None)
                if waivers.needs_scope and index is not None:
                    scope = record_scope(index, finding.record_type, finding.record_id)
                exemption = waivers.exemption_for(finding, account_id=scope[0], partner_id=scope[1])
                if exemption is not None:
                    out[finding.fingerprint] = exemption.waived()
                    continue
            if self.modes.is_shadow(finding.rule):
                out[finding.fingerprint] = _SHADOW
        return out
