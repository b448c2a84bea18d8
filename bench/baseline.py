#!/usr/bin/env python3
"""A plain-Python, single-pass evaluator of the core ``tsos`` rules: the benchmark's baseline.

    python bench/baseline.py SNAPSHOT.json [--as-of YYYY-MM-DD] [--include-info]

It is what a competent engineer would write by hand to answer "which deals break the doctrine?"
over one snapshot file, without the engine: ``json.load`` the file, build dicts by id in one
pass over each collection, then judge every opportunity straight from those dicts. It imports
nothing from ``tsos_rules`` (so import time is not part of its cost) and validates nothing
beyond what the rules read. The rule semantics follow DOCTRINE.md and the ``tsos`` pack, so
its counts match ``tsos-rules check`` for these rules:

- tsos.next-step-required (placeholder / missing / past_due, cured by an open activity due
  today or later), open deals;
- tsos.close-date-locked (missing / in_past / moved_unapproved, locking judged from the stage
  and forecast category recorded on each change, else the deal's current ones), open deals;
- tsos.channel-lead-not-direct (no_partner / marked_direct / direct_owner), open deals; the
  consented direct owner is an ``info`` finding, counted only with ``--include-info``;
- tsos.partner-of-record-required, opportunities only (missing / unknown_partner /
  terminated_partner), open and closed deals;
- tsos.stage-probability-consistent (unknown_stage / probability_mismatch, tolerance 10);
- tsos.commit-integrity (close_date_invalid / beyond_quarter / no_next_step / stage_too_early).

"Today" is the file's ``as_of`` (or ``--as-of``). Prints one JSON object: findings per rule
and per reason, the record count, and the load / evaluate seconds.
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
_NON_ALNUM = re.compile(r"[\W_]+")
PLACEHOLDER_KEYS = frozenset(
    _NON_ALNUM.sub("", p.casefold())
    for p in ("tbd", "n/a", "none", "-", "?", "follow up", "followup")
)
PROBABILITY_TOLERANCE = 10
COMMIT_MIN_PROBABILITY = 80
FISCAL_YEAR_START_MONTH = 1

NEXT_STEP = "tsos.next-step-required"
CLOSE_DATE = "tsos.close-date-locked"
CHANNEL = "tsos.channel-lead-not-direct"
POR = "tsos.partner-of-record-required"
STAGE_PROB = "tsos.stage-probability-consistent"
COMMIT = "tsos.commit-integrity"
RULES = (CHANNEL, CLOSE_DATE, COMMIT, NEXT_STEP, POR, STAGE_PROB)
COLLECTIONS = ("users", "partners", "accounts", "leads", "opportunities", "activities")


def quarter_end(day: dt.date, start_month: int = FISCAL_YEAR_START_MONTH) -> dt.date:
    months_into_quarter = (day.month - start_month) % 3
    next_start = day.year * 12 + day.month - 1 - months_into_quarter + 3
    return dt.date(next_start // 12, next_start % 12 + 1, 1) - dt.timedelta(days=1)


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def evaluate(
    data: dict[str, Any], as_of: dt.date, *, include_info: bool = False
) -> Counter[tuple[str, str]]:
    """Findings counted by (rule, reason)."""
    today = as_of.isoformat()
    role = {u["id"]: u.get("role") for u in data.get("users") or ()}
    partner_status = {p["id"]: p.get("status") or "active" for p in data.get("partners") or ()}
    account_por = {a["id"]: a.get("partner_of_record_id") for a in data.get("accounts") or ()}
    leads: dict[str, tuple[Any, Any]] = {}
    lead_of_deal: dict[str, tuple[Any, Any]] = {}
    for lead in data.get("leads") or ():
        facts = (lead.get("partner_id"), lead.get("source"))
        leads[lead["id"]] = facts
        converted = lead.get("converted_opportunity_id")
        if converted:
            lead_of_deal[converted] = facts
    deals = {o["id"]: o for o in data.get("opportunities") or ()}

    # Deals with an open activity due today or later (ISO dates compare as strings).
    cured: set[str] = set()
    for activity in data.get("activities") or ():
        due = activity.get("due_date")
        if activity.get("status") == "open" and due is not None and due >= today:
            what = activity.get("what_id")
            if what:
                cured.add(what)

    # Open deals with a close-date move made while locked and not approved.
    moved_unapproved: set[str] = set()
    for change in data.get("close_date_changes") or ():
        deal = deals.get(change["opportunity_id"])
        if deal is None or deal.get("is_closed"):
            continue
        old, new = change.get("old"), change.get("new")
        if old is None or new is None or old == new or change.get("approved_by"):
            continue
        stage = change.get("stage")
        if stage is None:
            stage = deal.get("stage")
        forecast = change.get("forecast_category")
        if forecast is None:
            forecast = deal.get("forecast_category")
        if STAGE_INDEX.get(stage, -1) >= LOCK_INDEX or forecast == "commit":
            moved_unapproved.add(deal["id"])

    found: Counter[tuple[str, str]] = Counter()
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
        por = account_por.get(deal.get("account_id") or "")
        partner_id = deal.get("partner_id")
        channel = deal.get("channel")
        is_channel = (
            (lead is not None and (bool(lead[0]) or lead[1] in PARTNER_SOURCES))
            or bool(por)
            or channel == "partner"
        )
        if is_channel:
            record_partner = partner_id or por
            if not record_partner:
                found[POR, "missing"] += 1
            else:
                status = partner_status.get(record_partner, "unknown")
                if status == "unknown":
                    found[POR, "unknown_partner"] += 1
                elif status == "terminated":
                    found[POR, "terminated_partner"] += 1

        if deal.get("is_closed"):
            continue
        if is_channel:
            if not partner_id:
                found[CHANNEL, "no_partner"] += 1
            if channel == "direct":
                found[CHANNEL, "marked_direct"] += 1
            if role.get(deal.get("owner_id")) == "direct":
                if deal.get("partner_consent") is None:
                    found[CHANNEL, "direct_owner"] += 1
                elif include_info:
                    found[CHANNEL, "direct_owner_with_consent"] += 1

        text = deal.get("next_step")
        step_date = _date(deal.get("next_step_date"))
        if text and text.strip() and _NON_ALNUM.sub("", text.casefold()) in PLACEHOLDER_KEYS:
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
        if deal_id in moved_unapproved:
            found[CLOSE_DATE, "moved_unapproved"] += 1

        if deal.get("forecast_category") == "commit":
            if close is None or close < as_of:
                found[COMMIT, "close_date_invalid"] += 1
            elif close > quarter_last:
                found[COMMIT, "beyond_quarter"] += 1
            if not next_step_valid:
                found[COMMIT, "no_next_step"] += 1
            if default is None or default < COMMIT_MIN_PROBABILITY:
                found[COMMIT, "stage_too_early"] += 1
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="snapshot JSON file (CONTRACT.md)")
    parser.add_argument("--as-of", help="evaluation date YYYY-MM-DD (default: the file's as_of)")
    parser.add_argument("--include-info", action="store_true", help="also count info findings")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with open(args.file, encoding="utf-8") as handle:
        data = json.load(handle)
    loaded = time.perf_counter()
    as_of_text = args.as_of or data.get("as_of")
    as_of = dt.date.fromisoformat(as_of_text) if as_of_text else dt.date.today()
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
