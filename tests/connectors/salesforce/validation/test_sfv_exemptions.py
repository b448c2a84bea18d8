"""``[connector.exemptions]`` in the generated formulas: a waiver on the deal lets it through,
except where the doctrine says NEVER; a broken table is refused naming the key."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tsos_rules.connectors.salesforce.validation import generate
from tsos_rules.connectors.salesforce.validation.exemptions import listing_regex
from tsos_rules.errors import ConfigError


def _config(exemptions: dict[str, Any], max_days: int | None = None) -> dict[str, Any]:
    rules = {} if max_days is None else {"exemption_max_days": max_days}
    return {
        "rules": rules,
        "connector": {
            "type": "salesforce",
            "fields": {"next_step_date": "Next_Step_Date__c", "channel": "Channel__c"},
            "users": {"by": "role", "direct": ["Direct*"]},
            "exemptions": exemptions,
        },
    }


def test_every_rule_but_the_never_one_honours_the_waiver_fields() -> None:
    rules = generate(
        _config({"until_field": "Tsos_Exempt_Until__c", "rules_field": "Tsos_Exempt_Rules__c"})
    ).rules
    by_name = {rule.name: rule for rule in rules}
    keeps = by_name.pop("Tsos_Channel_Deal_Keeps_Partner")
    assert "Tsos_Exempt" not in keeps.formula  # tip #28: NEVER
    assert "Tsos_Channel_Deal_Direct_Owner" in by_name  # direct_owner may be waived
    for rule in by_name.values():
        assert "(Tsos_Exempt_Until__c <= (TODAY() + 180))" in rule.formula, rule.name
        assert "REGEX(Tsos_Exempt_Rules__c" in rule.formula
        assert any(
            "Tsos_Exempt_Rules__c names this rule only through a glob" in g for g in rule.stricter
        )
        assert len(rule.formula) <= 3900


def test_without_a_rules_field_a_waiver_covers_every_rule_and_exact_stays_exact() -> None:
    # the formula's maximum is the engine's, [rules] exemption_max_days, for every source
    rules = generate(_config({"until_field": "Opportunity.Waived_Until__c"}, max_days=30)).rules
    required = next(r for r in rules if r.name == "Tsos_Close_Date_Required")
    assert required.exact
    assert "(Waived_Until__c <= (TODAY() + 30))" in required.formula
    assert "REGEX(" not in required.formula


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"rules_field": "Tsos_Exempt_Rules__c"}, "connector.exemptions.until_field"),
        ({"until_field": "Bad Field"}, "connector.exemptions.until_field"),
        ({"until_field": "U__c", "max_days": 30}, "connector.exemptions.max_days"),
    ],
)
def test_a_broken_exemptions_table_is_refused_naming_the_key(
    table: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        generate(_config(table))


@pytest.mark.parametrize(
    ("listing", "matches"),
    [
        ("tsos.commit-integrity", True),
        (" tsos.next-step-required ; tsos.commit-integrity ", True),
        ("tsos.*", True),
        ("*", True),
        ("tsos.commit-*,other", True),
        ("tsos.commit-integrity-extra", False),
        ("xtsos.commit-integrity", False),
        ("tsos.close-*", False),
        ("other.*", False),
    ],
)
def test_the_listing_regex_reads_ids_and_prefix_globs(listing: str, matches: bool) -> None:
    pattern = listing_regex("tsos.commit-integrity")
    assert (re.fullmatch(pattern, listing) is not None) is matches
