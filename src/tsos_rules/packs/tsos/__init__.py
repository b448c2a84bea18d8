"""The built-in ``tsos`` pack: the doctrine of DOCTRINE.md, as Python rules.

One module per doctrine topic holds each rule's check beside its :class:`RuleSpec`; this module
assembles them (in the order ``rules`` and ``explain`` list them) with the pack's parameters.
Registered through ``tsos_rules_register_packs`` exactly as a third-party pack would be.
"""

from __future__ import annotations

from collections.abc import Callable

from tsos_rules.markers import hookimpl
from tsos_rules.packs.tsos.channel_lead import CHANNEL_LEAD_NOT_DIRECT, DIRECT_REP_ON_CHANNEL_DEAL
from tsos_rules.packs.tsos.close_date import CLOSE_DATE_LOCKED, CLOSE_DATE_SLIPPING
from tsos_rules.packs.tsos.commit import COMMIT_INTEGRITY
from tsos_rules.packs.tsos.direct_contact import PARTNER_TOLD_OF_DIRECT_CONTACT
from tsos_rules.packs.tsos.leads import (
    LEAD_OUTCOME_RECORDED,
    LEAD_SINGLE_OWNER,
    PARTNER_LEAD_FOLLOWUP,
)
from tsos_rules.packs.tsos.next_step import NEXT_STEP_REQUIRED
from tsos_rules.packs.tsos.partner_of_record import (
    PARTNER_OF_RECORD_DRIFT,
    PARTNER_OF_RECORD_REQUIRED,
)
from tsos_rules.packs.tsos.stage_probability import STAGE_PROBABILITY_CONSISTENT
from tsos_rules.rules.spec import Parameter, RulePack

PACK = "tsos"

PARAMETERS = (
    Parameter(
        "probability_tolerance",
        10,
        "Points a deal's probability may differ from its stage's default probability.",
        low=0,
        high=100,
    ),
    Parameter(
        "slip_count",
        3,
        "Pushes of the close date to a later date that make a deal slip.",
        low=1,
        high=1000,
    ),
    Parameter(
        "acceptance_business_days",
        2,
        "Business days a partner has to accept a distributed lead.",
        low=0,
        high=365,
    ),
    Parameter(
        "followup_business_days",
        5,
        "Business days a partner has to follow up a distributed lead.",
        low=0,
        high=365,
    ),
    Parameter(
        "direct_contact_days",
        14,
        "Days back that direct contact with a partner's customer must be shared with it.",
        low=0,
        high=3650,
    ),
    Parameter(
        "commit_min_probability",
        80,
        "Lowest default stage probability a commit deal may sit at.",
        low=0,
        high=100,
    ),
)

#: Every rule of the pack, in the order ``rules``, ``explain`` and findings list them.
RULES = (
    CHANNEL_LEAD_NOT_DIRECT,
    DIRECT_REP_ON_CHANNEL_DEAL,
    PARTNER_OF_RECORD_REQUIRED,
    PARTNER_OF_RECORD_DRIFT,
    NEXT_STEP_REQUIRED,
    CLOSE_DATE_LOCKED,
    CLOSE_DATE_SLIPPING,
    COMMIT_INTEGRITY,
    STAGE_PROBABILITY_CONSISTENT,
    LEAD_OUTCOME_RECORDED,
    PARTNER_LEAD_FOLLOWUP,
    LEAD_SINGLE_OWNER,
    PARTNER_TOLD_OF_DIRECT_CONTACT,
)

TSOS_PACK = RulePack(
    name=PACK,
    version="1.0",
    description="The channel-sales doctrine of The Story of Selling (DOCTRINE.md).",
    parameters=PARAMETERS,
    python_rules=RULES,
)


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    """Register the built-in doctrine pack."""
    register(TSOS_PACK)


__all__ = ["PACK", "PARAMETERS", "RULES", "TSOS_PACK", "tsos_rules_register_packs"]
