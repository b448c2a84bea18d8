#!/usr/bin/env python3
"""A plain-Python, single-pass evaluator of the whole ``tsos`` pack: the benchmark's baseline.

    python bench/baseline.py SNAPSHOT.json [--as-of YYYY-MM-DD] [--include-info]

It is what a competent engineer would write by hand to answer "which records break the
doctrine?" over one snapshot file, without the engine: ``json.load`` the file, build dicts by
id in one pass over each collection, then judge every record straight from those dicts. It
imports nothing from ``tsos_rules`` (so import time is not part of its cost) and validates
nothing beyond what the rules read. It covers all 13 rules of the built-in ``tsos`` pack with
their default parameters and the default org settings (the stage ladder of DOCTRINE.md, lock
stage ``date_locked``, fiscal year from January, time zone UTC, no holidays), and its counts
per rule and reason match ``tsos-rules check --include-info`` (``bench_check.py`` checks this
before it times anything):

- tsos.channel-lead-not-direct (no_partner / marked_direct / direct_owner), open channel deals;
  a direct owner with a recorded consent (``by`` and ``at`` both set) is an ``info`` finding,
  direct_owner_with_consent, counted only with ``--include-info``;
- tsos.direct-rep-on-channel-deal (direct_rep_on_team), open channel deals;
- tsos.partner-of-record-required (missing / unknown_partner / terminated_partner) for channel
  deals (open and closed; the deal's partner, else its account's), unconverted channel leads
  (partner set, a partner source, or distributed; converted leads are history), and accounts
  that have a channel deal;
- tsos.partner-of-record-drift (partner_differs), open and closed deals;
- tsos.next-step-required (placeholder / missing / past_due, cured by an open activity due
  today or later), open deals;
- tsos.close-date-locked (missing / in_past / moved_unapproved), open deals; locking is judged
  from the stage and forecast category recorded on each change, else the deal's current ones,
  and an unapproved move later undone (a later change puts the date back) is cured; the undo
  (a restoration: back to where an earlier locked, unapproved move took the date from) is no
  move, and cures every move since that earlier move too;
- tsos.close-date-slipping (pushed_repeatedly: pushed later 3 or more times, restorations
  not counted), open deals;
- tsos.commit-integrity (close_date_invalid / beyond_quarter / no_next_step / stage_too_early);
- tsos.stage-probability-consistent (unknown_stage / probability_mismatch, tolerance 10);
- tsos.lead-outcome-recorded (no_outcome), qualified or closed leads;
- tsos.partner-lead-followup (not_accepted in 2 / no_followup in 5 business days), open
  distributed leads;
- tsos.lead-single-owner (multiple_owners / partner_and_direct), open leads and open deals
  grouped by company (same account or same normalised company name; a name that normalises
  to nothing gives no name key);
- tsos.partner-told-of-direct-contact (partner_not_notified), activities of the last 14 days on
  accounts with a partner of record (an empty id is no partner of record).

"Today" is the file's ``as_of`` (or ``--as-of``, else today in UTC). Prints one JSON object:
findings per rule and per reason, the record count, and the load / evaluate seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections import Counter
from typing import Any

# -- default org settings (OrgProfile) and pack parameters ---------------------------------

STAGE_PROBABILITY = {
    "mql": 20,
    "business_driver": 40,
    "sql": 40,
    "engagement": 40,
    "single_sales_opportunity": 40,
    "date_locked": 40,
    "draft_proposal": 60,
    "trial_close": 65,
    "closing": 80,
    "commitment": 90,
    "closed_won": 100,
    "closed_lost": 0,
}
STAGE_INDEX = {stage: index for index, stage in enumerate(STAGE_PROBABILITY)}
LOCK_INDEX = STAGE_INDEX["date_locked"]
PARTNER_SOURCES = frozenset({"partner", "partner_referral", "partner_url", "deal_registration"})
QUALIFIED_LEAD_STATUSES = frozenset({"qualified", "closed"})
CLOSED_LEAD_STATUSES = frozenset({"qualified", "closed", "converted", "disqualified"})
FISCAL_YEAR_START_MONTH = 1
ORG_TZ = dt.UTC
HOLIDAYS: tuple[dt.date, ...] = ()
_NON_ALNUM = re.compile(r"[\W_]+")
PLACEHOLDER_KEYS = frozenset(
    _NON_ALNUM.sub("", p.casefold())
    for p in ("tbd", "n/a", "none", "-", "?", "follow up", "followup")
)
_LEGAL_SUFFIXES = re.compile(
    r"\b(inc|incorporated|llc|ltd|limited|corp|corporation|co|company|gmbh|ag|sa|plc|bv|nv)\b\.?"
)

PROBABILITY_TOLERANCE = 10
SLIP_COUNT = 3
ACCEPTANCE_BUSINESS_DAYS = 2
FOLLOWUP_BUSINESS_DAYS = 5
DIRECT_CONTACT_DAYS = 14
COMMIT_MIN_PROBABILITY = 80

CHANNEL = "tsos.channel-lead-not-direct"
DIRECT_REP = "tsos.direct-rep-on-channel-deal"
POR = "tsos.partner-of-record-required"
DRIFT = "tsos.partner-of-record-drift"
NEXT_STEP = "tsos.next-step-required"
CLOSE_DATE = "tsos.close-date-locked"
SLIPPING = "tsos.close-date-slipping"
COMMIT = "tsos.commit-integrity"
STAGE_PROB = "tsos.stage-probability-consistent"
LEAD_OUTCOME = "tsos.lead-outcome-recorded"
LEAD_FOLLOWUP = "tsos.partner-lead-followup"
SINGLE_OWNER = "tsos.lead-single-owner"
TOLD_PARTNER = "tsos.partner-told-of-direct-contact"
RULES = tuple(
    sorted(
        (
            CHANNEL,
            DIRECT_REP,
            POR,
            DRIFT,
            NEXT_STEP,
            CLOSE_DATE,
            SLIPPING,
            COMMIT,
            STAGE_PROB,
            LEAD_OUTCOME,
            LEAD_FOLLOWUP,
            SINGLE_OWNER,
            TOLD_PARTNER,
        )
    )
)
COLLECTIONS = ("users", "partners", "accounts", "leads", "opportunities", "activities")


def quarter_end(day: dt.date, start_month: int = FISCAL_YEAR_START_MONTH) -> dt.date:
    months_into_quarter = (day.month - start_month) % 3
    next_start = day.year * 12 + day.month - 1 - months_into_quarter + 3
    return dt.date(next_start // 12, next_start % 12 + 1, 1) - dt.timedelta(days=1)


def business_days_between(start: dt.date, end: dt.date) -> int:
    """Mon-Fri days after ``start`` up to and including ``end``, less holidays."""
    if end <= start:
        return 0
    weeks, rest = divmod((end - start).days, 7)
    count = weeks * 5
    weekday = start.weekday()
    for offset in range(1, rest + 1):
        if (weekday + offset) % 7 < 5:
            count += 1
    return count - sum(1 for h in HOLIDAYS if start < h <= end and h.weekday() < 5)


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _local_date(stamp: str) -> dt.date:
    """The calendar date of an ISO timestamp (with offset) in the org's time zone."""
    return dt.datetime.fromisoformat(stamp).astimezone(ORG_TZ).date()


def _change_time(change: dict[str, Any]) -> float:
    stamp = change.get("changed_at")
    return dt.datetime.fromisoformat(stamp).timestamp() if stamp is not None else float("-inf")


def company_key(name: str) -> str:
    """Case, punctuation and legal suffixes ignored: "Acme, Inc." and "ACME" are one company."""
    lowered = name.casefold().replace("&", " and ")
    return _NON_ALNUM.sub("", _LEGAL_SUFFIXES.sub(" ", lowered))


def por_problem(partner_id: Any, partner_status: dict[str, Any]) -> str | None:
    """Why a partner of record is not good: missing, unknown_partner, terminated_partner."""
    if not partner_id:
        return "missing"
    status = partner_status.get(partner_id)
    if status is None:
        return "unknown_partner"
    if status == "terminated":
        return "terminated_partner"
    return None


def _locked_at(change: dict[str, Any], deal: dict[str, Any]) -> bool:
    """Was the deal at or beyond the lock stage, or in commit, when this change was made?"""
    stage = change.get("stage")
    if stage is None:
        stage = deal.get("stage")
    forecast = change.get("forecast_category")
    if forecast is None:
        forecast = deal.get("forecast_category")
    return STAGE_INDEX.get(stage, -1) >= LOCK_INDEX or forecast == "commit"


def judge_history(changes: list[dict[str, Any]], deal: dict[str, Any]) -> tuple[bool, int]:
    """(a locked, unapproved move that is not cured?, pushes later that were restorations).

    In time order: a move is cured when a later change puts the date back where it took it
    from. A change that puts the date back where an earlier locked, unapproved move (not itself
    a restoration, not already cured by one) took it from is a restoration: neither a move nor
    a push, and it also cures every move made since that earlier move.
    """
    ordered = sorted(changes, key=_change_time)  # stable: unknown times first, in file order
    moved_from: dict[str, int] = {}  # date -> position of the latest bad move away from it
    cured: set[int] = set()
    uncured: list[int] = []
    restoration_pushes = 0
    for position, change in enumerate(ordered):
        old, new = change.get("old"), change.get("new")
        start = moved_from.get(new) if new is not None and old != new else None
        if start is not None:
            cured.update(range(start + 1, position))
            # Those moves are cured now: none of them can be restored to any more.
            moved_from = {day: at for day, at in moved_from.items() if at < start}
            if old is not None and new > old:  # ISO dates compare as strings
                restoration_pushes += 1
            continue
        if old is None or new is None or old == new or change.get("approved_by"):
            continue
        if not _locked_at(change, deal):
            continue
        moved_from[old] = position
        if not any(later.get("new") == old for later in ordered[position + 1 :]):
            uncured.append(position)
    return any(position not in cured for position in uncured), restoration_pushes


class Companies:
    """Union-find over company keys: records sharing an account or a name are one company."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, key: tuple[str, str]) -> tuple[str, str]:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grandparent = self.parent[parent]
            self.parent[key] = grandparent
            key, parent = parent, grandparent
        return key

    def join(self, keys: list[tuple[str, str]]) -> None:
        root = self.find(keys[0])
        for key in keys[1:]:
            other = self.find(key)
            if other != root:
                self.parent[other] = root


def evaluate(
    data: dict[str, Any], as_of: dt.date, *, include_info: bool = False
) -> Counter[tuple[str, str]]:
    """Findings counted by (rule, reason)."""
    today = as_of.isoformat()
    found: Counter[tuple[str, str]] = Counter()
    role = {u["id"]: u.get("role", "other") for u in data.get("users") or ()}
    partner_status = {p["id"]: p.get("status", "active") for p in data.get("partners") or ()}
    accounts = {a["id"]: a for a in data.get("accounts") or ()}
    leads = {lead["id"]: lead for lead in data.get("leads") or ()}
    lead_of_deal = {
        lead["converted_opportunity_id"]: lead
        for lead in leads.values()
        if lead.get("converted_opportunity_id")
    }
    deals = {o["id"]: o for o in data.get("opportunities") or ()}

    # Close-date history: pushes later per deal, and the whole history of the deals that have
    # a locked, unapproved move (only those can need the "was it undone later?" check, and only
    # those can have restorations, which are not pushes).
    history = data.get("close_date_changes") or ()
    pushes: Counter[str] = Counter()
    suspect_history: dict[str, list[dict[str, Any]]] = {}
    for change in history:
        old, new = change.get("old"), change.get("new")
        if old is None or new is None or old == new:
            continue
        deal_id = change["opportunity_id"]
        if new > old:  # ISO dates compare as strings
            pushes[deal_id] += 1
        deal = deals.get(deal_id)
        if deal is not None and not change.get("approved_by") and _locked_at(change, deal):
            suspect_history[deal_id] = []
    if suspect_history:
        for change in history:
            changes = suspect_history.get(change["opportunity_id"])
            if changes is not None:
                changes.append(change)

    placeholders: dict[str, bool] = {}  # next-step texts repeat: normalise each one once

    def is_placeholder(text: str) -> bool:
        known = placeholders.get(text)
        if known is None:
            known = placeholders[text] = _NON_ALNUM.sub("", text.casefold()) in PLACEHOLDER_KEYS
        return known

    company_keys: dict[str, str] = {}  # company name -> its key, each name normalised once

    def keys_of(record: dict[str, Any], company: str | None) -> list[tuple[str, str]]:
        """A record's company keys: its account, and its account's name or its own company."""
        keys = []
        account_id = record.get("account_id")
        account = accounts.get(account_id) if account_id else None
        if account_id:
            keys.append(("account", account_id))
        name = account.get("name") if account is not None else None
        if not name:
            name = company
        if name:
            key = company_keys.get(name)
            if key is None:
                key = company_keys[name] = company_key(name)
            if key:  # a name that normalises to nothing ("Inc.", "-") names no company
                keys.append(("name", key))
        return keys

    companies = Companies()
    # (first company key, owner, worked through a partner) of every open lead and open deal.
    company_members: list[tuple[tuple[str, str], Any, bool]] = []

    # -- activities: next-step cures and direct contact with a partner's customer ---------
    cured: set[str] = set()
    contact_since = as_of - dt.timedelta(days=DIRECT_CONTACT_DAYS)
    for activity in data.get("activities") or ():
        what = activity.get("what_id")
        if activity.get("status") == "open" and what:
            due = activity.get("due_date")
            if due is not None and due >= today:  # ISO dates compare as strings
                cured.add(what)
        if activity.get("partner_notified"):
            continue
        owner_id = activity.get("owner_id")
        owner_role = role.get(owner_id) if owner_id else None
        if owner_role is None or owner_role == "partner":
            continue
        account_id = activity.get("account_id")
        if account_id is None and what in deals:
            account_id = deals[what].get("account_id")
        account = accounts.get(account_id) if account_id else None
        if account is None or not account.get("partner_of_record_id"):  # "" is unset too
            continue
        created = activity.get("created_at")
        when = _local_date(created) if created is not None else _date(activity.get("due_date"))
        if when is not None and contact_since <= when <= as_of:
            found[TOLD_PARTNER, "partner_not_notified"] += 1

    # -- leads -----------------------------------------------------------------------------
    for lead in leads.values():
        status = lead.get("status")
        if status in QUALIFIED_LEAD_STATUSES and lead.get("outcome") is None:
            found[LEAD_OUTCOME, "no_outcome"] += 1
        partner_id = lead.get("partner_id")
        distributed = lead.get("distributed_at")
        converted = lead.get("converted_opportunity_id")
        if not converted and (
            distributed is not None or bool(partner_id) or lead.get("source") in PARTNER_SOURCES
        ):
            problem = por_problem(partner_id, partner_status)
            if problem:
                found[POR, problem] += 1
        is_open = not converted and ((status or "open") not in CLOSED_LEAD_STATUSES)
        if not is_open:
            continue
        if distributed is not None and partner_id:
            start = _local_date(distributed)
            elapsed = business_days_between(start, as_of)
            for field, window, reason in (
                ("accepted_at", ACCEPTANCE_BUSINESS_DAYS, "not_accepted"),
                ("followed_up_at", FOLLOWUP_BUSINESS_DAYS, "no_followup"),
            ):
                done = lead.get(field)
                days = elapsed if done is None else business_days_between(start, _local_date(done))
                if days > window:
                    found[LEAD_FOLLOWUP, reason] += 1
        keys = keys_of(lead, lead.get("company"))
        if keys:
            companies.join(keys)
            company_members.append((keys[0], lead.get("owner_id"), bool(partner_id)))

    # -- opportunities -----------------------------------------------------------------------
    channel_accounts: set[str] = set()
    quarter_last = quarter_end(as_of)
    for deal_id, deal in deals.items():
        stage = deal.get("stage")
        default = STAGE_PROBABILITY.get(stage) if stage is not None else None
        probability = deal.get("probability")
        if default is None:
            found[STAGE_PROB, "unknown_stage"] += 1
        elif probability is not None and abs(probability - default) > PROBABILITY_TOLERANCE:
            found[STAGE_PROB, "probability_mismatch"] += 1

        lead_id = deal.get("lead_id")
        lead = leads[lead_id] if lead_id and lead_id in leads else lead_of_deal.get(deal_id)
        account_id = deal.get("account_id")
        account = accounts.get(account_id) if account_id else None
        por = account.get("partner_of_record_id") if account is not None else None
        partner_id = deal.get("partner_id")
        channel = deal.get("channel")
        is_channel = (
            (
                lead is not None
                and (bool(lead.get("partner_id")) or lead.get("source") in PARTNER_SOURCES)
            )
            or bool(por)
            or channel == "partner"
        )
        if is_channel:
            if account_id:
                channel_accounts.add(account_id)
            problem = por_problem(partner_id or por, partner_status)
            if problem:
                found[POR, problem] += 1
        if partner_id and por and partner_id != por and not deal.get("partner_override_reason"):
            found[DRIFT, "partner_differs"] += 1

        if deal.get("is_closed"):
            continue
        if is_channel:
            if not partner_id:
                found[CHANNEL, "no_partner"] += 1
            if channel == "direct":
                found[CHANNEL, "marked_direct"] += 1
            if role.get(deal.get("owner_id")) == "direct":
                consent = deal.get("partner_consent")
                if consent is None or not consent.get("by") or consent.get("at") is None:
                    found[CHANNEL, "direct_owner"] += 1
                elif include_info:
                    found[CHANNEL, "direct_owner_with_consent"] += 1
            if any(role.get(uid) == "direct" for uid in deal.get("team_user_ids") or ()):
                found[DIRECT_REP, "direct_rep_on_team"] += 1

        text = deal.get("next_step")
        step_date = _date(deal.get("next_step_date"))
        if text and text.strip() and is_placeholder(text):
            state = "placeholder"
        elif not text or not text.strip() or step_date is None:
            state = "missing"
        elif step_date < as_of:
            state = "past_due"
        else:
            state = "ok"
        next_step_valid = state == "ok" or deal_id in cured
        if not next_step_valid:
            found[NEXT_STEP, state] += 1

        close = _date(deal.get("close_date"))
        if close is None:
            found[CLOSE_DATE, "missing"] += 1
        elif close < as_of:
            found[CLOSE_DATE, "in_past"] += 1
        moved_unapproved, restoration_pushes = (
            judge_history(suspect_history[deal_id], deal)
            if deal_id in suspect_history
            else (False, 0)
        )
        if moved_unapproved:
            found[CLOSE_DATE, "moved_unapproved"] += 1
        if pushes[deal_id] - restoration_pushes >= SLIP_COUNT:
            found[SLIPPING, "pushed_repeatedly"] += 1

        if deal.get("forecast_category") == "commit":
            if close is None or close < as_of:
                found[COMMIT, "close_date_invalid"] += 1
            elif close > quarter_last:
                found[COMMIT, "beyond_quarter"] += 1
            if not next_step_valid:
                found[COMMIT, "no_next_step"] += 1
            if default is None or default < COMMIT_MIN_PROBABILITY:
                found[COMMIT, "stage_too_early"] += 1

        keys = keys_of(deal, None)
        if keys:
            companies.join(keys)
            via_partner = bool(partner_id) or channel == "partner"
            company_members.append((keys[0], deal.get("owner_id"), via_partner))

    # -- accounts that have a channel deal name an active partner of record -----------------
    for account_id, account in accounts.items():
        if account_id in channel_accounts:
            problem = por_problem(account.get("partner_of_record_id"), partner_status)
            if problem:
                found[POR, problem] += 1

    # -- one owner per company: each member of a conflicting group is a finding -------------
    groups: dict[tuple[str, str], list[tuple[tuple[str, str], Any, bool]]] = {}
    for member in company_members:
        groups.setdefault(companies.find(member[0]), []).append(member)
    for members in groups.values():
        if len(members) < 2:
            continue
        if len({owner_id for _, owner_id, _ in members if owner_id}) > 1:
            found[SINGLE_OWNER, "multiple_owners"] += len(members)
        elif len({via_partner for _, _, via_partner in members}) > 1:
            found[SINGLE_OWNER, "partner_and_direct"] += len(members)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="snapshot JSON file (docs/contract.md)")
    parser.add_argument("--as-of", help="evaluation date YYYY-MM-DD (default: the file's as_of)")
    parser.add_argument("--include-info", action="store_true", help="also count info findings")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with open(args.file, encoding="utf-8") as handle:
        data = json.load(handle)
    loaded = time.perf_counter()
    as_of_text = args.as_of or data.get("as_of")
    as_of = dt.date.fromisoformat(as_of_text) if as_of_text else dt.datetime.now(ORG_TZ).date()
    found = evaluate(data, as_of, include_info=args.include_info)
    finished = time.perf_counter()

    by_rule: dict[str, int] = dict.fromkeys(RULES, 0)
    by_reason: dict[str, dict[str, int]] = {rule: {} for rule in RULES}
    for (rule, reason), count in sorted(found.items()):
        by_rule[rule] += count
        by_reason[rule][reason] = count
    result = {
        "file": args.file,
        "as_of": as_of.isoformat(),
        "records": sum(len(data.get(name) or ()) for name in COLLECTIONS),
        "findings": sum(by_rule.values()),
        "by_rule": by_rule,
        "by_reason": by_reason,
        "seconds": {"load": round(loaded - started, 3), "evaluate": round(finished - loaded, 3)},
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
