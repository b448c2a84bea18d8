"""Facts: the joins and derived values rules read, resolved once per snapshot with indexes.

A :class:`FactIndex` is built in one pass over a snapshot (dicts by id, history and activities
grouped by deal, company groups for ownership conflicts). Per-record facts are then computed on
demand, so the same builder serves a whole sync snapshot and a single in-line change with only
its related records.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

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
    LeadFacts,
    OpportunityFacts,
    RecordFacts,
    once,
)
from tsos_rules.model import (
    Account,
    Activity,
    Channel,
    CloseDateChange,
    ForecastCategory,
    Lead,
    Opportunity,
    Partner,
    Snapshot,
    User,
    UserRole,
)
from tsos_rules.org import OrgProfile, company_key, company_keys_for

_ID = operator.attrgetter("id")
_new = object.__new__
#: CloseDateMove's slot setters: judge_moves builds ~100k moves at 100k deals without attrs'
#: frozen ``__init__`` (tests/facts/test_fast_facts.py holds the result equal to its).
_set_change, _set_locked, _set_approved, _set_pushed_later, _set_reverted, _set_restoration = (
    CloseDateMove.__dict__[name].__set__
    for name in ("change", "locked", "approved", "pushed_later", "reverted", "restoration")
)
_R = TypeVar("_R")


def _by_id(records: Sequence[_R]) -> dict[str, _R]:
    return dict(zip(map(_ID, records), records, strict=True))


class CompanyGroups:
    """Union-find over company keys: records sharing an account or a name are one company
    (the fact index's groups, and the engine's partitions, which must not split one)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grandparent = self.parent[parent]
            self.parent[key] = grandparent
            key, parent = parent, grandparent
        return key

    def join(self, keys: Sequence[str]) -> None:
        root = self.find(keys[0])
        for key in keys[1:]:
            other = self.find(key)
            if other != root:
                self.parent[other] = root


class FactIndex:
    """Indexes over one snapshot and the per-record fact builders that read them."""

    def __init__(self, snapshot: Snapshot, org: OrgProfile, as_of: dt.date) -> None:
        self.snapshot = snapshot
        self.org = org
        self.as_of = as_of
        self.lock_index = org.stage_index[org.lock_stage]
        self.fiscal_quarter_end = org.fiscal_quarter_end(as_of)
        self._placeholder_memo: dict[str, bool] = {}
        self._company_key_memo: dict[str, str] = {}
        # dict(zip(ids, records)): the same dicts as comprehensions (last one wins), in C
        self.users: dict[str, User] = _by_id(snapshot.users)
        self.partners: dict[str, Partner] = _by_id(snapshot.partners)
        self.accounts: dict[str, Account] = _by_id(snapshot.accounts)
        self.leads: dict[str, Lead] = _by_id(snapshot.leads)
        self.opportunities: dict[str, Opportunity] = _by_id(snapshot.opportunities)
        self.lead_by_opportunity: dict[str, Lead] = {}
        for lead in snapshot.leads:
            if lead.converted_opportunity_id:
                self.lead_by_opportunity[lead.converted_opportunity_id] = lead
        changes: defaultdict[str, list[CloseDateChange]] = defaultdict(list)
        for change in snapshot.close_date_changes:
            changes[change.opportunity_id].append(change)
        self.changes_by_opportunity: dict[str, list[CloseDateChange]] = dict(changes)
        activities: defaultdict[str, list[Activity]] = defaultdict(list)
        for activity in snapshot.activities:
            if activity.what_id:
                activities[activity.what_id].append(activity)
        self.activities_by_what: dict[str, list[Activity]] = dict(activities)
        self.channel_accounts: set[str] = set()
        #: by deal id, for indexed deals
        self._channel_reasons: dict[str, tuple[str, ...]] = self._all_channel_reasons()
        #: Org-wide totals of the packs' aggregates by name and key, set by the engine.
        self.totals: Mapping[str, Mapping[str, float]] = {}

    def total(self, aggregate: str, key: str) -> float:
        """The org-wide total of a declared aggregate for ``key`` (0.0 when nothing adds to it).

        Totals are computed by the engine over every record of the org, never this index's
        snapshot alone; an aggregate no loaded pack declares is a LookupError naming it.
        """
        totals = self.totals.get(aggregate)
        if totals is None:
            raise LookupError(f"aggregate {aggregate!r}: not declared by any loaded pack")
        return totals.get(key, 0.0)

    # -- joins --------------------------------------------------------------------------

    def source_lead(self, opportunity: Opportunity) -> Lead | None:
        if opportunity.lead_id and opportunity.lead_id in self.leads:
            return self.leads[opportunity.lead_id]
        return self.lead_by_opportunity.get(opportunity.id)

    def channel_reasons_of(self, opportunity: Opportunity) -> tuple[str, ...]:
        """Why a deal is a channel deal (empty when it is not one); indexed deals are cached."""
        if self.opportunities.get(opportunity.id) is opportunity:
            known = self._channel_reasons.get(opportunity.id)
            if known is not None:
                return known
        return self.channel_reasons(opportunity)

    def channel_reasons(self, opportunity: Opportunity) -> tuple[str, ...]:
        """Why a deal is a channel deal (empty when it is not one)."""
        reasons: list[str] = []
        lead = self.source_lead(opportunity)
        if lead is not None:
            if lead.partner_id:
                reasons.append(LEAD_PARTNER)
            if lead.source and lead.source in self.org.partner_sources:
                reasons.append(LEAD_SOURCE)
        account = self.accounts.get(opportunity.account_id) if opportunity.account_id else None
        if account is not None and account.partner_of_record_id:
            reasons.append(ACCOUNT_PARTNER_OF_RECORD)
        if opportunity.channel is Channel.PARTNER:
            reasons.append(CHANNEL_FIELD)
        return tuple(reasons)

    def _all_channel_reasons(self) -> dict[str, tuple[str, ...]]:
        """:meth:`channel_reasons` of every deal by id, in one loop (a hot spot at 100k), and
        the accounts with a channel deal."""
        leads = self.leads
        lead_by_opportunity = self.lead_by_opportunity
        accounts = self.accounts
        partner_sources = frozenset(self.org.partner_sources)
        partner = Channel.PARTNER
        channel_accounts = self.channel_accounts
        by_deal: dict[str, tuple[str, ...]] = {}
        for opportunity in self.snapshot.opportunities:
            lead_id = opportunity.lead_id
            if lead_id and lead_id in leads:
                lead: Lead | None = leads[lead_id]
            else:
                lead = lead_by_opportunity.get(opportunity.id)
            reasons: tuple[str, ...] = ()
            if lead is not None:
                if lead.partner_id:
                    reasons = (LEAD_PARTNER,)
                if lead.source and lead.source in partner_sources:
                    reasons += (LEAD_SOURCE,)
            account_id = opportunity.account_id
            account = accounts.get(account_id) if account_id else None
            if account is not None and account.partner_of_record_id:
                reasons += (ACCOUNT_PARTNER_OF_RECORD,)
            if opportunity.channel is partner:
                reasons += (CHANNEL_FIELD,)
            by_deal[opportunity.id] = reasons
            if reasons and account_id:
                channel_accounts.add(account_id)
        return by_deal

    def partner_status(self, partner_id: str | None) -> str | None:
        """``active``/``terminated``, ``unknown`` when the id names no partner, None when unset."""
        if not partner_id:
            return None
        partner = self.partners.get(partner_id)
        return partner.status.value if partner else "unknown"

    def role_of(self, user_id: str | None) -> UserRole | None:
        user = self.users.get(user_id) if user_id else None
        return user.role if user else None

    def company_keys_of(self, record: Lead | Opportunity) -> list[str]:
        """The keys that identify a record's company: its account, and its normalised name.

        The name is the account's, else (a lead on no account or an unnamed one) the lead's
        company. A name that normalises to nothing ("Inc.", "-", blanks) names no company: it
        gives no name key, so such records are grouped by their account alone and unrelated
        companies are never merged under the empty name. (The lead's own company is not used
        in place of such an account name, as for any named account.)
        """
        account = self.accounts.get(record.account_id) if record.account_id else None
        return company_keys_for(
            record.account_id,
            account.name if account is not None else None,
            record.company if isinstance(record, Lead) else None,
            self._company_key,
        )

    def name_key(self, name: str) -> str:
        """A company name's key as :meth:`company_keys_of` gives it ("" for no company)."""
        key = self._company_key(name)
        return "name:" + key if key else ""

    def _company_key(self, name: str) -> str:
        key = self._company_key_memo.get(name)
        if key is None:
            key = self._company_key_memo[name] = company_key(name)
        return key

    def lead_is_open(self, lead: Lead) -> bool:
        return (
            not lead.converted_opportunity_id
            and (lead.status or "open") not in self.org.closed_lead_statuses
        )

    @once
    def company_conflicts(self) -> dict[tuple[str, str], CompanyConflict]:
        """Open leads and deals whose company is worked by several owners or both direct and
        through a partner, by record. Built on first use: an aggregate's readers judged again
        by rules that never compare companies do not pay for it (1.4 s at a million deals)."""
        return self._company_conflicts()

    def _company_conflicts(self) -> dict[tuple[str, str], CompanyConflict]:
        """Group open leads and deals by company (same account or same name), then judge."""
        companies = CompanyGroups()
        records: list[tuple[str, tuple[str, str, str | None, bool]]] = []
        # Records on a known, named account share its keys: join those once per account.
        joined: dict[str, str] = {}
        accounts = self.accounts

        def first_key(record: Lead | Opportunity) -> str | None:
            """The record's first company key, its keys joined (the loops below look in
            ``joined`` first)."""
            account_id = record.account_id
            keys = self.company_keys_of(record)
            if not keys:
                return None
            companies.join(keys)
            account = accounts.get(account_id) if account_id else None
            if account is not None and account.name:
                joined[account.id] = keys[0]
            return keys[0]

        closed_statuses = frozenset(self.org.closed_lead_statuses)
        for lead in self.snapshot.leads:
            # lead_is_open, inlined: 60k calls at 100k deals
            if lead.converted_opportunity_id or (lead.status or "open") in closed_statuses:
                continue
            account_id = lead.account_id
            key = joined.get(account_id) if account_id else None
            if key is None:
                key = first_key(lead)
            if key is not None:
                records.append((key, ("lead", lead.id, lead.owner_id, bool(lead.partner_id))))
        for opportunity in self.snapshot.opportunities:
            if opportunity.is_closed:
                continue
            account_id = opportunity.account_id
            key = joined.get(account_id) if account_id else None
            if key is None:
                key = first_key(opportunity)
            if key is not None:
                via_partner = bool(opportunity.partner_id) or opportunity.channel is Channel.PARTNER
                records.append(
                    (key, ("opportunity", opportunity.id, opportunity.owner_id, via_partner))
                )
        groups: defaultdict[str, list[tuple[str, str, str | None, bool]]] = defaultdict(list)
        roots: dict[str, str] = {}
        for key, record in records:
            root = roots.get(key)
            if root is None:
                root = roots[key] = companies.find(key)
            groups[root].append(record)
        conflicts: dict[tuple[str, str], CompanyConflict] = {}
        for members in groups.values():
            if len(members) < 2:
                continue
            owners = {owner for _, _, owner, _ in members if owner}
            partnered = {via for _, _, _, via in members}
            reason = None
            if len(owners) > 1:
                reason = "multiple_owners"
            elif len(partnered) > 1:
                reason = "partner_and_direct"
            if reason is None:
                continue
            conflict = CompanyConflict(reason, tuple((t, i) for t, i, _, _ in members))
            for record_type, record_id, _, _ in members:
                conflicts[(record_type, record_id)] = conflict
        return conflicts

    # -- per-record facts -----------------------------------------------------------------

    def opportunity(
        self, opportunity: Opportunity, *, channel_reasons: tuple[str, ...] | None = None
    ) -> OpportunityFacts:
        """A deal's facts; ``channel_reasons`` overrides the derived ones (in-line changes)."""
        return OpportunityFacts(opportunity, self, channel_reasons)

    def lead(self, lead: Lead) -> LeadFacts:
        return LeadFacts(lead, self)

    def account(self, account: Account) -> AccountFacts:
        return AccountFacts(account, self)

    def activity(self, activity: Activity) -> ActivityFacts:
        return ActivityFacts(activity, self)

    def next_step_state(self, opportunity: Opportunity) -> str:
        """``ok``, or the reason the deal's own next step fails: placeholder, missing, past_due."""
        text = opportunity.next_step
        if text is not None and text.strip() and self._is_placeholder(text):
            return "placeholder"
        if text is None or not text.strip() or opportunity.next_step_date is None:
            return "missing"
        if opportunity.next_step_date < self.as_of:
            return "past_due"
        return NEXT_STEP_OK

    def _is_placeholder(self, text: str) -> bool:
        known = self._placeholder_memo.get(text)
        if known is None:
            known = self._placeholder_memo[text] = self.org.is_placeholder(text)
        return known

    def judge_move(self, change: CloseDateChange, opportunity: Opportunity) -> CloseDateMove:
        """Was the deal locked when this change was made, was it approved, was it a push?"""
        stage = change.stage if change.stage is not None else opportunity.stage
        forecast = (
            change.forecast_category
            if change.forecast_category is not None
            else opportunity.forecast_category
        )
        stage_index = self.org.stage_index.get(stage) if stage is not None else None
        locked = (
            stage_index is not None and stage_index >= self.lock_index
        ) or forecast is ForecastCategory.COMMIT
        old, new = change.old, change.new
        moved = old is not None and new is not None and old != new
        return CloseDateMove(
            change=change,
            locked=locked and moved,
            approved=bool(change.approved_by),
            pushed_later=moved and new > old,  # type: ignore[operator]
        )

    def judge_moves(
        self, changes: Sequence[CloseDateChange], opportunity: Opportunity
    ) -> list[CloseDateMove]:
        """:meth:`judge_move` of each change of one deal, in one loop (a hot spot at 100k)."""
        stage_index = self.org.stage_index
        lock_index = self.lock_index
        commit = ForecastCategory.COMMIT
        deal_stage = opportunity.stage
        deal_forecast = opportunity.forecast_category
        moves = []
        for change in changes:
            stage = change.stage
            if stage is None:
                stage = deal_stage
            forecast = change.forecast_category
            if forecast is None:
                forecast = deal_forecast
            at = stage_index.get(stage) if stage is not None else None
            old, new = change.old, change.new
            moved = old is not None and new is not None and old != new
            # CloseDateMove(change, locked, approved, pushed_later), its slots set directly
            move = _new(CloseDateMove)
            _set_change(move, change)
            _set_locked(
                move, moved and ((at is not None and at >= lock_index) or forecast is commit)
            )
            _set_approved(move, bool(change.approved_by))
            _set_pushed_later(move, moved and new > old)  # type: ignore[operator]
            _set_reverted(move, False)
            _set_restoration(move, False)
            moves.append(move)
        return moves

    # The judged records' facts are built without attrs' generated ``__init__`` (a frozen
    # class's costs a call and an ``object.__setattr__`` per field, ~390k times at 100k deals):
    # a bare instance gets its fields straight in its ``__dict__``, as that ``__init__`` would
    # set them (tests/facts/test_fast_facts.py holds the two equal). Deals and activities
    # also come with the joins nearly every rule reads already filled in (what their ``once``
    # properties would compute on first use, for less).

    def _judged_opportunity(self, opportunity: Opportunity) -> OpportunityFacts:
        facts = _new(OpportunityFacts)
        values = facts.__dict__
        values["opportunity"] = opportunity
        values["index"] = self
        values["channel_reasons_override"] = None
        account_id = opportunity.account_id
        values["account"] = self.accounts.get(account_id) if account_id else None
        values["is_open"] = not opportunity.is_closed
        stage = opportunity.stage  # read for every deal (stage-probability-consistent)
        values["stage_index"] = self.org.stage_index.get(stage) if stage is not None else None
        if self.opportunities.get(opportunity.id) is opportunity:
            reasons = self._channel_reasons.get(opportunity.id)
            if reasons is not None:
                values["channel_reasons"] = reasons
                values["is_channel_deal"] = bool(reasons)
        return facts

    def _judged_activity(self, activity: Activity) -> ActivityFacts:
        facts = _new(ActivityFacts)
        values = facts.__dict__
        values["activity"] = activity
        values["index"] = self
        owner_id = activity.owner_id
        values["owner"] = self.users.get(owner_id) if owner_id else None
        account_id = activity.account_id  # ActivityFacts.account, inlined
        if account_id is None:
            deal = self.opportunities.get(activity.what_id)  # type: ignore[arg-type]
            if deal is not None:
                account_id = deal.account_id
        values["account"] = self.accounts.get(account_id) if account_id else None
        return facts

    def _judged_lead(self, lead: Lead) -> LeadFacts:
        facts = _new(LeadFacts)
        values = facts.__dict__
        values["lead"] = lead
        values["index"] = self
        return facts

    def _judged_account(self, account: Account) -> AccountFacts:
        facts = _new(AccountFacts)
        values = facts.__dict__
        values["account"] = account
        values["index"] = self
        return facts

    def judged_records(
        self, record_types: frozenset[str] | None = None
    ) -> list[tuple[str, tuple[Any, ...], Callable[[Any], RecordFacts]]]:
        """``(record type, records, facts builder)`` for every judged type, in judging order."""
        snapshot = self.snapshot
        builders: tuple[tuple[str, tuple[Any, ...], Callable[[Any], RecordFacts]], ...] = (
            ("account", snapshot.accounts, self._judged_account),
            ("activity", snapshot.activities, self._judged_activity),
            ("lead", snapshot.leads, self._judged_lead),
            ("opportunity", snapshot.opportunities, self._judged_opportunity),
        )
        return [b for b in builders if record_types is None or b[0] in record_types]

    def iter_facts(self, record_types: frozenset[str] | None = None) -> Iterator[RecordFacts]:
        """Every judged record's facts, record type by record type."""
        for _, records, build in self.judged_records(record_types):
            for record in records:
                yield build(record)


def build_index(
    snapshot: Snapshot, org: OrgProfile | None = None, as_of: dt.date | None = None
) -> FactIndex:
    """Index a snapshot; ``as_of`` defaults to the snapshot's, then to today in the org's zone."""
    org = org or OrgProfile()
    return FactIndex(snapshot, org, as_of or snapshot.as_of or org.today())
