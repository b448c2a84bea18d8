"""What the doctrine pack's rule modules share: the parameters' type and how records are named."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tsos_rules.facts import OpportunityFacts
from tsos_rules.rules.spec import CheckFn, PythonRule, RuleSpec, Violation

#: The pack's resolved parameter values, as a check receives them.
Params = Mapping[str, Any]

#: What a check returns: its violations. Checks are plain functions, not generators: most
#: records break no rule, and returning :data:`NO_VIOLATIONS` costs a third of building and
#: running a generator (1.5M calls at 100k deals).
Found = Sequence[Violation]
NO_VIOLATIONS: Found = ()


def rule(spec: RuleSpec, **checks: Callable[[Any, Params], Found]) -> PythonRule:
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
