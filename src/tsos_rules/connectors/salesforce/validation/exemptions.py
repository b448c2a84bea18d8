"""Exemptions kept on the deal itself (``[connector.exemptions]``), as a formula term.

A deal whose ``until_field`` is today or later, and at most ``[rules] exemption_max_days``
ahead (the maximum the engine applies to every exemption source), is let through
by the rules its ``rules_field`` lists (ids, or globs ending in ``*``, separated by ``;`` or
``,``; blank or unmapped = every rule). The doctrine's NEVER (tip #28: a channel deal keeps its
partner and is never marked direct) is not waivable, so that rule gets no exemption term.

The table is read by the connector's own reader, so both accept and refuse the same keys.
"""

from __future__ import annotations

import attrs

from tsos_rules.config import SettingsTable
from tsos_rules.connectors.salesforce.settings import ExemptionFieldSettings
from tsos_rules.connectors.salesforce.validation import formula as f

#: (rule, reasons) the doctrine forbids waiving: "When can you take a channel lead direct? NEVER."
NEVER_WAIVED = ("tsos.channel-lead-not-direct", frozenset({"no_partner", "marked_direct"}))


@attrs.frozen
class ExemptionFields:
    """The Opportunity fields that hold a waiver, and how far ahead one may reach."""

    until_field: str
    rules_field: str | None = None
    max_days: int = 180

    @classmethod
    def parse(cls, table: SettingsTable, max_days: int) -> ExemptionFields | None:
        """None when ``[connector.exemptions]`` is absent or empty; ``max_days`` is
        ``[rules] exemption_max_days``, read by the one settings reader."""
        fields = ExemptionFieldSettings.parse(table)  # the connector's own reading
        if fields.until_field is None:
            return None
        return cls(
            until_field=fields.until_field, rules_field=fields.rules_field, max_days=max_days
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
