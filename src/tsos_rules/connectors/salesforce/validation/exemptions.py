"""Exemptions kept on the deal itself (``[connector.exemptions]``), as a formula term.

A deal whose ``until_field`` is today or later, and at most ``max_days`` ahead, is let through
by the rules its ``rules_field`` lists (ids, or globs ending in ``*``, separated by ``;`` or
``,``; blank or unmapped = every rule). The doctrine's NEVER (tip #28: a channel deal keeps its
partner and is never marked direct) is not waivable, so that rule gets no exemption term.

Only the keys the formulas need are read here; the connector validates the whole table.
"""

from __future__ import annotations

import attrs

from tsos_rules.config import SettingsTable
from tsos_rules.connectors.salesforce.settings import api_name
from tsos_rules.connectors.salesforce.validation import formula as f

#: The default of ``max_days``: a waiver further ahead than this is not honoured.
MAX_DAYS = 180
#: (rule, reasons) the doctrine forbids waiving: "When can you take a channel lead direct? NEVER."
NEVER_WAIVED = ("tsos.channel-lead-not-direct", frozenset({"no_partner", "marked_direct"}))


def _field(table: SettingsTable, key: str) -> str | None:
    value = table.string(key)
    if not value:
        return None
    name = value.removeprefix("Opportunity.")
    return api_name(name, table.path(key))


@attrs.frozen
class ExemptionFields:
    """The Opportunity fields that hold a waiver, and how far ahead one may reach."""

    until_field: str
    rules_field: str | None = None
    max_days: int = MAX_DAYS

    @classmethod
    def parse(cls, table: SettingsTable) -> ExemptionFields | None:
        """None when ``[connector.exemptions]`` is absent or empty."""
        if not table.data:
            return None
        until = _field(table, "until_field")
        if until is None:
            raise table.error("until_field", "required when [connector.exemptions] is set")
        return cls(
            until_field=until,
            rules_field=_field(table, "rules_field"),
            max_days=table.integer("max_days", MAX_DAYS, low=1, high=3650),
        )

    def waivable(self, rule_id: str, reasons: tuple[str, ...]) -> bool:
        never_rule, never_reasons = NEVER_WAIVED
        return not (rule_id == never_rule and set(reasons) <= never_reasons)

    def exempt(self, rule_id: str) -> f.Expr:
        """The deal holds a waiver of ``rule_id`` that is honoured today."""
        until = f.Ref(self.until_field)
        honoured = f.and_(
            f.not_(f.is_blank(until)),
            f.compare(">=", until, f.today()),
            f.compare("<=", until, f.Plus(f.today(), f.Number(self.max_days))),
        )
        if self.rules_field is None:
            return honoured
        rules = f.Ref(self.rules_field)
        listed = f.or_(f.is_blank(rules), f.call("REGEX", rules, f.Text(listing_regex(rule_id))))
        return f.and_(honoured, listed)


def _literal(char: str) -> str:
    return char if char.isalnum() else "\\" + char


def listing_regex(rule_id: str) -> str:
    """A Java regex matching a ``;``/``,`` separated list with an entry that names ``rule_id``:
    the id itself, or a glob that is one of its prefixes followed by ``*`` (``*``, ``tsos.*``,
    ``tsos.close-*``). Other globs (``?``, ``[...]``, a ``*`` inside) are not recognised."""
    prefixes = ""
    for char in reversed(rule_id):
        prefixes = f"(?:{_literal(char)}{prefixes})?"
    exact = "".join(_literal(c) for c in rule_id)
    entry = f"(?:{exact}|{prefixes}\\*)"
    return f"(?s)(?:.*[;,])?\\s*{entry}\\s*(?:[;,].*)?"
