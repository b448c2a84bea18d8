"""Facts ③, what a rule may read: each record's facts, their joins and derived values.

Each facts class computes its values on first use (:class:`once`) from the :class:`FactIndex`
it was built by (:mod:`tsos_rules.facts.index`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, overload

import attrs

from tsos_rules.model import (
    Account,
    Activity,
    CloseDateChange,
    ForecastCategory,
    Lead,
    Opportunity,
    Partner,
    User,
    UserRole,
)
from tsos_rules.snapshot._fast import make_bulk_unstructure, unstructure_value

if TYPE_CHECKING:
    from tsos_rules.facts.index import FactIndex

T = TypeVar("T")
R = TypeVar("R")


class once(Generic[T, R]):
    """A property computed on first use and then kept on the instance.

    Like ``functools.cached_property`` but without its per-access lock (Python 3.11), which
    costs more than the values it guards on a 100k-deal snapshot.
    """

    def __init__(self, func: Callable[[T], R]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type[T], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[T]) -> once[T, R]: ...
    @overload
    def __get__(self, instance: T, owner: type[T]) -> R: ...
    def __get__(self, instance: T | None, owner: type[T]) -> R | once[T, R]:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value  # shadows this descriptor from now on
        return value


#: Why a deal counts as a channel deal (DOCTRINE: tsos.channel-lead-not-direct).
LEAD_PARTNER = "lead_partner"
LEAD_SOURCE = "lead_source"
ACCOUNT_PARTNER_OF_RECORD = "account_partner_of_record"
CHANNEL_FIELD = "channel_field"

#: Next-step states (DOCTRINE: tsos.next-step-required reasons).
NEXT_STEP_OK = "ok"


@attrs.frozen
class CloseDateMove:
    """One close-date change, judged at the time it was made."""

    change: CloseDateChange
    locked: bool
    approved: bool
    #: The date went later. False for a restoration: putting the date back is not a slip.
    pushed_later: bool
    #: A later change put the date back where this move took it from (e.g. an enforce repair),
    #: or a later restoration put it back to before this move.
    reverted: bool = False
    #: This change undoes an earlier unapproved move of the locked deal: it puts the date back
    #: where that move took it from. It is a repair, not a new move (see
    #: :attr:`OpportunityFacts.moves`).
    restoration: bool = False


@attrs.frozen
class CompanyConflict:
    """Open leads and deals of one company that break the single-owner rule (one per group)."""

    reason: str
    members: tuple[tuple[str, str], ...]

    def others(self, record_type: str, record_id: str) -> list[tuple[str, str]]:
        """The conflicting records other than the given one."""
        members = self.members
        me = (record_type, record_id)
        try:
            at = members.index(me)  # each member of a group once: slices, not a scan per member
        except ValueError:
            return list(members)
        if me in members[at + 1 :]:
            return [member for member in members if member != me]
        return [*members[:at], *members[at + 1 :]]


class _RecordJoins:
    """Joins every judged record shares: its id, the evaluation date, its owner."""

    index: FactIndex

    @property
    def record(self) -> Any:
        raise NotImplementedError

    @property
    def record_id(self) -> str:
        return str(self.record.id)

    @property
    def as_of(self) -> dt.date:
        return self.index.as_of

    @once
    def owner(self) -> User | None:
        owner_id = self.record.owner_id
        return self.index.users.get(owner_id) if owner_id else None

    @property
    def owner_role(self) -> UserRole | None:
        owner = self.owner
        return owner.role if owner else None


class _PartnerJoins(_RecordJoins):
    """Joins of a record that names a partner (a deal or a lead)."""

    @once
    def partner(self) -> Partner | None:
        partner_id = self.record.partner_id
        return self.index.partners.get(partner_id) if partner_id else None

    @property
    def partner_status(self) -> str | None:
        """``active``/``terminated``, ``unknown`` when the id names no partner, None when unset."""
        partner = self.partner
        if partner is not None:
            return partner.status.value
        return "unknown" if self.record.partner_id else None


@attrs.frozen(slots=False)
class OpportunityFacts(_PartnerJoins):
    """A deal with its joins and derived values, each computed on first use and kept."""

    record_type: ClassVar[str] = "opportunity"
    opportunity: Opportunity
    index: FactIndex = attrs.field(repr=False, eq=False)
    #: Set by the in-line path: a deal that was a channel deal before a change stays one.
    channel_reasons_override: tuple[str, ...] | None = attrs.field(default=None, repr=False)

    @property
    def record(self) -> Opportunity:
        return self.opportunity

    @once  # read by most checks of every deal: kept, an attribute read after the first
    def is_open(self) -> bool:
        return not self.opportunity.is_closed

    @once
    def account(self) -> Account | None:
        account_id = self.opportunity.account_id
        return self.index.accounts.get(account_id) if account_id else None

    @property
    def account_partner_of_record_id(self) -> str | None:
        """The account's partner of record; None when unset (an empty id is unset too)."""
        account = self.account
        return (account.partner_of_record_id or None) if account else None

    @property
    def account_partner_of_record(self) -> Partner | None:
        por_id = self.account_partner_of_record_id
        return self.index.partners.get(por_id) if por_id else None

    @once
    def lead(self) -> Lead | None:
        return self.index.source_lead(self.opportunity)

    @once
    def channel_reasons(self) -> tuple[str, ...]:
        """Why the deal is a channel deal (lead partner or source, account, channel field)."""
        if self.channel_reasons_override is not None:
            return self.channel_reasons_override
        return self.index.channel_reasons_of(self.opportunity)

    @once
    def is_channel_deal(self) -> bool:
        return bool(self.channel_reasons)

    @property
    def team_roles(self) -> tuple[tuple[str, UserRole | None], ...]:
        role_of = self.index.role_of
        return tuple((uid, role_of(uid)) for uid in self.opportunity.team_user_ids)

    @once
    def moves(self) -> tuple[CloseDateMove, ...]:
        """Every close-date change of the deal, judged at the time it was made.

        Taken in time order (unknown times first, in file order):

        - a move is *reverted* when a later change puts the date back where it took it from;
          an unapproved move that was reverted is cured;
        - a move is a *restoration* when it puts the date back where an earlier unapproved move
          of the locked deal took it from (``new`` equals that move's ``old``), that earlier
          move being a real move, not itself a restoration, and not already cured by an earlier
          restoration. A restoration is the undo of a bad
          move (by the rep, or an enforce repair), so it is neither an unapproved move for
          ``tsos.close-date-locked`` (else the tool would ask to put the bad date back) nor a
          push for ``tsos.close-date-slipping`` (undoing an unapproved pull-in moves the date
          later, but only back to the date the deal had; the deal did not slip). The undone
          move itself keeps counting as a push when it was one: the date *was* pushed.

        A restoration to where a bad move started also cures the moves made since that move:
        after A→B→C→A the date is back at A, so B→C is undone too (restoring B would bring back
        a date no one approved).

        So A→B→A (both unapproved) leaves nothing to cure, and in A→B→A→B and A→B→C→A→B the
        last move is a real unapproved move again (it undoes a restoration, not a bad move).
        """
        changes = self.index.changes_by_opportunity.get(self.opportunity.id)
        if not changes:
            return ()
        moves = self.index.judge_moves(changes, self.opportunity)
        for move in moves:
            if move.locked and not move.approved:
                break
        else:
            return tuple(moves)  # only an unapproved move on a locked deal can need curing
        order = sorted(range(len(moves)), key=lambda i: change_time(changes[i]))
        #: date -> position (in ``order``) of the latest real unapproved move away from it
        moved_from: dict[dt.date, int] = {}
        for position, i in enumerate(order):
            change, move = changes[i], moves[i]
            old, new = change.old, change.new
            if old is not None and any(changes[j].new == old for j in order[position + 1 :]):
                move = attrs.evolve(move, reverted=True)
            start = moved_from.get(new) if new is not None and old != new else None
            if start is not None:
                move = attrs.evolve(move, restoration=True, pushed_later=False)
                # Back where the bad move started: every move since is undone with it, and a
                # cured move can no longer be restored to (A→B→C→A→B ends in a new bad move).
                for k in order[start + 1 : position]:
                    moves[k] = attrs.evolve(moves[k], reverted=True)
                moved_from = {day: at for day, at in moved_from.items() if at < start}
            elif move.locked and not move.approved and old is not None:
                moved_from[old] = position
            moves[i] = move
        return tuple(moves)

    @property
    def close_date_pushes(self) -> int:
        """Pushes of the close date to a later date (restorations are not pushes)."""
        return sum(1 for move in self.moves if move.pushed_later)

    @once
    def open_future_activities(self) -> tuple[Activity, ...]:
        """Open tasks and events on the deal due today or later: each counts as a next step."""
        activities = self.index.activities_by_what.get(self.opportunity.id)
        if not activities:
            return ()
        as_of = self.index.as_of
        return tuple(
            a
            for a in activities
            if a.status == "open" and a.due_date is not None and a.due_date >= as_of
        )

    @once
    def next_step_state(self) -> str:
        """``ok``, or why the deal's own next step fails: placeholder, missing, past_due."""
        return self.index.next_step_state(self.opportunity)

    @property
    def next_step_valid(self) -> bool:
        """A good next step on the deal, or an open activity due today or later."""
        return self.next_step_state == NEXT_STEP_OK or bool(self.open_future_activities)

    @once
    def stage_index(self) -> int | None:
        stage = self.opportunity.stage
        return self.index.org.stage_index.get(stage) if stage is not None else None

    @property
    def stage_known(self) -> bool:
        return self.stage_index is not None

    @property
    def stage_probability(self) -> int | None:
        stage = self.opportunity.stage
        return self.index.org.stage_probability.get(stage) if stage is not None else None

    @property
    def locked(self) -> bool:
        """At or beyond the lock stage, or in forecast category commit, now."""
        stage_index = self.stage_index
        return (
            stage_index is not None and stage_index >= self.index.lock_index
        ) or self.opportunity.forecast_category is ForecastCategory.COMMIT

    @property
    def fiscal_quarter_end(self) -> dt.date:
        return self.index.fiscal_quarter_end

    @property
    def days_in_stage(self) -> int | None:
        changed = self.opportunity.stage_changed_at
        if changed is None:
            return None
        return (self.index.as_of - self.index.org.local_date(changed)).days

    @property
    def company_conflict(self) -> CompanyConflict | None:
        return self.index.company_conflicts.get(("opportunity", self.opportunity.id))

    def flat(self) -> dict[str, Any]:
        return _flat(self.opportunity, self, _OPPORTUNITY_DERIVED)

    def flat_value(self, name: str, default: Any = None) -> Any:
        """``self.flat().get(name, default)``, without building the whole dict."""
        return _flat_value(self.opportunity, self, _OPPORTUNITY_DERIVED, name, default)


@attrs.frozen(slots=False)
class LeadFacts(_PartnerJoins):
    """A lead with its joins and the business-day clock of its distribution to a partner."""

    record_type: ClassVar[str] = "lead"
    lead: Lead
    index: FactIndex = attrs.field(repr=False, eq=False)

    @property
    def record(self) -> Lead:
        return self.lead

    @property
    def account(self) -> Account | None:
        account_id = self.lead.account_id
        return self.index.accounts.get(account_id) if account_id else None

    @property
    def is_open(self) -> bool:
        return self.index.lead_is_open(self.lead)

    @property
    def is_distributed(self) -> bool:
        return self.lead.distributed_at is not None

    @once
    def _distributed_on(self) -> dt.date | None:
        distributed_at = self.lead.distributed_at
        return self.index.org.local_date(distributed_at) if distributed_at else None

    def _business_days_to(self, moment: dt.datetime | None) -> int | None:
        start = self._distributed_on
        if start is None or moment is None:
            return None
        org = self.index.org
        return org.business_days_between(start, org.local_date(moment))

    @property
    def business_days_since_distribution(self) -> int | None:
        start = self._distributed_on
        if start is None:
            return None
        return self.index.org.business_days_between(start, self.index.as_of)

    @property
    def business_days_to_accept(self) -> int | None:
        return self._business_days_to(self.lead.accepted_at)

    @property
    def business_days_to_follow_up(self) -> int | None:
        return self._business_days_to(self.lead.followed_up_at)

    @property
    def company_conflict(self) -> CompanyConflict | None:
        return self.index.company_conflicts.get(("lead", self.lead.id))

    def flat(self) -> dict[str, Any]:
        return _flat(self.lead, self, _LEAD_DERIVED)

    def flat_value(self, name: str, default: Any = None) -> Any:
        """``self.flat().get(name, default)``, without building the whole dict."""
        return _flat_value(self.lead, self, _LEAD_DERIVED, name, default)


@attrs.frozen(slots=False)
class AccountFacts(_RecordJoins):
    """An account with its partner of record and whether it has ever had a channel deal."""

    record_type: ClassVar[str] = "account"
    account: Account
    index: FactIndex = attrs.field(repr=False, eq=False)

    @property
    def record(self) -> Account:
        return self.account

    @property
    def partner_of_record(self) -> Partner | None:
        por = self.account.partner_of_record_id
        return self.index.partners.get(por) if por else None

    @property
    def partner_status(self) -> str | None:
        return self.index.partner_status(self.account.partner_of_record_id)

    @property
    def has_channel_deal(self) -> bool:
        return self.account.id in self.index.channel_accounts

    def flat(self) -> dict[str, Any]:
        return _flat(self.account, self, _ACCOUNT_DERIVED)

    def flat_value(self, name: str, default: Any = None) -> Any:
        """``self.flat().get(name, default)``, without building the whole dict."""
        return _flat_value(self.account, self, _ACCOUNT_DERIVED, name, default)


@attrs.frozen(slots=False)
class ActivityFacts(_RecordJoins):
    """A task or event with its owner and the account it touches (directly or via its deal)."""

    record_type: ClassVar[str] = "activity"
    activity: Activity
    index: FactIndex = attrs.field(repr=False, eq=False)

    @property
    def record(self) -> Activity:
        return self.activity

    @once
    def account(self) -> Account | None:
        index = self.index
        account_id = self.activity.account_id
        if account_id is None and self.activity.what_id in index.opportunities:
            account_id = index.opportunities[self.activity.what_id].account_id
        return index.accounts.get(account_id) if account_id else None

    @property
    def account_partner_of_record_id(self) -> str | None:
        """The account's partner of record; None when unset (an empty id is unset too)."""
        account = self.account
        return (account.partner_of_record_id or None) if account else None

    @property
    def activity_date(self) -> dt.date | None:
        """When the contact happened: its creation date, else its due date."""
        created = self.activity.created_at
        if created is not None:
            return self.index.org.local_date(created)
        return self.activity.due_date

    @property
    def days_ago(self) -> int | None:
        when = self.activity_date
        return (self.index.as_of - when).days if when else None

    def flat(self) -> dict[str, Any]:
        return _flat(self.activity, self, _ACTIVITY_DERIVED)

    def flat_value(self, name: str, default: Any = None) -> Any:
        """``self.flat().get(name, default)``, without building the whole dict."""
        return _flat_value(self.activity, self, _ACTIVITY_DERIVED, name, default)


RecordFacts = OpportunityFacts | LeadFacts | AccountFacts | ActivityFacts


def change_time(change: CloseDateChange) -> float:
    """Sort key for history: when the change was made (unknown times first, in file order)."""
    return change.changed_at.timestamp() if change.changed_at is not None else float("-inf")


def _value(member: Any) -> Any:
    return member.value if member is not None else None


#: A derived flat value: a function of a record's facts.
Derived = Callable[[Any], Any]

#: The derived values of each record type's flat facts, in ``flat()``'s order. ``flat()`` and
#: ``flat_value()`` both read these, so a value has one definition.
_OPPORTUNITY_DERIVED: dict[str, Derived] = {
    "is_open": lambda f: f.is_open,
    "is_channel_deal": lambda f: f.is_channel_deal,
    "channel_reasons": lambda f: list(f.channel_reasons),
    "owner_role": lambda f: _value(f.owner_role),
    "partner_status": lambda f: f.partner_status,
    "partner_tier": lambda f: f.partner.tier if f.partner else None,
    "account_partner_of_record_id": lambda f: f.account_partner_of_record_id,
    "lead_source": lambda f: f.lead.source if f.lead else None,
    "next_step_state": lambda f: f.next_step_state,
    "next_step_valid": lambda f: f.next_step_valid,
    "has_open_future_activity": lambda f: bool(f.open_future_activities),
    "stage_known": lambda f: f.stage_known,
    "stage_index": lambda f: f.stage_index,
    "stage_probability": lambda f: f.stage_probability,
    "locked": lambda f: f.locked,
    "close_date_pushes": lambda f: f.close_date_pushes,
    "days_in_stage": lambda f: f.days_in_stage,
    "days_to_close": lambda f: (
        (f.opportunity.close_date - f.as_of).days if f.opportunity.close_date else None
    ),
    "fiscal_quarter_end": lambda f: f.fiscal_quarter_end.isoformat(),
}
_LEAD_DERIVED: dict[str, Derived] = {
    "is_open": lambda f: f.is_open,
    "is_distributed": lambda f: f.is_distributed,
    "owner_role": lambda f: _value(f.owner_role),
    "partner_status": lambda f: f.partner_status,
    "business_days_since_distribution": lambda f: f.business_days_since_distribution,
    "business_days_to_accept": lambda f: f.business_days_to_accept,
    "business_days_to_follow_up": lambda f: f.business_days_to_follow_up,
}
_ACCOUNT_DERIVED: dict[str, Derived] = {
    "partner_status": lambda f: f.partner_status,
    "has_channel_deal": lambda f: f.has_channel_deal,
}
_ACTIVITY_DERIVED: dict[str, Derived] = {
    "owner_role": lambda f: _value(f.owner_role),
    "account_partner_of_record_id": lambda f: f.account_partner_of_record_id,
    "days_ago": lambda f: f.days_ago,
}


def _flat(record: Any, facts: Any, derived: dict[str, Derived]) -> dict[str, Any]:
    """One flat JSON-ready dict: the record's fields and extras, then the derived values."""
    out = make_bulk_unstructure(type(record))(record)
    out["record_id"] = out.pop("id", None)
    for name, value in derived.items():
        out[name] = value(facts)
    return out


_ABSENT: Any = object()


def _flat_value(
    record: Any, facts: Any, derived: dict[str, Derived], name: str, default: Any = None
) -> Any:
    """``_flat(record, facts, derived).get(name, default)``, computing that one value only.

    Same precedence as ``_flat``: a derived value, else (``record_id`` being the record's
    ``id``, and ``id`` itself absent) a CRM extra, else the record's field as JSON.
    """
    value = derived.get(name)
    if value is not None:
        return value(facts)
    if name == "id":
        return default
    key = "id" if name == "record_id" else name
    found = record.extra.get(key, _ABSENT)
    if found is not _ABSENT:
        return found
    if key not in _field_names(type(record)):
        return None if name == "record_id" else default
    found = getattr(record, key)
    return found if type(found) in _PLAIN else unstructure_value(found)


_PLAIN = (str, bool, int, float, type(None))
_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = frozenset(f.name for f in attrs.fields(cls) if f.name != "extra")
        _FIELD_NAMES[cls] = names
    return names


class FlatValues(Protocol):
    """What a declarative backend reads a record's flat facts through: a dict, or a FlatView."""

    def get(self, name: str, /) -> Any: ...


class FlatView(Mapping[str, Any]):
    """A record's ``flat()`` facts, each value computed when first read and then kept.

    What declarative backends test and render a record with: a pack reads a few fields, and
    building the whole ``flat()`` dict for every record costs more than the rules. Iterating
    or sizing it builds the whole dict.
    """

    __slots__ = ("_facts", "_values")

    def __init__(self, facts: RecordFacts) -> None:
        self._facts = facts
        self._values: dict[str, Any] = {}

    def _lookup(self, name: str) -> Any:
        values = self._values
        if name in values:
            return values[name]
        value = values[name] = self._facts.flat_value(name, _ABSENT)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        value = self._lookup(name)
        return default if value is _ABSENT else value

    def __getitem__(self, name: str) -> Any:
        value = self._lookup(name)
        if value is _ABSENT:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not _ABSENT

    def __iter__(self) -> Iterator[str]:
        return iter(self._facts.flat())

    def __len__(self) -> int:
        return len(self._facts.flat())
