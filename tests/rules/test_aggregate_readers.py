"""A pack's aggregate names the rules that read it: a name that is not one of the pack's
rules is refused when the pack is validated (a typo would silently judge no reader again)."""

from __future__ import annotations

import attrs
import pytest
from tsos_rules_channel_economics.rules import PACK

from tsos_rules import PackValidationError


def test_the_channel_pack_names_its_readers_rule() -> None:
    (aggregate,) = PACK.aggregates
    assert aggregate.read_by_rules == ("channel-economics.partner-credit-limit",)
    PACK.validate()


def test_an_unknown_reader_rule_is_refused() -> None:
    (aggregate,) = PACK.aggregates
    wrong = attrs.evolve(aggregate, read_by_rules=["channel-economics.partner-credit-limt"])
    pack = attrs.evolve(PACK, aggregates=(wrong,))
    typo = r"read_by_rules: 'channel-economics\.partner-credit-limt' is not a rule"
    with pytest.raises(PackValidationError, match=typo):
        pack.validate()


def test_findings_rising_with_the_total_needs_the_rules_it_is_true_of() -> None:
    """The promise is about some rules' verdicts: without them named it would spare the
    readers of every rule, which no pack can promise."""
    (aggregate,) = PACK.aggregates
    assert aggregate.findings_rise_with_total
    wrong = attrs.evolve(aggregate, read_by_rules=())
    pack = attrs.evolve(PACK, aggregates=(wrong,))
    with pytest.raises(PackValidationError, match="findings_rise_with_total: needs the rules"):
        pack.validate()


def test_restating_findings_needs_the_rules_and_the_key_field() -> None:
    """``restate`` rewords the findings of the reader rules on the readers of a key: without
    those rules (every rule's findings) or the field holding the key, it has nothing to go by."""
    (aggregate,) = PACK.aggregates
    assert aggregate.restate is not None
    no_key = attrs.evolve(aggregate, read_by=None, flags_above=None)
    with pytest.raises(PackValidationError, match="restate: needs read_by_rules"):
        attrs.evolve(PACK, aggregates=(no_key,)).validate()
    no_rules = attrs.evolve(
        aggregate, read_by_rules=(), findings_rise_with_total=False, flags_above=None
    )
    with pytest.raises(PackValidationError, match="restate: needs read_by_rules"):
        attrs.evolve(PACK, aggregates=(no_rules,)).validate()
