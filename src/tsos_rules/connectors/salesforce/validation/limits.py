"""Salesforce's limits on a validation rule, checked before anything is written.

A rule over a limit is refused with a :class:`ConfigError` naming the rule and the settings
that make it long; nothing is ever truncated.
"""

from __future__ import annotations

import re

from tsos_rules.connectors.salesforce.validation.rules import CompiledRule
from tsos_rules.errors import ConfigError

MAX_FORMULA = 3_900
MAX_MESSAGE = 255
MAX_DESCRIPTION = 255
MAX_NAME = 40

#: Letters, digits and single underscores; starts with a letter, does not end with "_".
API_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)$")


def check_limits(rule: CompiledRule) -> None:
    """Raise a ConfigError naming the rule (and what to change) when it breaks a limit."""
    where = f"{rule.name} ({rule.rule_id})"
    if len(rule.name) > MAX_NAME or not API_NAME.match(rule.name):
        raise ConfigError(
            f"{where}: not a valid validation rule name (letters, digits and single "
            f"underscores, at most {MAX_NAME} characters)"
        )
    size = len(rule.formula)
    if size > MAX_FORMULA:
        settings = ", ".join(rule.settings) or "the field mapping"
        raise ConfigError(
            f"{where}: the formula would be {size:,} characters, over Salesforce's limit of "
            f"{MAX_FORMULA:,}; shorten {settings}"
        )
    for what, text, limit in (
        ("error message", rule.message, MAX_MESSAGE),
        ("description", rule.description, MAX_DESCRIPTION),
    ):
        if len(text) > limit:
            raise ConfigError(
                f"{where}: the {what} would be {len(text)} characters, over Salesforce's limit "
                f"of {limit}; shorten the rule's doctrine text in its pack"
            )
