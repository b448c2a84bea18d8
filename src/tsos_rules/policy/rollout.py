"""Staged rollout: each rule's mode (``shadow`` → ``annotate`` → ``enforce``), by id or glob."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable, Mapping

import attrs

from tsos_rules.errors import ConfigError


class Mode(enum.StrEnum):
    """What a rule's findings may do: ``report`` and ``shadow`` write nothing to the CRM (shadow
    findings are kept apart as "would have" and never refuse a change in-line), ``annotate``
    keeps a task per finding, ``enforce`` also repairs what the doctrine says to repair."""

    REPORT = "report"
    SHADOW = "shadow"
    ANNOTATE = "annotate"
    ENFORCE = "enforce"


#: The modes that never write to the CRM.
QUIET = frozenset({Mode.REPORT, Mode.SHADOW})


@attrs.frozen
class ModePolicy:
    """The default mode and per-rule overrides (exact rule ids or globs such as ``tsos.close-*``;
    an exact id wins over a glob, and a longer glob over a shorter one)."""

    default: Mode = Mode.ANNOTATE
    overrides: Mapping[str, Mode] = attrs.field(factory=dict)
    #: Where each override comes from, as errors name it (``rules.rollout`` unless listed).
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False)
    #: Globs put in ``enforce`` whatever the overrides say (a dry run's "what if").
    forced: tuple[str, ...] = ()

    def is_forced(self, rule: str) -> bool:
        """True when ``rule`` is put in ``enforce`` by a "what if" (``--what-if-enforce``)."""
        return any(fnmatch.fnmatchcase(rule, pattern) for pattern in self.forced)

    def mode_for(self, rule: str) -> Mode:
        if self.is_forced(rule):
            return Mode.ENFORCE
        if rule in self.overrides:
            return self.overrides[rule]
        matches = [p for p in self.overrides if fnmatch.fnmatchcase(rule, p)]
        if matches:
            return self.overrides[max(matches, key=len)]
        return self.default

    def is_shadow(self, rule: str) -> bool:
        """True when the rule's findings are "would have" only (never refuse, never count)."""
        return self.mode_for(rule) is Mode.SHADOW

    def has_shadow(self) -> bool:
        """True when some rule may be in ``shadow`` mode (the default or an override)."""
        return self.default is Mode.SHADOW or Mode.SHADOW in self.overrides.values()

    def writes_anything(self) -> bool:
        return (
            self.default not in QUIET
            or bool(self.forced)
            or any(mode not in QUIET for mode in self.overrides.values())
        )

    def enforcing(self, patterns: Iterable[str]) -> ModePolicy:
        """This policy with the rules ``patterns`` match put in ``enforce`` ("what if")."""
        return attrs.evolve(self, forced=(*self.forced, *patterns))

    def check_rules(self, rule_ids: Iterable[str]) -> None:
        """Every override must name a loaded rule (or match one): a typo is a config error."""
        ids = set(rule_ids)
        for pattern in self.forced:
            if not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
                raise ConfigError(f"--what-if-enforce {pattern}: matches no loaded rule")
        for pattern in self.overrides:
            if pattern not in ids and not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
                where = self.sources.get(pattern, "rules.rollout")
                raise ConfigError(f"{where}.{pattern}: matches no loaded rule")
