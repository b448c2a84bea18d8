"""A realistic synthetic org: a CRM snapshot (docs/contract.md, "Snapshot") at any scale.

``generate_org(opportunities=5000, as_of=...)`` returns a snapshot dict with about 40 users,
30 partners, 1,500 accounts, 3,000 leads, 5,000 deals, 8,000 close-date changes and 10,000
activities; every count is scaled from ``opportunities`` (100,000 deals give about 600 users,
300 partners, 30,000 accounts, 60,000 leads, 160,000 close-date changes, 200,000 activities).

The org is mostly clean: accounts have one owner, channel accounts keep their partner of record,
next steps are real and dated, locked deals' date moves are approved. On top of that roughly one
deal in ten carries one deliberate breach of a ``tsos`` rule (DOCTRINE.md), so that every rule
of the pack fires somewhere; breaches such as a direct rep taking a channel deal also cause the
knock-on findings they would cause in a real CRM (the same company now has two owners).

Everything is drawn from ``random.Random`` instances seeded from ``seed``: the same arguments
always give the same snapshot. :func:`write_org_json` writes the same snapshot to a file and
generates close-date changes and activities while it writes them, so memory stays bounded by
the deals, not the history.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from tsos_rules.org import DEFAULT_PARTNER_SOURCES, DEFAULT_STAGE_LADDER, company_key

__all__ = ["COLLECTIONS", "UNKNOWN_PARTNER_PREFIX", "generate_org", "org_sizes", "write_org_json"]

Record = dict[str, Any]
T = TypeVar("T")

#: The snapshot's collections, in document order.
COLLECTIONS: tuple[str, ...] = (
    "users",
    "partners",
    "accounts",
    "leads",
    "opportunities",
    "close_date_changes",
    "activities",
)

#: Partner ids that deliberately name no partner (the "partner of record unknown" breach).
UNKNOWN_PARTNER_PREFIX = "px"

# -- vocabulary -----------------------------------------------------------------------------

# fmt: off
_FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra",
    "Steven", "Ashley", "Paul", "Kimberly", "Andrew", "Emily", "Joshua", "Donna", "Kevin",
    "Michelle", "Brian", "Carol", "George", "Amanda", "Timothy", "Melissa", "Ronald", "Deborah",
    "Jason", "Stephanie", "Ryan", "Rebecca", "Jacob", "Laura", "Gary", "Sharon", "Nicholas",
    "Cynthia", "Eric", "Kathleen", "Jonathan", "Amy", "Priya", "Raj", "Wei", "Mei", "Hiroshi",
    "Yuki", "Carlos", "Sofia", "Mateo", "Lucia", "Ahmed", "Fatima", "Olumide", "Amara", "Lars",
    "Ingrid", "Pierre", "Camille", "Giulia", "Marco", "Anika", "Jonas", "Elena", "Dmitri", "Aisha",
    "Omar", "Chloe", "Liam", "Noah", "Olivia", "Emma", "Ava", "Ethan", "Isabella", "Mia", "Lucas",
    "Harper", "Aiden", "Zoe", "Nora", "Rahul", "Ananya", "Tomasz", "Katarzyna", "Sven", "Freya",
    "Diego", "Valentina", "Kwame", "Nadia", "Sean", "Siobhan", "Hannah", "Felix",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Shah", "Chen", "Wang", "Kim", "Park",
    "Tanaka", "Sato", "Müller", "Schmidt", "Fischer", "Weber", "Rossi", "Russo", "Dubois",
    "Moreau", "Jansen", "de Vries", "Nielsen", "Johansson", "Andersen", "Kowalski", "Novak",
    "Horvat", "O'Brien", "Murphy", "Kelly", "Walsh", "Okafor", "Mensah", "Haddad", "Khan", "Singh",
    "Gupta", "Iyer", "Reddy", "Silva", "Santos", "Costa", "Oliveira", "Becker", "Hoffmann",
    "Lindqvist", "Berg", "Popescu", "Ivanova", "Petrov", "Cohen", "Levi", "Morales", "Ortiz",
    "Castillo", "Reyes", "Foster", "Bryant", "Hayes", "Ford", "Graham", "Sullivan", "Wallace",
    "Woods", "Cole", "West", "Jordan", "Owens", "Reynolds", "Fisher", "Ellis",
)
_COMPANY_HEADS = (
    "Northwind", "Contoso", "Fabrikam", "Blue Harbor", "Granite", "Summit", "Redwood",
    "Silver Lake", "Ironbridge", "Pinecrest", "Lakeside", "Harbor Point", "Crescent", "Evergreen",
    "Maple Ridge", "Oakridge", "Riverside", "Sterling", "Atlas", "Beacon", "Cobalt", "Falcon",
    "Horizon", "Keystone", "Meridian", "Pioneer", "Quantum", "Sierra", "Titan", "Vanguard",
    "Alpine", "Bluestone", "Cedar Creek", "Clearwater", "Coastal", "Copperline", "Crown", "Delta",
    "Eastgate", "Emerald", "Everest", "Frontier", "Golden Gate", "Great Plains", "Greenfield",
    "Highland", "Hudson", "Keystone Valley", "Liberty", "Lone Star", "Magnolia", "Midwest",
    "Mission", "Monarch", "Northstar", "Oceanic", "Orchard", "Pacific", "Paramount", "Peak",
    "Prairie", "Premier", "Prospect", "Red Rock", "Regal", "Ridgeline", "Rockwell", "Sapphire",
    "Seaside", "Sequoia", "Shoreline", "Skyline", "Southern Cross", "Stonebridge", "Sunrise",
    "Sunset", "Tidewater", "Trident", "Trinity", "Twin Rivers", "Union", "Valley", "Westbrook",
    "Westfield", "Whitestone", "Wildwood", "Windmill", "Yellowstone", "Zenith", "Apex", "Arrow",
    "Aurora", "Bayview", "Birchwood", "Blackhawk", "Bridgewater", "Brightwater", "Canyon",
    "Capstone", "Cardinal", "Centennial", "Chesapeake", "Cornerstone", "Cypress", "Driftwood",
    "Eagle Point", "Elmhurst", "Fairview", "Foxglove", "Glacier", "Harborview", "Heritage",
    "Hillcrest", "Ironwood", "Juniper", "Kestrel", "Lakeshore", "Lighthouse", "Mariner",
    "Meadowbrook", "Millbrook", "Nordic", "Oakmont", "Osprey", "Palisade", "Pinnacle", "Polaris",
    "Quarry", "Rainier", "Ravenwood", "Rosewood", "Saltmarsh", "Silverline", "Springfield",
    "Stellar", "Stonegate", "Thornbury", "Timberline", "Tristar", "Vertex", "Waterford", "Willow",
    "Becker", "Hollister", "Whitman", "Alvarez", "Nakamura", "Lindqvist", "Okafor", "Castellano",
    "Bergmann", "Delacroix", "Fairbanks", "Hargrove", "Kingsley", "Marlowe", "Pemberton",
    "Rutherford", "Thackeray", "Vasquez", "Wexford", "Ashford",
)
_COMPANY_TRADES = (
    "Logistics", "Foods", "Health", "Energy", "Manufacturing", "Analytics", "Pharma", "Retail",
    "Insurance", "Capital", "Aerospace", "Motors", "Textiles", "Robotics", "Biotech", "Media",
    "Telecom", "Construction", "Engineering", "Freight", "Dairy", "Hotels", "Airlines", "Bank",
    "Credit Union", "Steel", "Chemicals", "Software", "Semiconductors", "Medical", "Clinics",
    "Labs", "Outfitters", "Brewing", "Farms", "Packaging", "Paper", "Plastics", "Furniture",
    "Apparel", "Shipping", "Rail", "Water", "Utilities", "Mining", "Resources", "Properties",
    "Realty", "Hospitality", "Pharmacy", "Diagnostics", "Devices", "Instruments", "Electric",
    "Power", "Solar", "Wind", "Marine", "Transport", "Trucking", "Distribution", "Wholesale",
    "Grocers", "Bakeries", "Beverages", "Cosmetics", "Pet Supply", "Toys", "Sporting Goods",
    "Home Goods", "Hardware", "Lumber", "Cement", "Glass", "Metals", "Alloys", "Components",
    "Electronics", "Optics", "Networks", "Data Systems", "Cloud", "Security", "Defense",
    "Education", "University", "Hospital", "Health System", "Senior Living", "Dental",
    "Veterinary", "Agriculture", "Seeds", "Fisheries", "Vineyards", "Publishing", "Studios",
    "Broadcasting", "Gaming", "Travel", "Cruises", "Rentals", "Leasing", "Finance", "Payments",
    "Asset Management", "Advisors", "Legal", "Staffing", "Consulting Group",
)
_COMPANY_TAILS = (
    "", "", "", "", "", "", "", "", "Group", "Holdings", "International", "Industries", "Partners",
    "Worldwide", "of America", "Europe", "North America", "Global",
)
_LEGAL_SUFFIXES = (
    "", "", "", "", "", " Inc.", " Inc.", " LLC", " Ltd", " Corp.", " GmbH", " AG", " plc",
    " S.A.", " B.V.",
)
_PARTNER_TRADES = (
    "Technologies", "Solutions", "IT Services", "Systems Integration", "Networks", "Consulting",
    "Digital", "Data", "Cloud Partners", "Computing", "Tech Group", "Integrators", "Infotech",
    "Business Systems", "IT Partners", "Managed Services", "Tech Solutions", "Systems",
)
_INDUSTRIES = (
    "Manufacturing", "Healthcare", "Financial Services", "Retail", "Technology", "Energy",
    "Transportation", "Public Sector", "Education", "Media", "Hospitality", "Life Sciences",
)
_PRODUCTS = (
    "Fleet renewal", "Platform expansion", "Analytics add-on", "Enterprise license",
    "Support renewal", "Cloud migration", "Security upgrade", "Pilot", "Data center refresh",
    "Seat expansion", "Multi-year agreement", "Disaster recovery", "Edge rollout",
    "Observability suite", "Network modernisation", "Backup and archive", "Premium support",
    "Identity management", "Storage tier upgrade", "Managed services", "Proof of concept",
    "Global rollout", "Regional expansion", "Compliance package", "Training and enablement",
)
_NEXT_STEPS = (
    "Legal review of draft MSA", "Demo for IT team", "Send pricing proposal",
    "Security questionnaire review", "Exec sponsor call with CFO", "Technical validation workshop",
    "Confirm budget with procurement", "Schedule POC kickoff",
    "Reference call with existing customer", "Finalise SOW", "Present ROI analysis",
    "Architecture review with CTO", "Agree mutual close plan", "Send redlined contract",
    "Pricing approval from finance", "On-site discovery workshop", "Confirm decision criteria",
    "Stakeholder map review with champion", "Trial success review", "Order form signature",
    "Board approval meeting", "Partner quote to customer", "Deal registration approval",
    "Procurement vendor onboarding", "Integration scoping call",
)
_PLACEHOLDERS = (
    "TBD", "tbd", "n/a", "N/A", "none", "-", "?", "follow up", "Follow-up", "follow-up",
    "followup", "TBD.",
)
_TASK_SUBJECTS = (
    "Send proposal", "Follow up on pricing", "Prepare quote", "Call CFO",
    "Send security questionnaire", "Update mutual close plan", "Chase signed order form",
    "Send case study", "Confirm attendees for demo", "Share ROI model", "Log call notes",
)
_EVENT_SUBJECTS = (
    "Discovery call", "Product demo", "Technical deep dive", "Executive briefing",
    "On-site workshop", "Quarterly business review", "Contract negotiation meeting",
    "Call with CIO", "POC kickoff", "Pricing review", "Partner joint account plan",
)
_CONSENT_NOTES = {
    "credit_limit": ("Partner cannot carry the order on credit; "
        "partner stays on the deal for services."),
    "product_management": "Customer wants product management directly; partner agreed on a call.",
    "other": "Global agreement signed at HQ; partner informed and keeps the services share.",
}
_OVERRIDE_REASONS = (
    "Customer procurement mandates this reseller",
    "Registered by second partner before POR change",
    "Regional subsidiary buys through its local partner",
)
_UNKNOWN_STAGES = (
    "negotiation", "Prospecting", "Value Proposition", "Id. Decision Makers",
)
_DIRECT_SOURCES = (
    "web", "webinar", "trade_show", "outbound", "inbound_call", "customer_referral",
    "content_download",
)
# fmt: on
_PARTNER_SOURCES: tuple[str, ...] = tuple(DEFAULT_PARTNER_SOURCES)

# -- the deal model ---------------------------------------------------------------------------

_STAGES = tuple(stage for stage, _ in DEFAULT_STAGE_LADDER)
_PROBABILITY = dict(DEFAULT_STAGE_LADDER)
_OPEN_STAGES = _STAGES[:10]
_OPEN_STAGE_WEIGHTS = (12, 12, 14, 12, 10, 9, 10, 8, 7, 6)
_LOCK_INDEX = _STAGES.index("date_locked")
_CLOSING_INDEX = _STAGES.index("closing")
_WON, _LOST = _STAGES.index("closed_won"), _STAGES.index("closed_lost")
_UNKNOWN_INDEX = 3  # where a deal on an off-ladder stage sits, for dates and history

# Deliberate breaches, one at most per deal, with their weight among breached deals.
_OPEN_BREACHES: dict[str, float] = {
    "ns_placeholder": 2.2,  # tsos.next-step-required: placeholder
    "ns_missing": 1.4,  # tsos.next-step-required: missing
    "ns_past_due": 2.8,  # tsos.next-step-required: past_due
    "cd_missing": 0.3,  # tsos.close-date-locked: missing
    "cd_in_past": 1.8,  # tsos.close-date-locked: in_past
    "cd_moved_unapproved": 1.6,  # tsos.close-date-locked: moved_unapproved
    "slipping": 1.2,  # tsos.close-date-slipping
    "ch_no_partner": 0.5,  # tsos.channel-lead-not-direct: no_partner
    "ch_marked_direct": 0.5,  # tsos.channel-lead-not-direct: marked_direct
    "ch_direct_owner": 0.5,  # tsos.channel-lead-not-direct: direct_owner
    "ch_direct_consent": 0.4,  # tsos.channel-lead-not-direct: direct_owner_with_consent (info)
    "team_direct_rep": 0.8,  # tsos.direct-rep-on-channel-deal
    "por_unknown": 0.2,  # tsos.partner-of-record-required: unknown_partner
    "por_no_por": 0.25,  # tsos.partner-of-record-required: missing (deal and account)
    "por_account_missing": 0.25,  # tsos.partner-of-record-required: missing (account)
    "drift": 0.8,  # tsos.partner-of-record-drift
    "commit_early": 0.5,  # tsos.commit-integrity: stage_too_early
    "commit_beyond_quarter": 0.4,  # tsos.commit-integrity: beyond_quarter
    "commit_no_next_step": 0.3,  # tsos.commit-integrity: no_next_step
    "commit_past_close": 0.2,  # tsos.commit-integrity: close_date_invalid
    "prob_mismatch": 1.5,  # tsos.stage-probability-consistent: probability_mismatch
    "unknown_stage": 0.3,  # tsos.stage-probability-consistent: unknown_stage
}
_CLOSED_BREACHES: dict[str, float] = {
    "prob_mismatch": 1.5,
    "unknown_stage": 0.3,
    "por_unknown": 0.2,
}
_OPEN_BREACH_RATE = 0.16
_CLOSED_BREACH_RATE = 0.04
#: Every kind appears at least once, spread through the deals (when there are enough deals).
_FORCED_OPP_BREACHES: tuple[str, ...] = (*_OPEN_BREACHES, "por_terminated")
_CHANNEL_KINDS = frozenset(
    {
        "ch_no_partner",
        "ch_marked_direct",
        "ch_direct_owner",
        "ch_direct_consent",
        "team_direct_rep",
        "por_unknown",
        "drift",
    }
)
_LEAD_KINDS = frozenset({"por_no_por", "por_account_missing"})
_COMMIT_KINDS = frozenset(
    {"commit_early", "commit_beyond_quarter", "commit_no_next_step", "commit_past_close"}
)
_NEXT_STEP_KINDS = frozenset({"ns_placeholder", "ns_missing", "ns_past_due", "commit_no_next_step"})

_LEAD_BREACHES: dict[str, float] = {
    "lead_por_missing": 0.6,  # tsos.partner-of-record-required on a distributed lead
    "lead_por_terminated": 0.6,
    "lead_not_accepted": 2.0,  # tsos.partner-lead-followup
    "lead_no_followup": 2.0,
    "lead_no_outcome": 3.0,  # tsos.lead-outcome-recorded
    "lead_owner_conflict": 1.5,  # tsos.lead-single-owner
}
_LEAD_BREACH_RATE = 0.10

# Close-date changes per deal (0..5) and activities per deal (0..4).
_CHANGE_COUNT_WEIGHTS = (28, 25, 22, 12, 8, 5)
_ACTIVITY_COUNT_WEIGHTS = (15, 20, 30, 20, 15)
_UNRECORDED_STAGE_RATE = 0.12
_UNNOTIFIED_RATE = 0.08

_DAY_LOW = 1200  # offsets from as_of that the day cache covers: [-_DAY_LOW, _DAY_HIGH)
_DAY_HIGH = 800


class _Picker(Generic[T]):
    """A weighted choice over fixed items, by bisecting cumulative weights (one random draw)."""

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items:
            raise ValueError("nothing to pick from")
        self.items = list(items)
        self.cumulative: list[float] = []
        total = 0.0
        for weight in weights:
            total += weight
            self.cumulative.append(total)
        self.total = total

    def pick(self, draw: Callable[[], float]) -> T:
        index = bisect.bisect_right(self.cumulative, draw() * self.total)
        return self.items[min(index, len(self.items) - 1)]


def org_sizes(opportunities: int) -> dict[str, int]:
    """The record counts generated for ``opportunities`` deals (history counts are drawn)."""
    if opportunities < 0:
        raise ValueError(f"opportunities: expected 0 or more, got {opportunities}")
    ratio = opportunities / 5000
    return {
        "users": max(12, round(40 * ratio**0.904)),
        "partners": max(6, round(30 * ratio**0.7686)),
        "accounts": max(6, round(opportunities * 0.3)),
        "leads": round(opportunities * 0.6),
        "opportunities": opportunities,
    }


class _Plan:
    """What the history generators need to know about one deal (kept small: one per deal)."""

    __slots__ = (
        "account_id",
        "close",
        "created",
        "end",
        "forecast",
        "future_activity",
        "helper_id",
        "id",
        "is_open",
        "kind",
        "max_stage",
        "owner_id",
        "partner_account",
        "stage",
        "team",
    )

    def __init__(
        self,
        *,
        id: str,
        account_id: str,
        owner_id: str,
        is_open: bool,
        created: int,
        end: int,
        close: int | None,
        stage: str,
        max_stage: int,
        forecast: str,
        kind: str | None,
        future_activity: bool,
        team: tuple[str, ...],
        partner_account: bool,
        helper_id: str | None,
    ) -> None:
        self.id = id
        self.account_id = account_id
        self.owner_id = owner_id
        self.is_open = is_open
        self.created = created
        self.end = end
        self.close = close
        self.stage = stage
        self.max_stage = max_stage
        self.forecast = forecast
        self.kind = kind
        self.future_activity = future_activity
        self.team = team
        self.partner_account = partner_account
        self.helper_id = helper_id


class _OrgBuilder:
    """Builds one org; the core records at construction, history on demand (deterministically)."""

    def __init__(self, opportunities: int, seed: int, as_of: dt.date) -> None:
        if not isinstance(as_of, dt.date):
            raise TypeError(f"as_of: expected a datetime.date, got {as_of!r}")
        self.sizes = org_sizes(opportunities)
        self.seed = seed
        self.as_of = as_of
        self.rng = random.Random(seed)
        self.draw = self.rng.random
        first = as_of - dt.timedelta(days=_DAY_LOW)
        self.days = [
            (first + dt.timedelta(days=i)).isoformat() for i in range(_DAY_LOW + _DAY_HIGH)
        ]
        quarter_end = _quarter_end(as_of)
        self.quarter_end = (quarter_end - as_of).days
        self.users: list[Record] = []
        self.partners: list[Record] = []
        self.accounts: list[Record] = []
        self.leads: list[Record] = []
        self.opportunities: list[Record] = []
        self.plans: list[_Plan] = []
        self.role: dict[str, str] = {}
        self._names: set[str] = set()
        self._build_users_and_partners()
        self._build_accounts()
        self._build_opportunities()
        self._build_leads()

    # -- small helpers -------------------------------------------------------------------

    def ri(self, low: int, high: int) -> int:
        """A whole number in ``[low, high]``."""
        return low + int(self.draw() * (high - low + 1))

    def choice(self, items: Sequence[T]) -> T:
        return items[int(self.draw() * len(items))]

    def day(self, offset: int) -> str:
        """The date ``offset`` days from as_of, as ``YYYY-MM-DD``."""
        index = offset + _DAY_LOW
        if 0 <= index < _DAY_LOW + _DAY_HIGH:
            return self.days[index]
        return (self.as_of + dt.timedelta(days=offset)).isoformat()

    def stamp(self, offset: int, draw: Callable[[], float] | None = None) -> str:
        """A working-hours timestamp on the day ``offset`` days from as_of."""
        draw = draw or self.draw
        hour = 8 + int(draw() * 10)
        minute = int(draw() * 60)
        return f"{self.day(offset)}T{hour:02d}:{minute:02d}:00+00:00"

    def person(self) -> str:
        return f"{self.choice(_FIRST_NAMES)} {self.choice(_LAST_NAMES)}"

    def unique_person(self) -> str:
        for _ in range(1000):
            name = self.person()
            if name not in self._names:
                self._names.add(name)
                return name
        name = f"{self.person()} {len(self._names)}"
        self._names.add(name)
        return name

    def company_name(self, taken: set[str]) -> str:
        """A company name whose matching key (case, punctuation, legal suffix) is new."""
        for attempt in range(10_000):
            head = self.choice(_COMPANY_HEADS)
            trade = self.choice(_COMPANY_TRADES)
            tail = self.choice(_COMPANY_TAILS) if attempt < 50 else f"Group {attempt}"
            base = f"{head} {trade} {tail}".rstrip()
            key = company_key(base)
            if key not in taken:
                taken.add(key)
                return base
        raise RuntimeError("company names exhausted")  # pragma: no cover

    # -- users and partners ---------------------------------------------------------------

    def _build_users_and_partners(self) -> None:
        sizes = self.sizes
        n_users, n_partners = sizes["users"], sizes["partners"]
        n_other = max(2, round(0.05 * n_users))
        n_channel = max(2, round(0.2 * n_users))
        n_partner_users = max(2, round(0.4 * n_users))
        n_direct = max(2, n_users - n_other - n_channel - n_partner_users)
        roles = (
            ["direct"] * n_direct
            + ["channel"] * n_channel
            + ["partner"] * n_partner_users
            + ["other"] * n_other
        )
        self.rng.shuffle(roles)
        width = max(4, len(str(len(roles))))
        for index, role in enumerate(roles, 1):
            user_id = f"u{index:0{width}d}"
            self.users.append({"id": user_id, "name": self.unique_person(), "role": role})
            self.role[user_id] = role
        self.direct_reps = [u["id"] for u in self.users if u["role"] == "direct"]
        self.channel_managers = [u["id"] for u in self.users if u["role"] == "channel"]
        self.others = [u["id"] for u in self.users if u["role"] == "other"]
        partner_users = [u for u in self.users if u["role"] == "partner"]

        width = max(4, len(str(n_partners)))
        taken: set[str] = set()
        n_terminated = max(2, round(0.05 * n_partners))
        tier_picker = _Picker(("authorized", "premier", "premier_elite"), (50, 35, 15))
        fiscal_picker = _Picker((1, 4, 7, 10, 2), (60, 15, 15, 5, 5))
        limits = {
            "authorized": (5, 25),
            "premier": (25, 100),
            "premier_elite": (100, 500),
        }
        for index in range(1, n_partners + 1):
            tier = tier_picker.pick(self.draw)
            terminated = index > n_partners - n_terminated
            if terminated:
                tier = "authorized"
            low, high = limits[tier]
            name = f"{self.choice(_COMPANY_HEADS)} {self.choice(_PARTNER_TRADES)}"
            while company_key(name) in taken:
                name = f"{self.choice(_COMPANY_HEADS)} {self.choice(_PARTNER_TRADES)}"
            taken.add(company_key(name))
            self.partners.append(
                {
                    "id": f"p{index:0{width}d}",
                    "name": name,
                    "status": "terminated" if terminated else "active",
                    "tier": tier,
                    "credit_limit": self.ri(low, high) * 10_000,
                    "fiscal_year_start_month": fiscal_picker.pick(self.draw),
                    "channel_manager_id": self.channel_managers[
                        (index - 1) % len(self.channel_managers)
                    ],
                }
            )
        self.rng.shuffle(self.partners)  # terminated partners anywhere in the list
        active = [p for p in self.partners if p["status"] == "active"]
        self.terminated = [p["id"] for p in self.partners if p["status"] == "terminated"]
        tier_weight = {"authorized": 1.0, "premier": 3.0, "premier_elite": 8.0}
        self.active_partner = _Picker(
            [p["id"] for p in active], [tier_weight[p["tier"]] for p in active]
        )
        self.channel_manager_of: dict[str, str] = {
            p["id"]: p["channel_manager_id"] for p in self.partners
        }
        # Partner users work for the bigger active partners first.
        ranked = sorted(active, key=lambda p: -tier_weight[p["tier"]])
        self.partner_users: dict[str, list[str]] = {}
        for index, user in enumerate(partner_users):
            partner_id = ranked[index % len(ranked)]["id"]
            user["partner_id"] = partner_id
            self.partner_users.setdefault(partner_id, []).append(user["id"])
        self.unknown_partner_ids = [f"{UNKNOWN_PARTNER_PREFIX}{i:03d}" for i in range(101, 106)]

    # -- accounts --------------------------------------------------------------------------

    def _partner_side_owner(self, partner_id: str) -> str:
        users = self.partner_users.get(partner_id)
        if users and self.draw() < 0.5:
            return self.choice(users)
        return self.channel_manager_of.get(partner_id) or self.choice(self.channel_managers)

    def _build_accounts(self) -> None:
        n_accounts = self.sizes["accounts"]
        width = max(6, len(str(n_accounts)))
        self.company_keys: set[str] = set()
        weights: list[float] = []
        self.account_by_id: dict[str, Record] = {}
        self.base_name: dict[str, str] = {}
        channel_ids: list[str] = []
        channel_weights: list[float] = []
        direct_ids: list[str] = []
        direct_weights: list[float] = []
        self.terminated_accounts: list[str] = []
        for index in range(1, n_accounts + 1):
            account_id = f"a{index:0{width}d}"
            base = self.company_name(self.company_keys)
            por: str | None = None
            if index == 1:
                por = self.choice(self.terminated)  # one sure terminated partner of record
            elif self.draw() < 0.45:
                roll = self.draw()
                if roll < 0.012:
                    por = self.choice(self.terminated)
                elif roll < 0.014:
                    por = self.choice(self.unknown_partner_ids)
                else:
                    por = self.active_partner.pick(self.draw)
            owner = self._partner_side_owner(por) if por else self.choice(self.direct_reps)
            account = {
                "id": account_id,
                "name": base + self.choice(_LEGAL_SUFFIXES),
                "partner_of_record_id": por,
                "owner_id": owner,
                "industry": self.choice(_INDUSTRIES),
            }
            self.accounts.append(account)
            self.account_by_id[account_id] = account
            self.base_name[account_id] = base
            weight = min(40.0, self.rng.paretovariate(1.3))
            weights.append(weight)
            if por is None:
                direct_ids.append(account_id)
                direct_weights.append(weight)
            elif por in self.terminated:
                self.terminated_accounts.append(account_id)
            elif not por.startswith(UNKNOWN_PARTNER_PREFIX):
                channel_ids.append(account_id)
                channel_weights.append(weight)
        self.any_account = _Picker([a["id"] for a in self.accounts], weights)
        self.channel_account = (
            _Picker(channel_ids, channel_weights) if channel_ids else self.any_account
        )
        self.direct_account = (
            _Picker(direct_ids, direct_weights) if direct_ids else self.any_account
        )

    # -- opportunities ---------------------------------------------------------------------

    def _build_opportunities(self) -> None:
        n = self.sizes["opportunities"]
        width = max(6, len(str(n)))
        draw, ri, choice = self.draw, self.ri, self.choice
        open_stage = _Picker(range(10), _OPEN_STAGE_WEIGHTS)
        open_breach = _Picker(list(_OPEN_BREACHES), list(_OPEN_BREACHES.values()))
        closed_breach = _Picker(list(_CLOSED_BREACHES), list(_CLOSED_BREACHES.values()))
        forced = _spread(_FORCED_OPP_BREACHES, n)
        quarter_end = self.quarter_end
        self.lead_bound: list[int] = []  # deals whose breach is set up by their source lead
        for i in range(n):
            kind: str | None = forced.get(i)
            is_open = kind is not None or draw() < 0.6
            if kind is None:
                if is_open:
                    kind = open_breach.pick(draw) if draw() < _OPEN_BREACH_RATE else None
                else:
                    kind = closed_breach.pick(draw) if draw() < _CLOSED_BREACH_RATE else None
            if kind in _CHANNEL_KINDS:
                account_id = self.channel_account.pick(draw)
            elif kind in _LEAD_KINDS:
                account_id = self.direct_account.pick(draw)
            elif kind == "por_terminated" and self.terminated_accounts:
                account_id = choice(self.terminated_accounts)
            else:
                account_id = self.any_account.pick(draw)
            account = self.account_by_id[account_id]
            por: str | None = account["partner_of_record_id"]
            owner: str = account["owner_id"]

            # Stage, probability, dates.
            if is_open:
                if kind == "cd_moved_unapproved":
                    stage_index = ri(_LOCK_INDEX, 9)
                elif kind == "commit_early":
                    stage_index = ri(2, 7)
                elif kind in ("commit_beyond_quarter", "commit_no_next_step", "commit_past_close"):
                    stage_index = ri(_CLOSING_INDEX, 9)
                else:
                    stage_index = open_stage.pick(draw)
            else:
                stage_index = _WON if draw() < 0.45 else _LOST
            stage = _STAGES[stage_index]
            probability = _PROBABILITY[stage]
            if kind == "unknown_stage":
                stage = choice(_UNKNOWN_STAGES)
                probability = choice((10, 25, 50, 75))
                stage_index = _UNKNOWN_INDEX if is_open else stage_index
            elif kind == "prob_mismatch":
                delta = ri(15, 35)
                probability = (
                    probability + delta if probability + delta <= 100 else probability - delta
                )
            elif is_open and draw() < 0.1:
                probability += 5 if draw() < 0.5 else -5

            if is_open:
                created = -ri(1, 400)
                known = stage in _PROBABILITY
                if kind == "cd_missing":
                    close: int | None = None
                elif kind in ("cd_in_past", "commit_past_close"):
                    close = -ri(1, 75)
                elif kind == "commit_beyond_quarter":
                    close = quarter_end + ri(10, 120)
                elif known and stage_index >= _CLOSING_INDEX:
                    close = ri(1, 60)
                elif known and stage_index >= _LOCK_INDEX:
                    close = ri(7, 120)
                else:
                    close = ri(20, 270)
                end = 0
                stage_changed = -ri(0, min(-created, 120))
            else:
                close = -ri(1, 520)
                created = close - ri(14, 200)
                end = close
                stage_changed = close

            # Forecast category.
            if not is_open:
                forecast = "closed" if stage_index == _WON else "omitted"
            elif kind in _COMMIT_KINDS:
                forecast = "commit"
            elif stage not in _PROBABILITY:
                forecast = "pipeline"
            elif stage_index >= _CLOSING_INDEX:
                in_quarter = close is not None and 0 <= close <= quarter_end
                forecast = "commit" if in_quarter and draw() < 0.85 else "best_case"
            elif stage_index >= _LOCK_INDEX:
                roll = draw()
                forecast = "best_case" if roll < 0.5 else "pipeline" if roll < 0.95 else "omitted"
            else:
                forecast = "pipeline" if draw() < 0.9 else "omitted"

            # Next step.
            next_step: str | None
            next_step_date: str | None
            if not is_open:
                if draw() < 0.4:
                    next_step, next_step_date = None, None
                else:
                    next_step, next_step_date = choice(_NEXT_STEPS), self.day(end - ri(1, 20))
            elif kind == "ns_placeholder":
                next_step = choice(_PLACEHOLDERS)
                next_step_date = self.day(ri(1, 14)) if draw() < 0.5 else None
            elif kind == "ns_missing":
                roll = draw()
                if roll < 0.4:
                    next_step, next_step_date = None, None
                elif roll < 0.5:
                    next_step, next_step_date = "", self.day(ri(1, 14))
                else:
                    next_step, next_step_date = choice(_NEXT_STEPS), None
            elif kind in ("ns_past_due", "commit_no_next_step"):
                next_step, next_step_date = choice(_NEXT_STEPS), self.day(-ri(1, 45))
            else:
                next_step, next_step_date = choice(_NEXT_STEPS), self.day(ri(0, 21))
            if not is_open or i in forced:
                future_activity = False
            elif kind in _NEXT_STEP_KINDS:
                future_activity = draw() < 0.15
            else:
                future_activity = draw() < 0.35

            # Channel, partner, owner, team.
            channel: str | None
            partner_id: str | None = None
            consent: Record | None = None
            override: str | None = None
            if por is not None:
                partner_id = por
                channel = "partner" if draw() < 0.7 else None
                if kind == "ch_no_partner":
                    partner_id = None
                elif kind == "ch_marked_direct":
                    channel = "direct"
                elif kind in ("ch_direct_owner", "ch_direct_consent"):
                    owner = choice(self.direct_reps)
                elif kind == "por_unknown":
                    partner_id = choice(self.unknown_partner_ids)
                elif kind == "drift" or (kind is None and draw() < 0.005):
                    # Another active partner; with a recorded reason, the drift is legitimate.
                    partner_id = choice(self.active_partner.items)
                    if partner_id == por:
                        partner_id = self.active_partner.items[
                            (self.active_partner.items.index(por) + 1)
                            % len(self.active_partner.items)
                        ]
                    if kind is None:
                        override = choice(_OVERRIDE_REASONS)
                if kind == "ch_direct_consent" or (kind is None and draw() < 0.01):
                    reason = choice(tuple(_CONSENT_NOTES))
                    consent = {
                        "by": self.person(),
                        "at": self.stamp(-ri(1, 60)),
                        "reason": reason,
                        "note": _CONSENT_NOTES[reason],
                    }
            else:
                channel = "direct" if draw() < 0.6 else None
                if kind == "por_account_missing":
                    partner_id = self.active_partner.pick(draw)
                    channel = "partner"
                elif kind == "por_no_por":
                    channel = None
            if kind in _LEAD_KINDS:
                self.lead_bound.append(i)
            team: tuple[str, ...] = ()
            if draw() < 0.18 or kind == "team_direct_rep":
                members = [choice(self.others)]
                if draw() < 0.4:
                    if por is not None:
                        members.append(
                            self.channel_manager_of.get(por) or choice(self.channel_managers)
                        )
                    else:
                        members.append(choice(self.direct_reps))
                if kind == "team_direct_rep":
                    members.append(choice(self.direct_reps))
                team = tuple(dict.fromkeys(m for m in members if m != owner))

            opportunity_id = f"o{i + 1:0{width}d}"
            record: Record = {
                "id": opportunity_id,
                "name": f"{self.base_name[account_id]} - {choice(_PRODUCTS)}",
                "account_id": account_id,
                "owner_id": owner,
                "partner_id": partner_id,
                "lead_id": None,
                "channel": channel,
                "stage": stage,
                "probability": probability,
                "amount": max(1000, int(round(self.rng.lognormvariate(10.3, 0.9), -2))),
                "close_date": self.day(close) if close is not None else None,
                "forecast_category": forecast,
                "is_closed": not is_open,
                "is_won": stage_index == _WON and not is_open,
                "next_step": next_step,
                "next_step_date": next_step_date,
                "partner_consent": consent,
                "team_user_ids": list(team),
                "stage_changed_at": self.stamp(stage_changed),
                "created_at": self.stamp(created),
            }
            if override is not None:
                record["partner_override_reason"] = override
            self.opportunities.append(record)
            if is_open:
                max_stage = stage_index if stage in _PROBABILITY else _UNKNOWN_INDEX
            else:
                max_stage = 9 if stage_index == _WON else ri(0, 9)
            helper = por if por is not None and not por.startswith(UNKNOWN_PARTNER_PREFIX) else None
            self.plans.append(
                _Plan(
                    id=opportunity_id,
                    account_id=account_id,
                    owner_id=owner,
                    is_open=is_open,
                    created=created,
                    end=end,
                    close=close,
                    stage=stage,
                    max_stage=max_stage,
                    forecast=forecast,
                    kind=kind,
                    future_activity=future_activity,
                    team=team,
                    partner_account=por is not None,
                    helper_id=self.channel_manager_of.get(helper) if helper else None,
                )
            )

    # -- leads -----------------------------------------------------------------------------

    def _distribution(self, lead: Record, distributed: int, *, kind: str | None) -> None:
        """Distribution, acceptance and follow-up timestamps for a lead given to a partner."""
        draw, ri = self.draw, self.ri
        lead["distributed_at"] = self.stamp(distributed)
        age = -distributed
        if kind == "lead_not_accepted":
            lead["accepted_at"] = None if draw() < 0.6 else self.stamp(distributed + ri(6, 12))
            lead["followed_up_at"] = None
            return
        accepted = distributed + (0 if age < 1 or draw() < 0.5 else 1)
        lead["accepted_at"] = self.stamp(accepted) if age >= 1 or draw() < 0.5 else None
        if kind == "lead_no_followup":
            lead["followed_up_at"] = None if draw() < 0.6 else self.stamp(distributed + ri(10, 20))
        elif age >= 4:
            lead["followed_up_at"] = self.stamp(distributed + ri(1, 3))
        elif age >= 1 and draw() < 0.5:
            lead["followed_up_at"] = self.stamp(distributed + ri(1, age))
        else:
            lead["followed_up_at"] = None

    def _new_lead(self, company: str) -> Record:
        return {
            "id": "",
            "company": company,
            "account_id": None,
            "owner_id": None,
            "partner_id": None,
            "source": None,
            "status": "open",
            "outcome": None,
            "distributed_at": None,
            "accepted_at": None,
            "followed_up_at": None,
            "converted_opportunity_id": None,
            "contact_name": self.person(),
        }

    def _build_leads(self) -> None:
        draw, ri, choice = self.draw, self.ri, self.choice
        n_leads = self.sizes["leads"]
        n_opps = len(self.opportunities)
        n_converted = min(n_opps, max(len(self.lead_bound), round(0.35 * n_leads)))
        bound = set(self.lead_bound)
        others = [i for i in range(n_opps) if i not in bound]
        targets = self.lead_bound + self.rng.sample(
            others, min(len(others), n_converted - len(self.lead_bound))
        )
        leads: list[tuple[Record, Record | None]] = []
        for i in targets:
            opportunity = self.opportunities[i]
            plan = self.plans[i]
            account = self.account_by_id[opportunity["account_id"]]
            lead = self._new_lead(self.base_name[account["id"]])
            lead.update(
                account_id=account["id"],
                owner_id=opportunity["owner_id"],
                status="converted",
                outcome="current",
                converted_opportunity_id=opportunity["id"],
            )
            por = account["partner_of_record_id"]
            if plan.kind == "por_no_por":
                lead["source"] = "partner_referral"
            elif plan.kind == "por_account_missing":
                lead["source"] = "deal_registration"
                lead["partner_id"] = opportunity["partner_id"]
            elif por is not None:
                lead["partner_id"] = por
                if draw() < 0.55:
                    lead["source"] = choice(_PARTNER_SOURCES)
                else:
                    lead["source"] = choice(_DIRECT_SOURCES)
                    self._distribution(lead, plan.created - ri(3, 40), kind=None)
            else:
                lead["source"] = choice(_DIRECT_SOURCES)
            leads.append((lead, opportunity))

        lead_breach = _Picker(list(_LEAD_BREACHES), list(_LEAD_BREACHES.values()))
        n_other = max(0, n_leads - len(leads))
        forced = _spread(tuple(_LEAD_BREACHES), n_other)
        status_picker = _Picker(("open", "working", "qualified", "closed"), (25, 20, 20, 35))
        for j in range(n_other):
            kind: str | None = forced.get(j)
            if kind is None and draw() < _LEAD_BREACH_RATE:
                kind = lead_breach.pick(draw)
            status = status_picker.pick(draw)
            if kind in ("lead_not_accepted", "lead_no_followup", "lead_owner_conflict"):
                status = "open" if draw() < 0.6 else "working"
            elif kind == "lead_no_outcome":
                status = "qualified" if draw() < 0.5 else "closed"
            is_open = status in ("open", "working")

            partner_id: str | None
            if kind == "lead_owner_conflict" or (kind is None and draw() < 0.4 and self.accounts):
                existing: Record | None = self.account_by_id[self.any_account.pick(draw)]
            else:
                existing = None
            if existing is not None:
                lead = self._new_lead(self.base_name[existing["id"]])
                lead["account_id"] = existing["id"]
                lead["owner_id"] = existing["owner_id"]
                partner_id = existing["partner_of_record_id"]
            else:
                lead = self._new_lead(self.company_name(self.company_keys))
                partner_id = self.active_partner.pick(draw) if draw() < 0.4 else None
                lead["owner_id"] = (
                    self._partner_side_owner(partner_id) if partner_id else choice(self.direct_reps)
                )
            if kind in ("lead_not_accepted", "lead_no_followup", "lead_por_missing"):
                partner_id = partner_id or self.active_partner.pick(draw)
            elif kind == "lead_por_terminated":
                partner_id = choice(self.terminated)
            elif kind == "lead_owner_conflict":
                lead["owner_id"] = choice(
                    [u for u in self.direct_reps if u != lead["owner_id"]] or self.direct_reps
                )
                partner_id = None
            lead["status"] = status
            if status == "qualified":
                lead["outcome"] = "current" if draw() < 0.6 else "future"
            elif status == "closed":
                lead["outcome"] = "no_opportunity" if draw() < 0.55 else "future"
            if kind == "lead_no_outcome":
                lead["outcome"] = None

            if partner_id is None:
                lead["source"] = choice(_DIRECT_SOURCES)
            else:
                lead["partner_id"] = partner_id
                distributed = (
                    kind
                    in (
                        "lead_not_accepted",
                        "lead_no_followup",
                        "lead_por_missing",
                        "lead_por_terminated",
                    )
                    or draw() < 0.6
                )
                if distributed:
                    lead["source"] = choice(_DIRECT_SOURCES)
                    if kind in ("lead_not_accepted", "lead_no_followup"):
                        when = -ri(12, 40)
                    elif is_open:
                        when = -ri(0, 40)
                    else:
                        when = -ri(20, 400)
                    self._distribution(lead, when, kind=kind)
                    if kind == "lead_por_missing":
                        lead["partner_id"] = None
                else:
                    lead["source"] = choice(_PARTNER_SOURCES)
            leads.append((lead, None))

        self.rng.shuffle(leads)
        width = max(6, len(str(len(leads))))
        bound_ids = {self.opportunities[i]["id"] for i in self.lead_bound}
        for index, (lead, converted) in enumerate(leads, 1):
            lead["id"] = f"l{index:0{width}d}"
            # Most deals name their lead; the rest are found through converted_opportunity_id.
            if converted is not None and (draw() < 0.85 or converted["id"] in bound_ids):
                converted["lead_id"] = lead["id"]
            self.leads.append(lead)

    # -- history, generated on demand --------------------------------------------------------

    def iter_close_date_changes(self) -> Iterator[Record]:
        """Every deal's close-date moves, oldest first, ending at its current close date."""
        rng = random.Random(f"{self.seed}/close-date-changes")
        draw = rng.random

        def ri(low: int, high: int) -> int:
            return low + int(draw() * (high - low + 1))

        count_picker = _Picker(range(len(_CHANGE_COUNT_WEIGHTS)), _CHANGE_COUNT_WEIGHTS)
        approvers = self.others
        for plan in self.plans:
            if plan.close is None:
                continue
            kind = plan.kind
            count = count_picker.pick(draw)
            if kind == "slipping":
                count = ri(3, 5)
            elif kind == "cd_moved_unapproved":
                count = max(1, count)
            if count == 0:
                continue
            span = max(0, plan.end - plan.created)
            times = sorted(plan.created + int(draw() * (span + 1)) for _ in range(count))
            stages = sorted(int(draw() * (plan.max_stage + 1)) for _ in range(count))
            if kind == "cd_moved_unapproved":
                stages[-1] = plan.max_stage
            if kind == "slipping":
                pushes = [True] * count
            else:
                pushes = [draw() < 0.6 for _ in range(count)]
                while sum(pushes) > 2:
                    pushes[pushes.index(True)] = False
            # Walk back from the current close date to the date each change replaced.
            news: list[int] = [0] * count
            olds: list[int] = [0] * count
            new = plan.close
            for j in range(count - 1, -1, -1):
                old = new - ri(7, 60) if pushes[j] else new + ri(3, 30)
                news[j], olds[j] = new, old
                new = old
            current_index = _STAGES.index(plan.stage) if plan.stage in _PROBABILITY else None
            for j in range(count):
                stage: str | None = _STAGES[stages[j]]
                forecast: str | None
                roll = draw()
                if stages[j] >= _CLOSING_INDEX:
                    forecast = "commit" if roll < 0.5 else "best_case"
                elif stages[j] >= _LOCK_INDEX:
                    forecast = "best_case" if roll < 0.6 else "pipeline"
                else:
                    forecast = "pipeline"
                if draw() < _UNRECORDED_STAGE_RATE and not (
                    kind == "cd_moved_unapproved" and j == count - 1
                ):
                    stage = forecast = None
                elif draw() < 0.03:
                    forecast = None
                judged_index = _STAGES.index(stage) if stage is not None else current_index
                judged_forecast = forecast if forecast is not None else plan.forecast
                locked = (
                    judged_index is not None and judged_index >= _LOCK_INDEX
                ) or judged_forecast == "commit"
                breach = kind == "cd_moved_unapproved" and j == count - 1
                if locked and not breach:
                    approved: str | None = approvers[int(draw() * len(approvers))]
                elif not locked and draw() < 0.08:
                    approved = approvers[int(draw() * len(approvers))]
                else:
                    approved = None
                if plan.team and draw() < 0.2:
                    changed_by = plan.team[int(draw() * len(plan.team))]
                else:
                    changed_by = plan.owner_id
                yield {
                    "opportunity_id": plan.id,
                    "old": self.day(olds[j]),
                    "new": self.day(news[j]),
                    "changed_at": self.stamp(times[j], draw),
                    "changed_by": changed_by,
                    "approved_by": approved,
                    "stage": stage,
                    "forecast_category": forecast,
                }

    def iter_activities(self) -> Iterator[Record]:
        """Tasks and events on every deal: done ones in the past, open ones overdue or ahead."""
        rng = random.Random(f"{self.seed}/activities")
        draw = rng.random

        def ri(low: int, high: int) -> int:
            return low + int(draw() * (high - low + 1))

        count_picker = _Picker(range(len(_ACTIVITY_COUNT_WEIGHTS)), _ACTIVITY_COUNT_WEIGHTS)
        role = self.role
        width = max(7, len(str(2 * len(self.plans))))
        number = 0
        for plan in self.plans:
            count = count_picker.pick(draw)
            if plan.future_activity:
                count = max(1, count)
            for j in range(count):
                is_task = draw() < 0.6
                subjects = _TASK_SUBJECTS if is_task else _EVENT_SUBJECTS
                subject = subjects[int(draw() * len(subjects))]
                if plan.is_open and plan.future_activity and j == 0:
                    status = "open"
                    due = ri(0, 21)
                    created = max(plan.created, min(0, due - ri(1, 14)))
                elif plan.is_open:
                    due = ri(plan.created, -1)  # open deals are at least a day old
                    status = "completed" if draw() < 0.85 else "open"
                    created = max(plan.created, due - ri(0, 10))
                else:
                    due = ri(plan.created, plan.end)
                    status = "completed"
                    created = max(plan.created, due - ri(0, 10))
                roll = draw()
                if roll < 0.72 or not (plan.team or plan.helper_id):
                    owner = plan.owner_id
                elif plan.helper_id and (roll < 0.86 or not plan.team):
                    owner = plan.helper_id
                else:
                    owner = plan.team[int(draw() * len(plan.team))]
                notified = (
                    plan.partner_account
                    and role.get(owner) != "partner"
                    and draw() >= _UNNOTIFIED_RATE
                )
                number += 1
                yield {
                    "id": f"t{number:0{width}d}",
                    "what_id": plan.id,
                    "account_id": plan.account_id,
                    "owner_id": owner,
                    "subject": subject,
                    "due_date": self.day(due),
                    "status": status,
                    "partner_notified": notified,
                    "created_at": self.stamp(created, draw),
                    "type": "task" if is_task else "event",
                }

    def core(self) -> dict[str, list[Record]]:
        return {
            "users": self.users,
            "partners": self.partners,
            "accounts": self.accounts,
            "leads": self.leads,
            "opportunities": self.opportunities,
        }

    def collection(self, name: str) -> Iterator[Record] | list[Record]:
        if name == "close_date_changes":
            return self.iter_close_date_changes()
        if name == "activities":
            return self.iter_activities()
        return self.core()[name]


def _spread(kinds: Sequence[str], count: int) -> dict[int, str]:
    """Positions among ``count`` records for one sure case of each kind, evenly spaced."""
    step = max(1, count // max(1, len(kinds)))
    return {j * step: kind for j, kind in enumerate(kinds) if j * step < count}


def _quarter_end(day: dt.date, fiscal_year_start_month: int = 1) -> dt.date:
    months_into_quarter = (day.month - fiscal_year_start_month) % 3
    start = day.year * 12 + day.month - 1 - months_into_quarter + 3
    return dt.date(start // 12, start % 12 + 1, 1) - dt.timedelta(days=1)


def generate_org(*, opportunities: int, seed: int = 7, as_of: dt.date) -> dict[str, Any]:
    """A snapshot dict in docs/contract.md's shape with ``opportunities`` deals, as of ``as_of``.

    Deterministic: the same arguments give an equal dict. See the module docstring for the
    sizes, the mix and the deliberate breaches.
    """
    builder = _OrgBuilder(opportunities, seed, as_of)
    snapshot: dict[str, Any] = {"as_of": as_of.isoformat()}
    for name in COLLECTIONS:
        snapshot[name] = list(builder.collection(name))
    return snapshot


def write_org_json(
    path: str | os.PathLike[str], *, opportunities: int, seed: int = 7, as_of: dt.date
) -> dict[str, int]:
    """Write :func:`generate_org`'s snapshot to ``path`` (one record per line); return counts.

    Close-date changes and activities are generated as they are written. The file is written
    beside ``path`` and renamed into place, so a reader never sees half a snapshot.
    """
    builder = _OrgBuilder(opportunities, seed, as_of)
    encode = json.JSONEncoder(separators=(",", ":")).encode
    counts: dict[str, int] = {}
    target = os.fspath(path)
    partial = f"{target}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write('{"as_of":' + encode(as_of.isoformat()))
        for name in COLLECTIONS:
            out.write(f',\n"{name}":[')
            count = 0
            for record in builder.collection(name):
                out.write(("\n" if count == 0 else ",\n") + encode(record))
                count += 1
            out.write("\n]" if count else "]")
            counts[name] = count
        out.write("}\n")
    os.replace(partial, target)
    return counts
