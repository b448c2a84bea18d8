"""What the doctrine pack's rule modules share: the parameters' type and how records are named."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tsos_rules.facts import OpportunityFacts
from tsos_rules.rules.spec import CheckFn, PythonRule, RuleSpec, Violation

#: The pack's resolved parameter values, as a check receives them.
Params = Mapping[str, Any]


def rule(spec: RuleSpec, **checks: Callable[[Any, Params], Iterator[Violation]]) -> PythonRule:
    """A Python rule from its spec and one check per record type (``opportunity=...``)."""
    typed: dict[str, CheckFn] = dict(checks)
    return PythonRule(spec=spec, checks=typed)


def deal_name(facts: OpportunityFacts) -> str:
    """How messages name a deal: its name, else its id."""
    return facts.opportunity.name or facts.opportunity.id


def user_name(user: Any) -> str:
    """How messages name a user: name, else id, else "unknown user"."""
    if user is None:
        return "unknown user"
    return str(user.name or user.id)
