"""Deprecated: the doctrine pack moved to :mod:`tsos_rules.packs.tsos` (kept for one release).

Every public name the old module had still resolves here; the pack's hook implementation does
not (registering this module as a plugin would register the pack twice).
"""

import warnings

from tsos_rules.packs.tsos import PACK, PARAMETERS, RULES, TSOS_PACK
from tsos_rules.packs.tsos.channel_lead import (
    CHANNEL_WHY,
    TIP28_NEVER,
    channel_lead_not_direct,
    direct_rep_on_channel_deal,
)
from tsos_rules.packs.tsos.close_date import close_date_locked, close_date_slipping
from tsos_rules.packs.tsos.commit import commit_integrity
from tsos_rules.packs.tsos.direct_contact import partner_told_of_direct_contact
from tsos_rules.packs.tsos.leads import (
    KEPT_OUTCOMES,
    SHOWN_CONFLICTS,
    lead_outcome_recorded,
    partner_lead_followup,
    single_owner_lead,
    single_owner_opportunity,
)
from tsos_rules.packs.tsos.next_step import NEXT_STEP_MESSAGES, next_step_required
from tsos_rules.packs.tsos.partner_of_record import (
    partner_of_record_drift,
    por_account,
    por_lead,
    por_opportunity,
)
from tsos_rules.packs.tsos.stage_probability import stage_probability_consistent

warnings.warn(
    "tsos_rules.rules.tsos_pack is deprecated; import from tsos_rules.packs.tsos",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "CHANNEL_WHY",
    "KEPT_OUTCOMES",
    "NEXT_STEP_MESSAGES",
    "PACK",
    "PARAMETERS",
    "RULES",
    "SHOWN_CONFLICTS",
    "TIP28_NEVER",
    "TSOS_PACK",
    "channel_lead_not_direct",
    "close_date_locked",
    "close_date_slipping",
    "commit_integrity",
    "direct_rep_on_channel_deal",
    "lead_outcome_recorded",
    "next_step_required",
    "partner_lead_followup",
    "partner_of_record_drift",
    "partner_told_of_direct_contact",
    "por_account",
    "por_lead",
    "por_opportunity",
    "single_owner_lead",
    "single_owner_opportunity",
    "stage_probability_consistent",
]
