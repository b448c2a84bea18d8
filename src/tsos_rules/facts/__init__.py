"""Facts ③: each record joined to what the rules read about it (partners, owners, moves, groups).

The public surface for rule authors: ``records`` holds what a rule may read, ``index`` the fact
index that builds it and its joins.
"""

from tsos_rules.facts.index import FactIndex, build_index
from tsos_rules.facts.records import (
    ACCOUNT_PARTNER_OF_RECORD,
    CHANNEL_FIELD,
    LEAD_PARTNER,
    LEAD_SOURCE,
    NEXT_STEP_OK,
    AccountFacts,
    ActivityFacts,
    CloseDateMove,
    CompanyConflict,
    FlatValues,
    FlatView,
    LeadFacts,
    OpportunityFacts,
    RecordFacts,
    change_time,
    once,
)

__all__ = [
    "ACCOUNT_PARTNER_OF_RECORD",
    "CHANNEL_FIELD",
    "LEAD_PARTNER",
    "LEAD_SOURCE",
    "NEXT_STEP_OK",
    "AccountFacts",
    "ActivityFacts",
    "CloseDateMove",
    "CompanyConflict",
    "FactIndex",
    "FlatValues",
    "FlatView",
    "LeadFacts",
    "OpportunityFacts",
    "RecordFacts",
    "build_index",
    "change_time",
    "once",
]
