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
from tsos_rules.facts.scope import NO_SCOPE, Scope, Scopes, record_scope
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
        self,
        findings: Iterable[Finding],
        index: FactIndex | None = None,
        *,
        scopes: Scopes | None = None,
    ) -> dict[str, Waived]:
        """The findings that do not count, by fingerprint: exempt first, then shadow. An
        exemption by account or partner matches on the records in ``index``, or on ``scopes``
        (the findings' records' scopes, computed where the records are: a sharded check)."""
        out: dict[str, Waived] = {}
        waivers = self.waivers
        if not waivers and not self.modes.has_shadow():
            return out  # nothing to mark: no pass over a large check's findings
        for finding in findings:
            if waivers:
                scope: Scope = NO_SCOPE
                if waivers.needs_scope:
                    if scopes is not None:
                        scope = scopes.get((finding.record_type, finding.record_id), NO_SCOPE)
                    elif index is not None:
                        scope = record_scope(index, finding.record_type, finding.record_id)
                exemption = waivers.exemption_for(finding, account_id=scope[0], partner_id=scope[1])
                if exemption is not None:
                    out[finding.fingerprint] = exemption.waived()
                    continue
            if self.modes.is_shadow(finding.rule):
                out[finding.fingerprint] = _SHADOW
        return out
