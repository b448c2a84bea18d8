"""Snapshot builders: write a rule test in a few lines.

Every builder returns a plain dict in docs/contract.md's snapshot JSON shape, with clean defaults:
a snapshot built only from defaults makes no rule of the built-in ``tsos`` pack fire. A test
states only the fields that make its case; any keyword that is not a model field becomes an
*extra* field, which is how CRM-specific data reaches third-party rules
(``record.extra["discount_percent"]``)::

    from tsos_rules.testing import channel_deal, evaluate, snapshot

    snap = snapshot(opportunities=[channel_deal(amount=300_000, discount_percent=12)])
    findings = evaluate(MY_PACK, snap)

The evaluation date is Tuesday 2026-11-24 (:data:`TODAY`, :data:`AS_OF`); :func:`day` gives a
date ``n`` days from it and :func:`at` a timestamp on that day, so tests never depend on the
real clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import snapshot_from_dict

__all__ = [
    "AS_OF",
    "TODAY",
    "account",
    "activity",
    "at",
    "change",
    "channel_account",
    "channel_deal",
    "closed_deal",
    "consent",
    "day",
    "deal",
    "lead",
    "partner",
    "snapshot",
    "to_snapshot",
    "user",
]

Doc = dict[str, Any]

#: The evaluation date of every builder snapshot: a Tuesday, in the vendor's fiscal Q4.
TODAY = dt.date(2026, 11, 24)
#: :data:`TODAY` as ``YYYY-MM-DD``.
AS_OF = TODAY.isoformat()


def day(offset: int = 0, *, base: dt.date = TODAY) -> str:
    """The date ``offset`` days after ``base`` (before it when negative), as ``YYYY-MM-DD``."""
    return (base + dt.timedelta(days=offset)).isoformat()


def at(offset: int = 0, *, hour: int = 10, base: dt.date = TODAY, tz: str = "+00:00") -> str:
    """An ISO 8601 timestamp ``offset`` days after ``base`` at ``hour``:00 with offset ``tz``."""
    return f"{day(offset, base=base)}T{hour:02d}:00:00{tz}"


def _with(defaults: Doc, overrides: Mapping[str, Any]) -> Doc:
    out = dict(defaults)
    out.update(overrides)
    return out


def user(id: str = "u1", role: str = "channel", **fields: Any) -> Doc:
    """A CRM user; ``role`` is ``direct``, ``channel``, ``partner`` or ``other``."""
    return _with({"id": id, "name": f"User {id}", "role": role}, fields)


def partner(id: str = "p1", **fields: Any) -> Doc:
    """An active ``premier`` partner with a 250,000 credit limit and a calendar fiscal year."""
    return _with(
        {
            "id": id,
            "name": f"Partner {id}",
            "status": "active",
            "tier": "premier",
            "credit_limit": 250000,
            "fiscal_year_start_month": 1,
        },
        fields,
    )


def account(id: str = "a1", **fields: Any) -> Doc:
    """A customer account with no partner of record."""
    return _with({"id": id, "name": f"Customer {id}", "partner_of_record_id": None}, fields)


def channel_account(id: str = "a1", **fields: Any) -> Doc:
    """An account whose partner of record is ``p1``."""
    return account(id, **_with({"partner_of_record_id": "p1"}, fields))


def lead(id: str = "l1", **fields: Any) -> Doc:
    """An open, undistributed web lead for a company nobody else works."""
    return _with(
        {
            "id": id,
            "company": f"Company of {id}",
            "account_id": None,
            "owner_id": "u1",
            "partner_id": None,
            "source": "web",
            "status": "open",
            "outcome": None,
            "distributed_at": None,
            "accepted_at": None,
            "followed_up_at": None,
            "converted_opportunity_id": None,
        },
        fields,
    )


def deal(id: str = "o1", **fields: Any) -> Doc:
    """An open direct deal, no account, a real dated next step, a close date in 30 days."""
    return _with(
        {
            "id": id,
            "name": f"Deal {id}",
            "account_id": None,
            "owner_id": "u1",
            "partner_id": None,
            "lead_id": None,
            "channel": None,
            "stage": "engagement",
            "probability": 40,
            "amount": 10000,
            "close_date": day(30),
            "forecast_category": "pipeline",
            "is_closed": False,
            "is_won": False,
            "next_step": "Demo for the CFO",
            "next_step_date": day(3),
            "partner_consent": None,
            "team_user_ids": [],
            "stage_changed_at": at(-5),
        },
        fields,
    )


def channel_deal(id: str = "o1", **fields: Any) -> Doc:
    """A clean channel deal: on account ``a1`` (partner of record ``p1``), with partner ``p1``.

    Add :func:`channel_account` to the snapshot's accounts for a fully consistent picture.
    """
    return deal(id, **_with({"account_id": "a1", "partner_id": "p1", "channel": "partner"}, fields))


def closed_deal(id: str = "o1", *, won: bool = True, **fields: Any) -> Doc:
    """A closed deal whose stage, probability and forecast agree with the outcome."""
    values: Doc = {
        "stage": "closed_won" if won else "closed_lost",
        "probability": 100 if won else 0,
        "forecast_category": "closed",
        "is_closed": True,
        "is_won": won,
        "close_date": day(-10),
        "next_step": None,
        "next_step_date": None,
    }
    return deal(id, **_with(values, fields))


def consent(**fields: Any) -> Doc:
    """A partner's recorded consent to serve the customer directly (reason ``credit_limit``)."""
    return _with(
        {"by": "Sam at Partner p1", "at": at(-2), "reason": "credit_limit", "note": "On hold"},
        fields,
    )


def change(opportunity_id: str = "o1", **fields: Any) -> Doc:
    """A close-date move one week later, made three days ago, unapproved, stage not recorded."""
    return _with(
        {
            "opportunity_id": opportunity_id,
            "old": day(23),
            "new": day(30),
            "changed_at": at(-3),
            "changed_by": "u1",
            "approved_by": None,
            "stage": None,
            "forecast_category": None,
        },
        fields,
    )


def activity(id: str = "t1", **fields: Any) -> Doc:
    """An open task on no deal and no account, due in two days, created yesterday."""
    return _with(
        {
            "id": id,
            "what_id": None,
            "account_id": None,
            "owner_id": "u1",
            "subject": f"Task {id}",
            "due_date": day(2),
            "status": "open",
            "partner_notified": False,
            "created_at": at(-1),
        },
        fields,
    )


#: The users and partners every :func:`snapshot` has unless told otherwise.
DEFAULT_USERS: tuple[Doc, ...] = (
    user("u1", "channel"),
    user("u2", "channel"),
    user("d1", "direct"),
)
DEFAULT_PARTNERS: tuple[Doc, ...] = (partner("p1"),)


def snapshot(
    *,
    as_of: str | None = AS_OF,
    users: Iterable[Mapping[str, Any]] | None = None,
    partners: Iterable[Mapping[str, Any]] | None = None,
    accounts: Iterable[Mapping[str, Any]] = (),
    leads: Iterable[Mapping[str, Any]] = (),
    opportunities: Iterable[Mapping[str, Any]] = (),
    close_date_changes: Iterable[Mapping[str, Any]] = (),
    activities: Iterable[Mapping[str, Any]] = (),
    **extra: Any,
) -> Doc:
    """A snapshot document: users ``u1``, ``u2`` (channel) and ``d1`` (direct) and partner
    ``p1`` unless ``users``/``partners`` are given; ``as_of`` is :data:`AS_OF`."""
    out: Doc = {}
    if as_of is not None:
        out["as_of"] = as_of
    out.update(
        users=[dict(u) for u in (DEFAULT_USERS if users is None else users)],
        partners=[dict(p) for p in (DEFAULT_PARTNERS if partners is None else partners)],
        accounts=[dict(a) for a in accounts],
        leads=[dict(x) for x in leads],
        opportunities=[dict(o) for o in opportunities],
        close_date_changes=[dict(c) for c in close_date_changes],
        activities=[dict(a) for a in activities],
    )
    out.update(extra)
    return out


def to_snapshot(document: Mapping[str, Any] | Snapshot) -> Snapshot:
    """A :class:`tsos_rules.Snapshot` from a builder document (strict: a bad record raises)."""
    if isinstance(document, Snapshot):
        return document
    built, _ = snapshot_from_dict(dict(document), source="<test snapshot>")
    return built
