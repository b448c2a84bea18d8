"""Small snapshot builders in CONTRACT.md's JSON shape, and helpers to run the doctrine on them.

Every builder returns a plain dict with clean defaults: a snapshot built only from defaults
produces no finding at all (``tests/test_engine.py`` proves it), so each test states only the
fields that make its case.

The evaluation date is Tuesday 2026-11-24 (``AS_OF``); ``day(n)`` is a date ``n`` days from it
and ``at(n)`` a timestamp at 10:00 UTC on that day.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tsos_rules
from tsos_rules.engine import Engine, filter_severity
from tsos_rules.findings import Finding, Findings
from tsos_rules.snapshot.document import snapshot_from_dict

TODAY = dt.date(2026, 11, 24)  # a Tuesday
AS_OF = TODAY.isoformat()


def day(offset: int = 0, *, base: dt.date = TODAY) -> str:
    """The date ``offset`` days after ``base`` (before it when negative), as YYYY-MM-DD."""
    return (base + dt.timedelta(days=offset)).isoformat()


def at(offset: int = 0, *, hour: int = 10, base: dt.date = TODAY, tz: str = "+00:00") -> str:
    """A timestamp ``offset`` days after ``base`` at ``hour``:00 with offset ``tz``."""
    return f"{day(offset, base=base)}T{hour:02d}:00:00{tz}"


def _with(defaults: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    out.update(overrides)
    return out


def user(id: str = "u1", role: str = "channel", **overrides: Any) -> dict[str, Any]:
    return _with({"id": id, "name": f"User {id}", "role": role}, overrides)


def partner(id: str = "p1", **overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": id,
            "name": f"Partner {id}",
            "status": "active",
            "tier": "premier",
            "credit_limit": 250000,
            "fiscal_year_start_month": 1,
        },
        overrides,
    )


def account(id: str = "a1", **overrides: Any) -> dict[str, Any]:
    return _with({"id": id, "name": "Boeing", "partner_of_record_id": None}, overrides)


def lead(id: str = "l1", **overrides: Any) -> dict[str, Any]:
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
        overrides,
    )


def deal(id: str = "o1", **overrides: Any) -> dict[str, Any]:
    """An open, direct-sourced deal with no account, a real next step and a sound close date."""
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
        overrides,
    )


def closed_deal(id: str = "o1", *, won: bool = True, **overrides: Any) -> dict[str, Any]:
    """A closed deal: stage, probability and forecast consistent with the outcome."""
    values: dict[str, Any] = {
        "stage": "closed_won" if won else "closed_lost",
        "probability": 100 if won else 0,
        "forecast_category": "closed",
        "is_closed": True,
        "is_won": won,
        "close_date": day(-10),
        "next_step": None,
        "next_step_date": None,
    }
    values.update(overrides)
    return deal(id, **values)


def channel_deal(id: str = "o1", **overrides: Any) -> dict[str, Any]:
    """A clean channel deal: on account a1 (partner of record p1), with partner p1."""
    values: dict[str, Any] = {"account_id": "a1", "partner_id": "p1", "channel": "partner"}
    values.update(overrides)
    return deal(id, **values)


def channel_account(id: str = "a1", **overrides: Any) -> dict[str, Any]:
    """An account whose partner of record is p1."""
    values: dict[str, Any] = {"partner_of_record_id": "p1"}
    values.update(overrides)
    return account(id, **values)


def consent(**overrides: Any) -> dict[str, Any]:
    return _with(
        {"by": "Sam at Partner p1", "at": at(-2), "reason": "credit_limit", "note": "On hold"},
        overrides,
    )


def change(opportunity_id: str = "o1", **overrides: Any) -> dict[str, Any]:
    """A close-date move one week later, made three days ago, not approved, stage not recorded."""
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
        overrides,
    )


def activity(id: str = "t1", **overrides: Any) -> dict[str, Any]:
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
        overrides,
    )


DEFAULT_USERS = (user("u1", "channel"), user("u2", "channel"), user("d1", "direct"))
DEFAULT_PARTNERS = (partner("p1"),)


def snapshot(
    *,
    as_of: str | None = AS_OF,
    users: Iterable[dict[str, Any]] | None = None,
    partners: Iterable[dict[str, Any]] | None = None,
    accounts: Iterable[dict[str, Any]] = (),
    leads: Iterable[dict[str, Any]] = (),
    opportunities: Iterable[dict[str, Any]] = (),
    close_date_changes: Iterable[dict[str, Any]] = (),
    activities: Iterable[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A snapshot document; users u1, u2 (channel), d1 (direct) and partner p1 by default."""
    out: dict[str, Any] = {}
    if as_of is not None:
        out["as_of"] = as_of
    out.update(
        users=[dict(u) for u in (DEFAULT_USERS if users is None else users)],
        partners=[dict(p) for p in (DEFAULT_PARTNERS if partners is None else partners)],
        accounts=list(accounts),
        leads=list(leads),
        opportunities=list(opportunities),
        close_date_changes=list(close_date_changes),
        activities=list(activities),
    )
    out.update(extra)
    return out


# -- running the doctrine -------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def _engine(config: Mapping[str, Any] | None) -> Engine:
    """One engine per distinct config dict, built the way ``tsos_rules.check`` builds it.

    ``check`` discovers plugins on every call, which costs far more than judging a small
    snapshot; reusing the engine keeps the suite fast while running the same evaluation.
    """
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _ENGINES:
        _ENGINES[key] = Engine.from_config(config)
    return _ENGINES[key]


def evaluate(
    snap: Mapping[str, Any],
    *,
    as_of: str | dt.date | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    include_info: bool = False,
) -> Findings:
    """What ``tsos_rules.check(snap, ...)`` returns (``tests/test_engine.py`` checks they agree)."""
    if config is not None and not isinstance(config, Mapping):
        return tsos_rules.check(snap, as_of=as_of, config=config, include_info=include_info)
    model, _ = snapshot_from_dict(snap)
    day_ = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    result = _engine(config).evaluate(model, day_)
    return filter_severity(result, include_info=include_info)


def findings(snap: Mapping[str, Any], **kwargs: Any) -> list[Finding]:
    """Every finding on ``snap``, in report order."""
    return list(evaluate(snap, **kwargs))


def found(snap: Mapping[str, Any], rule: str, **kwargs: Any) -> set[tuple[str, str, str]]:
    """``{(record_id, reason, severity)}`` of one rule's findings on ``snap``."""
    return {
        (f.record_id, f.reason, f.severity.value)
        for f in evaluate(snap, **kwargs)
        if f.rule == rule
    }


def reasons(snap: Mapping[str, Any], rule: str, record_id: str = "o1", **kwargs: Any) -> set[str]:
    """The reasons ``rule`` gives against one record."""
    return {
        f.reason for f in evaluate(snap, **kwargs) if f.rule == rule and f.record_id == record_id
    }


def only(snap: Mapping[str, Any], rule: str, **kwargs: Any) -> Finding:
    """The single finding of ``rule`` on ``snap`` (fails when there are none or several)."""
    hits = [f for f in evaluate(snap, **kwargs) if f.rule == rule]
    assert len(hits) == 1, [(f.record_id, f.reason) for f in hits]
    return hits[0]
